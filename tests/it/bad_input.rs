//! Bad input through the exact Lambda path (docs/architecture.md, "What ingest answers"): an API Gateway HTTP API event, built
//! with `callhook_cli::commands::fixtures::wrap` + `sign` (or broken by hand), handed to
//! `callhook_ingest::respond` of a function made by `callhook_ingest::build` against moto, every
//! provider configured with its fixture keys and its stock tolerance.
//!
//! The corpus below is the documentation: one row per input, the status it gets, and what is
//! stored. For every row the test also checks that the answer is JSON, is never a 5xx nor a panic,
//! never echoes a configured secret; that what is answered `accepted` is stored byte-identical to
//! what was sent (GetItem on the events table) and queued once as a message the lifecycle can
//! read; and that nothing else is stored or queued.
//!
//! Choices the corpus pins down (the contract leaves them open):
//! - the provider segment is case-sensitive: `/webhooks/TELNYX` is an unknown provider (404);
//! - `Content-Type` is not checked: authenticity is the signature over the raw bytes, and an
//!   authentic body that is not the documented JSON goes to review;
//! - a `{token}` segment on a provider that does not use one is ignored (its signature is what
//!   authenticates it);
//! - repeated signature or timestamp headers, which API Gateway joins with commas, are a malformed
//!   header (401): no provider sends its signature header twice;
//! - order of checks: method (405), provider (404), size and encoding (413, 400), authenticity
//!   (401), then the body (200, review when not the documented shape);
//! - an authentic event whose id is longer than 256 bytes is kept under
//!   `{provider}#sha256:{hex of the id}` (a DynamoDB key holds at most 2048 bytes);
//! - facts that repeat a large body (a long transcript) are left out of the stored envelope, and
//!   the queue message is cut down (payload, then facts) until it is within the SQS limit and
//!   serde_json's nesting limit, so the lifecycle can always read it.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE};
use callhook::domain::event::CanonicalEvent;
use callhook::providers::{self, FIXTURE_SEED};
use callhook::signing::standard_webhooks;
use callhook_cli::commands::fixtures;
use callhook_integration::Stack;
use chrono::Utc;
use serde_json::Value;

/// What a row must be answered, beyond its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `{"status":"accepted"}`: stored byte-identical, queued once.
    Accepted,
    /// `{"status":"accepted","review":true}`: authentic but not the documented shape (or an
    /// unknown type); stored byte-identical, queued once with `review` set.
    Review,
    /// `{"status":"duplicate"}`: nothing new stored or queued.
    Duplicate,
    /// `{"status":"rejected","error":…}` whose error contains this text; nothing stored or queued.
    Rejected(&'static str),
}

use Expect::*;

/// What every builder may use: the time now (signatures are made at it) and the body limit.
struct Ctx {
    now: i64,
    max: usize,
}

struct Case {
    name: &'static str,
    /// The API Gateway event (JSON, as Lambda receives it).
    event: Box<dyn Fn(&Ctx) -> Value>,
    status: u16,
    expect: Expect,
}

fn case(
    name: &'static str,
    status: u16,
    expect: Expect,
    event: impl Fn(&Ctx) -> Value + 'static,
) -> Case {
    Case {
        name,
        event: Box::new(event),
        status,
        expect,
    }
}

// ------------------------------------------------------------------------------------------------
// Building events

const TELNYX_TOLERANCE: i64 = 300;
const BIRD_TOLERANCE: i64 = 24 * 60 * 60;
const OTHER_TOLERANCE: i64 = 300;

const MISSING: &str = "missing header";
const STALE: &str = "timestamp outside the allowed window";
const MISMATCH: &str = "signature does not match";
const NOT_FOUND: &str = "unknown or unconfigured provider";
const NOT_POST: &str = "only POST is accepted";
const TOO_LARGE: &str = "body exceeds";
const NOT_BASE64: &str = "body is not valid base64";
const BAD_TELNYX_SIGNATURE: &str = "header telnyx-signature-ed25519 is not valid";
const BAD_TELNYX_TIMESTAMP: &str = "header telnyx-timestamp is not valid";
const BAD_BIRD_SIGNATURE: &str = "header messagebird-signature is not valid";
const BAD_BIRD_TIMESTAMP: &str = "header messagebird-request-timestamp is not valid";
const BAD_WEBHOOK_SIGNATURE: &str = "header webhook-signature is not valid";
const BAD_WEBHOOK_TIMESTAMP: &str = "header webhook-timestamp is not valid";

fn signer(provider: &str) -> Box<dyn providers::DevSigner> {
    providers::dev_signer(provider, &FIXTURE_SEED).expect("supported provider")
}

/// `wrap` + `sign` (which sets the route, the path token and the URL), then the signature made
/// again at `ts`: `sign` signs at the fixed fixture time, which the stock tolerance rejects as
/// a replay (see the row that sends it as it is).
fn signed_at(provider: &str, body: impl AsRef<[u8]>, base64: bool, ts: i64) -> Value {
    let mut event = fixtures::wrap(provider, body.as_ref(), base64);
    fixtures::sign(&mut event).expect("fixture signing");
    resign(&mut event, ts);
    event
}

fn signed(provider: &str, body: impl AsRef<[u8]>, ctx: &Ctx) -> Value {
    signed_at(provider, body, false, ctx.now)
}

/// Signs the event's current body and URL again at `ts`.
fn resign(event: &mut Value, ts: i64) {
    let provider = event["pathParameters"]["provider"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = fixtures::body_of(event).unwrap();
    let url = format!(
        "https://{}{}",
        event["requestContext"]["domainName"].as_str().unwrap(),
        event["rawPath"].as_str().unwrap()
    );
    for (name, value) in signer(&provider).sign(&body, ts, &url).headers {
        event["headers"][name] = Value::from(value);
    }
}

fn header(event: &Value, name: &str) -> String {
    event["headers"][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn set_header(mut event: Value, name: &str, value: impl Into<String>) -> Value {
    event["headers"][name] = Value::from(value.into());
    event
}

fn drop_headers(mut event: Value, names: &[&str]) -> Value {
    let headers = event["headers"].as_object_mut().unwrap();
    for name in names {
        headers.remove(*name);
    }
    event
}

fn set_method(mut event: Value, method: &str) -> Value {
    event["requestContext"]["http"]["method"] = Value::from(method);
    event
}

/// Replaces the body after signing (what a tampering proxy would do).
fn set_body(mut event: Value, body: &str) -> Value {
    event["body"] = Value::from(body);
    event["isBase64Encoded"] = Value::from(false);
    event
}

fn set_base64_body(mut event: Value, text: &str) -> Value {
    event["body"] = Value::from(text);
    event["isBase64Encoded"] = Value::from(true);
    event
}

/// Routes the event to `provider` (path parameter, raw path and route key), keeping any token.
fn set_provider(mut event: Value, provider: &str) -> Value {
    event["pathParameters"]["provider"] = Value::from(provider);
    let token = event["pathParameters"]["token"].as_str().map(str::to_owned);
    set_path(&mut event, provider, token.as_deref());
    event
}

/// Sets or removes the `{token}` path segment.
fn set_token(mut event: Value, token: Option<&str>) -> Value {
    let provider = event["pathParameters"]["provider"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match token {
        Some(token) => event["pathParameters"]["token"] = Value::from(token),
        None => {
            event["pathParameters"]
                .as_object_mut()
                .unwrap()
                .remove("token");
        }
    }
    set_path(&mut event, &provider, token);
    event
}

fn set_path(event: &mut Value, provider: &str, token: Option<&str>) {
    let (path, route) = match token {
        Some(token) => (
            format!("/webhooks/{provider}/{token}"),
            "ANY /webhooks/{provider}/{token}",
        ),
        None => (format!("/webhooks/{provider}"), "ANY /webhooks/{provider}"),
    };
    event["rawPath"] = Value::from(path.as_str());
    event["requestContext"]["http"]["path"] = Value::from(path.as_str());
    event["routeKey"] = Value::from(route);
    event["requestContext"]["routeKey"] = Value::from(route);
}

fn base64_decoded_header(event: &Value, name: &str) -> Vec<u8> {
    B64.decode(header(event, name)).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Bodies

fn telnyx(id: &str) -> String {
    telnyx_typed("call.initiated", id)
}

fn telnyx_typed(event_type: &str, id: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"s-{id}","direction":"incoming","from":"+15550100","to":"+15550199"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

/// A Telnyx body of exactly `len` bytes: the event plus a top-level padding string.
fn telnyx_padded(id: &str, len: usize) -> String {
    let event = telnyx(id);
    let inner = &event[1..];
    let frame = r#"{"pad":"","#.len() + inner.len();
    format!(r#"{{"pad":"{}",{inner}"#, "p".repeat(len - frame))
}

fn standard(event_type: &str, call: &str) -> String {
    format!(
        r#"{{"type":"{event_type}","timestamp":"2024-01-01T00:00:00Z","data":{{"call_id":"{call}","direction":"inbound","from":"+15550100","to":"+15550199"}}}}"#
    )
}

fn fixture_body(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A Standard Webhooks delivery signed by hand, for a `webhook-id` the dev signer would not
/// choose.
fn standard_with_id(body: &str, id: &str, ctx: &Ctx) -> Value {
    let event = fixtures::wrap("standard", body.as_bytes(), false);
    let event = set_header(event, "webhook-id", id);
    let event = set_header(event, "webhook-timestamp", ctx.now.to_string());
    set_header(
        event,
        "webhook-signature",
        standard_webhooks::sign(&FIXTURE_SEED, id, ctx.now, body.as_bytes()),
    )
}

// ------------------------------------------------------------------------------------------------
// The corpus

fn corpus() -> Vec<Case> {
    let telnyx_sig = "telnyx-signature-ed25519";
    let telnyx_ts = "telnyx-timestamp";
    let bird_sig = "messagebird-signature";
    let bird_ts = "messagebird-request-timestamp";
    let recho_sig = "x-recho-signature";
    let recho_ts = "x-recho-timestamp";
    let sw_sig = "webhook-signature";
    let sw_ts = "webhook-timestamp";
    let sw_id = "webhook-id";

    vec![
        // ---- authentic and well-formed: the baselines the other rows break
        case("telnyx: authentic, documented shape", 200, Accepted, |c| {
            signed("telnyx", telnyx("base-1"), c)
        }),
        case(
            "telnyx: the same event again (a provider retry)",
            200,
            Duplicate,
            |c| signed("telnyx", telnyx("base-1"), c),
        ),
        case(
            "standard: body base64-encoded by the gateway",
            200,
            Accepted,
            |c| signed_at("standard", standard("call.initiated", "b64"), true, c.now),
        ),
        case(
            "bird: fixture body, signed over the gateway's URL",
            200,
            Accepted,
            |c| {
                signed(
                    "bird",
                    fixture_body("bird/bodies/inbound-04-completed.json"),
                    c,
                )
            },
        ),
        case("recho: fixture body, RSA signature", 200, Accepted, |c| {
            signed(
                "recho",
                fixture_body("recho/bodies/inbound-04-completed.json"),
                c,
            )
        }),
        case("stateset: fixture body", 200, Accepted, |c| {
            signed(
                "stateset",
                fixture_body("stateset/bodies/inbound-02-call-completed.json"),
                c,
            )
        }),
        case("miraiminds: fixture body, path token", 200, Accepted, |c| {
            signed(
                "miraiminds",
                fixture_body("miraiminds/bodies/outbound-05-completed.json"),
                c,
            )
        }),
        case(
            "telnyx: signed 4 minutes ago (inside the 5 minute window)",
            200,
            Accepted,
            |c| signed_at("telnyx", telnyx("four-min"), false, c.now - 240),
        ),
        // ---- authentic but not the documented shape: stored, answered 200, routed to review
        case("telnyx: truncated JSON", 200, Review, |c| {
            let body = telnyx("truncated");
            signed("telnyx", &body[..body.len() / 2], c)
        }),
        case("standard: invalid JSON", 200, Review, |c| {
            signed("standard", "{type: call.ended, data: {call_id: c1}}", c)
        }),
        case("bird: truncated fixture body", 200, Review, |c| {
            let body = fixture_body("bird/bodies/inbound-04-completed.json");
            signed("bird", &body[..body.len() - 3], c)
        }),
        case("recho: invalid JSON", 200, Review, |c| {
            signed("recho", r#"{"eventType":"INBOUND_CALL_COMPLETED",,}"#, c)
        }),
        case("stateset: JSON array at the top", 200, Review, |c| {
            signed("stateset", "[]", c)
        }),
        case("stateset: JSON null", 200, Review, |c| {
            signed("stateset", "null", c)
        }),
        case("miraiminds: not JSON at all", 200, Review, |c| {
            signed("miraiminds", "event=call.completed&id=1", c)
        }),
        case(
            "telnyx: 100,000 nested arrays (past serde_json's recursion limit)",
            200,
            Review,
            |c| signed("telnyx", nested_arrays(100_000), c),
        ),
        case(
            "standard: 40,000 nested objects under data",
            200,
            Review,
            |c| {
                let depth = 40_000;
                let body = format!(
                    r#"{{"type":"call.report","data":{}1{}}}"#,
                    r#"{"a":"#.repeat(depth),
                    "}".repeat(depth)
                );
                signed("standard", body, c)
            },
        ),
        case(
            "telnyx: 127 nested arrays (the deepest JSON serde_json parses)",
            200,
            Review,
            |c| signed("telnyx", nested_arrays(127), c),
        ),
        case(
            "standard: analysis nested to the depth limit",
            200,
            Accepted,
            |c| {
                // Body depth 127: the object, data, and 125 arrays.
                let body = format!(
                    r#"{{"type":"call.report","timestamp":"2024-01-01T00:00:00Z","data":{{"call_id":"deep","analysis":{}}}}}"#,
                    nested_arrays(125)
                );
                signed("standard", body, c)
            },
        ),
        case("telnyx: empty body", 200, Review, |c| {
            signed("telnyx", "", c)
        }),
        case(
            "standard: no body at all (null), signed over nothing",
            200,
            Review,
            |c| {
                let mut event = signed("standard", "", c);
                event["body"] = Value::Null;
                event
            },
        ),
        case(
            "telnyx: invalid UTF-8 (base64 by the gateway, signed over the raw bytes)",
            200,
            Review,
            |c| signed("telnyx", b"\xff\xfe\x00{\"data\":\xc3}", c),
        ),
        case(
            "standard: invalid UTF-8 inside a JSON string",
            200,
            Review,
            |c| {
                let mut body = br#"{"type":"call.ended","data":{"call_id":"c"#.to_vec();
                body.extend_from_slice(b"\xc3\x28");
                body.extend_from_slice(br#""}}"#);
                signed("standard", body, c)
            },
        ),
        case("telnyx: raw NUL bytes after the JSON", 200, Review, |c| {
            signed("telnyx", format!("{}\0\0\0", telnyx("nul-tail")), c)
        }),
        case(
            "telnyx: escaped NUL inside the event id",
            200,
            Accepted,
            |c| signed("telnyx", telnyx(r"nul\u0000id"), c),
        ),
        case(
            "standard: number beyond f64 (1e999999) as timestamp",
            200,
            Review,
            |c| {
                signed(
                    "standard",
                    r#"{"type":"call.ended","timestamp":1e999999,"data":{"call_id":"huge-exp"}}"#,
                    c,
                )
            },
        ),
        case(
            "telnyx: 400-digit integer (beyond f64) in meta.attempt",
            200,
            Review,
            |c| {
                let body = telnyx("digits-400").replace(
                    r#""attempt":1"#,
                    &format!(r#""attempt":{}"#, "9".repeat(400)),
                );
                signed("telnyx", body, c)
            },
        ),
        case(
            "telnyx: 300-digit integer (an f64) in meta.attempt",
            200,
            Accepted,
            |c| {
                let body = telnyx("digits-300").replace(
                    r#""attempt":1"#,
                    &format!(r#""attempt":{}"#, "9".repeat(300)),
                );
                signed("telnyx", body, c)
            },
        ),
        case(
            "telnyx: occurred_at a giant number (receipt time used)",
            200,
            Accepted,
            |c| {
                let body = telnyx("when-number").replace(
                    r#""occurred_at":"2024-01-01T00:00:00Z""#,
                    r#""occurred_at":1e308"#,
                );
                signed("telnyx", body, c)
            },
        ),
        case("telnyx: event_type a number", 200, Review, |c| {
            let body = telnyx("type-number")
                .replace(r#""event_type":"call.initiated""#, r#""event_type":42"#);
            signed("telnyx", body, c)
        }),
        case("telnyx: id an object", 200, Review, |c| {
            let body = telnyx("id-object").replace(r#""id":"id-object""#, r#""id":{"x":1}"#);
            signed("telnyx", body, c)
        }),
        case("standard: type an array", 200, Review, |c| {
            let body = standard("call.ended", "type-array")
                .replace(r#""type":"call.ended""#, r#""type":["call.ended"]"#);
            signed("standard", body, c)
        }),
        case("bird: payload.id a number", 200, Review, |c| {
            signed(
                "bird",
                r#"{"service":"channels","event":"voice.inbound","payload":{"id":12345,"status":"completed"}}"#,
                c,
            )
        }),
        case("standard: UTF-8 byte order mark first", 200, Review, |c| {
            signed(
                "standard",
                format!("\u{feff}{}", standard("call.ended", "bom")),
                c,
            )
        }),
        case(
            "standard: duplicate keys (the last one wins)",
            200,
            Accepted,
            |c| {
                let body = standard("call.ended", "dup-keys").replacen(
                    '{',
                    r#"{"type":"call.teleported","#,
                    1,
                );
                signed("standard", body, c)
            },
        ),
        case("telnyx: unknown event type", 200, Review, |c| {
            signed("telnyx", telnyx_typed("call.teleported", "unknown-type"), c)
        }),
        // ---- content types are not checked: the signature over the bytes is what counts
        case("telnyx: content-type text/plain", 200, Accepted, |c| {
            set_header(
                signed("telnyx", telnyx("text-plain"), c),
                "content-type",
                "text/plain",
            )
        }),
        case("telnyx: no content-type", 200, Accepted, |c| {
            drop_headers(signed("telnyx", telnyx("no-ctype"), c), &["content-type"])
        }),
        case("standard: a form-encoded body", 200, Review, |c| {
            set_header(
                signed("standard", "type=call.ended&call_id=form", c),
                "content-type",
                "application/x-www-form-urlencoded",
            )
        }),
        case("telnyx: UTF-16 body, charset=utf-16", 200, Review, |c| {
            let utf16: Vec<u8> = telnyx("utf16")
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            set_header(
                signed("telnyx", utf16, c),
                "content-type",
                "application/json; charset=utf-16",
            )
        }),
        // ---- headers: size, case, repetition
        case("telnyx: header names in mixed case", 200, Accepted, |c| {
            let event = signed("telnyx", telnyx("mixed-case"), c);
            let (sig, ts) = (header(&event, telnyx_sig), header(&event, telnyx_ts));
            let event = drop_headers(event, &[telnyx_sig, telnyx_ts]);
            let event = set_header(event, "Telnyx-Signature-Ed25519", sig);
            set_header(event, "TELNYX-TIMESTAMP", ts)
        }),
        case("telnyx: an unrelated 1 MiB header", 200, Accepted, |c| {
            set_header(
                signed("telnyx", telnyx("big-header"), c),
                "x-padding",
                "a".repeat(1 << 20),
            )
        }),
        case(
            "telnyx: a 64 KiB signature header",
            401,
            Rejected(BAD_TELNYX_SIGNATURE),
            |c| {
                set_header(
                    signed("telnyx", telnyx("big-sig"), c),
                    telnyx_sig,
                    B64.encode(vec![7u8; 48 * 1024]),
                )
            },
        ),
        case(
            "standard: 10,000 signature entries, none valid (refused unchecked: at most 10)",
            401,
            Rejected(BAD_WEBHOOK_SIGNATURE),
            |c| {
                let event = signed("standard", standard("call.ended", "many"), c);
                let wrong = format!("v1,{} ", B64.encode([9u8; 32]));
                set_header(event, sw_sig, wrong.repeat(10_000))
            },
        ),
        case(
            "telnyx: signature header sent twice (joined with a comma)",
            401,
            Rejected(BAD_TELNYX_SIGNATURE),
            |c| {
                let event = signed("telnyx", telnyx("dup-sig"), c);
                let sig = header(&event, telnyx_sig);
                set_header(event, telnyx_sig, format!("{sig},{sig}"))
            },
        ),
        case(
            "standard: webhook-signature sent twice (joined with a comma)",
            401,
            Rejected(MISMATCH),
            |c| {
                let event = signed("standard", standard("call.ended", "dup-sig"), c);
                let sig = header(&event, sw_sig);
                set_header(event, sw_sig, format!("{sig},{sig}"))
            },
        ),
        case(
            "bird: timestamp header sent twice (joined with a comma)",
            401,
            Rejected(BAD_BIRD_TIMESTAMP),
            |c| {
                let event = signed(
                    "bird",
                    fixture_body("bird/bodies/inbound-02-ringing.json"),
                    c,
                );
                let ts = header(&event, bird_ts);
                set_header(event, bird_ts, format!("{ts},{ts}"))
            },
        ),
        case(
            "standard: webhook-id sent twice (joined with a comma)",
            401,
            Rejected(MISMATCH),
            |c| {
                let event = signed("standard", standard("call.ended", "dup-id"), c);
                let id = header(&event, sw_id);
                set_header(event, sw_id, format!("{id},{id}"))
            },
        ),
        case(
            "standard: a 4 KiB webhook-id, signed (longer than a DynamoDB key)",
            200,
            Accepted,
            |c| {
                let id = format!("msg_{}", "k".repeat(4096));
                standard_with_id(&standard("call.ended", "long-id"), &id, c)
            },
        ),
        case(
            "telnyx: a 4 KiB data.id, signed (longer than a DynamoDB key)",
            200,
            Accepted,
            |c| signed("telnyx", telnyx(&"i".repeat(4096)), c),
        ),
        case(
            "standard: a 200 KiB transcript (facts as large as the body)",
            200,
            Accepted,
            |c| {
                let body = format!(
                    r#"{{"type":"call.report","timestamp":"2024-01-01T00:00:00Z","data":{{"call_id":"long-talk","transcript":"{}"}}}}"#,
                    "t".repeat(200 * 1024)
                );
                signed("standard", body, c)
            },
        ),
        case(
            "standard: a transcript filling MAX_BODY_BYTES",
            200,
            Accepted,
            |c| {
                let frame = r#"{"type":"call.report","timestamp":"2024-01-01T00:00:00Z","data":{"call_id":"longest-talk","transcript":""}}"#;
                let body = frame.replace(
                    r#""transcript":"""#,
                    &format!(r#""transcript":"{}""#, "t".repeat(c.max - frame.len())),
                );
                assert_eq!(body.len(), c.max);
                signed("standard", body, c)
            },
        ),
        case(
            "miraiminds: an action whose data nests to the depth limit",
            200,
            Accepted,
            |c| {
                // Body depth 127: event, data, and 124 arrays under order.
                let body = format!(
                    r#"{{"event":{{"type":"create_order","data":{{"call":{{"id":"deep-action"}},"order":{}}}}}}}"#,
                    nested_arrays(124)
                );
                signed("miraiminds", body, c)
            },
        ),
        // ---- signatures and timestamps: 401, nothing stored
        case(
            "telnyx: body changed after signing",
            401,
            Rejected(MISMATCH),
            |c| {
                let event = signed("telnyx", telnyx("tampered"), c);
                set_body(event, &telnyx("tampered").replace("incoming", "outgoing"))
            },
        ),
        case(
            "telnyx: signed with another key",
            401,
            Rejected(MISMATCH),
            |c| {
                let body = telnyx("forged");
                let event = signed("telnyx", &body, c);
                let forged = providers::dev_signer("telnyx", &[1; 32]).unwrap().sign(
                    body.as_bytes(),
                    c.now,
                    "",
                );
                forged
                    .headers
                    .into_iter()
                    .fold(event, |e, (k, v)| set_header(e, &k, v))
            },
        ),
        case(
            "telnyx: replayed, signed 6 minutes ago",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "telnyx",
                    telnyx("replayed"),
                    false,
                    c.now - TELNYX_TOLERANCE - 60,
                )
            },
        ),
        case(
            "telnyx: signed 6 minutes in the future",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "telnyx",
                    telnyx("future"),
                    false,
                    c.now + TELNYX_TOLERANCE + 60,
                )
            },
        ),
        case("telnyx: timestamp -1, signed", 401, Rejected(STALE), |_| {
            signed_at("telnyx", telnyx("negative-ts"), false, -1)
        }),
        case(
            "bird: replayed, signed 25 hours ago",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "bird",
                    fixture_body("bird/bodies/inbound-03-ongoing.json"),
                    false,
                    c.now - BIRD_TOLERANCE - 3600,
                )
            },
        ),
        case(
            "standard: replayed, signed 6 minutes ago",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "standard",
                    standard("call.ended", "replayed"),
                    false,
                    c.now - OTHER_TOLERANCE - 60,
                )
            },
        ),
        case(
            "recho: signed 6 minutes in the future",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "recho",
                    fixture_body("recho/bodies/inbound-03-closing.json"),
                    false,
                    c.now + OTHER_TOLERANCE + 60,
                )
            },
        ),
        case(
            "stateset: replayed, signed an hour ago",
            401,
            Rejected(STALE),
            |c| {
                signed_at(
                    "stateset",
                    fixture_body("stateset/bodies/outbound-03-call-completed.json"),
                    false,
                    c.now - 3600,
                )
            },
        ),
        case(
            "telnyx: a fixture replayed as signed (2023-11-14)",
            401,
            Rejected(STALE),
            |_| {
                let mut event = fixtures::wrap("telnyx", telnyx("fixture-time").as_bytes(), false);
                fixtures::sign(&mut event).unwrap();
                event
            },
        ),
        case(
            "telnyx: signature of 63 bytes",
            401,
            Rejected(BAD_TELNYX_SIGNATURE),
            |c| {
                let event = signed("telnyx", telnyx("sig-63"), c);
                let sig = base64_decoded_header(&event, telnyx_sig);
                set_header(event, telnyx_sig, B64.encode(&sig[..63]))
            },
        ),
        case(
            "telnyx: signature of 65 bytes (valid one plus a byte)",
            401,
            Rejected(BAD_TELNYX_SIGNATURE),
            |c| {
                let event = signed("telnyx", telnyx("sig-65"), c);
                let mut sig = base64_decoded_header(&event, telnyx_sig);
                sig.push(0);
                set_header(event, telnyx_sig, B64.encode(&sig))
            },
        ),
        case(
            "telnyx: signature not base64",
            401,
            Rejected(BAD_TELNYX_SIGNATURE),
            |c| set_header(signed("telnyx", telnyx("sig-text"), c), telnyx_sig, "!!!"),
        ),
        case(
            "bird: signature of 31 bytes",
            401,
            Rejected(BAD_BIRD_SIGNATURE),
            |c| {
                let event = signed(
                    "bird",
                    fixture_body("bird/bodies/inbound-02-ringing.json"),
                    c,
                );
                let sig = base64_decoded_header(&event, bird_sig);
                set_header(event, bird_sig, B64.encode(&sig[..31]))
            },
        ),
        case(
            "bird: signed over another URL",
            401,
            Rejected(MISMATCH),
            |c| {
                let mut event = signed(
                    "bird",
                    fixture_body("bird/bodies/outbound-02-starting.json"),
                    c,
                );
                event["requestContext"]["domainName"] = Value::from("evil.example.com");
                event
            },
        ),
        case(
            "recho: signature of 255 bytes (RSA-2048 is 256)",
            401,
            Rejected(MISMATCH),
            |c| {
                let event = signed(
                    "recho",
                    fixture_body("recho/bodies/inbound-02-calling.json"),
                    c,
                );
                let sig = base64_decoded_header(&event, recho_sig);
                set_header(event, recho_sig, B64.encode(&sig[..255]))
            },
        ),
        case(
            "standard: empty signature `v1,`",
            401,
            Rejected(MISMATCH),
            |c| {
                set_header(
                    signed("standard", standard("call.ended", "v1-empty"), c),
                    sw_sig,
                    "v1,",
                )
            },
        ),
        case(
            "standard: signature `v1` without a value",
            401,
            Rejected(BAD_WEBHOOK_SIGNATURE),
            |c| {
                set_header(
                    signed("standard", standard("call.ended", "v1-bare"), c),
                    sw_sig,
                    "v1",
                )
            },
        ),
        case(
            "standard: signature truncated to 16 bytes",
            401,
            Rejected(MISMATCH),
            |c| {
                let event = signed("standard", standard("call.ended", "v1-short"), c);
                let full = header(&event, sw_sig);
                let bytes = B64.decode(full.strip_prefix("v1,").unwrap()).unwrap();
                set_header(event, sw_sig, format!("v1,{}", B64.encode(&bytes[..16])))
            },
        ),
        case("telnyx: no signature header", 401, Rejected(MISSING), |c| {
            drop_headers(signed("telnyx", telnyx("no-sig"), c), &[telnyx_sig])
        }),
        case("telnyx: no timestamp header", 401, Rejected(MISSING), |c| {
            drop_headers(signed("telnyx", telnyx("no-ts"), c), &[telnyx_ts])
        }),
        case("standard: no webhook-id", 401, Rejected(MISSING), |c| {
            drop_headers(
                signed("standard", standard("call.ended", "no-id"), c),
                &[sw_id],
            )
        }),
        case("recho: no headers at all", 401, Rejected(MISSING), |c| {
            drop_headers(
                signed(
                    "recho",
                    fixture_body("recho/bodies/outbound-01-pending.json"),
                    c,
                ),
                &[recho_sig, recho_ts],
            )
        }),
        case("bird: no headers at all", 401, Rejected(MISSING), |c| {
            drop_headers(
                signed(
                    "bird",
                    fixture_body("bird/bodies/outbound-03-ringing.json"),
                    c,
                ),
                &[bird_sig, bird_ts, "messagebird-request-id"],
            )
        }),
        case(
            "telnyx: timestamp `yesterday`",
            401,
            Rejected(BAD_TELNYX_TIMESTAMP),
            |c| {
                set_header(
                    signed("telnyx", telnyx("ts-word"), c),
                    telnyx_ts,
                    "yesterday",
                )
            },
        ),
        case(
            "standard: timestamp of 25 digits",
            401,
            Rejected(BAD_WEBHOOK_TIMESTAMP),
            |c| {
                set_header(
                    signed("standard", standard("call.ended", "ts-digits"), c),
                    sw_ts,
                    "9".repeat(25),
                )
            },
        ),
        // ---- path tokens
        case(
            "miraiminds: no path token",
            401,
            Rejected("missing path token"),
            |c| {
                set_token(
                    signed(
                        "miraiminds",
                        fixture_body("miraiminds/bodies/outbound-04-ended.json"),
                        c,
                    ),
                    None,
                )
            },
        ),
        case(
            "miraiminds: empty path token",
            401,
            Rejected("missing path token"),
            |c| {
                set_token(
                    signed(
                        "miraiminds",
                        fixture_body("miraiminds/bodies/outbound-04-ended.json"),
                        c,
                    ),
                    Some(""),
                )
            },
        ),
        case(
            "miraiminds: another path token",
            401,
            Rejected("path token does not match"),
            |c| {
                set_token(
                    signed(
                        "miraiminds",
                        fixture_body("miraiminds/bodies/outbound-04-ended.json"),
                        c,
                    ),
                    Some("0123456789abcdef0123456789abcdef"),
                )
            },
        ),
        case(
            "miraiminds: the path token in upper case",
            401,
            Rejected("path token does not match"),
            |c| {
                let event = signed(
                    "miraiminds",
                    fixture_body("miraiminds/bodies/outbound-04-ended.json"),
                    c,
                );
                let token = event["pathParameters"]["token"]
                    .as_str()
                    .unwrap()
                    .to_ascii_uppercase();
                set_token(event, Some(&token))
            },
        ),
        case(
            "telnyx: a path token it does not use (ignored)",
            200,
            Accepted,
            |c| {
                set_token(
                    signed("telnyx", telnyx("extra-token"), c),
                    Some("whatever-token"),
                )
            },
        ),
        // ---- routing
        case("unknown provider", 404, Rejected(NOT_FOUND), |_| {
            fixtures::wrap("sinch", telnyx("sinch").as_bytes(), false)
        }),
        case(
            "provider in upper case (TELNYX): names are case-sensitive",
            404,
            Rejected(NOT_FOUND),
            |c| set_provider(signed("telnyx", telnyx("upper"), c), "TELNYX"),
        ),
        case(
            "provider capitalised (Telnyx)",
            404,
            Rejected(NOT_FOUND),
            |c| set_provider(signed("telnyx", telnyx("capital"), c), "Telnyx"),
        ),
        case(
            "provider with a trailing space",
            404,
            Rejected(NOT_FOUND),
            |c| set_provider(signed("telnyx", telnyx("space"), c), "telnyx "),
        ),
        case("provider `../telnyx`", 404, Rejected(NOT_FOUND), |c| {
            set_provider(signed("telnyx", telnyx("dotdot"), c), "../telnyx")
        }),
        case("provider empty", 404, Rejected(NOT_FOUND), |c| {
            set_provider(signed("telnyx", telnyx("empty-provider"), c), "")
        }),
        case("no path parameters at all", 404, Rejected(NOT_FOUND), |c| {
            let mut event = signed("telnyx", telnyx("no-params"), c);
            event.as_object_mut().unwrap().remove("pathParameters");
            event
        }),
        // ---- methods: 405 with Allow: POST, checked first
        case("GET", 405, Rejected(NOT_POST), |c| {
            set_method(signed("telnyx", telnyx("get"), c), "GET")
        }),
        case("PUT", 405, Rejected(NOT_POST), |c| {
            set_method(signed("telnyx", telnyx("put"), c), "PUT")
        }),
        case("DELETE", 405, Rejected(NOT_POST), |c| {
            set_method(
                signed("standard", standard("call.ended", "delete"), c),
                "DELETE",
            )
        }),
        case("OPTIONS (a CORS preflight)", 405, Rejected(NOT_POST), |c| {
            set_method(signed("telnyx", telnyx("options"), c), "OPTIONS")
        }),
        case("HEAD", 405, Rejected(NOT_POST), |c| {
            set_method(signed("telnyx", telnyx("head"), c), "HEAD")
        }),
        case(
            "GET on an unknown provider",
            405,
            Rejected(NOT_POST),
            |_| set_method(fixtures::wrap("sinch", b"", false), "GET"),
        ),
        // ---- size
        case(
            "telnyx: body one byte over MAX_BODY_BYTES, signed",
            413,
            Rejected(TOO_LARGE),
            |c| signed("telnyx", telnyx_padded("over", c.max + 1), c),
        ),
        case(
            "telnyx: body of exactly MAX_BODY_BYTES, signed",
            200,
            Accepted,
            |c| signed("telnyx", telnyx_padded("at-limit", c.max), c),
        ),
        case(
            "telnyx: base64 body one byte over MAX_BODY_BYTES",
            413,
            Rejected(TOO_LARGE),
            |c| signed_at("telnyx", telnyx_padded("over-b64", c.max + 1), true, c.now),
        ),
        case(
            "telnyx: base64 body of exactly MAX_BODY_BYTES",
            200,
            Accepted,
            |c| signed_at("telnyx", telnyx_padded("at-limit-b64", c.max), true, c.now),
        ),
        case(
            "telnyx: 7 MB body, unsigned (size before authenticity)",
            413,
            Rejected(TOO_LARGE),
            |_| fixtures::wrap("telnyx", "x".repeat(7_000_000).as_bytes(), false),
        ),
        case(
            "unknown provider, 4 MiB body (route before size)",
            404,
            Rejected(NOT_FOUND),
            |_| fixtures::wrap("sinch", "x".repeat(4 << 20).as_bytes(), false),
        ),
        // ---- bodies API Gateway could not have encoded: 400
        case("body not base64", 400, Rejected(NOT_BASE64), |c| {
            set_base64_body(signed("telnyx", telnyx("bad-b64"), c), "!!not base64!!")
        }),
        case(
            "base64 without its padding",
            400,
            Rejected(NOT_BASE64),
            |c| {
                let body = telnyx("unpadded-1");
                let encoded = B64.encode(&body);
                assert!(encoded.ends_with('='), "the body must need padding");
                set_base64_body(signed("telnyx", &body, c), encoded.trim_end_matches('='))
            },
        ),
        case(
            "base64 with line breaks (MIME)",
            400,
            Rejected(NOT_BASE64),
            |c| {
                let body = telnyx("mime");
                let encoded = B64.encode(&body);
                let wrapped: Vec<String> = encoded
                    .as_bytes()
                    .chunks(76)
                    .map(|l| String::from_utf8(l.to_vec()).unwrap())
                    .collect();
                set_base64_body(signed("telnyx", &body, c), &wrapped.join("\r\n"))
            },
        ),
        case(
            "base64 in the URL-safe alphabet",
            400,
            Rejected(NOT_BASE64),
            |c| {
                let body = b"\xfb\xff\xfe\xfb\xff\xfe";
                let encoded = URL_SAFE.encode(body);
                assert!(encoded.contains(['-', '_']));
                set_base64_body(signed("telnyx", body, c), &encoded)
            },
        ),
        case(
            "bad base64 to an unknown provider (route first)",
            404,
            Rejected(NOT_FOUND),
            |_| set_base64_body(fixtures::wrap("sinch", b"", false), "%%%"),
        ),
    ]
}

// ------------------------------------------------------------------------------------------------
// Running it

/// The configured secrets no answer may contain.
fn secrets() -> Vec<String> {
    let mut secrets = Vec::new();
    for provider in providers::supported() {
        for (var, value) in signer(provider).verifier_env() {
            // Every key, token and secret a provider is configured with, by its name: a new
            // provider's are checked without being listed here.
            if ["_KEYS", "_SECRETS", "_TOKENS"]
                .iter()
                .any(|end| var.ends_with(end))
            {
                secrets.push(value.trim_start_matches("whsec_").to_owned());
            }
        }
    }
    secrets
}

/// The stored body, read as every reader reads it (from its item, or from the events bucket
/// checked against its hash).
async fn stored_raw_body(stack: &Stack, event_id: &str) -> Option<Vec<u8>> {
    Some(stack.stored_event(event_id).await?.raw_body)
}

/// Everything wrong with one answer, as sentences.
async fn check(
    stack: &Stack,
    case: &Case,
    sent: Option<&[u8]>,
    response: &ApiGatewayV2httpResponse,
    secrets: &[String],
    items_before: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let status = response.status_code;
    if status != i64::from(case.status) {
        problems.push(format!("status {status}, expected {}", case.status));
    }
    if status >= 500 {
        problems.push(format!("a {status} answer to bad input"));
    }
    if response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        problems.push("content-type is not application/json".into());
    }
    if status == 405 && response.headers.get("allow").and_then(|v| v.to_str().ok()) != Some("POST")
    {
        problems.push("405 without Allow: POST".into());
    }
    let text = match &response.body {
        Some(Body::Text(text)) => text.clone(),
        other => {
            problems.push(format!("body is not text: {other:?}"));
            String::new()
        }
    };
    for secret in secrets {
        if text.contains(secret.as_str()) {
            problems.push("the answer echoes a configured secret".into());
        }
    }
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        problems.push(format!("body is not JSON: {text:.200}"));
        Value::Null
    });
    let result = body["status"].as_str().unwrap_or_default();
    let queued = stack.drain(stack.events_queue()).await;
    let items = stack.count_items(stack.events_table()).await;

    match case.expect {
        Accepted | Review => {
            if result != "accepted" {
                problems.push(format!("result {result:?}, expected accepted: {text:.300}"));
            }
            let review = case.expect == Review;
            if body.get("review").and_then(Value::as_bool).unwrap_or(false) != review {
                problems.push(format!("review flag is not {review}: {text:.300}"));
            }
            if items != items_before + 1 {
                problems.push(format!("{} new items, expected 1", items - items_before));
            }
            let event_id = body["event_id"].as_str().unwrap_or_default();
            match stored_raw_body(stack, event_id).await {
                None => problems.push(format!("no stored item for {event_id:.80}")),
                Some(raw) if Some(raw.as_slice()) != sent => {
                    problems.push(format!(
                        "stored raw body ({} bytes) differs from what was sent ({} bytes)",
                        raw.len(),
                        sent.map_or(0, <[u8]>::len)
                    ));
                }
                Some(_) => {}
            }
            if queued.len() != 1 {
                problems.push(format!("{} queue messages, expected 1", queued.len()));
            }
            for message in &queued {
                // What the lifecycle does with it first.
                match serde_json::from_str::<CanonicalEvent>(message) {
                    Ok(event) => {
                        if event.event_id != event_id {
                            problems.push(format!(
                                "queued {:.80}, answered {event_id:.80}",
                                event.event_id
                            ));
                        }
                        if event.review.is_some() != review {
                            problems.push("queued review note disagrees with the answer".into());
                        }
                    }
                    Err(err) => problems.push(format!(
                        "the queued message ({} bytes) is not a canonical event the lifecycle can read: {err}",
                        message.len()
                    )),
                }
            }
        }
        Duplicate | Rejected(_) => {
            let expected = if case.expect == Duplicate {
                "duplicate"
            } else {
                "rejected"
            };
            if result != expected {
                problems.push(format!(
                    "result {result:?}, expected {expected}: {text:.300}"
                ));
            }
            if let Rejected(error) = case.expect {
                let said = body["error"].as_str().unwrap_or_default();
                if !said.contains(error) {
                    problems.push(format!("error {said:?} does not say {error:?}"));
                }
            }
            if items != items_before {
                problems.push(format!("{} items stored", items - items_before));
            }
            if !queued.is_empty() {
                problems.push(format!("{} messages queued", queued.len()));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_documented_answer() {
    let stack = Stack::start().await;
    let env = stack.ingest_env();
    let function = Arc::new(callhook_ingest::build(&env).expect("fixture configuration"));
    let max = function.config.max_body_bytes;
    assert_eq!(max, 4_694_016, "the documented default");
    let secrets = secrets();

    let corpus = corpus();
    assert!(corpus.len() >= 40, "the corpus has {} cases", corpus.len());
    let mut names: Vec<&str> = corpus.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), corpus.len(), "case names are unique");

    let mut failures = Vec::new();
    let mut items = stack.count_items(stack.events_table()).await;
    let mut tally = std::collections::BTreeMap::<(u16, &str), usize>::new();
    for case in &corpus {
        let ctx = Ctx {
            now: Utc::now().timestamp(),
            max,
        };
        let raw = (case.event)(&ctx);
        let sent = fixtures::body_of(&raw).ok();
        let event: ApiGatewayV2httpRequest = serde_json::from_value(raw)
            .unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", case.name));
        let function = function.clone();
        let answered =
            tokio::spawn(async move { callhook_ingest::respond(&function, &event).await }).await;
        let response = match answered {
            Ok(response) => response,
            Err(err) => {
                failures.push(format!("{}: the handler panicked: {err}", case.name));
                continue;
            }
        };
        let problems = check(&stack, case, sent.as_deref(), &response, &secrets, items).await;
        items = stack.count_items(stack.events_table()).await;
        let label = match case.expect {
            Accepted => "accepted",
            Review => "accepted, review",
            Duplicate => "duplicate",
            Rejected(_) => "rejected",
        };
        *tally.entry((case.status, label)).or_default() += 1;
        for problem in problems {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    println!("{} cases: {tally:?}", corpus.len());
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The largest MAX_BODY_BYTES configuration accepts (config_errors refuses more) still stores a
/// body of that size whose facts repeat nearly all of it: one DynamoDB item (this body packs
/// small), one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_configurable_body_is_stored_and_queued() {
    let stack = Stack::start().await;
    let mut env = stack.ingest_env();
    let max = callhook::limits::LARGEST_BODY_BYTES as usize;
    env.set("MAX_BODY_BYTES", max.to_string());
    let function = Arc::new(callhook_ingest::build(&env).expect("the largest limit is valid"));
    let ctx = Ctx {
        now: Utc::now().timestamp(),
        max,
    };
    let largest = case(
        "standard: a transcript filling the largest MAX_BODY_BYTES",
        200,
        Accepted,
        |c| {
            let frame = r#"{"type":"call.report","timestamp":"2024-01-01T00:00:00Z","data":{"call_id":"largest","transcript":""}}"#;
            let body = frame.replace(
                r#""transcript":"""#,
                &format!(r#""transcript":"{}""#, "t".repeat(c.max - frame.len())),
            );
            signed("standard", body, c)
        },
    );
    let raw = (largest.event)(&ctx);
    let sent = fixtures::body_of(&raw).unwrap();
    assert_eq!(sent.len(), max);
    let event: ApiGatewayV2httpRequest = serde_json::from_value(raw).unwrap();
    let response = callhook_ingest::respond(&function, &event).await;
    let problems = check(&stack, &largest, Some(&sent), &response, &secrets(), 0).await;
    assert!(problems.is_empty(), "{problems:#?}");
}
