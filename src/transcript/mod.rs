//! The signed, hash-chained transcript of a run (issue 5).
