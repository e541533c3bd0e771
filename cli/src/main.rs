use std::path::PathBuf;
use std::process::ExitCode;

use callhook_cli::commands::{calls, dev, fixtures, replay, review, send, sweep};
use callhook_cli::console;
use callhook_cli::local::keys;
use callhook_cli::local::state::DevState;
use callhook_cli::target::{Target, TargetOptions};
use clap::{Parser, Subcommand};

/// callhook: receive voice-provider call webhooks, verified, stored once and reconciled.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Where dev keys and the local stack's state live.
    #[arg(long, global = true, default_value = keys::STATE_DIR, env = "CALLHOOK_STATE_DIR")]
    state_dir: PathBuf,
    /// Act on this deployed CloudFormation stack (tables and queues from its outputs, default AWS
    /// credential chain) instead of the running `callhook dev`: calls, review, replay, sweep.
    #[arg(long, global = true, env = "CALLHOOK_STACK")]
    stack: Option<String>,
    /// The stack's region (default: AWS_REGION or your AWS profile's).
    #[arg(long, global = true, requires = "stack")]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack locally: emulator, tables and queues from template.yaml, dev keys,
    /// and ingest on http://127.0.0.1:PORT. Prints one line per request, applied event and
    /// dispatch (coloured on a terminal); the functions' JSON logs go to STATE_DIR/functions.log
    /// and their metrics to STATE_DIR/emf.jsonl. Ctrl-C stops everything it started.
    Dev {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Port of the built-in CRM/ticketing sink, started when CRM_WEBHOOK_URL and
        /// TICKETING_WEBHOOK_URL are both unset.
        #[arg(long, default_value_t = 3001)]
        sink_port: u16,
        /// Use a running emulator (moto server, DynamoDB Local…) instead of starting moto.
        #[arg(long, env = "CALLHOOK_AWS_ENDPOINT")]
        aws_endpoint: Option<String>,
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Prefix of the local table and queue names.
        #[arg(long, default_value = "callhook-dev")]
        prefix: String,
        /// Also print the functions' CloudWatch EMF metric lines on stdout (they always go to
        /// STATE_DIR/emf.jsonl, exactly as Lambda would write them).
        #[arg(long)]
        emf: bool,
    },
    /// A local web page over the running `callhook dev` (or --stack NAME, with your AWS
    /// credentials): the calls, each call's events by occurrence and by receipt with what each
    /// changed and its dispatches, the review items with replay and discard, and the last hour.
    ///
    /// It listens on 127.0.0.1 only and prints a URL holding a random token: open it (the token
    /// becomes a cookie). Nothing is deployed. See docs/console.md.
    Console {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 3002)]
        port: u16,
        /// Minutes an unfinished call may go without an event before it shows as stale.
        #[arg(long, default_value_t = 60)]
        stale_after: u32,
    },
    /// Sign bodies with the provider's dev key at the current time and post them to ingest.
    /// A file may be a raw body or an API Gateway event fixture (its body is sent); `-` is stdin.
    Send {
        /// telnyx, bird, recho, miraiminds, stateset or standard.
        provider: String,
        #[arg(required = true)]
        files: Vec<String>,
        /// Base URL of ingest (default: the running `callhook dev`, else http://127.0.0.1:3000).
        #[arg(long)]
        url: Option<String>,
        /// Sign as of this Unix time instead of now (to try stale signatures).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Change one byte of the body after signing (for Mirai Minds, one character of the path
        /// token): ingest must answer 401.
        #[arg(long)]
        tamper: bool,
        /// One JSON object per answer.
        #[arg(long)]
        json: bool,
    },
    /// Maintain the fixtures in events/.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// Reconciled call records (of the running `callhook dev`, or of --stack).
    #[command(subcommand)]
    Calls(CallsCommand),
    /// Re-enqueue events (of the running `callhook dev`, or of --stack) that stayed RECEIVED
    /// longer than --min-age (a lost SendMessage), as the scheduled sweeper does.
    Sweep {
        /// Only events received at least this many seconds ago.
        #[arg(long, default_value_t = callhook::config::DEFAULT_SWEEP_MIN_AGE_SECS)]
        min_age: u64,
        /// The report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// What needs a person (the review table of the running `callhook dev`, or of --stack):
    /// events the lifecycle did not apply, dispatches given up, dead-lettered messages.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Normalize stored events (of the running `callhook dev`, or of --stack) again from their raw bytes, with
    /// the code as it is now, and re-enqueue them. PROCESSED events are skipped (the lifecycle
    /// applied them already); the lifecycle applies an event once, so replaying is harmless.
    #[command(group(
        clap::ArgGroup::new("selection")
            .required(true)
            .multiple(false)
            .args(["events", "call", "since", "status"])
    ))]
    Replay {
        /// These event ids (e.g. telnyx#<id>); repeat or list several.
        #[arg(long = "event", num_args = 1..)]
        events: Vec<String>,
        /// Every event of this call id (a scan of the events table).
        #[arg(long)]
        call: Option<String>,
        /// Events received at or after this RFC 3339 time (a scan of the events table).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// With --since: only events received before this time.
        #[arg(long, requires = "since")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Every event in this status: RECEIVED, PROCESSED or REVIEW.
        #[arg(long)]
        status: Option<String>,
        /// Send PROCESSED, still-reviewed and discarded events too (still harmless).
        #[arg(long)]
        force: bool,
        /// The report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Review items, newest first.
    List {
        /// open, replayed or discarded.
        #[arg(long)]
        status: Option<String>,
        /// e.g. unknown_type, malformed, no_call_id, call_mismatch, provider_delivery_failed,
        /// dispatch_failed, dlq:events, dlq:dispatch, dlq:callback.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One item; for an event, its stored raw body byte-exact.
    Show {
        /// The item id (event#…, dispatch#…, dlq#…) or the event or dispatch id.
        id: String,
        #[arg(long)]
        json: bool,
        /// Write the event's raw body only, byte-exact (e.g. `> body.json`).
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Send it again: an event is normalized again and re-enqueued, a dispatch goes back on the
    /// dispatch queue, a dead letter goes back on its source queue. The item becomes replayed.
    Replay {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Nothing to do: mark it discarded (it stays discarded if the event comes again).
    Discard {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CallsCommand {
    /// One call's record (the object dispatches carry as `call`).
    Get {
        /// e.g. telnyx#428c31b6-abf3-3bc1-b7f4-5013ef9657c1
        call_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Every call, most recent activity first.
    List {
        /// queued, initiated, ringing, answered or ended.
        #[arg(long)]
        status: Option<String>,
        /// Only calls with activity at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only calls not yet final.
        #[arg(long)]
        open: bool,
        /// Only calls with no webhook for at least this long (e.g. 4h, 30m, 2d): the ones the
        /// stale pass asks about.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FixturesCommand {
    /// Re-sign every fixture events/fixtures.json marks for signing, with the fixture keys.
    Sign {
        #[arg(long, default_value = "events")]
        dir: PathBuf,
        /// Change nothing; fail if a fixture's signature is out of date.
        #[arg(long)]
        check: bool,
    },
    /// Wrap a raw provider body into a signed API Gateway event fixture.
    New {
        provider: String,
        body: PathBuf,
        out: PathBuf,
        /// Send the body base64-encoded, as API Gateway does for binary content.
        #[arg(long)]
        base64: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("callhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let target_options = TargetOptions {
        stack: cli.stack.clone(),
        region: cli.region.clone(),
    };
    let target = || Target::resolve(&target_options, &cli.state_dir);
    match cli.command {
        Command::Dev {
            port,
            sink_port,
            aws_endpoint,
            template,
            prefix,
            emf,
        } => {
            dev::run(dev::Options {
                port,
                sink_port,
                aws_endpoint,
                template,
                prefix,
                state_dir: cli.state_dir,
                emf,
            })
            .await?;
        }
        Command::Console { port, stale_after } => {
            console::run(console::Options {
                port,
                stale_after: chrono::Duration::minutes(i64::from(stale_after)),
                target: target_options,
                state_dir: cli.state_dir,
            })
            .await?;
        }
        Command::Send {
            provider,
            files,
            url,
            timestamp,
            tamper,
            json,
        } => {
            let url = url
                .or_else(|| DevState::load(&cli.state_dir).ok().map(|s| s.url))
                .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
            let failures = send::run(send::Options {
                provider: &provider,
                files: &files,
                url,
                state_dir: &cli.state_dir,
                timestamp,
                tamper,
                json,
            })
            .await?;
            if failures > 0 {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Calls(command) => {
            let target = target().await?;
            match command {
                CallsCommand::Get { call_id, json } => calls::get(&target, &call_id, json).await?,
                CallsCommand::List {
                    status,
                    since,
                    open,
                    older_than,
                    json,
                } => {
                    let filter = calls::Filter {
                        status,
                        since,
                        open,
                        quiet_for: older_than,
                    };
                    calls::list(&calls::store(&target)?, &filter, json).await?
                }
            }
        }
        Command::Sweep { min_age, json } => {
            sweep::run(&target().await?, min_age, json).await?;
        }
        Command::Review(command) => {
            let target = target().await?;
            let store = review::store(&target)?;
            match command {
                ReviewCommand::List {
                    status,
                    reason,
                    json,
                } => {
                    let status = status.as_deref().map(review::parse_status).transpose()?;
                    review::list(&store, status, reason.as_deref(), json).await?;
                }
                ReviewCommand::Show { id, json, raw } => {
                    review::show(&target, &store, &id, json, raw).await?
                }
                ReviewCommand::Replay { id, json } => {
                    review::replay(&target, &store, &id, json).await?
                }
                ReviewCommand::Discard { id, json } => review::discard(&store, &id, json).await?,
            }
        }
        Command::Replay {
            events,
            call,
            since,
            until,
            status,
            force,
            json,
        } => {
            use callhook::app::replay::Selection;
            let selection = if !events.is_empty() {
                Selection::Events(events)
            } else if let Some(call) = call {
                Selection::Call(call)
            } else if let Some(since) = since {
                Selection::Range { since, until }
            } else if let Some(status) = status {
                Selection::Status(replay::parse_status(&status)?)
            } else {
                anyhow::bail!("choose events: --event, --call, --since or --status");
            };
            replay::run(&target().await?, &selection, force, json).await?;
        }
        Command::Fixtures(FixturesCommand::Sign { dir, check }) => {
            let stale = fixtures::sign_all(&dir, check)?;
            for path in &stale {
                eprintln!(
                    "{} {}",
                    if check { "out of date:" } else { "signed:" },
                    path.display()
                );
            }
            if check && !stale.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "{} fixture(s) {}",
                stale.len(),
                if check { "out of date" } else { "re-signed" }
            );
        }
        Command::Fixtures(FixturesCommand::New {
            provider,
            body,
            out,
            base64,
        }) => {
            let bytes = std::fs::read(&body)?;
            let mut event = fixtures::wrap(&provider, &bytes, base64);
            fixtures::sign(&mut event)?;
            fixtures::write(&out, &event)?;
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
