//! `--group-by` expressions: jq filters with `$meta` (shared with the server's selective
//! redrive, so a filter means the same on both sides).

pub use redrive_select::jq::*;
