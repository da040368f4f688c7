-- Substring search over a profile's handle and text (the console's `/` filter on Candidates and
-- Leads). A LIKE '%…%' scan of a million profiles takes seconds; an FTS5 trigram index answers a
-- phrase query of three or more characters from the index. A regular FTS5 table (it keeps its own
-- copy of the text, small next to the trigram index): contentless tables would need SQLite 3.43's
-- contentless_delete to remove rows, and older sqlite3 shells (Debian 12 ships 3.40) could then no
-- longer write to profile_features. rowid = profiles_raw.id. Kept in sync by the triggers below.
CREATE VIRTUAL TABLE IF NOT EXISTS profile_search USING fts5(
    handle, text, tokenize = 'trigram'
);

CREATE TRIGGER IF NOT EXISTS profile_search_insert AFTER INSERT ON profile_features BEGIN
    INSERT INTO profile_search (rowid, handle, text)
        SELECT NEW.profile_id, p.handle, NEW.text FROM profiles_raw p WHERE p.id = NEW.profile_id;
END;

CREATE TRIGGER IF NOT EXISTS profile_search_update AFTER UPDATE OF text ON profile_features
WHEN OLD.text IS NOT NEW.text BEGIN
    DELETE FROM profile_search WHERE rowid = OLD.profile_id;
    INSERT INTO profile_search (rowid, handle, text)
        SELECT NEW.profile_id, p.handle, NEW.text FROM profiles_raw p WHERE p.id = NEW.profile_id;
END;

CREATE TRIGGER IF NOT EXISTS profile_search_delete AFTER DELETE ON profile_features BEGIN
    DELETE FROM profile_search WHERE rowid = OLD.profile_id;
END;

CREATE TRIGGER IF NOT EXISTS profile_search_handle AFTER UPDATE OF handle ON profiles_raw
WHEN OLD.handle IS NOT NEW.handle BEGIN
    DELETE FROM profile_search WHERE rowid = OLD.id;
    INSERT INTO profile_search (rowid, handle, text)
        SELECT NEW.id, NEW.handle, f.text FROM profile_features f WHERE f.profile_id = NEW.id;
END;

-- Profiles stored before this migration.
INSERT INTO profile_search (rowid, handle, text)
    SELECT f.profile_id, p.handle, f.text FROM profile_features f JOIN profiles_raw p ON p.id = f.profile_id;
