use chrono::{TimeZone, Utc};

use serde_json::Value;

use super::emf::*;
use super::metrics::*;
use super::readback::samples;
use crate::app::ingest::IngestOutcome as Outcome;
use crate::domain::review::ReviewReason;

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
    // Exactly the documented text, key order included.
    assert_eq!(
        lines[0],
        concat!(
            r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"callhook","#,
            r#""Dimensions":[["provider","result"],[]],"Metrics":[{"Name":"received","Unit":"Count"}]}]},"#,
            r#""provider":"telnyx","result":"accepted","received":1}"#,
            "\n"
        )
    );
}

#[test]
fn metrics_with_agreeing_dimensions_share_one_line() {
    let mut m = Metrics::at_millis(T);
    record_ingest(&mut m, Some("telnyx"), &Outcome::Duplicate);
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
    record_ingest(&mut m, Some("telnyx"), &Outcome::Unauthorized);
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
        (
            Outcome::Review(ReviewReason::ProviderDeliveryFailed),
            "review",
            None,
        ),
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
        record_ingest(&mut m, Some("bird"), &outcome);
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
    record_ingest(&mut m, None, &Outcome::NotFound);
    record_ingest(&mut m, Some("no-such-provider\"x"), &Outcome::NotFound);
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

#[test]
fn a_writer_sink_gets_exactly_the_lines_stdout_would() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let sink = Sink::writer(out.clone());
    let mut m = Metrics::at_millis(T);
    record_ingest(&mut m, Some("telnyx"), &Outcome::Duplicate);
    record_dispatch_attempt(&mut m, "crm", true);
    let expected = m.lines().concat();
    m.flush(&sink.clone());
    assert!(m.is_empty());
    let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(!expected.is_empty());
    assert_eq!(written, expected);
}
