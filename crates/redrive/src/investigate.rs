//! Flags of the investigation subcommands (`status`, `peek`, `stats`, `report`, `export`,
//! `import`),
//! validated into the plans of `redrive_cli`. Nothing here deletes or moves a message.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use redrive_cli::client::{Conn, ConnOpts};
use redrive_cli::enrich::{KeyColumn, Mapping};
use redrive_cli::jq::GroupBy;
use redrive_cli::metrics::{MetricsPlan, metrics};
use redrive_cli::report::{ReportPlan, report};
use redrive_cli::source::{Message, Source};
use redrive_cli::stats::{Bucket, Stats};
use redrive_cli::status::{StatusPlan, status};
use redrive_cli::transfer::FileFormat;
use redrive_cli::util::parse_duration;
use redrive_cli::{Format, Progress, peek_csv, peek_ndjson, peek_table, transfer};

/// Connection flags of every client subcommand, resolved like the AWS CLI (`AWS_PROFILE`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, `~/.aws/config`). Global, so `schedule add … --endpoint-url`
/// works after a nested subcommand too.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// SQS endpoint (e.g. a Redrive server: http://127.0.0.1:9324). Without credentials
    /// configured, dummy ones are used for it.
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    /// AWS Region.
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile from the AWS config files (an unknown profile is an error).
    #[arg(long, global = true)]
    profile: Option<String>,
}

impl ConnArgs {
    pub async fn connect(&self) -> Result<Conn> {
        Conn::connect(&ConnOpts {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
        })
        .await
    }
}

/// `redrive status QUEUE`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Queue name or URL (a source queue or its DLQ).
    queue: String,
    /// Sample the counts for this long (e.g. 30s, 5m) to tell residue from growth.
    #[arg(long, value_parser = parse_duration)]
    watch: Option<std::time::Duration>,
    /// On a Redrive server, a dead letter newer than this means active growth.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    recent: std::time::Duration,
    /// Output format: table, json, ndjson (one line per queue) or csv (one row per queue).
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive metrics QUEUE`
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Queue name or URL.
    queue: String,
    /// Start: an age (2h, 90m, 3d), an RFC 3339 time, a date, or epoch seconds.
    #[arg(long, default_value = "2h")]
    since: String,
    /// End (default: now), in the same forms.
    #[arg(long)]
    until: Option<String>,
    /// Period of each row: 1m, 5m, 1h… (whole minutes).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    period: std::time::Duration,
    /// Output format: table, json (rows and every series with its statistics), ndjson or
    /// csv (one row per period).
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: Format,
    /// Where to read: auto (a Redrive server's history API, else CloudWatch), redrive, or
    /// cloudwatch (GetMetricData on AWS or on the endpoint).
    #[arg(long, default_value = "auto", value_parser = ["auto", "redrive", "cloudwatch"])]
    source: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive peek QUEUE`
#[derive(Debug, Args)]
pub struct PeekArgs {
    /// Queue name or URL.
    queue: String,
    /// How many messages to show.
    #[arg(short = 'n', long, default_value_t = 3)]
    count: usize,
    /// Visibility timeout (seconds) of the receive fallback on servers without the browse API.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: i32,
    /// Output format: table, json, ndjson (one message per line) or csv (one row per message,
    /// the columns of `export --format csv`).
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive stats QUEUE`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Queue name or URL.
    queue: String,
    /// Group by a jq expression over the JSON body (`$meta` holds messageId, sentTimestamp,
    /// deadLetteredAt, receiveCount, groupId, attributes, messageAttributes). Repeatable;
    /// two or more also give the combined table (e.g. mall × command).
    #[arg(long = "group-by", value_name = "EXPR")]
    group_by: Vec<String>,
    /// Time buckets: `sent` or `dead-lettered`, per `minute`, `hour` or `day` (e.g. sent:minute).
    #[arg(long)]
    bucket: Option<String>,
    /// Read at most this many messages.
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// Rows per table.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Mapping file joined on the first --group-by key, e.g. mall_id → project_id, product:
    /// CSV with a header (first column the key), JSON {"key": {...}}, or a JSON array of
    /// objects [{"mall_id": "m1", "project_id": ...}, ...].
    #[arg(long, value_name = "FILE")]
    enrich: Option<PathBuf>,
    /// The key field of an --enrich JSON array (default: the first --group-by key's trailing
    /// field name, `.mall_id` → `mall_id`, else each row's first field) or CSV column
    /// (default: the first).
    #[arg(long, value_name = "NAME")]
    enrich_key: Option<String>,
    /// Visibility timeout (seconds) of the receive fallback.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: i32,
    /// Output format: table, json, ndjson (one line per table row, with a `table` field) or
    /// csv (the same rows, a leading `table` column).
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive report QUEUE`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Queue name or URL (a source queue or its DLQ); the DLQ's messages are summarized.
    queue: String,
    /// Group by a jq expression (repeatable), as in `stats`.
    #[arg(long = "group-by", value_name = "EXPR")]
    group_by: Vec<String>,
    /// Time buckets, as in `stats` (e.g. sent:minute).
    #[arg(long)]
    bucket: Option<String>,
    /// Mapping file joined on the first --group-by key, as in `stats`.
    #[arg(long, value_name = "FILE")]
    enrich: Option<PathBuf>,
    /// The key field or column of the --enrich file, as in `stats`.
    #[arg(long, value_name = "NAME")]
    enrich_key: Option<String>,
    /// Read at most this many messages.
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// Rows per table.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Sample the counts for this long to tell residue from growth (needed on AWS).
    #[arg(long, value_parser = parse_duration)]
    watch: Option<std::time::Duration>,
    /// On a Redrive server, a dead letter newer than this means active growth.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    recent: std::time::Duration,
    /// Visibility timeout (seconds) of the receive fallback.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: i32,
    /// Output format: markdown or json.
    #[arg(long, value_parser = ["markdown", "json"], default_value = "markdown")]
    format: String,
    #[command(flatten)]
    conn: ConnArgs,
}

struct Grouping {
    group_bys: Vec<GroupBy>,
    bucket: Option<Bucket>,
    mapping: Option<Mapping>,
}

/// Validates the grouping flags before anything touches the network.
fn grouping(
    group_by: &[String],
    bucket: Option<&str>,
    enrich: Option<&PathBuf>,
    enrich_key: Option<&str>,
    limit: usize,
) -> Result<Grouping> {
    let group_bys = group_by
        .iter()
        .map(|e| GroupBy::compile(e))
        .collect::<Result<Vec<_>, _>>()?;
    let bucket = bucket
        .map(Bucket::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if enrich_key.is_some() && enrich.is_none() {
        bail!("--enrich-key names the key of an --enrich file; give one");
    }
    let key = KeyColumn::choose(enrich_key, group_by.first().map(String::as_str));
    let mapping = enrich
        .map(|p| redrive_cli::enrich::load(p, &key))
        .transpose()?;
    if mapping.is_some() && group_bys.is_empty() {
        bail!("--enrich joins on the first --group-by key; give one");
    }
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    Ok(Grouping {
        group_bys,
        bucket,
        mapping,
    })
}

/// `redrive export QUEUE --to FILE.ndjson|FILE.csv`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Queue name or URL.
    queue: String,
    /// File to write (`-` for stdout).
    #[arg(long)]
    to: PathBuf,
    /// File format: ndjson (one message per line) or csv (messageId, body, sentTimestamp,
    /// receiveCount, deadLetteredAt, deadLetterQueueSourceArn, messageGroupId,
    /// messageDeduplicationId, messageAttributes and attributes as JSON text). Default: csv
    /// for a `.csv` file, else ndjson.
    #[arg(long, value_name = "FORMAT")]
    format: Option<FileFormat>,
    /// Read at most this many messages.
    #[arg(long, default_value_t = 1_000_000)]
    limit: usize,
    /// Visibility timeout (seconds) of the receive fallback.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: i32,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive import FILE.ndjson|FILE.csv --to QUEUE`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// NDJSON or CSV file written by `redrive export`.
    file: PathBuf,
    /// Queue name or URL to send to.
    #[arg(long)]
    to: String,
    /// File format: ndjson or csv. Default: csv for a `.csv` file, else ndjson.
    #[arg(long, value_name = "FORMAT")]
    format: Option<FileFormat>,
    #[command(flatten)]
    conn: ConnArgs,
}

async fn open_source(conn: &Conn, queue: &str, visibility: i32) -> Result<Source> {
    let q = conn.resolve(queue).await?;
    let src = Source::open(conn, &q, visibility).await?;
    if let Some(w) = src.warning() {
        eprintln!("{w}");
    }
    Ok(src)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    emit(&text)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Gives the bar the approximate queue size (capped by `limit`) when it is drawn.
async fn progress_for(src: &Source, label: &'static str, limit: usize) -> Progress {
    let progress = Progress::new(label);
    if progress.is_visible() {
        let size = src.approximate_size().await;
        progress.set_total(size.map(|n| n.min(limit as u64)));
    }
    progress
}

pub async fn run_status(a: StatusArgs) -> Result<()> {
    let conn = a.conn.connect().await?;
    let mut st = status(
        &conn,
        &StatusPlan {
            queue: a.queue,
            watch: a.watch,
            recent: a.recent,
        },
    )
    .await?;
    if matches!(a.format, Format::Json | Format::Table) {
        redrive_cli::status::add_burst_window(&conn, &mut st).await;
        redrive_cli::status::add_alarm_checks(&conn, &mut st).await;
    }
    match a.format {
        Format::Json => print_json(&st),
        Format::Ndjson => emit(&st.to_ndjson()),
        Format::Csv => emit(&st.to_csv()),
        Format::Table => emit(&st.to_table()),
    }
}

pub async fn run_metrics(a: MetricsArgs) -> Result<()> {
    let plan = MetricsPlan {
        queue: a.queue,
        since: a.since,
        until: a.until,
        period_secs: a.period.as_secs(),
        source: match a.source.as_str() {
            "redrive" => redrive_cli::metrics::MetricsSource::Redrive,
            "cloudwatch" => redrive_cli::metrics::MetricsSource::CloudWatch,
            _ => redrive_cli::metrics::MetricsSource::Auto,
        },
    };
    if a.period.subsec_millis() != 0 {
        bail!("--period must be a whole number of minutes (1m, 5m, 1h)");
    }
    // Flags first: nothing touches the network with a bad --since or --period.
    plan.validate()?;
    let conn = a.conn.connect().await?;
    let t = metrics(&conn, &plan).await?;
    match a.format {
        Format::Json => print_json(&t),
        Format::Ndjson => emit(&t.to_ndjson()),
        Format::Csv => emit(&t.to_csv()),
        Format::Table => emit(&t.to_table()),
    }
}

pub async fn run_peek(a: PeekArgs) -> Result<()> {
    let conn = a.conn.connect().await?;
    let src = open_source(&conn, &a.queue, a.visibility_timeout).await?;
    let mut msgs: Vec<Message> = vec![];
    src.scan(a.count, |m| msgs.push(m)).await?;
    match a.format {
        Format::Json => print_json(&msgs),
        Format::Ndjson => emit(&peek_ndjson(&msgs)),
        Format::Csv => emit(&peek_csv(&msgs)),
        Format::Table => emit(&peek_table(&msgs)),
    }
}

pub async fn run_stats(a: StatsArgs) -> Result<()> {
    let g = grouping(
        &a.group_by,
        a.bucket.as_deref(),
        a.enrich.as_ref(),
        a.enrich_key.as_deref(),
        a.limit,
    )?;
    let conn = a.conn.connect().await?;
    let src = open_source(&conn, &a.queue, a.visibility_timeout).await?;
    let mut stats = Stats::new(g.group_bys, g.bucket).with_mapping(g.mapping);
    let progress = progress_for(&src, "scanned", a.limit).await;
    let scan = src
        .scan(a.limit, |m| {
            stats.add(&m);
            progress.tick(stats.total);
        })
        .await;
    progress.finish();
    let scan = scan?;
    if !scan.complete {
        eprintln!(
            "note: the scan is incomplete ({} messages read; raise --limit or see the queue's counts)",
            scan.read
        );
    }
    match a.format {
        Format::Json => print_json(&stats.to_json(&a.queue, &scan, a.top)),
        Format::Ndjson => emit(&stats.to_ndjson(a.top)),
        Format::Csv => emit(&stats.to_csv(a.top)),
        Format::Table => emit(&stats.to_table(&a.queue, &scan, a.top)),
    }
}

pub async fn run_report(a: ReportArgs) -> Result<()> {
    let g = grouping(
        &a.group_by,
        a.bucket.as_deref(),
        a.enrich.as_ref(),
        a.enrich_key.as_deref(),
        a.limit,
    )?;
    let conn = a.conn.connect().await?;
    let r = report(
        &conn,
        ReportPlan {
            queue: a.queue,
            group_bys: g.group_bys,
            bucket: g.bucket,
            mapping: g.mapping,
            limit: a.limit,
            top: a.top,
            recent: a.recent,
            watch: a.watch,
            visibility_timeout: a.visibility_timeout,
        },
    )
    .await?;
    if let Some(w) = &r.warning {
        eprintln!("{w}");
    }
    if a.format == "json" {
        print_json(&r)
    } else {
        emit(&r.to_markdown())
    }
}

pub async fn run_export(a: ExportArgs) -> Result<()> {
    let conn = a.conn.connect().await?;
    let format = FileFormat::for_path(a.format, &a.to);
    let src = open_source(&conn, &a.queue, a.visibility_timeout).await?;
    let progress = progress_for(&src, "exported", a.limit).await;
    let mut out: Box<dyn Write> = if a.to.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let f = std::fs::File::create(&a.to)
            .with_context(|| format!("cannot create {}", a.to.display()))?;
        Box::new(std::io::BufWriter::new(f))
    };
    let scan = transfer::export(&src, a.limit, format, &mut out, |n| progress.tick(n)).await;
    progress.finish();
    let scan = scan?;
    eprintln!(
        "exported {} messages from {}{}",
        scan.read,
        a.queue,
        if scan.complete { "" } else { " (incomplete)" }
    );
    Ok(())
}

pub async fn run_import(a: ImportArgs) -> Result<()> {
    let messages = transfer::read_messages(&a.file, FileFormat::for_path(a.format, &a.file))?;
    let conn = a.conn.connect().await?;
    let q = conn.resolve(&a.to).await?;
    let progress = Progress::new("imported");
    progress.set_total(Some(messages.len() as u64));
    let n = transfer::import(&conn, &q, &messages, |n| progress.tick(n)).await;
    progress.finish();
    let n = n?;
    eprintln!("imported {n} messages into {}", q.name);
    Ok(())
}
