//! Ctrl-C handling, questions and progress bars of the interactive commands.
use super::*;

/// Counts Ctrl-C presses once installed (the default "kill at once" is replaced, so every
/// path can finish its current step and leave nothing half-done); a second press exits at
/// once with 130.
#[derive(Clone)]
pub struct Interrupt {
    pub(super) rx: tokio::sync::watch::Receiver<u64>,
}

impl Interrupt {
    /// Installs the handler (call once, inside the runtime).
    pub fn install() -> Interrupt {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                if *tx.borrow() >= 1 {
                    // Second press: leave now. Safe: every copy is journaled before its
                    // original is deleted, so a rerun with the same audit log finishes.
                    eprintln!(
                        "\nsecond Ctrl-C: exiting now (rerun with the same --audit-log to finish)"
                    );
                    std::process::exit(130);
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Interrupt { rx }
    }

    /// An interrupt driven by the caller instead of Ctrl-C (`redrive console`'s cancel
    /// button): each `send_modify(|n| *n += 1)` on the sender counts as one press.
    pub fn manual() -> (Interrupt, tokio::sync::watch::Sender<u64>) {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        (Interrupt { rx }, tx)
    }

    /// Ctrl-C presses so far.
    pub fn count(&self) -> u64 {
        *self.rx.borrow()
    }

    /// Resolves at the next Ctrl-C after `seen` presses.
    pub async fn after(&self, seen: u64) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|n| *n > seen).await;
    }
}

/// Whether a person can answer a question (stdin and stderr are terminals).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on stderr, reading the answer from stdin (default no).
pub async fn ask(question: &str) -> bool {
    eprint!("\n{question} [y/N] ");
    let _ = std::io::stderr().flush();
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok();
        matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    })
    .await
    .unwrap_or(false)
}

/// A progress bar on stderr when it is a terminal.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}
