-- The search index (`profile_search`, migration 0007) is written in bulk rather than by the
-- statement that changes a profile.
--
-- Each write transaction that touched `profile_search` added one small segment to the FTS5 index,
-- and FTS5 then merged those segments level by level: with the triggers of 0007, indexing was
-- ≈ 0.45 of the ≈ 2 CPU-ms a new profile cost (BENCHMARKS.md §2). Now the triggers only note the
-- profile in `search_pending`. `profiles::index_search` moves the noted profiles into the index in
-- one statement once a scrape has left 2,000 of them. Until then a search matches the noted
-- profiles on their current handle and text with LIKE, and the index only for the others
-- (`browse::where_clause`), so it sees every change without writing.
CREATE TABLE IF NOT EXISTS search_pending (
    profile_id INTEGER PRIMARY KEY
) WITHOUT ROWID;

DROP TRIGGER IF EXISTS profile_search_insert;
DROP TRIGGER IF EXISTS profile_search_update;
DROP TRIGGER IF EXISTS profile_search_handle;
DROP TRIGGER IF EXISTS profile_search_delete;
DROP TRIGGER IF EXISTS profile_search_pending_delete;

CREATE TRIGGER profile_search_insert AFTER INSERT ON profile_features BEGIN
    INSERT INTO search_pending (profile_id) SELECT NEW.profile_id
        WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE profile_id = NEW.profile_id);
END;

CREATE TRIGGER profile_search_update AFTER UPDATE OF text ON profile_features
WHEN OLD.text IS NOT NEW.text BEGIN
    INSERT INTO search_pending (profile_id) SELECT NEW.profile_id
        WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE profile_id = NEW.profile_id);
END;

CREATE TRIGGER profile_search_handle AFTER UPDATE OF handle ON profiles_raw
WHEN OLD.handle IS NOT NEW.handle BEGIN
    INSERT INTO search_pending (profile_id) SELECT NEW.id
        WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE profile_id = NEW.id);
END;

-- Erased features leave the index at once (nothing is left to find them by).
CREATE TRIGGER profile_search_delete AFTER DELETE ON profile_features BEGIN
    DELETE FROM profile_search WHERE rowid = OLD.profile_id;
    DELETE FROM search_pending WHERE profile_id = OLD.profile_id;
END;

-- A profile erased with a note still pending (a renamed handle, no features) drops the note.
CREATE TRIGGER profile_search_pending_delete AFTER DELETE ON profiles_raw BEGIN
    DELETE FROM search_pending WHERE profile_id = OLD.id;
END;
