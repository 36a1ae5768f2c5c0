//! `redrive alerts …`: flags validated into `redrive_cli::alerts` requests before anything
//! connects (exactly one condition, whole-minute windows, webhook URLs).

use anyhow::{Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use redrive_cli::alerts::{self, ConditionSpec, RuleSpec, whole_minutes};
use redrive_cli::util::parse_duration;

use crate::investigate::ConnArgs;

/// `redrive alerts …`
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Add a rule (kept and evaluated every minute by the Redrive server).
    Add(Box<AddArgs>),
    /// Rules with the state of every queue they match, and active silences.
    List {
        /// Output: table or json.
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// State transitions, newest first.
    History {
        /// Only this rule (name or id).
        #[arg(long)]
        rule: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Output: table or json.
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// Hold notifications back (transitions are still recorded) until a time.
    #[command(group(ArgGroup::new("target").required(true).multiple(true).args(["rule", "queue"])))]
    #[command(group(ArgGroup::new("end").required(true).args(["for_", "until"])))]
    Silence {
        /// A rule name or id.
        #[arg(long)]
        rule: Option<String>,
        /// A queue name or glob (`*` for every queue).
        #[arg(long)]
        queue: Option<String>,
        /// How long: 30m, 2h, 1d.
        #[arg(long = "for", id = "for_", value_name = "DURATION")]
        for_: Option<String>,
        /// Until TIME (RFC 3339 or epoch seconds).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(long)]
        comment: Option<String>,
    },
    /// End a silence early.
    Unsilence {
        /// The silence id (from `alerts list`).
        id: String,
    },
    /// Remove a rule (its history stays).
    Remove {
        /// Name or id.
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("condition").required(true).args(["depth", "age", "arrivals", "growth"])))]
struct AddArgs {
    /// A unique name.
    name: String,
    /// Queue name or glob (`*-dlq`).
    #[arg(long)]
    queue: String,
    /// ALARM when visible messages ≥ N in each minute of --for.
    #[arg(long, value_name = "N")]
    depth: Option<u64>,
    /// With --depth: for how long (whole minutes).
    #[arg(long = "for", value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    for_: std::time::Duration,
    /// ALARM when the oldest message is at least this old (e.g. 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    age: Option<std::time::Duration>,
    /// ALARM when at least R messages arrived (sent or dead-lettered) within --per.
    #[arg(long, value_name = "R")]
    arrivals: Option<u64>,
    /// With --arrivals: the window (whole minutes).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    per: std::time::Duration,
    /// ALARM when visible messages grew by at least G over --over.
    #[arg(long, value_name = "G")]
    growth: Option<u64>,
    /// With --growth: the window (whole minutes).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    over: std::time::Duration,
    /// A label carried into notifications (P0, P1, info…).
    #[arg(long, default_value = "P1")]
    severity: String,
    /// A webhook receiving Redrive's generic JSON body (repeatable).
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
    /// A Slack incoming webhook (repeatable).
    #[arg(long, value_name = "URL")]
    slack_webhook: Vec<String>,
    /// Output: table or json.
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
}

impl AddArgs {
    fn spec(&self) -> Result<RuleSpec> {
        let condition = if let Some(threshold) = self.depth {
            ConditionSpec::Depth {
                threshold,
                minutes: whole_minutes("--for", self.for_)?,
            }
        } else if let Some(age) = self.age {
            if age.as_secs() == 0 {
                bail!("--age must be at least 1s");
            }
            ConditionSpec::Age {
                seconds: age.as_secs(),
            }
        } else if let Some(count) = self.arrivals {
            ConditionSpec::Arrivals {
                count,
                window_minutes: whole_minutes("--per", self.per)?,
            }
        } else if let Some(increase) = self.growth {
            ConditionSpec::Growth {
                increase,
                window_minutes: whole_minutes("--over", self.over)?,
            }
        } else {
            bail!("give one of --depth, --age, --arrivals, --growth");
        };
        let mut webhooks = Vec::new();
        for (urls, format) in [(&self.webhook, "json"), (&self.slack_webhook, "slack")] {
            for url in urls {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("webhook `{url}` must be an http:// or https:// URL");
                }
                webhooks.push((url.clone(), format.to_string()));
            }
        }
        Ok(RuleSpec {
            name: self.name.clone(),
            queue: self.queue.clone(),
            condition,
            severity: self.severity.clone(),
            webhooks,
        })
    }
}

pub async fn run_alerts(a: AlertsArgs) -> Result<u8> {
    match a.command {
        AlertsCommand::Add(add) => {
            let spec = add.spec()?;
            let conn = a.conn.connect().await?;
            let rule = alerts::add(&conn, &spec).await?;
            if add.format == "json" {
                println!("{}", serde_json::to_string_pretty(&rule)?);
            } else {
                print!("{}", alerts::render_list(std::slice::from_ref(&rule), &[]));
            }
        }
        AlertsCommand::List { format } => {
            let conn = a.conn.connect().await?;
            let (rules, silences) = alerts::list(&conn).await?;
            if format == "json" {
                let v = serde_json::json!({"rules": rules, "silences": silences});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", alerts::render_list(&rules, &silences));
            }
        }
        AlertsCommand::History {
            rule,
            queue,
            limit,
            format,
        } => {
            if !(1..=10_000).contains(&limit) {
                bail!("--limit must be between 1 and 10000");
            }
            let conn = a.conn.connect().await?;
            let h = alerts::history(&conn, rule.as_deref(), queue.as_deref(), limit).await?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&h)?);
            } else {
                print!("{}", alerts::render_history(&h));
            }
        }
        AlertsCommand::Silence {
            rule,
            queue,
            for_,
            until,
            comment,
        } => {
            if let Some(d) = &for_ {
                parse_duration(d).map_err(|e| anyhow::anyhow!("--for: {e}"))?;
            }
            let conn = a.conn.connect().await?;
            let s = alerts::silence(
                &conn,
                rule.as_deref(),
                queue.as_deref(),
                until.as_deref(),
                for_.as_deref(),
                comment.as_deref(),
            )
            .await?;
            println!(
                "silence {} until {}",
                s["id"].as_str().unwrap_or_default(),
                s["untilMs"]
                    .as_i64()
                    .map(redrive_cli::util::format_ts)
                    .unwrap_or_default()
            );
        }
        AlertsCommand::Unsilence { id } => {
            let conn = a.conn.connect().await?;
            alerts::unsilence(&conn, &id).await?;
            println!("removed silence {id}");
        }
        AlertsCommand::Remove { name } => {
            let conn = a.conn.connect().await?;
            alerts::remove(&conn, &name).await?;
            println!("removed alert rule `{name}`");
        }
    }
    Ok(0)
}
