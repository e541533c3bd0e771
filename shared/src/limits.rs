//! Every size and time limit callhook works within, named once: the AWS services' own limits and
//! the caps callhook puts on what it keeps.

// ---- AWS limits

/// SQS: the longest `DelaySeconds` of a message.
pub const SQS_MAX_DELAY_SECS: u32 = 900;
/// SQS: the longest visibility timeout.
pub const SQS_MAX_VISIBILITY_SECS: u32 = 43_200;
/// SQS refuses messages over 256 KiB; leave room for attributes.
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;
/// DynamoDB refuses items over 400 KB (KiB); leave room for attribute names and small values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024 - 2048;
/// serde_json (the lifecycle reading a queue message) refuses JSON nested deeper than this.
pub const MAX_JSON_DEPTH: usize = 127;
/// Lambda: the largest request payload of a synchronous invocation (6 MB, counted in MiB).
pub const LAMBDA_SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// What API Gateway's payload 2.0 event spends besides the body: the headers (an HTTP API
/// accepts at most 10 KiB of request line and headers), the request context and the JSON
/// around them, with room.
pub const GATEWAY_ENVELOPE_BYTES: usize = 32 * 1024;

// ---- What callhook accepts and keeps

/// The longest dedupe key kept as it is in an event id (real provider ids are under 64 bytes);
/// a longer one is hashed.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest body Lambda can be handed synchronously: API Gateway base64-encodes a binary
/// body (4 characters for every 3 bytes) inside an event that also carries the headers, so
/// (6 MiB − 32 KiB) / 4 × 3 = 4,694,016 bytes. MAX_BODY_BYTES's default and its upper bound.
pub const LARGEST_BODY_BYTES: u64 =
    ((LAMBDA_SYNC_PAYLOAD_BYTES - GATEWAY_ENVELOPE_BYTES) / 4 * 3) as u64;
/// MAX_BODY_BYTES's default: everything Lambda can be handed.
pub const DEFAULT_MAX_BODY_BYTES: u64 = LARGEST_BODY_BYTES;
/// A request (its header line and its packed body) larger than this keeps its body in the
/// events bucket instead of its item: from here on an S3 PUT (and a GET per read) costs less
/// than the write units of the larger item (docs/architecture.md, "Large bodies").
pub const BODY_IN_ITEM_BYTES: usize = 4 * 1024;
/// The largest object read back from the events bucket: any body packed, with room.
pub const MAX_BODY_OBJECT_BYTES: u64 = 8 * 1024 * 1024;
/// How much of a failure's description the dispatch ledger keeps.
pub const LEDGER_DETAIL_LIMIT: usize = 1024;
/// How much of a receiver's response body a review item keeps.
pub const RESPONSE_BODY_LIMIT: usize = 4096;
/// How much of `detail` a review item keeps.
pub const REVIEW_DETAIL_LIMIT: usize = 4096;
/// The longest message body a review item keeps (a DynamoDB item holds 400 KB; SQS messages are
/// at most 256 KiB, so this only guards against a larger future limit).
pub const REVIEW_PAYLOAD_LIMIT: usize = 300 * 1024;
/// The longest retention callhook accepts, in days (100 years).
pub const MAX_RETENTION_DAYS: u64 = 36_500;
/// The largest answer read from a provider's fetch-one-call API: a long voice-AI call's
/// transcript with word timings runs to a few MB; anything larger is refused, not parsed.
pub const PROVIDER_API_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How much of a provider API's unexpected answer an error text quotes.
pub const PROVIDER_API_ERROR_QUOTE: usize = 200;

// ---- What configuration may say

/// The shortest HMAC secret, bearer or path token accepted (bytes; a `whsec_` secret decoded):
/// shorter ones can be guessed.
pub const MIN_SECRET_BYTES: usize = 16;
/// The largest `{PROVIDER}_TOLERANCE_SECS` (7 days; Bird's default is one).
pub const MAX_TOLERANCE_SECS: u64 = 7 * 24 * 60 * 60;
/// The largest tolerance with `CALLHOOK_DEV=true`: the fixtures in `events/` are signed at fixed
/// times in 2023 and verify for decades.
pub const DEV_MAX_TOLERANCE_SECS: u64 = u32::MAX as u64;
/// The largest RESEND_AFTER_SECS (a day: the sweeper catches anything older anyway).
pub const MAX_RESEND_AFTER_SECS: u64 = 24 * 60 * 60;

/// Most signatures one request may present (a sender rotating keys sends two or three): more is
/// refused before any is checked, so a flood of entries costs nothing to answer. Standard
/// Webhooks' `webhook-signature`, ElevenLabs' `v0=` items, Plivo's two headers together.
pub const MAX_SIGNATURES: usize = 10;
