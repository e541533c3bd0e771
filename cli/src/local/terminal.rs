//! `callhook dev`'s terminal: the functions' structured logs (the JSON lines Lambda would send to
//! CloudWatch Logs) turned into one readable line per request, applied event and dispatch —
//! time, function, provider, outcome, a short call id, latency — coloured only when stdout is a
//! terminal, warnings and errors standing out. The JSON lines themselves go to a file in the
//! state directory ([`install`]).
//!
//! The mapping from a log event to a line ([`line_of`]) and the rendering ([`render`]) are pure,
//! so they are tested on the functions' real log calls.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anstyle::{AnsiColor, Style};
use anyhow::{Context, Result};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The log file in the state directory: every function's JSON log lines, with their time.
pub const LOG_FILE: &str = "functions.log";
/// The EMF file in the state directory: exactly the metric lines Lambda would write to stdout.
pub const EMF_FILE: &str = "emf.jsonl";

/// The filter when RUST_LOG is unset: callhook's own events, and only warnings from the SDKs.
const DEFAULT_FILTER: &str = "warn,callhook=info,callhook_ingest=info,callhook_lifecycle=info,\
     callhook_dispatch=info,callhook_review=info,callhook_lambda=info,callhook_cli=info";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One log event as the functions emitted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub level: Level,
    /// The module that logged it (`callhook::app::ingest`, `callhook_lifecycle`, …).
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl Entry {
    fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.fields.get(name)?.parse().ok()
    }
}

/// One terminal line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub level: Level,
    /// ingest, lifecycle, dispatch, review, sweeper, sink or the module's last segment.
    pub source: String,
    pub provider: String,
    pub outcome: String,
    /// Short call id ("" when there is none).
    pub call: String,
    pub detail: String,
    pub latency_ms: Option<f64>,
}

/// The line for a log event; `None` for informational events that are only for the log file.
pub fn line_of(entry: &Entry) -> Option<Line> {
    let mut line = Line {
        level: entry.level,
        source: source_of(&entry.target).to_owned(),
        provider: entry.get("provider").to_owned(),
        outcome: String::new(),
        call: short_id(entry.get("call_id")),
        detail: String::new(),
        latency_ms: entry.number("duration_ms"),
    };
    let error = entry.get("error");
    match (line.source.as_str(), entry.message.as_str()) {
        ("ingest", "ingest") => {
            let status: u16 = entry.get("status").parse().unwrap_or(0);
            let outcome = entry.get("outcome");
            line.outcome = format!("{status} {outcome}");
            line.level = match status {
                500.. => Level::Error,
                400.. => Level::Warn,
                _ if outcome == "review" => Level::Warn,
                _ => Level::Info,
            };
            line.detail = if error.is_empty() {
                short_id(entry.get("event_id"))
            } else {
                sanitize(error, 200)
            };
        }
        ("lifecycle", "applied" | "already applied") => {
            line.outcome = entry.message.clone();
            let dispatched: u64 = entry.get("dispatched").parse().unwrap_or(0);
            line.detail = short_id(entry.get("event_id"));
            if dispatched > 0 {
                let _ = write!(line.detail, " → {dispatched} dispatch(es) queued");
            }
        }
        ("lifecycle", "sent to review") => {
            line.level = line.level.max(Level::Warn);
            line.outcome = format!("review: {}", sanitize(entry.get("reason"), 40));
            line.detail = short_id(entry.get("event_id"));
        }
        ("lifecycle", "no call to apply to") => {
            line.outcome = "no call".to_owned();
            line.detail = short_id(entry.get("event_id"));
        }
        ("dispatch", "dispatched") => {
            line.outcome = format!(
                "sent {} {}",
                entry.get("destination"),
                entry.get("status_code")
            );
            line.detail = dispatch_kind(entry.get("dispatch_id"), entry.get("call_id"));
        }
        ("dispatch", "already sent; nothing to do") => {
            line.outcome = "already sent".to_owned();
            line.detail = dispatch_kind(entry.get("dispatch_id"), entry.get("call_id"));
        }
        ("dispatch", "dropped by route") => {
            line.outcome = format!("dropped ({})", sanitize(entry.get("route"), 40));
            line.detail = dispatch_kind(entry.get("dispatch_id"), entry.get("call_id"));
        }
        ("dispatch", "sent to review") => {
            line.outcome = format!("review: {}", sanitize(entry.get("reason"), 40));
            line.detail = sanitize(entry.get("detail"), 200);
        }
        ("dispatch", "dispatch will be retried") => {
            line.outcome = format!("retry in {} s", entry.get("after_secs"));
            line.detail = sanitize(entry.get("detail"), 200);
        }
        ("review", "review item written") => {
            line.level = line.level.max(Level::Warn);
            line.outcome = format!("open: {}", sanitize(entry.get("reason"), 40));
            line.detail = sanitize(entry.get("review_id"), 120);
        }
        ("sink", "delivered") => {
            line.level = if entry.get("signature") == "valid" {
                Level::Info
            } else {
                Level::Error
            };
            line.outcome = format!(
                "{} {}",
                sanitize(entry.get("path"), 40),
                sanitize(entry.get("message_type"), 40)
            );
            line.call = short_id(entry.get("call_id"));
            line.detail = format!("signature {}", sanitize(entry.get("signature"), 80));
        }
        _ if entry.level >= Level::Warn => {
            line.outcome = sanitize(&entry.message, 80);
            line.detail = entry
                .fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "provider" | "call_id" | "duration_ms"))
                .map(|(k, v)| format!("{k}={}", sanitize(v, 160)))
                .collect::<Vec<_>>()
                .join(" ");
        }
        _ => return None,
    }
    Some(line)
}

/// `callhook::app::ingest` → ingest, `callhook_lifecycle` → lifecycle, ….
fn source_of(target: &str) -> &str {
    let last = target.rsplit("::").next().unwrap_or(target);
    let last = last.strip_prefix("callhook_").unwrap_or(last);
    match last {
        "sqs_batch" => "queue",
        "whole_calls" => "calls",
        other => other,
    }
}

/// `{call_id}#completed` → `#completed`: which of the call's dispatches it is.
fn dispatch_kind(dispatch_id: &str, call_id: &str) -> String {
    let kind = dispatch_id
        .strip_prefix(call_id)
        .filter(|_| !call_id.is_empty())
        .unwrap_or(dispatch_id);
    sanitize(kind, 60)
}

/// An id short enough to scan: the provider prefix dropped, 8 characters kept
/// (`telnyx#428c31b6-abf3-…` → `428c31b6…`), control characters made visible.
pub fn short_id(id: &str) -> String {
    let key = id.split_once('#').map_or(id, |(_, key)| key);
    sanitize(key, 8)
}

/// `text` safe for a terminal: control characters (escape sequences a sender could put in an
/// id) shown escaped, at most `max` characters kept (then `…`).
pub fn sanitize(text: &str, max: usize) -> String {
    crate::terminal::clipped(text, max)
}

fn paint(text: &str, style: Style, color: bool) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// The line as printed: `time source provider outcome call detail latency`, columns aligned,
/// with ANSI colours when `color`.
pub fn render(line: &Line, time: &str, color: bool) -> String {
    let dim = Style::new().dimmed();
    let outcome_style = match line.level {
        Level::Info => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Level::Warn => Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold(),
        Level::Error => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
    };
    // A marker column: warnings and errors stand out without colour too (piped, NO_COLOR).
    let marker = match line.level {
        Level::Info => " ",
        Level::Warn => "!",
        Level::Error => "✗",
    };
    let latency = line
        .latency_ms
        .map(|ms| format!("{ms:.1} ms"))
        .unwrap_or_default();
    let mut out = format!(
        "{} {} {} {:<10} {} {} {}",
        paint(time, dim, color),
        paint(marker, outcome_style, color),
        paint(
            &format!("{:<9}", line.source),
            if line.level == Level::Info {
                Style::new().fg_color(Some(AnsiColor::Cyan.into()))
            } else {
                outcome_style
            },
            color
        ),
        sanitize(&line.provider, 10),
        paint(&format!("{:<20}", line.outcome), outcome_style, color),
        paint(
            &format!("{:<9}", line.call),
            Style::new().fg_color(Some(AnsiColor::Magenta.into())),
            color
        ),
        line.detail,
    );
    if !latency.is_empty() {
        out.push_str("  ");
        out.push_str(&paint(&latency, dim, color));
    }
    out.trim_end().to_owned()
}

/// Collects an event's fields as text.
#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.to_string());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

/// A tracing layer printing [`line_of`] each event to `out`.
pub struct TerminalLayer {
    out: Mutex<Box<dyn Write + Send>>,
    color: bool,
}

impl TerminalLayer {
    pub fn new(out: impl Write + Send + 'static, color: bool) -> Self {
        TerminalLayer {
            out: Mutex::new(Box::new(out)),
            color,
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for TerminalLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let metadata = event.metadata();
        let level = match *metadata.level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            _ => Level::Info,
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let entry = Entry {
            level,
            target: metadata.target().to_owned(),
            message: fields.message,
            fields: fields.fields,
        };
        let Some(line) = line_of(&entry) else { return };
        let time = chrono::Local::now().format("%H:%M:%S%.3f").to_string();
        let text = render(&line, &time, self.color);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Whether stdout gets colours: a terminal, and NO_COLOR / CLICOLOR_FORCE / TERM=dumb honoured.
pub fn stdout_has_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Installs `callhook dev`'s logging: readable lines on stdout, and every function's JSON log
/// lines (with their time, as CloudWatch Logs keeps them) appended to `state_dir/functions.log`.
/// RUST_LOG sets the filter of both.
pub fn install(state_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join(LOG_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER))
    };
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            // The CLI's own lines (the sink) are not a function's log.
            !m.target().starts_with("callhook_cli")
        }))
        .with_filter(filter());
    let terminal = TerminalLayer::new(std::io::stdout(), stdout_has_color()).with_filter(filter());
    tracing_subscriber::registry()
        .with(json)
        .with(terminal)
        .try_init()
        .context("installing the dev logger")
}

/// The EMF sink of `callhook dev`: `state_dir/emf.jsonl` (appended), and stdout too when `echo`.
pub fn emf_sink(state_dir: &Path, echo: bool) -> Result<callhook::observability::emf::Sink> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join(EMF_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(callhook::observability::emf::Sink::writer(Tee {
        file,
        echo,
    }))
}

/// The EMF file, and a copy of each line on stdout when asked (`--emf`).
struct Tee {
    file: std::fs::File,
    echo: bool,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)?;
        if self.echo {
            // One whole line under the stdout lock: never interleaved with a readable line.
            std::io::stdout().lock().write_all(buf)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use callhook::app::lifecycle::Processed;
    use callhook::domain::event::{CanonicalEvent, Kind};
    use chrono::Utc;

    use super::*;

    /// Lines printed by a [`TerminalLayer`] while `f` runs.
    fn printed(color: bool, f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(TerminalLayer::new(buffer.clone(), color));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn event(call_key: &str) -> CanonicalEvent {
        let mut event = CanonicalEvent::new("telnyx", "e1-abcdef-123", "call.answered", Utc::now());
        event.kind = Kind::Answered;
        event.call_id = Some(format!("telnyx#{call_key}"));
        event
    }

    #[test]
    fn the_lifecycle_log_becomes_one_line_without_colour_when_piped() {
        let event = event("428c31b6-abf3-3bc1-b7f4-5013ef9657c1");
        let lines = printed(false, || {
            callhook::app::lifecycle::log(
                "m1",
                &event,
                &Ok(Processed::Applied {
                    call_id: "telnyx#428c31b6-abf3-3bc1-b7f4-5013ef9657c1".into(),
                    dispatched: 1,
                }),
                12.25,
            )
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(!line.contains('\u{1b}'), "no colour when piped: {line:?}");
        for part in ["lifecycle", "telnyx", "applied", "428c31b6…", "12.2 ms"] {
            assert!(line.contains(part), "{part} in {line:?}");
        }
        assert!(line.contains("1 dispatch(es) queued"), "{line}");
        assert!(
            !line.contains("5013ef9657c1"),
            "the call id is short: {line}"
        );
    }

    #[test]
    fn colour_on_a_terminal_and_warnings_stand_out() {
        let event = event("c1");
        let lines = printed(true, || {
            callhook::app::lifecycle::log(
                "m1",
                &event,
                &Ok(Processed::Review {
                    reason: callhook::domain::review::ReviewReason::UnknownType,
                }),
                1.0,
            );
            tracing::error!(target: "callhook_lambda::sqs_batch", message_id = "m9", outcome = "panicked", "panic while handling the message; SQS will retry");
            tracing::info!(target: "callhook::something", "only for the log file");
        });
        assert_eq!(
            lines.len(),
            2,
            "informational noise is left to the file: {lines:?}"
        );
        let yellow = format!(
            "{}",
            Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold()
        );
        let red = format!(
            "{}",
            Style::new().fg_color(Some(AnsiColor::Red.into())).bold()
        );
        assert!(lines[0].contains(&yellow) && lines[0].contains("review: unknown_type"));
        assert!(lines[0].contains(&format!("{yellow}!")), "{:?}", lines[0]);
        assert!(lines[1].contains(&format!("{red}✗")), "{:?}", lines[1]);
        assert!(lines[1].contains("message_id=m9"), "{:?}", lines[1]);
    }

    #[test]
    fn ingest_and_dispatch_lines() {
        let entry = |message: &str, target: &str, fields: &[(&str, &str)]| Entry {
            level: Level::Info,
            target: target.to_owned(),
            message: message.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let accepted = line_of(&entry(
            "ingest",
            "callhook::app::ingest",
            &[
                ("provider", "telnyx"),
                ("event_id", "telnyx#a5f3c2d1e0"),
                ("call_id", "telnyx#428c31b6-x"),
                ("outcome", "accepted"),
                ("status", "200"),
                ("error", ""),
                ("duration_ms", "3.04"),
            ],
        ))
        .unwrap();
        assert_eq!(accepted.level, Level::Info);
        assert_eq!(
            render(&accepted, "10:00:00.000", false),
            "10:00:00.000   ingest    telnyx     200 accepted         428c31b6… a5f3c2d1…  3.0 ms"
        );
        let refused = line_of(&entry(
            "ingest",
            "callhook::app::ingest",
            &[
                ("provider", "telnyx"),
                ("outcome", "unauthorized"),
                ("status", "401"),
                ("error", "signature does not match"),
            ],
        ))
        .unwrap();
        assert_eq!(refused.level, Level::Warn);
        assert!(render(&refused, "t", false).starts_with("t ! ingest"));
        assert!(refused.detail.contains("signature does not match"));
        let unavailable = line_of(&entry(
            "ingest",
            "callhook::app::ingest",
            &[("status", "503"), ("outcome", "unavailable")],
        ))
        .unwrap();
        assert_eq!(unavailable.level, Level::Error);

        let sent = line_of(&entry(
            "dispatched",
            "callhook::app::dispatch",
            &[
                ("call_id", "telnyx#c1"),
                ("dispatch_id", "telnyx#c1#completed"),
                ("destination", "crm"),
                ("status_code", "200"),
                ("duration_ms", "20"),
            ],
        ))
        .unwrap();
        assert_eq!(sent.outcome, "sent crm 200");
        assert_eq!(sent.detail, "#completed");
        assert_eq!(sent.source, "dispatch");
    }

    #[test]
    fn what_a_sender_chose_cannot_drive_the_terminal() {
        // An escape sequence in a call key would recolour or clear the operator's terminal.
        let event = event("\u{1b}[2J\u{1b}[31mevil\u{202e}");
        let lines = printed(false, || {
            callhook::app::lifecycle::log("m1", &event, &Ok(Processed::Ignored), 1.0)
        });
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains('\u{1b}'), "{:?}", lines[0]);
        assert!(!lines[0].contains('\u{202e}'), "{:?}", lines[0]);
        assert!(lines[0].contains("\\u{1b}"), "{:?}", lines[0]);
        assert_eq!(
            sanitize(&"x".repeat(500), 10),
            format!("{}…", "x".repeat(10))
        );
        assert_eq!(short_id("telnyx#short"), "short");
    }
}
