//! Pipeline stages: discover, scrape, enrich, candidates, qualify, dispatch, feedback, learn.
