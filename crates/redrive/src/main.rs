//! `redrive`: the SQS-compatible server (`redrive serve`), the DLQ investigation commands
//! (`status`, `peek`, `stats`, `report`, `metrics`, `export`, `import`; see docs/cli.md) and
//! the redrive commands (`move`, `replay`, `schedule`; see docs/redrive-cli.md).

mod investigate;
mod redrive_cmds;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use redrive_server::{Auth, Server, ServerConfig, Storage};
use redrive_store::DurabilityMode;
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
    /// Recurring redrives kept by a Redrive server.
    Schedule(redrive_cmds::ScheduleArgs),
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
    /// Directory of the durable store (one file, `redrive.redb`).
    #[arg(long, env = "REDRIVE_DATA_DIR", default_value = "redrive-data")]
    data_dir: std::path::PathBuf,
    /// Keep everything in memory instead (nothing survives a restart).
    #[arg(long, env = "REDRIVE_IN_MEMORY", conflicts_with = "durability")]
    in_memory: bool,
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
    /// Days of per-queue minute history (CloudWatch-equivalent metrics) kept in the store.
    #[arg(long, env = "REDRIVE_METRICS_RETENTION_DAYS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    metrics_retention_days: u32,
    /// Log format.
    #[arg(long, env = "REDRIVE_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
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
    let storage = if args.in_memory {
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
        enable_reset_api: args.enable_reset_api,
        storage,
        auth,
        metrics_retention_days: args.metrics_retention_days,
        ..ServerConfig::default()
    };
    let server = Server::bind(config.clone())
        .await
        .with_context(|| format!("cannot start the server on {}:{}", config.host, config.port))?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, account = %config.account_id, region = %config.region, "redrive listening");
    let engine = server.engine();
    server
        .serve(shutdown_signal())
        .await
        .context("server failed")?;
    // The minute in progress, so a restart within it keeps what was counted before.
    engine.flush_history_partial().await;
    drop(engine);
    tracing::info!("stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
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
