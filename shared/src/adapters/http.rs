//! Outbound HTTP with reqwest: the dispatch POST.

use std::time::Duration;

use crate::config::{ConfigError, vars};
use crate::domain::dispatch::HttpResult;
use crate::limits::RESPONSE_BODY_LIMIT;
use crate::ports::HttpPoster;

/// A reqwest client builder whose TLS runs on AWS-LC, the crypto provider the AWS SDK links
/// anyway. reqwest takes rustls's process-wide default provider; installing it when another is
/// already installed changes nothing, so every caller may call this.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
}

/// POSTs with reqwest: one timeout for the whole exchange, redirects not followed (a redirected
/// POST would be re-sent as a GET), at most [`RESPONSE_BODY_LIMIT`] bytes of a failure's body
/// read. Error texts never include the URL (it may carry a token).
#[derive(Clone)]
pub struct ReqwestPoster {
    client: reqwest::Client,
}

impl ReqwestPoster {
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        let client = client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callhook-dispatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::invalid(vars::DISPATCH_TIMEOUT_SECS, e.to_string()))?;
        Ok(ReqwestPoster { client })
    }
}

/// The error and its causes, without the URL (it may carry a token or a key).
pub(crate) fn error_text(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            // End of body, or it failed or timed out: the status is what matters.
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl HttpPoster for ReqwestPoster {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> HttpResult {
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after_secs = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u32>().ok());
                let body = if response.status().is_success() {
                    String::new()
                } else {
                    read_limited(response, RESPONSE_BODY_LIMIT).await
                };
                HttpResult::Response {
                    status,
                    body,
                    retry_after_secs,
                }
            }
            Err(err) if err.is_timeout() => HttpResult::Timeout,
            Err(err) if err.is_connect() => HttpResult::Connect(error_text(err)),
            Err(err) if err.is_builder() => HttpResult::Invalid(error_text(err)),
            Err(err) => HttpResult::Transport(error_text(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a provider installed, reqwest built without ring panics at `build()`.
    #[test]
    fn clients_build_with_tls_on_aws_lc() {
        assert!(ReqwestPoster::new(Duration::from_secs(1)).is_ok());
        let provider = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        let aws_lc = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(
            format!("{:?}", provider.cipher_suites),
            format!("{:?}", aws_lc.cipher_suites)
        );
    }
}
