//! Who may use the console: whoever has the token printed at start. As notebook servers do, the
//! URL carries it once (`/?token=…`); the console answers with a cookie and a redirect to the
//! same page without it, and every request after that needs the cookie. Requests must name the
//! console's own loopback host (a DNS-rebinding page names another), actions are POST with a
//! CSRF token of their own, and every response forbids scripts, framing and referrers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;

/// The console's secrets, made at start and never written anywhere but the terminal.
pub struct Secrets {
    /// In the URL printed at start, then in the cookie.
    pub token: String,
    /// In every form; checked on every POST.
    pub csrf: String,
    /// The port the console listens on: cookies are not per port, so the cookie's name is.
    pub port: u16,
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Secrets {
    pub fn generate(port: u16) -> Secrets {
        Secrets {
            token: random_token(),
            csrf: random_token(),
            port,
        }
    }

    pub fn cookie_name(&self) -> String {
        format!("callhook_console_{}", self.port)
    }

    pub fn token_ok(&self, given: &str) -> bool {
        same(given, &self.token)
    }

    pub fn csrf_ok(&self, given: &str) -> bool {
        same(given, &self.csrf)
    }

    /// Whether `host` (the Host header) names this console on loopback.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let port = self.port;
        host.is_some_and(|host| {
            [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
            .iter()
            .any(|allowed| host.eq_ignore_ascii_case(allowed))
        })
    }

    /// The cookie that keeps a browser signed in: the browser's session only, never sent to
    /// another site, out of scripts' reach.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name(),
            self.token
        )
    }

    fn cookie_ok(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == name && self.token_ok(v))
    }
}

/// `query` without its `token` parameter (what the redirect keeps).
pub fn without_token(query: &str) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// The token a query string carries, if any.
fn token_in(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The headers of every answer: no script, style only from the console, forms only to it, no
/// framing, no referrer to another site (the first URL holds the token), nothing cached.
pub fn harden(headers: &mut HeaderMap) {
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with a form, and the
        // origin check below could not tell this console's forms from another site's.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The middleware in front of every route.
pub async fn guard(State(secrets): State<Arc<Secrets>>, request: Request, next: Next) -> Response {
    let mut response = check(&secrets, request, next).await;
    harden(response.headers_mut());
    response
}

async fn check(secrets: &Secrets, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !secrets.host_ok(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this console answers only to 127.0.0.1 or localhost on its own port",
        );
    }
    let query = request.uri().query().unwrap_or("");
    if let Some(token) = token_in(query) {
        if !secrets.token_ok(&token) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "wrong token: open the URL `callhook console` printed",
            );
        }
        // Signed in: the cookie from now on, and the URL without the token.
        let rest = without_token(query);
        let location = if rest.is_empty() {
            request.uri().path().to_owned()
        } else {
            format!("{}?{rest}", request.uri().path())
        };
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, secrets.set_cookie()),
                (header::LOCATION, location),
            ],
        )
            .into_response();
    }
    if !secrets.cookie_ok(headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the URL `callhook console` printed (it ends in ?token=…)",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        // Browsers name the page a form came from; it must be this console.
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let from_here = origin.is_none_or(|origin| {
            origin
                .strip_prefix("http://")
                .is_some_and(|o| secrets.host_ok(Some(o)))
        });
        if !from_here {
            return refuse(StatusCode::FORBIDDEN, "a form from another site");
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let a = Secrets::generate(3002);
        let b = Secrets::generate(3002);
        assert_ne!(a.token, b.token);
        assert_ne!(a.token, a.csrf);
        assert_eq!(a.token.len(), 43);
        assert!(a.token_ok(&a.token.clone()));
        assert!(!a.token_ok(&a.token[..42]));
        assert!(!a.token_ok(""));
        assert!(!a.csrf_ok(&a.token.clone()));
    }

    #[test]
    fn only_the_console_s_own_loopback_host() {
        let s = Secrets::generate(3002);
        assert!(s.host_ok(Some("127.0.0.1:3002")));
        assert!(s.host_ok(Some("localhost:3002")));
        assert!(!s.host_ok(Some("127.0.0.1:3003")));
        assert!(!s.host_ok(Some("evil.example:3002")));
        assert!(!s.host_ok(Some("127.0.0.1")));
        assert!(!s.host_ok(None));
    }

    #[test]
    fn the_redirect_keeps_everything_but_the_token() {
        assert_eq!(
            without_token("token=abc&id=telnyx%23a%3Cb"),
            "id=telnyx%23a%3Cb"
        );
        assert_eq!(without_token("token=abc"), "");
        assert_eq!(token_in("a=1&token=x%2By"), Some("x+y".to_owned()));
    }
}
