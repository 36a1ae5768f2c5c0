//! `redrive`: the SQS-compatible server (`redrive serve`), the DLQ investigation commands
//! (`status`, `peek`, `stats`, `report`, `metrics`, `export`, `import`; see docs/cli.md) and
//! the redrive commands (`move`, `replay`, `schedule`; see docs/redrive-cli.md), and
//! `console`, the DLQ web console on localhost against any endpoint (see docs/console.md).

/// mimalloc instead of glibc's malloc: a restart decodes millions of records on the store's
/// thread and frees them on the indexing thread, which costs glibc arena locking
/// (docs/performance.md: a 10M restart used 13.4-14.2 CPU-s with glibc, 9.3 with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod alerts_cmd;
mod console_cmd;
mod investigate;
mod redrive_cmds;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use redrive_server::queue_config::QueueConfig;
use redrive_server::{Auth, HttpLimits, Server, ServerConfig, Storage};
use redrive_store::DurabilityMode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "redrive",
    version,
    about = "SQS-compatible server and DLQ toolkit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SQS-compatible server.
    Serve(ServeArgs),
    /// A queue and its DLQ (or a DLQ and its sources): counts, age, and whether the DLQ is
    /// old residue, actively growing, or empty.
    Status(investigate::StatusArgs),
    /// Show a few messages with body and all attributes (non-destructive on a Redrive server).
    Peek(investigate::PeekArgs),
    /// Read a queue and aggregate: --group-by jq expressions, time buckets, receive counts,
    /// payload shapes, burst signature.
    Stats(investigate::StatsArgs),
    /// The summary of an investigation: composition, timing, retry evidence, residue or
    /// growth, next steps (Markdown, or --format json).
    Report(investigate::ReportArgs),
    /// A queue's minute history from a Redrive server: Sent, Received, Deleted, empty
    /// receives, Visible, NotVisible, age of the oldest message, DLQ arrivals per period.
    Metrics(investigate::MetricsArgs),
    /// Write a queue's messages to NDJSON or CSV without deleting them.
    Export(investigate::ExportArgs),
    /// Send the messages of an NDJSON or CSV export to a queue (keeps attributes and group ids).
    Import(investigate::ImportArgs),
    /// Move a DLQ's messages back with a native SQS move task, following its progress.
    Move(redrive_cmds::MoveArgs),
    /// Selective redrive: filter, transform, rate limits, circuit breaker, audit log. A dry
    /// run unless --yes.
    Replay(Box<redrive_cmds::ReplayArgs>),
    /// The DLQ web console on localhost against any endpoint (AWS, moto, a Redrive server):
    /// queues, counts, charts, group-by, messages, and client-side replay.
    Console(Box<console_cmd::ConsoleArgs>),
    /// Recurring redrives kept by a Redrive server.
    Schedule(redrive_cmds::ScheduleArgs),
    /// Exit 0 if a server answers its health endpoint (for container health checks: the
    /// image has no curl).
    Health {
        /// Server to ask (default: `http://127.0.0.1:$REDRIVE_PORT`, port 9324 if unset).
        #[arg(long, env = "REDRIVE_HEALTH_URL")]
        endpoint: Option<String>,
    },
    /// Queue files: `check` one, or `import-elasticmq` an ElasticMQ config into one.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Alert rules kept and evaluated by a Redrive server: add, list, history, silence,
    /// unsilence, remove.
    Alerts(alerts_cmd::AlertsArgs),
    /// Check every stored record of a data directory offline (checksums and encoding) without
    /// changing it; exits 1 if any record failed. The server must not be running on it.
    Verify(VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a queue file as `serve --config` would (every AWS validation), changing nothing;
    /// exits 1 with `FILE:LINE: queue, field: problem` lines if anything is wrong.
    Check {
        file: std::path::PathBuf,
        /// Account id the ARNs of the file are built with.
        #[arg(long, env = "REDRIVE_ACCOUNT_ID", default_value = "000000000000")]
        account_id: String,
        /// Region of queues that name none.
        #[arg(long, env = "REDRIVE_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Translate the `queues { … }` block of an ElasticMQ config (HOCON) into a queue file on
    /// stdout.
    ImportElasticmq { file: std::path::PathBuf },
}

async fn config_command(cmd: ConfigCommand) -> Result<u8> {
    match cmd {
        ConfigCommand::Check {
            file,
            account_id,
            region,
        } => {
            let checked = match QueueConfig::load(&file) {
                Ok(qc) => qc.check(&account_id, &region, |_, _| false).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(report) => {
                    println!(
                        "{}: ok, {} queues, {} messages",
                        file.display(),
                        report.created.len(),
                        report.messages_sent
                    );
                    Ok(0)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(1)
                }
            }
        }
        ConfigCommand::ImportElasticmq { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let toml = redrive_server::elasticmq::to_queue_file(&text)
                .map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
            print!("{toml}");
            Ok(0)
        }
    }
}

/// `redrive health`: GET `/_redrive/health` with a 3 s budget; 0 when it answers 200.
async fn health(endpoint: &str) -> Result<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = endpoint
        .strip_prefix("http://")
        .context("--endpoint must be an http:// URL")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let request = format!(
            "GET /_redrive/health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await?;
        Ok::<bool, std::io::Error>(head[..n].starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(true)) => Ok(0),
        Ok(Ok(false)) => {
            eprintln!("{endpoint}: unhealthy answer");
            Ok(1)
        }
        Ok(Err(e)) => {
            eprintln!("{endpoint}: {e}");
            Ok(1)
        }
        Err(_) => {
            eprintln!("{endpoint}: no answer within 3 s");
            Ok(1)
        }
    }
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Directory of the durable store (the `redrive.redb` file inside it is read).
    #[arg(long, env = "REDRIVE_DATA_DIR", default_value = "redrive-data")]
    data_dir: std::path::PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `redrive verify`: 0 if every record verified, 1 if any failed (or the file cannot be read).
fn verify(args: &VerifyArgs) -> Result<u8> {
    let report = redrive_store::verify(&args.data_dir)
        .with_context(|| format!("cannot verify {}", args.data_dir.display()))?;
    if args.json {
        let json = serde_json::json!({
            "path": report.path.display().to_string(),
            "formatVersion": report.format_version,
            "ok": report.ok(),
            "tables": report.tables.iter().map(|t| serde_json::json!({
                "table": t.table, "records": t.records, "failed": t.failed,
            })).collect::<Vec<_>>(),
            "failedCount": report.failed(),
            "failed": report.problems.iter().map(|p| serde_json::json!({
                "table": p.table, "key": p.key, "reason": p.reason,
                "failedVerification": p.failed_verification,
            })).collect::<Vec<_>>(),
            "quarantined": report.quarantined.iter().map(|q| serde_json::json!({
                "table": q.table, "key": q.key, "reason": q.reason,
                "quarantinedAt": q.quarantined_ms,
            })).collect::<Vec<_>>(),
            "journal": report.journal.as_ref().map(|j| serde_json::json!({
                "entries": j.entries, "mutations": j.mutations, "bytes": j.bytes,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "{} (format version {})",
            report.path.display(),
            report.format_version
        );
        for t in &report.tables {
            println!(
                "  {:<14} {:>10} records {:>6} failed",
                t.table, t.records, t.failed
            );
        }
        for p in &report.problems {
            let tag = if p.failed_verification {
                "FAILED"
            } else {
                "MOVED WITH IT"
            };
            println!("{tag} {} {}: {}", p.table, p.key, p.reason);
        }
        if let Some(j) = report.journal.as_ref().filter(|j| j.entries > 0) {
            println!(
                "journal: {} entries ({} changes, {} bytes) not yet in the file; the next start applies them",
                j.entries, j.mutations, j.bytes
            );
        }
        if !report.quarantined.is_empty() {
            println!(
                "{} records in the quarantine (moved out at earlier starts; not served):",
                report.quarantined.len()
            );
            for q in &report.quarantined {
                println!("  {} {}: {}", q.table, q.key, q.reason);
            }
        }
        if report.ok() {
            println!("ok: every record verified");
        } else {
            let with = report.problems.len() - report.failed();
            println!(
                "{} records failed verification ({with} more would be quarantined with them at \
                 the next start)",
                report.failed()
            );
        }
    }
    Ok(if report.ok() { 0 } else { 1 })
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "REDRIVE_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, env = "REDRIVE_PORT", default_value_t = 9324)]
    port: u16,
    /// Region used when a request is not SigV4-signed.
    #[arg(long, env = "REDRIVE_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id in queue URLs and ARNs.
    #[arg(long, env = "REDRIVE_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Form of the queue URLs handed out: `path` (`http://HOST/ACCOUNT/NAME`),
    /// `host-region` (`http://sqs.REGION.HOST/ACCOUNT/NAME`) or `path-region`
    /// (`http://HOST/queue/REGION/ACCOUNT/NAME`); the Region is the caller's (SigV4 scope).
    #[arg(long, env = "REDRIVE_QUEUE_URL_STYLE", default_value = "path")]
    queue_url_style: redrive_server::QueueUrlStyle,
    /// Directory of the durable store (one file, `redrive.redb`).
    #[arg(long, env = "REDRIVE_DATA_DIR", default_value = "redrive-data")]
    data_dir: std::path::PathBuf,
    /// Keep everything in memory instead (nothing survives a restart).
    #[arg(long, env = "REDRIVE_IN_MEMORY", conflicts_with = "durability")]
    in_memory: bool,
    /// Keep queues and messages in a database several servers share instead of the embedded
    /// store: a `postgres://USER@HOST:PORT/DB` URL (see docs/deploy.md for what works there).
    #[arg(long, env = "REDRIVE_STORE", conflicts_with_all = ["in_memory", "durability"])]
    store: Option<String>,
    /// Database connections of this server with `--store postgres://…`.
    #[arg(long, env = "REDRIVE_STORE_CONNECTIONS", default_value_t = 8)]
    store_connections: usize,
    /// `strict`: a change is acknowledged once fsync'd (group commit). `relaxed[:MS]`:
    /// acknowledged at once and fsync'd every MS milliseconds (default 100); a crash can lose
    /// the last interval.
    #[arg(long, env = "REDRIVE_DURABILITY")]
    durability: Option<String>,
    /// MiB kept in reserve beside the store and given up when a write fails for lack of
    /// space, so that receives, deletes and purges still work on a full disk (0: none).
    #[arg(long, env = "REDRIVE_DISK_RESERVE_MIB", default_value_t = 8)]
    disk_reserve_mib: u64,
    /// Serve `POST /moto-api/reset`, which drops all state (for test-suites only).
    #[arg(long, env = "REDRIVE_ENABLE_RESET_API")]
    enable_reset_api: bool,
    /// Request authentication: `none` (any credentials, the default) or `sigv4` (verify
    /// AWS Signature V4 against --credentials, on SQS and on the /_redrive/v1 API).
    #[arg(long, env = "REDRIVE_AUTH", value_parser = ["none", "sigv4"], default_value = "none")]
    auth: String,
    /// Keys accepted with `--auth sigv4`: ACCESS_KEY_ID:SECRET[,ACCESS_KEY_ID:SECRET…].
    #[arg(long, env = "REDRIVE_CREDENTIALS", hide_env_values = true)]
    credentials: Option<String>,
    /// Serve the web console (`/console`) to any client, not only loopback ones. Without
    /// authentication anyone who can reach the port can then read every message.
    #[arg(long, env = "REDRIVE_CONSOLE_PUBLIC")]
    console_public: bool,
    /// Longest time from the first byte of a request to the end of its headers (`30s`,
    /// `500ms`, `2m`; a bare number is seconds).
    #[arg(long, env = "REDRIVE_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Longest time from the end of the headers to the end of the body.
    #[arg(long, env = "REDRIVE_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// Slowest average body rate in bytes per second, enforced after the first 5 s of a
    /// body; 0 turns it off.
    #[arg(long, env = "REDRIVE_MIN_BODY_RATE", default_value_t = 1024)]
    min_body_rate: u64,
    /// Close a connection with no request in progress after this long.
    #[arg(long, env = "REDRIVE_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "REDRIVE_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Days of per-queue minute history (CloudWatch-equivalent metrics) kept in the store.
    #[arg(long, env = "REDRIVE_METRICS_RETENTION_DAYS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    metrics_retention_days: u32,
    /// `on`: per-request Prometheus observations and the minute history (which CloudWatch's
    /// API, `redrive metrics` and alert rules read). `off`: neither (for A/B benchmarks and
    /// throwaway test servers); `/metrics` still serves queue gauges and counters.
    #[arg(long, env = "REDRIVE_METRICS", value_parser = ["on", "off"], default_value = "on")]
    metrics: String,
    /// Queues to create at start (TOML; see docs/queue-config.md): created if missing, existing
    /// queues are left as they are; a file with any error stops the start and changes nothing.
    #[arg(long, env = "REDRIVE_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, env = "REDRIVE_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Test suites only: run the engine's clock from this time (RFC 3339), movable forward with
    /// `POST /_redrive/v1/test/clock?advance=SECONDS`.
    #[arg(long, hide = true, requires = "enable_reset_api")]
    test_clock_start: Option<String>,
}

/// `500ms`, `30s`, `2m` or a bare number of seconds; never zero.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 500ms or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_env("REDRIVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_tracing(&args.log_format);
    // Parsed before anything is opened: a file with a syntax error never starts a server.
    let queue_config = match &args.config {
        Some(path) => Some(QueueConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let auth = match (args.auth.as_str(), args.credentials.as_deref()) {
        ("sigv4", Some(c)) => Auth::SigV4 {
            keys: Auth::parse_keys(c).map_err(|e| anyhow::anyhow!("--credentials: {e}"))?,
        },
        ("sigv4", None) => anyhow::bail!("--auth sigv4 needs --credentials ACCESS_KEY_ID:SECRET"),
        (_, Some(_)) => anyhow::bail!("--credentials is only used with --auth sigv4"),
        _ => Auth::None,
    };
    if let Auth::SigV4 { keys } = &auth {
        tracing::info!(keys = keys.len(), "SigV4 verification on");
    }
    let storage = if let Some(url) = &args.store {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--store: only postgres:// URLs are supported (got {url:?})");
        }
        let backend =
            redrive_store_pg::PgBackend::connect(url, None, args.store_connections.max(1))
                .await
                .context("cannot open the shared database (--store)")?;
        tracing::info!(
            connections = args.store_connections,
            "shared database storage (PostgreSQL)"
        );
        Storage::Shared(redrive_server::SharedStore(std::sync::Arc::new(backend)))
    } else if args.in_memory {
        tracing::warn!("running in memory: nothing survives a restart");
        Storage::InMemory
    } else {
        let mode: DurabilityMode = args
            .durability
            .as_deref()
            .unwrap_or("strict")
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--durability: {e}"))?;
        tracing::info!(dir = %args.data_dir.display(), ?mode, "durable storage");
        Storage::Durable {
            dir: args.data_dir.clone(),
            mode,
            reserve_bytes: args.disk_reserve_mib.saturating_mul(1024 * 1024),
        }
    };
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        region: args.region,
        account_id: args.account_id,
        queue_url_style: args.queue_url_style,
        enable_reset_api: args.enable_reset_api,
        storage,
        auth,
        console_public: args.console_public,
        http: HttpLimits {
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
            min_body_rate: args.min_body_rate,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections as usize,
        },
        metrics_retention_days: args.metrics_retention_days,
        metrics_enabled: args.metrics == "on",
        test_clock: match &args.test_clock_start {
            None => None,
            Some(t) => {
                let start = redrive_select::schedule::parse_instant(t, 0)
                    .ok()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .with_context(|| format!("--test-clock-start: not a time: {t}"))?;
                Some(std::sync::Arc::new(
                    redrive_server::test_api::ShiftedClock::starting_at(start),
                ))
            }
        },
        ..ServerConfig::default()
    };
    let server = Server::bind(config.clone())
        .await
        .with_context(|| format!("cannot start the server on {}:{}", config.host, config.port))?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, account = %config.account_id, region = %config.region, "redrive listening");
    let h = &config.http;
    tracing::info!(
        header_timeout = ?h.header_timeout, body_timeout = ?h.body_timeout,
        min_body_rate = h.min_body_rate, idle_timeout = ?h.idle_timeout,
        max_connections = h.max_connections, "connection limits"
    );
    let engine = server.engine();
    if let Some(qc) = &queue_config {
        qc.apply(&engine, &config.account_id, &config.region)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    server
        .serve(shutdown_signal())
        .await
        .context("server failed")?;
    // The minute in progress, so a restart within it keeps what was counted before.
    engine.flush_history_partial().await;
    // On a shared store, the next server takes over the alerts and the gauges at once.
    engine.release_shared_leases().await;
    drop(engine);
    tracing::info!("stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages; a huge-page fault can stall in memory
    // compaction (a restart of 10M messages took 9 s with them, 6 s without).
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Commands that move messages choose their exit code (3 partial, 4 tripped, 130
    // interrupted); the others succeed with 0.
    let result: Result<u8> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await.map(|()| 0),
            Command::Status(a) => investigate::run_status(a).await.map(|()| 0),
            Command::Peek(a) => investigate::run_peek(a).await.map(|()| 0),
            Command::Stats(a) => investigate::run_stats(a).await.map(|()| 0),
            Command::Report(a) => investigate::run_report(a).await.map(|()| 0),
            Command::Metrics(a) => investigate::run_metrics(a).await.map(|()| 0),
            Command::Export(a) => investigate::run_export(a).await.map(|()| 0),
            Command::Import(a) => investigate::run_import(a).await.map(|()| 0),
            Command::Move(a) => redrive_cmds::run_move(a).await,
            Command::Replay(a) => redrive_cmds::run_replay(*a).await,
            Command::Schedule(a) => redrive_cmds::run_schedule(a).await,
            Command::Console(a) => console_cmd::run_console(*a).await,
            Command::Config(c) => config_command(c).await,
            Command::Health { endpoint } => {
                let endpoint = endpoint.unwrap_or_else(|| {
                    let port = std::env::var("REDRIVE_PORT").unwrap_or_else(|_| "9324".into());
                    format!("http://127.0.0.1:{port}")
                });
                health(&endpoint).await
            }
            Command::Alerts(a) => alerts_cmd::run_alerts(a).await,
            Command::Verify(a) => verify(&a),
        }
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
