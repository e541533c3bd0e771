//! The console's HTTP side: routes, query and form parsing, and which page answers. Every route
//! sits behind [`auth::guard`]; the two actions are POST with the CSRF token and answer with a
//! redirect (so a reload does not repeat them).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use maud::Markup;
use serde::Deserialize;

use callhook::domain::review::ReviewStatus;

use super::auth::{self, Secrets};
use super::calls::{self, CallFilter, CallState};
use super::data::Backend;
use super::pages;

pub struct App<B> {
    pub backend: B,
    pub secrets: Arc<Secrets>,
}

type Shared<B> = State<Arc<App<B>>>;

/// Every route of the console, guarded.
pub fn router<B: Backend>(app: Arc<App<B>>) -> Router {
    let secrets = app.secrets.clone();
    Router::new()
        .route("/", get(summary::<B>))
        .route("/calls", get(calls_page::<B>))
        .route("/call", get(call_page::<B>))
        .route("/review", get(review_page::<B>))
        .route("/review/item", get(review_item::<B>))
        .route("/review/confirm", get(confirm::<B>))
        .route("/review/replay", post(replay::<B>))
        .route("/review/discard", post(discard::<B>))
        .route("/console.css", get(css))
        .fallback(not_found::<B>)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(secrets, auth::guard))
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

fn failed<B: Backend>(
    app: &App<B>,
    status: StatusCode,
    title: &str,
    err: &anyhow::Error,
) -> Response {
    page(
        status,
        pages::error(&app.backend.label(), title, &format!("{err:#}")),
    )
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
        .into_response()
}

async fn not_found<B: Backend>(State(app): Shared<B>) -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::error(&app.backend.label(), "Not found", "no such page"),
    )
}

async fn summary<B: Backend>(State(app): Shared<B>) -> Response {
    match app.backend.summary(Utc::now()).await {
        Ok(summary) => pages::summary(&app.backend.label(), &summary).into_response(),
        Err(err) => failed(
            &app,
            StatusCode::BAD_GATEWAY,
            "Could not read the stack",
            &err,
        ),
    }
}

async fn calls_page<B: Backend>(
    State(app): Shared<B>,
    Query(filter): Query<CallFilter>,
) -> Response {
    match app.backend.calls().await {
        Ok(records) => {
            let page = calls::page(records, &filter, Utc::now(), app.backend.stale_after());
            pages::calls(&app.backend.label(), &page, &filter).into_response()
        }
        Err(err) => failed(
            &app,
            StatusCode::BAD_GATEWAY,
            "Could not read the calls",
            &err,
        ),
    }
}

/// A call or review id from the URL, refused before it reaches the stack when no item can have
/// it (DynamoDB keys are 1 to 2048 bytes): a clear 400, not a 502 from the store.
fn bad_id<B: Backend>(app: &App<B>, id: &str) -> Option<Response> {
    (id.is_empty() || id.len() > 2048).then(|| {
        page(
            StatusCode::BAD_REQUEST,
            pages::error(
                &app.backend.label(),
                "Bad id",
                "an id is 1 to 2048 bytes long",
            ),
        )
    })
}

#[derive(Deserialize)]
struct CallQuery {
    id: String,
    /// `receipt` for the order of receipt; anything else is the order of occurrence.
    #[serde(default)]
    order: Option<String>,
}

async fn call_page<B: Backend>(State(app): Shared<B>, Query(query): Query<CallQuery>) -> Response {
    if let Some(refused) = bad_id(&app, &query.id) {
        return refused;
    }
    match app.backend.story(&query.id).await {
        Ok(Some(story)) => {
            let state = story.record.as_ref().map_or(CallState::Open, |r| {
                CallState::of(r, Utc::now(), app.backend.stale_after())
            });
            let by_receipt = query.order.as_deref() == Some("receipt");
            pages::call(&app.backend.label(), &story, by_receipt, state).into_response()
        }
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            pages::error(
                &app.backend.label(),
                "No such call",
                &format!("no record and no stored event name the call {}", query.id),
            ),
        ),
        Err(err) => failed(
            &app,
            StatusCode::BAD_GATEWAY,
            "Could not read the call",
            &err,
        ),
    }
}

#[derive(Deserialize)]
struct ReviewQuery {
    #[serde(default)]
    status: Option<String>,
}

async fn review_page<B: Backend>(
    State(app): Shared<B>,
    Query(query): Query<ReviewQuery>,
) -> Response {
    let chosen = query.status.as_deref().unwrap_or("open");
    let status = match chosen {
        "all" => None,
        other => match ReviewStatus::parse(other) {
            Some(status) => Some(status),
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    pages::error(
                        &app.backend.label(),
                        "Unknown status",
                        "status is open, replayed, discarded or all",
                    ),
                );
            }
        },
    };
    match app.backend.review_items(status).await {
        Ok(items) => pages::review_list(&app.backend.label(), &items, chosen).into_response(),
        Err(err) => failed(
            &app,
            StatusCode::BAD_GATEWAY,
            "Could not read the review table",
            &err,
        ),
    }
}

#[derive(Deserialize)]
struct ItemQuery {
    id: String,
    /// After an action: `replay` or `discard`.
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

async fn review_item<B: Backend>(
    State(app): Shared<B>,
    Query(query): Query<ItemQuery>,
) -> Response {
    if let Some(refused) = bad_id(&app, &query.id) {
        return refused;
    }
    match app.backend.review_item(&query.id).await {
        Ok(detail) => {
            pages::review_item(&app.backend.label(), &detail, query.done.as_deref()).into_response()
        }
        Err(err) => failed(&app, StatusCode::NOT_FOUND, "No such review item", &err),
    }
}

async fn confirm<B: Backend>(State(app): Shared<B>, Query(query): Query<ItemQuery>) -> Response {
    let action = match query.action.as_deref() {
        Some(action @ ("replay" | "discard")) => action,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::error(&app.backend.label(), "Unknown action", "replay or discard"),
            );
        }
    };
    if let Some(refused) = bad_id(&app, &query.id) {
        return refused;
    }
    match app.backend.review_item(&query.id).await {
        Ok(detail) => pages::confirm(
            &app.backend.label(),
            &detail.item,
            action,
            &app.secrets.csrf,
        )
        .into_response(),
        Err(err) => failed(&app, StatusCode::NOT_FOUND, "No such review item", &err),
    }
}

/// The item an action is about: in the form's action URL, percent-encoded.
#[derive(Deserialize)]
struct ActionQuery {
    id: String,
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
}

async fn act<B: Backend>(
    app: &App<B>,
    id: &str,
    form: &ActionForm,
    action: &'static str,
) -> Response {
    if let Some(refused) = bad_id(app, id) {
        return refused;
    }
    if !app.secrets.csrf_ok(&form.csrf) {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(
                &app.backend.label(),
                "Refused",
                "this form did not come from this console (CSRF token missing or wrong)",
            ),
        );
    }
    let result = match action {
        "discard" => app.backend.discard(id).await,
        _ => app.backend.replay(id).await,
    };
    match result {
        Ok(_) => Redirect::to(&pages::url("/review/item", &[("id", id), ("done", action)]))
            .into_response(),
        Err(err) => failed(app, StatusCode::CONFLICT, "Not done", &err),
    }
}

async fn replay<B: Backend>(
    State(app): Shared<B>,
    Query(query): Query<ActionQuery>,
    Form(form): Form<ActionForm>,
) -> Response {
    act(&app, &query.id, &form, "replay").await
}

async fn discard<B: Backend>(
    State(app): Shared<B>,
    Query(query): Query<ActionQuery>,
    Form(form): Form<ActionForm>,
) -> Response {
    act(&app, &query.id, &form, "discard").await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use anyhow::{Result, bail};
    use axum::body::Body;
    use axum::http::Request;
    use callhook::domain::call::CallRecord;
    use callhook::domain::review::{ReviewItem, ReviewReason};
    use chrono::{DateTime, Duration};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::super::data::ReviewDetail;
    use super::super::story::CallStory;
    use super::super::summary::{CallCounts, Summary};
    use super::*;

    const HOST: &str = "127.0.0.1:4321";

    /// A stack of one call and one review item; actions are recorded.
    #[derive(Default)]
    struct Fake {
        done: Mutex<Vec<String>>,
    }

    fn item() -> ReviewItem {
        ReviewItem::open(
            "event#telnyx#<b>x</b>".into(),
            ReviewReason::UnknownType,
            "telnyx#<b>x</b>",
            serde_json::Value::Null,
            1,
            "",
            None,
            None,
            Utc::now(),
        )
    }

    impl Backend for Fake {
        fn label(&self) -> String {
            "fake".into()
        }
        fn stale_after(&self) -> Duration {
            Duration::hours(1)
        }
        async fn calls(&self) -> Result<Vec<CallRecord>> {
            Ok(vec![CallRecord::new("telnyx#<script>x</script>", "telnyx")])
        }
        async fn story(&self, _call_id: &str) -> Result<Option<CallStory>> {
            Ok(None)
        }
        async fn review_items(&self, _status: Option<ReviewStatus>) -> Result<Vec<ReviewItem>> {
            Ok(vec![item()])
        }
        async fn review_item(&self, id: &str) -> Result<ReviewDetail> {
            if id != item().pk {
                bail!("no review item {id:?}");
            }
            Ok(ReviewDetail {
                item: item(),
                stored: None,
            })
        }
        async fn replay(&self, id: &str) -> Result<String> {
            self.done.lock().unwrap().push(format!("replay {id}"));
            Ok("ok".into())
        }
        async fn discard(&self, id: &str) -> Result<String> {
            self.done.lock().unwrap().push(format!("discard {id}"));
            Ok("ok".into())
        }
        async fn summary(&self, now: DateTime<Utc>) -> Result<Summary> {
            Ok(Summary {
                now,
                traffic: None,
                calls: CallCounts::default(),
                review_open: 1,
            })
        }
    }

    fn app() -> Arc<App<Fake>> {
        Arc::new(App {
            backend: Fake::default(),
            secrets: Arc::new(Secrets::generate(4321)),
        })
    }

    async fn send(
        app: &Arc<App<Fake>>,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = router(app.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
        let mut request = Request::get(uri).header("host", HOST);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.body(Body::empty()).unwrap()
    }

    fn cookie(app: &App<Fake>) -> String {
        format!("{}={}", app.secrets.cookie_name(), app.secrets.token)
    }

    #[tokio::test]
    async fn nothing_without_the_token_and_the_token_becomes_a_cookie() {
        let app = app();
        for uri in ["/", "/calls", "/review", "/console.css", "/nope"] {
            let (status, headers, body) = send(&app, get(uri, None)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(!body.contains("telnyx"), "{uri}: nothing of the stack");
            assert!(
                headers["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("default-src 'none'")
            );
        }
        let (status, _, _) = send(&app, get("/?token=wrong", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let wrong_cookie = format!("{}=nope", app.secrets.cookie_name());
        let (status, _, _) = send(&app, get("/", Some(&wrong_cookie))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // The printed URL: a cookie, and the same page without the token in its URL.
        let uri = format!("/calls?state=open&token={}", app.secrets.token);
        let (status, headers, _) = send(&app, get(&uri, None)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers["location"], "/calls?state=open");
        let set_cookie = headers["set-cookie"].to_str().unwrap();
        assert!(set_cookie.starts_with(&cookie(&app)), "{set_cookie}");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));

        let (status, headers, body) = send(&app, get("/calls", Some(&cookie(&app)))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(!body.contains("<script>x"));
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers["x-frame-options"], "DENY");
    }

    #[tokio::test]
    async fn another_host_name_is_refused_even_with_the_cookie() {
        let app = app();
        let request = Request::get("/")
            .header("host", "attacker.example:4321")
            .header("cookie", cookie(&app))
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    fn post(uri: &str, cookie: Option<&str>, origin: Option<&str>, form: &str) -> Request<Body> {
        let mut request = Request::post(uri)
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.body(Body::from(form.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn actions_need_a_post_with_the_csrf_token() {
        let app = app();
        let id = item().pk;
        let form = |csrf: &str| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("csrf", csrf)
                .finish()
        };
        let replay_url = pages::url("/review/replay", &[("id", &id)]);
        let discard_url = pages::url("/review/discard", &[("id", &id)]);
        let csrf = app.secrets.csrf.clone();
        let c = cookie(&app);
        // A GET never acts.
        let (status, _, _) = send(&app, get(&replay_url, Some(&c))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        // Without the cookie, without the CSRF token, or from another site: refused.
        let (status, _, _) = send(&app, post(&replay_url, None, None, &form(&csrf))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, body) =
            send(&app, post(&replay_url, Some(&c), None, &form("forged"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _, _) = send(&app, post(&replay_url, Some(&c), None, "")).await;
        assert!(status.is_client_error());
        let (status, _, _) = send(
            &app,
            post(
                &replay_url,
                Some(&c),
                Some("http://evil.example"),
                &form(&csrf),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            app.backend.done.lock().unwrap().is_empty(),
            "nothing was done"
        );

        // The confirmation page carries the token; its form replays.
        let (status, _, body) = send(
            &app,
            get(
                &pages::url("/review/confirm", &[("id", &id), ("action", "replay")]),
                Some(&c),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(&format!("value=\"{csrf}\"")));
        assert!(
            body.contains(&format!("action=\"{}\"", replay_url.replace('&', "&amp;"))),
            "{body}"
        );
        let (status, headers, _) = send(
            &app,
            post(
                &replay_url,
                Some(&c),
                Some(&format!("http://{HOST}")),
                &form(&csrf),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            headers["location"],
            pages::url("/review/item", &[("id", &id), ("done", "replay")]).as_str()
        );
        let (status, _, _) = send(&app, post(&discard_url, Some(&c), None, &form(&csrf))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            *app.backend.done.lock().unwrap(),
            [format!("replay {id}"), format!("discard {id}")]
        );
    }

    #[tokio::test]
    async fn bad_input_gets_a_clear_page() {
        let app = app();
        let c = cookie(&app);
        let (status, _, body) = send(
            &app,
            get("/review/item?id=event%23nope%3Cscript%3E", Some(&c)),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("no review item") && !body.contains("<script>"),
            "{body}"
        );
        let (status, _, _) = send(&app, get("/review?status=bogus", Some(&c))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = send(&app, get("/call?id=telnyx%23none", Some(&c))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = send(&app, get("/calls?page=-1", Some(&c))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = send(&app, get("/review/confirm?id=x&action=explode", Some(&c))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Ids no item can have are refused before the stack is asked (a store would fail).
        let long = "a".repeat(2049);
        for path in [
            "/call?id=".to_owned(),
            format!("/call?id={long}"),
            "/review/item?id=".to_owned(),
            format!("/review/confirm?id={long}&action=replay"),
        ] {
            let (status, _, body) = send(&app, get(&path, Some(&c))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert!(body.contains("Bad id"), "{path}: {body}");
        }
    }
}
