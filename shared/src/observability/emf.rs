//! CloudWatch metrics in the Embedded Metric Format (EMF): a metric is a JSON line on stdout that
//! CloudWatch Logs turns into a metric, so a Lambda needs no API call and no agent.
//!
//! A function builds one [`Metrics`] per invocation, records into it (the `record_*` functions of
//! `observability::metrics` hold the label logic) and [`Metrics::flush`]es it once at the end:
//! usually one line, more only when dimension values conflict (e.g. two providers in a batch).
//! Every metric is declared with two dimension sets, its own and the empty set, so an alarm can
//! watch the aggregate without naming dimensions; a dimensionless metric has the empty set only.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "callhook";

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
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
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
struct Series {
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
    entries: Vec<Series>,
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
            None => self.entries.push(Series {
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
    fn compatible(&self, doc: &[(usize, usize, usize)], entry: &Series) -> bool {
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
        let mut line = serde_json::to_string(&Document { metrics: self, doc })
            .expect("an EMF document always serializes");
        line.push('\n');
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
            Sink::Writer(writer) => {
                let mut out = writer.0.lock().unwrap_or_else(|e| e.into_inner());
                for line in self.lines() {
                    if let Err(err) = out.write_all(line.as_bytes()) {
                        tracing::warn!(error = %err, "metrics not written");
                        break;
                    }
                }
                let _ = out.flush();
            }
            Sink::Memory(memory) => {
                let lines = self.lines();
                memory
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(lines);
            }
        }
        self.entries.clear();
    }
}

/// One EMF line: `_aws` (timestamp and one directive per set of dimension names), then each
/// dimension value once, then each metric's value(s).
struct Document<'a> {
    metrics: &'a Metrics,
    doc: &'a [(usize, usize, usize)],
}

#[derive(Serialize)]
struct Aws<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    directives: Vec<Directive<'a>>,
}

#[derive(Serialize)]
struct Directive<'a> {
    #[serde(rename = "Namespace")]
    namespace: &'static str,
    #[serde(rename = "Dimensions")]
    dimensions: Vec<Vec<&'a str>>,
    #[serde(rename = "Metrics")]
    metrics: Vec<MetricDefinition<'a>>,
}

#[derive(Serialize)]
struct MetricDefinition<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

/// A value as CloudWatch reads it: integers without a fraction (`1`, not `1.0`).
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            serializer.serialize_i64(self.0 as i64)
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

struct Values<'a>(&'a [f64]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => Number(*one).serialize(serializer),
            many => serializer.collect_seq(many.iter().map(|v| Number(*v))),
        }
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = &self.metrics.entries;
        let doc = self.doc;
        // One directive per distinct set of dimension names, in first-recorded order.
        let mut directives = Vec::new();
        for (n, &(i, _, _)) in doc.iter().enumerate() {
            let dims = &entries[i].dims;
            if doc[..n]
                .iter()
                .any(|&(j, _, _)| entries[j].dims.same_keys(dims))
            {
                continue;
            }
            let mut dimensions = Vec::with_capacity(2);
            if dims.len > 0 {
                dimensions.push(dims.get().iter().map(|(key, _)| *key).collect());
            }
            dimensions.push(Vec::new());
            let metrics = doc[n..]
                .iter()
                .map(|&(j, _, _)| &entries[j])
                .filter(|entry| entry.dims.same_keys(dims))
                .map(|entry| MetricDefinition {
                    name: entry.name,
                    unit: entry.unit.as_str(),
                })
                .collect();
            directives.push(Directive {
                namespace: NAMESPACE,
                dimensions,
                metrics,
            });
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "_aws",
            &Aws {
                timestamp: self.metrics.timestamp_ms,
                directives,
            },
        )?;
        for (n, &(i, _, _)) in doc.iter().enumerate() {
            for &(key, value) in entries[i].dims.get() {
                let written = doc[..n]
                    .iter()
                    .any(|&(j, _, _)| entries[j].dims.get().iter().any(|d| d.0 == key));
                if !written {
                    map.serialize_entry(key, value)?;
                }
            }
        }
        for &(i, start, end) in doc {
            let entry = &entries[i];
            map.serialize_entry(entry.name, &Values(&entry.values[start..end]))?;
        }
        map.end()
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
    /// Any writer, shared by clones (`callhook dev`: a file in its state directory), each line
    /// written whole.
    Writer(SharedWriter),
}

impl Sink {
    /// A sink that keeps the lines; read them back with [`Sink::lines`].
    pub fn memory() -> Sink {
        Sink::Memory(MemorySink::default())
    }

    /// A sink writing to `out` (e.g. a file opened for appending).
    pub fn writer(out: impl Write + Send + 'static) -> Sink {
        Sink::Writer(SharedWriter(Arc::new(Mutex::new(Box::new(out)))))
    }

    /// The lines a memory sink received (empty for the others).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Sink::Memory(memory) => memory.lines(),
            _ => Vec::new(),
        }
    }
}

/// A writer shared by clones of a [`Sink::Writer`].
#[derive(Clone)]
pub struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedWriter")
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
