//! The local stand-in for API Gateway: HTTP requests on 127.0.0.1 become the HTTP API's
//! payload 2.0 events and go through the same ingest handler the Lambda runs.

use anyhow::Result;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::observability::emf::Sink;
use callhook_ingest::IngestFunction;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::json;

/// API Gateway HTTP APIs refuse bodies over 10 MB before the function sees them.
const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

/// One HTTP request through the Lambda handler, as API Gateway would pass it; its metrics (EMF)
/// go to stdout, as on Lambda.
pub async fn serve(ingest: &IngestFunction, req: Request<Incoming>) -> Response<Full<Bytes>> {
    static STDOUT: Sink = Sink::Stdout;
    serve_with(ingest, req, &STDOUT).await
}

/// [`serve`], its metrics written to `sink` (`callhook dev`: a file in the state directory).
pub async fn serve_with(
    ingest: &IngestFunction,
    req: Request<Incoming>,
    sink: &Sink,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Some(path_parameters) = route(parts.uri.path()) else {
        return json_response(404, json!({ "message": "Not Found" }));
    };
    let body = match Limited::new(body, GATEWAY_MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return json_response(413, json!({ "message": "Request Entity Too Large" })),
    };
    let event = match gateway_event(&parts, path_parameters, &body) {
        Ok(event) => event,
        Err(e) => return json_response(400, json!({ "message": e.to_string() })),
    };
    let response = callhook_ingest::respond_with(ingest, &event, sink).await;
    let mut builder = Response::builder().status(response.status_code as u16);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    let body = match response.body {
        Some(LambdaBody::Text(text)) => Bytes::from(text),
        Some(LambdaBody::Binary(bytes)) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| json_response(500, json!({ "message": "bad response" })))
}

/// `/webhooks/{provider}` and `/webhooks/{provider}/{token}`, as the HttpApi routes them.
pub fn route(path: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let rest = path.strip_prefix("/webhooks/")?;
    let mut segments = rest.split('/');
    let provider = segments.next().filter(|s| !s.is_empty())?;
    let token = segments.next();
    if segments.next().is_some() || token == Some("") {
        return None;
    }
    let mut params = serde_json::Map::new();
    params.insert("provider".into(), provider.into());
    if let Some(token) = token {
        params.insert("token".into(), token.into());
    }
    Some(params)
}

/// The API Gateway HTTP API (payload 2.0) event for a request: text bodies as they are,
/// anything that is not UTF-8 base64-encoded, as the gateway does.
pub fn gateway_event(
    parts: &http::request::Parts,
    path_parameters: serde_json::Map<String, serde_json::Value>,
    body: &[u8],
) -> Result<ApiGatewayV2httpRequest> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (B64.encode(body), true),
    };
    let path = parts.uri.path();
    let route = if path_parameters.contains_key("token") {
        "ANY /webhooks/{provider}/{token}"
    } else {
        "ANY /webhooks/{provider}"
    };
    let event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or("")
            },
            "requestId": "local",
            "routeKey": route,
            "stage": "$default",
            "time": "",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": is_base64
    });
    Ok(serde_json::from_value(event)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_http_api() {
        assert_eq!(route("/webhooks/telnyx").unwrap()["provider"], "telnyx");
        let with_token = route("/webhooks/miraiminds/s3cret").unwrap();
        assert_eq!(with_token["token"], "s3cret");
        assert!(route("/webhooks/").is_none());
        assert!(route("/webhooks/a/b/c").is_none());
        assert!(route("/other").is_none());
    }

    #[test]
    fn non_utf8_bodies_are_base64_encoded_like_the_gateway() {
        let (parts, _) = http::Request::post("/webhooks/telnyx")
            .header("X-A", "1")
            .body(())
            .unwrap()
            .into_parts();
        let event = gateway_event(&parts, route("/webhooks/telnyx").unwrap(), b"\xff\x00").unwrap();
        assert!(event.is_base64_encoded);
        assert_eq!(event.body.as_deref(), Some("/wA="));
        assert_eq!(event.headers["x-a"], "1");
        let text = gateway_event(&parts, route("/webhooks/telnyx").unwrap(), b"{}").unwrap();
        assert!(!text.is_base64_encoded);
    }
}
