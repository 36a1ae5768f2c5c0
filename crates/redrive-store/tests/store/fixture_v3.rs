//! The contents of `tests/fixtures/format-v3.redb`: a store file written by the last build of
//! format version 3 (main at `c8250f1`, before the journal of format 4). It holds the same
//! records as the format-2 fixture (`fixture_v2.rs`: standard, DLQ and FIFO queues, dedup
//! entries, an in-flight and a delayed message, a 4 KiB body, a move task, documents and
//! minute history), in format 3's layout (payloads in `message_body`). The migration test
//! (`migration.rs`) opens a copy with the current build and compares it with these batches
//! applied to a `MemoryStore`.
//!
//! `write_format_v3_fixture` (ignored) is how the file was made; run it again only with a
//! format-v3 build, never with the current one.

use redrive_store::Mutation;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v3.redb");

/// Everything the fixture holds, as the batches that wrote it.
pub fn batches() -> Vec<Vec<Mutation>> {
    crate::fixture_v2::batches()
}

/// Writes the fixture. Only meaningful with a format-v3 build (see the module docs).
#[test]
#[ignore = "writes tests/fixtures/format-v3.redb; run only with a format-v3 build"]
fn write_format_v3_fixture() {
    crate::common::write_fixture(3, batches(), FIXTURE);
}
