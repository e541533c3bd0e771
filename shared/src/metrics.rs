//! CloudWatch metrics in the Embedded Metric Format (EMF, DESIGN §11): a metric is a JSON line on
//! stdout that CloudWatch Logs turns into a metric, so a Lambda needs no API call and no agent.
//! The names, units, dimensions and label values are a contract (alarms and the dashboard use
//! them); `docs/metrics.md` lists them.
//!
//! A function builds one [`Metrics`] per invocation, records into it (the `record_*` functions
//! below hold the label logic, pure and unit tested) and [`Metrics::flush`]es it once at the end:
//! usually one line, more only when dimension values conflict (e.g. two providers in a batch).
//! Every metric is declared with two dimension sets, its own and the empty set, so an alarm can
//! watch the aggregate without naming dimensions. A dimensionless metric (`review_open`) has the
//! empty set only.
//!
//! ```
//! use callhook::metrics::{Metrics, Sink, Unit};
//! let sink = Sink::memory();
//! let mut metrics = Metrics::at_millis(1_700_000_000_000);
//! metrics.count("received", &[("provider", "telnyx"), ("result", "accepted")], 1);
//! metrics.flush(&sink);
//! assert_eq!(
//!     sink.lines(),
//!     [concat!(
//!         r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"callhook","#,
//!         r#""Dimensions":[["provider","result"],[]],"Metrics":[{"Name":"received","Unit":"Count"}]}]},"#,
//!         r#""provider":"telnyx","result":"accepted","received":1}"#,
//!         "\n"
//!     )]
//! );
//! ```

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ingest::{Outcome, ReviewReason};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "callhook";

/// ingest: every request that names a provider; dims `provider`, `result`.
pub const RECEIVED: &str = "received";
/// ingest: 401 answers; dims `provider`.
pub const SIGNATURE_FAILURES: &str = "signature_failures";
/// ingest: authentic deliveries of an event already stored; dims `provider`.
pub const DUPLICATES: &str = "duplicates";
/// ingest: new events whose type the provider's mapping does not know; dims `provider`.
pub const UNKNOWN_TYPES: &str = "unknown_types";
/// ingest: new authentic bodies that are not the documented shape; dims `provider`.
pub const MALFORMED: &str = "malformed";
/// lifecycle: occurred → applied, in ms; dims `provider`.
pub const PROCESSING_LAG: &str = "processing_lag";
/// dispatch: delivery attempts (POST or SendMessage); dims `route`.
pub const DISPATCH_ATTEMPTS: &str = "dispatch_attempts";
/// dispatch: attempts that failed, retryable or not; dims `route`.
pub const DISPATCH_FAILURES: &str = "dispatch_failures";
/// sweeper: open review items (a gauge); no dimensions.
pub const REVIEW_OPEN: &str = "review_open";

/// The `provider` label of a name that is not a supported provider (the path segment is the
/// caller's choice; labels stay a small fixed set).
pub const OTHER_PROVIDER: &str = "other";

/// EMF limits: metrics per document and values per metric.
const MAX_METRICS: usize = 100;
const MAX_VALUES: usize = 100;
/// Dimensions one metric may have (callhook uses at most two).
pub const MAX_DIMENSIONS: usize = 4;

/// A CloudWatch unit (the subset callhook uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
    Bytes,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
            Unit::None => "None",
        }
    }
}

/// A dimension: name and value. Both are static: labels come from fixed vocabularies.
pub type Dimension = (&'static str, &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    len: usize,
    pairs: [Dimension; MAX_DIMENSIONS],
}

impl Dims {
    fn new(dims: &[Dimension]) -> Dims {
        assert!(
            dims.len() <= MAX_DIMENSIONS,
            "at most {MAX_DIMENSIONS} dimensions"
        );
        let mut pairs = [("", ""); MAX_DIMENSIONS];
        pairs[..dims.len()].copy_from_slice(dims);
        Dims {
            len: dims.len(),
            pairs,
        }
    }

    fn get(&self) -> &[Dimension] {
        &self.pairs[..self.len]
    }

    fn same_keys(&self, other: &Dims) -> bool {
        self.len == other.len && self.get().iter().zip(other.get()).all(|(a, b)| a.0 == b.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Values add up into one.
    Sum,
    /// Every value is kept (a distribution, e.g. one lag per event).
    Each,
    /// The last value wins (a gauge).
    Last,
}

#[derive(Debug, Clone)]
struct Entry {
    name: &'static str,
    unit: Unit,
    dims: Dims,
    kind: Kind,
    values: Vec<f64>,
}

/// The metrics of one invocation, written out by [`Metrics::flush`].
#[derive(Debug, Clone)]
pub struct Metrics {
    timestamp_ms: i64,
    entries: Vec<Entry>,
}

impl Metrics {
    /// Metrics stamped with the current time.
    pub fn now() -> Metrics {
        Metrics::at(Utc::now())
    }

    pub fn at(time: DateTime<Utc>) -> Metrics {
        Metrics::at_millis(time.timestamp_millis())
    }

    pub fn at_millis(timestamp_ms: i64) -> Metrics {
        Metrics {
            timestamp_ms,
            entries: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `n` to a Count metric (one value per invocation, the sum).
    pub fn count(&mut self, name: &'static str, dims: &[Dimension], n: u64) {
        self.record(name, Unit::Count, dims, Kind::Sum, n as f64);
    }

    /// Records one observation (each is kept: CloudWatch sees its distribution).
    pub fn observe(&mut self, name: &'static str, unit: Unit, dims: &[Dimension], value: f64) {
        self.record(name, unit, dims, Kind::Each, value);
    }

    /// Sets a gauge: the last value set in the invocation is written.
    pub fn gauge(&mut self, name: &'static str, unit: Unit, dims: &[Dimension], value: f64) {
        self.record(name, unit, dims, Kind::Last, value);
    }

    fn record(&mut self, name: &'static str, unit: Unit, dims: &[Dimension], kind: Kind, v: f64) {
        if !v.is_finite() {
            return; // JSON has no NaN or infinity; CloudWatch would drop the line.
        }
        let dims = Dims::new(dims);
        let existing = self
            .entries
            .iter_mut()
            .find(|e| e.name == name && e.unit == unit && e.kind == kind && e.dims == dims);
        match existing {
            Some(entry) => match kind {
                Kind::Sum => entry.values[0] += v,
                Kind::Each => entry.values.push(v),
                Kind::Last => entry.values[0] = v,
            },
            None => self.entries.push(Entry {
                name,
                unit,
                dims,
                kind,
                values: vec![v],
            }),
        }
    }

    /// The EMF lines, each ending in `\n`. Entries share a line when their dimension values
    /// agree; a line holds at most 100 metrics and a metric at most 100 values.
    pub fn lines(&self) -> Vec<String> {
        // (entry index, first value, end): a metric with over 100 values is split across lines.
        let mut documents: Vec<Vec<(usize, usize, usize)>> = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            for start in (0..entry.values.len()).step_by(MAX_VALUES) {
                let end = (start + MAX_VALUES).min(entry.values.len());
                let fits = documents
                    .iter()
                    .position(|doc| doc.len() < MAX_METRICS && self.compatible(doc, entry));
                match fits {
                    Some(d) => documents[d].push((i, start, end)),
                    None => documents.push(vec![(i, start, end)]),
                }
            }
        }
        documents.iter().map(|doc| self.render(doc)).collect()
    }

    /// Whether `entry` can join a document: one value per root key (dimension values agree,
    /// metric names are unique and do not collide with dimension names).
    fn compatible(&self, doc: &[(usize, usize, usize)], entry: &Entry) -> bool {
        doc.iter().all(|&(i, _, _)| {
            let other = &self.entries[i];
            other.name != entry.name
                && entry.dims.get().iter().all(|&(key, value)| {
                    key != other.name
                        && other
                            .dims
                            .get()
                            .iter()
                            .all(|&(k, v)| k != key || v == value)
                })
                && other.dims.get().iter().all(|&(k, _)| k != entry.name)
        })
    }

    fn render(&self, doc: &[(usize, usize, usize)]) -> String {
        let mut line = String::with_capacity(256);
        let _ = write!(
            line,
            r#"{{"_aws":{{"Timestamp":{},"CloudWatchMetrics":["#,
            self.timestamp_ms
        );
        // One directive per distinct set of dimension names, in first-recorded order.
        let mut first_directive = true;
        for (n, &(i, _, _)) in doc.iter().enumerate() {
            let dims = &self.entries[i].dims;
            if doc[..n]
                .iter()
                .any(|&(j, _, _)| self.entries[j].dims.same_keys(dims))
            {
                continue;
            }
            if !first_directive {
                line.push(',');
            }
            first_directive = false;
            line.push_str(r#"{"Namespace":"#);
            push_str(&mut line, NAMESPACE);
            line.push_str(r#","Dimensions":["#);
            if dims.len > 0 {
                line.push('[');
                for (k, (key, _)) in dims.get().iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    push_str(&mut line, key);
                }
                line.push_str("],");
            }
            line.push_str(r#"[]],"Metrics":["#);
            let mut first_metric = true;
            for &(j, _, _) in &doc[n..] {
                let entry = &self.entries[j];
                if !entry.dims.same_keys(dims) {
                    continue;
                }
                if !first_metric {
                    line.push(',');
                }
                first_metric = false;
                line.push_str(r#"{"Name":"#);
                push_str(&mut line, entry.name);
                line.push_str(r#","Unit":"#);
                push_str(&mut line, entry.unit.as_str());
                line.push('}');
            }
            line.push_str("]}");
        }
        line.push_str("]}");
        // Root: each dimension value once, then each metric's value(s).
        for (n, &(i, _, _)) in doc.iter().enumerate() {
            for &(key, value) in self.entries[i].dims.get() {
                let written = doc[..n]
                    .iter()
                    .any(|&(j, _, _)| self.entries[j].dims.get().iter().any(|d| d.0 == key));
                if written {
                    continue;
                }
                line.push(',');
                push_str(&mut line, key);
                line.push(':');
                push_str(&mut line, value);
            }
        }
        for &(i, start, end) in doc {
            let entry = &self.entries[i];
            line.push(',');
            push_str(&mut line, entry.name);
            line.push(':');
            let values = &entry.values[start..end];
            if let [one] = values {
                push_number(&mut line, *one);
            } else {
                line.push('[');
                for (k, v) in values.iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    push_number(&mut line, *v);
                }
                line.push(']');
            }
        }
        line.push_str("}\n");
        line
    }

    /// Writes every line with one `write_all` each, then forgets the metrics.
    pub fn write_to(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        for line in self.lines() {
            out.write_all(line.as_bytes())?;
        }
        self.entries.clear();
        Ok(())
    }

    /// Writes the metrics to `sink` and forgets them. A failed write is logged, never an
    /// error: metrics must not fail the work they measure.
    pub fn flush(&mut self, sink: &Sink) {
        if self.entries.is_empty() {
            return;
        }
        match sink {
            Sink::Stdout => {
                for line in self.lines() {
                    // `print!` of one whole line is one `write_all` under the stdout lock, so
                    // a line never interleaves with tracing's (also whole-line) writes; the test
                    // harness captures it like any test output.
                    print!("{line}");
                }
            }
            Sink::Memory(memory) => {
                let lines = self.lines();
                memory
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(lines);
            }
            Sink::Discard => {}
        }
        self.entries.clear();
    }
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a finite number; integers without a fraction (`1`, not `1.0`).
fn push_number(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Where [`Metrics::flush`] writes.
#[derive(Debug, Clone, Default)]
pub enum Sink {
    /// Lambda: stdout, where CloudWatch Logs picks EMF lines up.
    #[default]
    Stdout,
    /// Tests: kept in memory.
    Memory(MemorySink),
    Discard,
}

impl Sink {
    /// A sink that keeps the lines; read them back with [`Sink::lines`] or [`Sink::samples`].
    pub fn memory() -> Sink {
        Sink::Memory(MemorySink::default())
    }

    /// The lines a memory sink received (empty for the others).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Sink::Memory(memory) => memory.lines(),
            _ => Vec::new(),
        }
    }

    /// Every metric value a memory sink received, parsed back from its lines.
    pub fn samples(&self) -> Vec<Sample> {
        self.lines().iter().flat_map(|l| samples(l)).collect()
    }

    /// The sum of `metric`'s values declared with exactly the dimensions `dims` (and the empty
    /// set beside them).
    pub fn sum(&self, metric: &str, dims: &[(&str, &str)]) -> f64 {
        self.samples()
            .iter()
            .filter(|s| s.is(metric, dims))
            .flat_map(|s| &s.values)
            .sum()
    }
}

/// Lines kept in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<String>>>);

impl MemorySink {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One metric of one EMF line, read back (tests, tools).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    pub timestamp_ms: i64,
    /// The dimension sets declared for the metric, e.g. `[["provider"], []]`.
    pub dimension_sets: Vec<Vec<String>>,
    /// The value of each dimension named in those sets.
    pub labels: Vec<(String, String)>,
    pub values: Vec<f64>,
}

impl Sample {
    /// Whether this is `metric` in namespace `callhook`, declared with exactly the dimensions
    /// of `dims` and the empty set, with those values.
    pub fn is(&self, metric: &str, dims: &[(&str, &str)]) -> bool {
        let keys: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
        let empty: &[String] = &[];
        let wanted_sets = if keys.is_empty() { 1 } else { 2 };
        self.namespace == NAMESPACE
            && self.name == metric
            && self.dimension_sets.len() == wanted_sets
            && self.dimension_sets.iter().any(|set| set == empty)
            && (keys.is_empty() || self.dimension_sets.iter().any(|set| set == &keys))
            && self.labels.len() == dims.len()
            && dims
                .iter()
                .all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }
}

/// Reads an EMF line back: one [`Sample`] per declared metric. A line that is not EMF gives
/// none; a declared metric without a numeric value gives a sample without values.
pub fn samples(line: &str) -> Vec<Sample> {
    let Ok(doc) = serde_json::from_str::<Value>(line) else {
        return Vec::new();
    };
    let timestamp_ms = doc["_aws"]["Timestamp"].as_i64().unwrap_or(-1);
    let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else {
        return Vec::new();
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for directive in directives {
        let dimension_sets: Vec<Vec<String>> = directive["Dimensions"]
            .as_array()
            .map(|sets| sets.iter().map(strings).collect())
            .unwrap_or_default();
        let mut labels: Vec<(String, String)> = Vec::new();
        for key in dimension_sets.iter().flatten() {
            if !labels.iter().any(|(k, _)| k == key) {
                let value = doc[key.as_str()].as_str().unwrap_or_default().to_owned();
                labels.push((key.clone(), value));
            }
        }
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let name = metric["Name"].as_str().unwrap_or_default().to_owned();
            let values = match &doc[name.as_str()] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
                value => value.as_f64().into_iter().collect(),
            };
            out.push(Sample {
                namespace: directive["Namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                unit: metric["Unit"].as_str().unwrap_or_default().to_owned(),
                name,
                timestamp_ms,
                dimension_sets: dimension_sets.clone(),
                labels: labels.clone(),
                values,
            });
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// What each function records (the label logic; docs/metrics.md)

/// The `provider` label of a provider name: the name itself if callhook supports such a
/// provider, else [`OTHER_PROVIDER`].
pub fn provider_label(name: &str) -> &'static str {
    crate::providers::supported()
        .find(|supported| *supported == name)
        .unwrap_or(OTHER_PROVIDER)
}

/// ingest, one request: `received{provider,result}` when the request names a provider, and
/// `signature_failures` / `duplicates` / `unknown_types` / `malformed` (dims `provider`) as the
/// outcome says. Review reasons are counted for new events only (a duplicate is a duplicate).
pub fn record_ingest(metrics: &mut Metrics, provider: Option<&str>, outcome: Outcome) {
    let Some(provider) = provider else {
        return;
    };
    let provider = provider_label(provider);
    metrics.count(
        RECEIVED,
        &[("provider", provider), ("result", outcome.as_str())],
        1,
    );
    let also = match outcome {
        Outcome::Unauthorized => Some(SIGNATURE_FAILURES),
        Outcome::Duplicate => Some(DUPLICATES),
        Outcome::Review(ReviewReason::UnknownType) => Some(UNKNOWN_TYPES),
        Outcome::Review(ReviewReason::Malformed) => Some(MALFORMED),
        _ => None,
    };
    if let Some(name) = also {
        metrics.count(name, &[("provider", provider)], 1);
    }
}

/// Milliseconds from `occurred_at` to `now`; 0 when the provider's clock is ahead of ours.
pub fn lag_ms(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - occurred_at).num_milliseconds().max(0) as f64
}

/// lifecycle, one event applied to its call: `processing_lag{provider}`. The canonical event's
/// `occurred_at` is the receipt time where the provider gives no time of its own.
pub fn record_processed(
    metrics: &mut Metrics,
    provider: &str,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    metrics.observe(
        PROCESSING_LAG,
        Unit::Milliseconds,
        &[("provider", provider_label(provider))],
        lag_ms(occurred_at, now),
    );
}

/// [`record_processed`] for `event`, applied now.
pub fn record_applied(metrics: &mut Metrics, event: &crate::model::CanonicalEvent) {
    record_processed(metrics, &event.provider, event.occurred_at, Utc::now());
}

/// dispatch, one delivery attempt on `route` (a [`crate::dispatch::Routes::destination`]
/// label): `dispatch_attempts{route}`, and `dispatch_failures{route}` if it failed.
pub fn record_dispatch_attempt(metrics: &mut Metrics, route: &'static str, failed: bool) {
    metrics.count(DISPATCH_ATTEMPTS, &[("route", route)], 1);
    if failed {
        metrics.count(DISPATCH_FAILURES, &[("route", route)], 1);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const T: i64 = 1_700_000_000_000;

    fn parse(line: &str) -> Value {
        assert!(line.ends_with('\n'), "{line:?}");
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn one_count_is_the_documented_line() {
        let mut m = Metrics::at_millis(T);
        m.count(
            RECEIVED,
            &[("provider", "telnyx"), ("result", "accepted")],
            1,
        );
        let lines = m.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            parse(&lines[0]),
            serde_json::json!({
                "_aws": {
                    "Timestamp": T,
                    "CloudWatchMetrics": [{
                        "Namespace": "callhook",
                        "Dimensions": [["provider", "result"], []],
                        "Metrics": [{"Name": "received", "Unit": "Count"}]
                    }]
                },
                "provider": "telnyx",
                "result": "accepted",
                "received": 1
            })
        );
        assert!(lines[0].contains(r#""received":1}"#), "an integer, not 1.0");
    }

    #[test]
    fn metrics_with_agreeing_dimensions_share_one_line() {
        let mut m = Metrics::at_millis(T);
        record_ingest(&mut m, Some("telnyx"), Outcome::Duplicate);
        let lines = m.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let doc = parse(&lines[0]);
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(
            directives[1],
            serde_json::json!({
                "Namespace": "callhook",
                "Dimensions": [["provider"], []],
                "Metrics": [{"Name": "duplicates", "Unit": "Count"}]
            })
        );
        assert_eq!(doc["provider"], "telnyx");
        assert_eq!(doc["result"], "duplicate");
        assert_eq!(doc["received"], 1);
        assert_eq!(doc["duplicates"], 1);
    }

    #[test]
    fn conflicting_dimension_values_get_their_own_lines_and_counts_add_up() {
        let mut m = Metrics::at_millis(T);
        record_dispatch_attempt(&mut m, "crm", true);
        record_dispatch_attempt(&mut m, "crm", false);
        record_dispatch_attempt(&mut m, "callback", false);
        let lines = m.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let crm = parse(&lines[0]);
        assert_eq!(crm["route"], "crm");
        assert_eq!(crm["dispatch_attempts"], 2);
        assert_eq!(crm["dispatch_failures"], 1);
        let callback = parse(&lines[1]);
        assert_eq!(callback["route"], "callback");
        assert_eq!(callback["dispatch_attempts"], 1);
        assert!(callback.get("dispatch_failures").is_none());
        for line in &lines {
            for sample in samples(line) {
                assert_eq!(sample.unit, "Count");
                assert_eq!(sample.timestamp_ms, T);
                assert_eq!(sample.dimension_sets, [vec!["route".to_owned()], vec![]]);
            }
        }
    }

    #[test]
    fn observations_are_kept_one_value_each_with_their_unit() {
        let at = Utc.timestamp_millis_opt(T).unwrap();
        let mut m = Metrics::at(at);
        record_processed(
            &mut m,
            "telnyx",
            at - chrono::Duration::milliseconds(1500),
            at,
        );
        record_processed(&mut m, "telnyx", at + chrono::Duration::seconds(3), at);
        record_processed(&mut m, "bird", at - chrono::Duration::seconds(2), at);
        let lines = m.lines();
        assert_eq!(lines.len(), 2);
        let telnyx = parse(&lines[0]);
        assert_eq!(
            telnyx["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(telnyx["processing_lag"], serde_json::json!([1500, 0]));
        assert_eq!(parse(&lines[1])["processing_lag"], 2000);
    }

    #[test]
    fn a_dimensionless_gauge_has_only_the_empty_set() {
        let mut m = Metrics::at_millis(T);
        m.gauge(REVIEW_OPEN, Unit::Count, &[], 7.0);
        m.gauge(REVIEW_OPEN, Unit::Count, &[], 3.0);
        let doc = parse(&m.lines()[0]);
        assert_eq!(
            doc,
            serde_json::json!({
                "_aws": {
                    "Timestamp": T,
                    "CloudWatchMetrics": [{
                        "Namespace": "callhook",
                        "Dimensions": [[]],
                        "Metrics": [{"Name": "review_open", "Unit": "Count"}]
                    }]
                },
                "review_open": 3
            })
        );
    }

    #[test]
    fn large_batches_respect_emf_limits() {
        let mut m = Metrics::at_millis(T);
        for i in 0..250 {
            m.observe(
                PROCESSING_LAG,
                Unit::Milliseconds,
                &[("provider", "telnyx")],
                i as f64,
            );
        }
        let lines = m.lines();
        assert_eq!(lines.len(), 3);
        let values: Vec<f64> = lines
            .iter()
            .flat_map(|l| samples(l))
            .flat_map(|s| s.values)
            .collect();
        assert_eq!(values.len(), 250);
        assert_eq!(values.iter().sum::<f64>(), (0..250).sum::<i32>() as f64);
        assert!(
            lines
                .iter()
                .all(|l| parse(l)["processing_lag"].as_array().unwrap().len() <= 100)
        );
    }

    #[test]
    fn strings_are_escaped_and_non_finite_values_dropped() {
        let mut m = Metrics::at_millis(T);
        m.count("odd", &[("k", "a\"b\\c\n\u{1}")], 2);
        m.observe("nan", Unit::None, &[], f64::NAN);
        m.observe("half", Unit::Seconds, &[], 0.5);
        let lines = m.lines();
        assert_eq!(lines.len(), 1);
        let doc = parse(&lines[0]);
        assert_eq!(doc["k"], "a\"b\\c\n\u{1}");
        assert_eq!(doc["odd"], 2);
        assert_eq!(doc["half"], 0.5);
        assert!(doc.get("nan").is_none());
    }

    #[test]
    fn flush_writes_whole_lines_once() {
        let sink = Sink::memory();
        let mut m = Metrics::at_millis(T);
        assert!(m.is_empty());
        m.flush(&sink);
        assert!(sink.lines().is_empty(), "nothing recorded, nothing written");
        record_ingest(&mut m, Some("telnyx"), Outcome::Unauthorized);
        m.flush(&sink);
        m.flush(&sink);
        assert_eq!(sink.lines().len(), 1);
        assert_eq!(sink.sum(SIGNATURE_FAILURES, &[("provider", "telnyx")]), 1.0);
        assert_eq!(
            sink.sum(
                RECEIVED,
                &[("provider", "telnyx"), ("result", "unauthorized")]
            ),
            1.0
        );
        assert_eq!(sink.sum(RECEIVED, &[("provider", "telnyx")]), 0.0);

        let mut out = Vec::new();
        let mut m = Metrics::at_millis(T);
        record_dispatch_attempt(&mut m, "crm", false);
        m.write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn ingest_labels() {
        let cases = [
            (Outcome::Accepted, "accepted", None),
            (
                Outcome::Review(ReviewReason::UnknownType),
                "review",
                Some(UNKNOWN_TYPES),
            ),
            (
                Outcome::Review(ReviewReason::Malformed),
                "review",
                Some(MALFORMED),
            ),
            (Outcome::Review(ReviewReason::Other), "review", None),
            (Outcome::Duplicate, "duplicate", Some(DUPLICATES)),
            (
                Outcome::Unauthorized,
                "unauthorized",
                Some(SIGNATURE_FAILURES),
            ),
            (Outcome::BadRequest, "bad_request", None),
            (Outcome::NotFound, "not_found", None),
            (Outcome::TooLarge, "too_large", None),
            (Outcome::MethodNotAllowed, "method_not_allowed", None),
            (Outcome::Unavailable, "unavailable", None),
        ];
        for (outcome, result, also) in cases {
            let sink = Sink::memory();
            let mut m = Metrics::at_millis(T);
            record_ingest(&mut m, Some("bird"), outcome);
            m.flush(&sink);
            let samples = sink.samples();
            assert_eq!(
                sink.sum(RECEIVED, &[("provider", "bird"), ("result", result)]),
                1.0,
                "{outcome:?}"
            );
            let others: Vec<&str> = samples
                .iter()
                .filter(|s| s.name != RECEIVED)
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(others, also.into_iter().collect::<Vec<_>>(), "{outcome:?}");
            if let Some(also) = also {
                assert_eq!(sink.sum(also, &[("provider", "bird")]), 1.0);
            }
        }

        let sink = Sink::memory();
        let mut m = Metrics::at_millis(T);
        record_ingest(&mut m, None, Outcome::NotFound);
        record_ingest(&mut m, Some("no-such-provider\"x"), Outcome::NotFound);
        m.flush(&sink);
        assert_eq!(
            sink.sum(RECEIVED, &[("provider", "other"), ("result", "not_found")]),
            1.0,
            "no provider: not counted; an unknown one: `other`"
        );
        assert_eq!(sink.samples().len(), 1);
    }

    #[test]
    fn lag_is_clamped_at_zero() {
        let now = Utc.timestamp_millis_opt(T).unwrap();
        assert_eq!(
            lag_ms(now - chrono::Duration::milliseconds(250), now),
            250.0
        );
        assert_eq!(lag_ms(now + chrono::Duration::seconds(60), now), 0.0);
        assert_eq!(provider_label("telnyx"), "telnyx");
        assert_eq!(provider_label("Telnyx"), OTHER_PROVIDER);
    }
}
