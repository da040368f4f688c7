//! Windowed, filtered, sorted reads for the console and the API's list endpoints (owned by the console work).
