//! Reading EMF lines back: what tests and tools use to count what a function wrote.

use serde_json::Value;

use super::emf::{NAMESPACE, Sink};

impl Sink {
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
