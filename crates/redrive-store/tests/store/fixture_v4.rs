//! The contents of `tests/fixtures/format-v4.redb`: a store file written by the last build of
//! format version 4 (main at `d0cd94d`, before format 5 stopped writing the delivery state of
//! messages never received). It holds the same records as the format-2 fixture
//! (`fixture_v2.rs`), in format 4's layout: a `message_state` record for every message, the
//! journal checkpointed into the file at shutdown. The migration test (`migration.rs`) opens a
//! copy with the current build and compares it with these batches applied to a `MemoryStore`.
//!
//! `write_format_v4_fixture` (ignored) is how the file was made; run it again only with a
//! format-v4 build, never with the current one.

use redrive_store::Mutation;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v4.redb");

/// Everything the fixture holds, as the batches that wrote it.
pub fn batches() -> Vec<Vec<Mutation>> {
    crate::fixture_v2::batches()
}

/// Writes the fixture. Only meaningful with a format-v4 build (see the module docs).
#[test]
#[ignore = "writes tests/fixtures/format-v4.redb; run only with a format-v4 build"]
fn write_format_v4_fixture() {
    crate::common::write_fixture(4, batches(), FIXTURE);
}
