//! Every environment variable callhook reads, named once. docs/configuration.md says what each
//! one does; template.yaml sets them for each function.

// ---- AWS (as Lambda provides them)
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Sends every AWS call to an emulator.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// One Secrets Manager secret (a JSON object of variables) merged under the environment at
/// cold start (`adapters::secrets`).
pub const CALLHOOK_SECRETS_ARN: &str = "CALLHOOK_SECRETS_ARN";

// ---- Tables and queues
pub const EVENTS_TABLE: &str = "EVENTS_TABLE";
pub const CALLS_TABLE: &str = "CALLS_TABLE";
pub const LEDGER_TABLE: &str = "LEDGER_TABLE";
pub const REVIEW_TABLE: &str = "REVIEW_TABLE";
/// The bucket that keeps request bodies too large for their events item.
pub const EVENTS_BUCKET: &str = "EVENTS_BUCKET";
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
pub const DISPATCH_QUEUE_URL: &str = "DISPATCH_QUEUE_URL";
pub const REVIEW_QUEUE_ARN: &str = "REVIEW_QUEUE_ARN";
pub const EVENTS_DLQ_ARN: &str = "EVENTS_DLQ_ARN";
pub const DISPATCH_DLQ_ARN: &str = "DISPATCH_DLQ_ARN";
pub const CALLBACK_DLQ_ARN: &str = "CALLBACK_DLQ_ARN";

// ---- Ingest
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const RAW_RETENTION_DAYS: &str = "RAW_RETENTION_DAYS";
pub const RESEND_AFTER_SECS: &str = "RESEND_AFTER_SECS";

// ---- Lifecycle
pub const DISPATCH_SETTLE_SECS: &str = "DISPATCH_SETTLE_SECS";

// ---- Dispatch
pub const CRM_WEBHOOK_URL: &str = "CRM_WEBHOOK_URL";
pub const TICKETING_WEBHOOK_URL: &str = "TICKETING_WEBHOOK_URL";
pub const CALLBACK_QUEUE_URL: &str = "CALLBACK_QUEUE_URL";
pub const CRM_SIGNING_SECRET: &str = "CRM_SIGNING_SECRET";
pub const DISPATCH_ROUTES: &str = "DISPATCH_ROUTES";
pub const DISPATCH_MAX_ATTEMPTS: &str = "DISPATCH_MAX_ATTEMPTS";
pub const DISPATCH_RETRY_BASE_SECS: &str = "DISPATCH_RETRY_BASE_SECS";
pub const DISPATCH_RETRY_MAX_SECS: &str = "DISPATCH_RETRY_MAX_SECS";
pub const DISPATCH_TIMEOUT_SECS: &str = "DISPATCH_TIMEOUT_SECS";

// ---- Sweeper
pub const SWEEP_MIN_AGE_SECS: &str = "SWEEP_MIN_AGE_SECS";
/// The EventBridge bus the lifecycle publishes to (analytics); unset, nothing is published.
pub const ANALYTICS_BUS_NAME: &str = "ANALYTICS_BUS_NAME";
/// Quiet this long, an open call is asked about at its provider's API (the stale pass).
pub const STALE_AFTER_SECS: &str = "STALE_AFTER_SECS";
/// Quiet this long with no final answer, an open call is given up on.
pub const STALE_GIVE_UP_SECS: &str = "STALE_GIVE_UP_SECS";
/// The most provider API questions one stale pass asks.
pub const STALE_MAX_LOOKUPS: &str = "STALE_MAX_LOOKUPS";

// ---- Providers (each provider's file reads its own)
pub const TELNYX_PUBLIC_KEYS: &str = "TELNYX_PUBLIC_KEYS";
pub const TELNYX_TOLERANCE_SECS: &str = "TELNYX_TOLERANCE_SECS";
pub const BIRD_SIGNING_KEYS: &str = "BIRD_SIGNING_KEYS";
pub const BIRD_WEBHOOK_URL: &str = "BIRD_WEBHOOK_URL";
pub const BIRD_TOLERANCE_SECS: &str = "BIRD_TOLERANCE_SECS";
pub const RECHO_AUTH: &str = "RECHO_AUTH";
/// `true`: RECHO_AUTH=none is meant (anyone can then post Recho events).
pub const RECHO_ALLOW_UNAUTHENTICATED: &str = "RECHO_ALLOW_UNAUTHENTICATED";
pub const RECHO_BEARER_TOKENS: &str = "RECHO_BEARER_TOKENS";
pub const RECHO_PUBLIC_KEYS_PEM: &str = "RECHO_PUBLIC_KEYS_PEM";
pub const RECHO_TOLERANCE_SECS: &str = "RECHO_TOLERANCE_SECS";
pub const MIRAIMINDS_PATH_TOKENS: &str = "MIRAIMINDS_PATH_TOKENS";
pub const STATESET_WEBHOOK_SECRETS: &str = "STATESET_WEBHOOK_SECRETS";
pub const STATESET_TOLERANCE_SECS: &str = "STATESET_TOLERANCE_SECS";
pub const STANDARD_WEBHOOK_SECRETS: &str = "STANDARD_WEBHOOK_SECRETS";
pub const STANDARD_EVENT_TYPES: &str = "STANDARD_EVENT_TYPES";
pub const STANDARD_TOLERANCE_SECS: &str = "STANDARD_TOLERANCE_SECS";

pub const RETELL_API_KEYS: &str = "RETELL_API_KEYS";
pub const RETELL_TOLERANCE_SECS: &str = "RETELL_TOLERANCE_SECS";

pub const ELEVENLABS_WEBHOOK_SECRETS: &str = "ELEVENLABS_WEBHOOK_SECRETS";
pub const ELEVENLABS_TOLERANCE_SECS: &str = "ELEVENLABS_TOLERANCE_SECS";

pub const VAPI_AUTH: &str = "VAPI_AUTH";
pub const VAPI_HMAC_SECRETS: &str = "VAPI_HMAC_SECRETS";
pub const VAPI_TOKENS: &str = "VAPI_TOKENS";
pub const VAPI_SIGNATURE_HEADER: &str = "VAPI_SIGNATURE_HEADER";
pub const VAPI_TIMESTAMP_HEADER: &str = "VAPI_TIMESTAMP_HEADER";
pub const VAPI_TOKEN_HEADER: &str = "VAPI_TOKEN_HEADER";
pub const VAPI_TOLERANCE_SECS: &str = "VAPI_TOLERANCE_SECS";

pub const TWILIO_AUTH_TOKENS: &str = "TWILIO_AUTH_TOKENS";
pub const TWILIO_WEBHOOK_URL: &str = "TWILIO_WEBHOOK_URL";

pub const VONAGE_SIGNATURE_SECRETS: &str = "VONAGE_SIGNATURE_SECRETS";
pub const VONAGE_TOLERANCE_SECS: &str = "VONAGE_TOLERANCE_SECS";

pub const PLIVO_AUTH_TOKENS: &str = "PLIVO_AUTH_TOKENS";
pub const PLIVO_WEBHOOK_URL: &str = "PLIVO_WEBHOOK_URL";

// ---- Provider APIs: fetch one call (config/provider_api.rs). Unset credentials: no lookup.
pub const PROVIDER_API_TIMEOUT_SECS: &str = "PROVIDER_API_TIMEOUT_SECS";
pub const PROVIDER_API_ATTEMPTS: &str = "PROVIDER_API_ATTEMPTS";
pub const TELNYX_API_KEY: &str = "TELNYX_API_KEY";
pub const TELNYX_API_URL: &str = "TELNYX_API_URL";
pub const TWILIO_ACCOUNT_SID: &str = "TWILIO_ACCOUNT_SID";
pub const TWILIO_API_KEY: &str = "TWILIO_API_KEY";
pub const TWILIO_API_KEY_SID: &str = "TWILIO_API_KEY_SID";
pub const TWILIO_API_URL: &str = "TWILIO_API_URL";
pub const VONAGE_APPLICATION_ID: &str = "VONAGE_APPLICATION_ID";
pub const VONAGE_PRIVATE_KEY: &str = "VONAGE_PRIVATE_KEY";
pub const VONAGE_API_URL: &str = "VONAGE_API_URL";
pub const PLIVO_AUTH_ID: &str = "PLIVO_AUTH_ID";
pub const PLIVO_API_TOKEN: &str = "PLIVO_API_TOKEN";
pub const PLIVO_API_URL: &str = "PLIVO_API_URL";
pub const RETELL_API_KEY: &str = "RETELL_API_KEY";
pub const RETELL_API_URL: &str = "RETELL_API_URL";
pub const ELEVENLABS_API_KEY: &str = "ELEVENLABS_API_KEY";
pub const ELEVENLABS_API_URL: &str = "ELEVENLABS_API_URL";
pub const VAPI_API_KEY: &str = "VAPI_API_KEY";
pub const VAPI_API_URL: &str = "VAPI_API_URL";
pub const BIRD_API_KEY: &str = "BIRD_API_KEY";
pub const BIRD_WORKSPACE_ID: &str = "BIRD_WORKSPACE_ID";
pub const BIRD_CHANNEL_IDS: &str = "BIRD_CHANNEL_IDS";
pub const BIRD_API_URL: &str = "BIRD_API_URL";

// ---- Logs
pub const RUST_LOG: &str = "RUST_LOG";

/// Variables whose values are never secret: the only ones whose value [`super::Env`]'s `Debug`
/// shows. Everything else (keys, tokens, URLs that may embed a token, AWS credentials, and any
/// variable callhook does not know) is shown as `***`.
pub const PUBLIC: &[&str] = &[
    AWS_REGION,
    AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL,
    EVENTS_TABLE,
    CALLS_TABLE,
    LEDGER_TABLE,
    REVIEW_TABLE,
    EVENTS_QUEUE_URL,
    EVENTS_BUCKET,
    DISPATCH_QUEUE_URL,
    REVIEW_QUEUE_ARN,
    EVENTS_DLQ_ARN,
    DISPATCH_DLQ_ARN,
    CALLBACK_DLQ_ARN,
    CALLBACK_QUEUE_URL,
    MAX_BODY_BYTES,
    RAW_RETENTION_DAYS,
    RESEND_AFTER_SECS,
    DISPATCH_SETTLE_SECS,
    DISPATCH_MAX_ATTEMPTS,
    DISPATCH_RETRY_BASE_SECS,
    DISPATCH_RETRY_MAX_SECS,
    DISPATCH_TIMEOUT_SECS,
    SWEEP_MIN_AGE_SECS,
    TELNYX_TOLERANCE_SECS,
    BIRD_TOLERANCE_SECS,
    RECHO_AUTH,
    RECHO_ALLOW_UNAUTHENTICATED,
    RECHO_TOLERANCE_SECS,
    STATESET_TOLERANCE_SECS,
    STANDARD_EVENT_TYPES,
    STANDARD_TOLERANCE_SECS,
    RETELL_TOLERANCE_SECS,
    ELEVENLABS_TOLERANCE_SECS,
    VAPI_AUTH,
    VAPI_SIGNATURE_HEADER,
    VAPI_TIMESTAMP_HEADER,
    VAPI_TOKEN_HEADER,
    VAPI_TOLERANCE_SECS,
    VONAGE_TOLERANCE_SECS,
    RUST_LOG,
    CALLHOOK_DEV,
    CALLHOOK_SECRETS_ARN,
];

// ---- Local development
/// `true` allows what only local development and tests may use: the public fixture keys and
/// the fixtures' long timestamp tolerances. `callhook dev`, events/env.json and the tests set it.
pub const CALLHOOK_DEV: &str = "CALLHOOK_DEV";
