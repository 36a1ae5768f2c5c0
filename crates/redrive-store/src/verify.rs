//! Offline verification of a store file (`redrive verify`): reads every record of every table
//! without modifying the file and reports the ones that fail their checksum or decoding.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::QuarantinedRecord;
use crate::codec::{self, table};
use crate::redb_store::{
    self, DEDUP_V1, DOCUMENTS_V1, MESSAGES, META, META_FORMAT_VERSION, MOVE_TASKS_V1, QUEUES, Scan,
};
use crate::{FORMAT_VERSION, StoreError};

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub path: PathBuf,
    /// `meta.format_version` of the file (1 is verified by decoding only: it has no checksums).
    pub format_version: u64,
    /// Records read and failed per table.
    pub tables: Vec<TableReport>,
    /// Every record that failed.
    pub problems: Vec<VerifyProblem>,
    /// The quarantine's contents: records moved out at earlier loads (not counted as problems).
    pub quarantined: Vec<QuarantinedRecord>,
    /// Format 4: the journal's entries that the next open applies (after a crash or a
    /// SIGKILL; a clean shutdown leaves none). Their records are not in `tables`.
    pub journal: Option<JournalReport>,
}

/// The journal beside a format-4 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalReport {
    /// Entries of the current epoch, i.e. not yet applied to the file.
    pub entries: u64,
    /// Mutations in them.
    pub mutations: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl VerifyReport {
    /// No record failed (and none would be quarantined at the next start).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records that failed verification themselves.
    pub fn failed(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.failed_verification)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub records: u64,
    pub failed: u64,
}

/// One record that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    pub table: String,
    /// Printable key (`codec::describe_key`).
    pub key: String,
    pub reason: String,
    /// `false` for a record that verifies but would be quarantined with another one (the
    /// state record of a message whose `messages` record failed).
    pub failed_verification: bool,
}

/// Verifies the store file at `path` (the `redrive.redb` file, or the directory holding it)
/// without modifying it: opens it with redb's read-only open (a shared lock, so it fails while
/// a server has the file open), reads every table and checks every record.
///
/// A file that was not closed cleanly (after a crash) cannot be opened read-only: redb needs
/// to repair it first, which `RedbStore::open` (i.e. starting the server) does.
pub fn verify(path: &Path) -> Result<VerifyReport, StoreError> {
    let path = if path.is_dir() {
        path.join(crate::FILE_NAME)
    } else {
        path.to_path_buf()
    };
    if !path.is_file() {
        return Err(StoreError::Verify(format!(
            "{} does not exist or is not a file",
            path.display()
        )));
    }
    let db = Database::builder()
        .open_read_only(&path)
        .map_err(|e| match e {
            redb::DatabaseError::RepairAborted => StoreError::Verify(format!(
                "{} was not closed cleanly (a crash?): start the server once so redb can repair \
             it, then verify again",
                path.display()
            )),
            e => StoreError::Redb(e.into()),
        })?;
    let txn = db.begin_read()?;
    let format_version = txn
        .open_table(META)?
        .get(META_FORMAT_VERSION)?
        .map_or(0, |v| v.value());
    let mut report = VerifyReport {
        path,
        format_version,
        tables: Vec::new(),
        problems: Vec::new(),
        quarantined: Vec::new(),
        journal: None,
    };
    match format_version {
        2..=FORMAT_VERSION => {
            let Scan {
                damaged, counts, ..
            } = redb_store::scan(&txn, true, None)?;
            for (name, records) in counts {
                report.tables.push(TableReport {
                    table: name.to_owned(),
                    records,
                    failed: damaged
                        .iter()
                        .filter(|d| d.failed && d.loc.table() == name)
                        .count() as u64,
                });
            }
            report.problems = damaged
                .iter()
                .map(|d| VerifyProblem {
                    table: d.loc.table().to_owned(),
                    key: codec::describe_key(d.loc.table(), &d.loc.key()),
                    reason: d.reason.clone(),
                    failed_verification: d.failed,
                })
                .collect();
            report.quarantined = redb_store::list_quarantine(&txn)?;
            report.tables.push(TableReport {
                table: table::QUARANTINE.to_owned(),
                records: report.quarantined.len() as u64,
                failed: 0,
            });
        }
        1 => verify_v1(&txn, &mut report)?,
        v => {
            return Err(StoreError::UnsupportedFormat {
                found: v,
                supported: FORMAT_VERSION,
            });
        }
    }
    if format_version >= 4 {
        let journal = report
            .path
            .with_file_name(crate::journal::JOURNAL_FILE_NAME);
        if journal.is_file() {
            let bytes = std::fs::read(&journal).map_err(|e| {
                StoreError::Verify(format!("cannot read {}: {e}", journal.display()))
            })?;
            let epoch = redb_store::journal_epoch(&txn.open_table(META)?)?;
            match crate::journal::decode_entries(&bytes, epoch) {
                Ok(replay) => {
                    report.journal = Some(JournalReport {
                        entries: replay.entries,
                        mutations: replay.mutations.len() as u64,
                        bytes: replay.valid_bytes,
                    })
                }
                Err(e) => report.problems.push(VerifyProblem {
                    table: crate::journal::JOURNAL_FILE_NAME.to_owned(),
                    key: format!("epoch {epoch}"),
                    reason: format!("an entry passes its checksum but does not decode: {e}"),
                    failed_verification: true,
                }),
            }
        }
    }
    Ok(report)
}

/// A format-1 file has no checksums: each record is decoded (what the migration will do).
fn verify_v1(txn: &redb::ReadTransaction, report: &mut VerifyReport) -> Result<(), StoreError> {
    let mut check = |name: &str, records: u64, failures: Vec<(String, codec::CodecError)>| {
        report.tables.push(TableReport {
            table: name.to_owned(),
            records,
            failed: failures.len() as u64,
        });
        for (key, e) in failures {
            report.problems.push(VerifyProblem {
                table: name.to_owned(),
                key,
                reason: format!("format-1 record does not decode: {e}"),
                failed_verification: true,
            });
        }
    };
    let t = txn.open_table(QUEUES)?;
    let mut bad = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        if let Err(e) = codec::decode_queue_v1(k.value(), v.value()) {
            bad.push((k.value().to_string(), e));
        }
    }
    check(table::QUEUES, t.len()?, bad);
    let t = txn.open_table(MESSAGES)?;
    let mut bad = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        let (uid, seq) = k.value();
        if let Err(e) = codec::decode_message_v1(uid, seq, v.value()) {
            bad.push((format!("{uid}/{seq}"), e));
        }
    }
    check(table::MESSAGES, t.len()?, bad);
    let t = txn.open_table(MOVE_TASKS_V1)?;
    let mut bad = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        if let Err(e) = codec::decode_move_task_v1(k.value(), v.value()) {
            bad.push((k.value().escape_debug().to_string(), e));
        }
    }
    check(table::MOVE_TASKS, t.len()?, bad);
    let t = txn.open_table(DEDUP_V1)?;
    let mut bad = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        let (uid, key) = k.value();
        if let Err(e) = codec::decode_dedup_v1(uid, key, v.value()) {
            bad.push((format!("{uid}/{}", key.escape_debug()), e));
        }
    }
    check(table::DEDUP, t.len()?, bad);
    // Documents are JSON the store does not interpret; a file from before the table existed
    // has none.
    let documents = match txn.open_table(DOCUMENTS_V1) {
        Ok(t) => t.len()?,
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    check(table::DOCUMENTS, documents, Vec::new());
    Ok(())
}
