//! Outbound HTTP: the dispatch POST to a CRM or ticketing receiver.

use std::future::Future;

use crate::domain::dispatch::HttpResult;

pub trait HttpPoster: Send + Sync {
    /// One POST with the configured timeout; never follows redirects.
    fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = HttpResult> + Send;
}
