//! The audit log, which is also the journal a rerun reads to finish an interrupted run.
use super::*;

/// The audit log, NDJSON, one record per line, appended and fsync'd; it is also the journal a
/// rerun reads to finish what an interrupted run started. Records (`event`):
/// `start`, `sent` (a copy accepted by the destination: `messageId`, `newMessageId`,
/// `receipt`, `destination`), `deleted`, `failed`, `moved` (server path), `end`.
pub struct Journal {
    file: File,
    pub path: PathBuf,
}

/// What a journal says about a DLQ.
#[derive(Debug, Default)]
pub struct JournalState {
    /// Every message id ever copied from this DLQ → (receipt handle, deleted?).
    pub sent: HashMap<String, (String, bool)>,
    /// The last run on this DLQ that has a `start` but no `end` record (killed).
    pub unfinished_run: Option<String>,
}

impl Journal {
    /// Opens (creating directories and the file) and reads what it already holds about `source`.
    pub fn open(path: &Path, source_arn: &str) -> Result<(Journal, JournalState)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut state = JournalState::default();
        if let Ok(f) = File::open(path) {
            let mut open_runs: Vec<String> = Vec::new();
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line (crash while writing) is ignored.
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["source"].as_str() != Some(source_arn) {
                    continue;
                }
                let id = v["messageId"].as_str().unwrap_or_default().to_string();
                let run = v["run"].as_str().unwrap_or_default().to_string();
                match v["event"].as_str() {
                    Some("start") if v["path"] == "client" && v["dryRun"] != true => {
                        open_runs.push(run)
                    }
                    Some("end") => open_runs.retain(|r| *r != run),
                    Some("sent") => {
                        let receipt = v["receipt"].as_str().unwrap_or_default().to_string();
                        state.sent.insert(id, (receipt, false));
                    }
                    Some("deleted") => {
                        if let Some(e) = state.sent.get_mut(&id) {
                            e.1 = true;
                        }
                    }
                    _ => {}
                }
            }
            state.unfinished_run = open_runs.pop();
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        // After a torn last line (a crash while writing), start on a fresh line.
        let text_end = std::fs::read(path).ok().and_then(|b| b.last().copied());
        if text_end.is_some_and(|b| b != b'\n') {
            file.write_all(b"\n")
                .with_context(|| format!("cannot write the audit log {}", path.display()))?;
        }
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            state,
        ))
    }

    /// Appends records and makes them durable before returning.
    pub fn write(&mut self, records: &[Value]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for r in records {
            buf.push_str(&r.to_string());
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write the audit log {}", self.path.display()))
    }
}
