//! Dispatch decisions: the message a call's effect becomes, where it is routed, what body is
//! sent, and when a failed attempt is retried. The dispatch function's loop is
//! `app::dispatch`; docs/dispatch.md is the operator's view.

mod body;
mod message;
mod retry;
mod routes;

pub use body::{
    CALLBACK_TYPE, call_view, callback_body, http_body, queue_body, signed_headers, webhook_id,
};
pub use message::{DispatchMessage, MessageType};
pub use retry::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE_SECS, DEFAULT_RETRY_MAX_SECS, DEFAULT_TIMEOUT_SECS,
    HttpResult, RetryPolicy, Verdict, classify, describe,
};
pub use routes::{CUSTOM_HTTP, CUSTOM_SQS, DROPPED, Route, RouteKey, Routes, Target, plan};

#[cfg(test)]
mod tests;
