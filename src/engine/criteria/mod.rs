//! Campaign criteria: the campaign file model, the filter language, the SQL compiler and criteria_hash.
