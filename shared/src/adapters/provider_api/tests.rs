//! Every provider's lookup against a fake API on a loopback port (testing/fake_api.rs): an
//! ended call with its times and cause, an alive one, 404, 429 (retried, then `RateLimited`),
//! 500 (retried, then `Unavailable`), a hanging server (`Unavailable` within the timeouts), the
//! credentials as each API wants them, and no credential in any error text.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;

use super::*;
use crate::config::Env;
use crate::domain::event::Outcome;
use crate::ports::Lookup;
use crate::testing::api_cases::*;
use crate::testing::fake_api::{FakeApi, Received, Reply, in_turn};

/// Runs `scenario` for every provider at once.
async fn for_every_provider<F, Fut>(scenario: F)
where
    F: Fn(Case) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Key generation blocks the runtime: never while requests are in flight.
    vonage_pem();
    join_all(cases().into_iter().map(scenario)).await;
}

#[tokio::test]
async fn an_ended_call_gives_its_final_state_and_the_request_carries_the_credentials() {
    for_every_provider(|case| async move {
        let (answer, received, _) = case.ask(case.ended).await;
        assert_eq!(
            answer,
            Ok(Lookup::Ended((case.expected)())),
            "{}",
            case.provider
        );
        assert!(!received.is_empty());
        for request in &received {
            assert_eq!(request.method, "GET");
            assert!(
                request
                    .header("user-agent")
                    .is_some_and(|ua| ua.starts_with("callhook-lookup/"))
            );
            (case.check)(request);
        }
    })
    .await;
}

#[tokio::test]
async fn an_alive_call_is_alive() {
    for_every_provider(|case| async move {
        let (answer, received, _) = case.ask(case.alive).await;
        assert_eq!(answer, Ok(Lookup::Alive), "{}", case.provider);
        received.iter().for_each(case.check);
    })
    .await;
}

#[tokio::test]
async fn not_found_is_not_found() {
    for_every_provider(|case| async move {
        let (answer, received, _) = case
            .ask(|_| {
                Reply::json(
                    404,
                    &json!({"message": "The requested resource was not found"}),
                )
            })
            .await;
        assert_eq!(answer, Ok(Lookup::NotFound), "{}", case.provider);
        received.iter().for_each(case.check);
    })
    .await;
}

/// The first answer is `first`, every later one what an ended call gets.
fn first_then(
    first: Reply,
    ended: fn(&Received) -> Reply,
) -> impl Fn(&Received) -> Reply + Send + Sync {
    let seen = AtomicUsize::new(0);
    move |r| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            first.clone()
        } else {
            ended(r)
        }
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    for_every_provider(|case| async move {
        let (_, plain, _) = case.ask(case.ended).await;
        for first in [
            Reply::status(429).header("retry-after", "0"),
            Reply::status(429),
            Reply::text(500, "internal error"),
            Reply::status(503).header("retry-after", "0"),
        ] {
            let (answer, received, _) = case.ask(first_then(first.clone(), case.ended)).await;
            assert_eq!(
                answer,
                Ok(Lookup::Ended((case.expected)())),
                "{} after {}",
                case.provider,
                first.status
            );
            assert_eq!(received.len(), plain.len() + 1, "{}", case.provider);
            assert_eq!(
                received[0], received[1],
                "{}: the same request",
                case.provider
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_lasting_rate_limit_is_rate_limited() {
    for_every_provider(|case| async move {
        let (answer, received, _) = case.ask(|_| Reply::status(429)).await;
        assert_eq!(
            answer,
            Err(LookupError::RateLimited {
                retry_after_secs: None
            }),
            "{}",
            case.provider
        );
        assert_eq!(received.len(), 3, "{}: every attempt", case.provider);
        case.clean_error(&answer);
        // A wait longer than the policy waits for ends the lookup at once, and says how long.
        let (answer, received, _) = case
            .ask(|_| Reply::status(429).header("retry-after", "120"))
            .await;
        assert_eq!(
            answer,
            Err(LookupError::RateLimited {
                retry_after_secs: Some(120)
            }),
            "{}",
            case.provider
        );
        assert_eq!(received.len(), 1, "{}", case.provider);
    })
    .await;
}

#[tokio::test]
async fn lasting_server_errors_are_unavailable() {
    for_every_provider(|case| async move {
        let (answer, received, _) = case.ask(|_| Reply::text(500, "upstream exploded")).await;
        assert!(
            matches!(answer, Err(LookupError::Unavailable(_))),
            "{}: {answer:?}",
            case.provider
        );
        let text = case.clean_error(&answer);
        assert!(text.contains("500 after 3 attempt(s)"), "{text}");
        assert!(text.contains("upstream exploded"), "{text}");
        assert_eq!(received.len(), 3, "{}", case.provider);
    })
    .await;
}

#[tokio::test]
async fn a_hanging_server_is_unavailable_within_the_timeouts() {
    for_every_provider(|case| async move {
        let p = RetryPolicy {
            timeout: Duration::from_millis(400),
            ..policy()
        };
        let (answer, received, elapsed) = case.ask_with(p, |_| Reply::hang()).await;
        assert!(
            matches!(answer, Err(LookupError::Unavailable(_))),
            "{}: {answer:?}",
            case.provider
        );
        let text = case.clean_error(&answer);
        assert!(text.contains("timed out"), "{text}");
        assert_eq!(received.len(), 3, "{}", case.provider);
        assert!(
            elapsed >= p.timeout * 3 && elapsed < p.worst_case() + Duration::from_millis(500),
            "{}: {elapsed:?}",
            case.provider
        );
    })
    .await;
}

#[tokio::test]
async fn refused_credentials_are_refused_and_never_echoed() {
    for_every_provider(|case| async move {
        // The fake echoes what it was sent, as a careless API might.
        let (answer, received, _) = case
            .ask(|r| {
                let echo = format!(
                    "unauthorized: {} {}",
                    r.header("authorization").unwrap_or_default(),
                    r.header("xi-api-key").unwrap_or_default()
                );
                Reply::text(401, &echo)
            })
            .await;
        assert!(
            matches!(answer, Err(LookupError::Refused(_))),
            "{}: {answer:?}",
            case.provider
        );
        let text = case.clean_error(&answer);
        assert!(text.contains("401"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(
            text.contains(case.url_var.replace("_API_URL", "_").as_str()),
            "{text}"
        );
        assert_eq!(received.len(), 1, "{}: not retried", case.provider);
    })
    .await;
}

#[tokio::test]
async fn undocumented_answers_are_refused_not_guessed() {
    for_every_provider(|case| async move {
        for reply in [
            Reply::text(200, "<html>maintenance</html>"),
            Reply::json(
                200,
                &json!({"status": "exploded", "call_status": "exploded",
                "data": [{"no": "leg"}], "_embedded": {"calls": [{"status": "exploded"}]}}),
            ),
            Reply::json(422, &json!({"error": "invalid id"})),
            Reply::status(302).header("location", "http://127.0.0.1:9/elsewhere"),
        ] {
            let (answer, received, _) = case.ask(move |_| reply.clone()).await;
            assert!(
                matches!(answer, Err(LookupError::Refused(_))),
                "{}: {answer:?}",
                case.provider
            );
            case.clean_error(&answer);
            assert_eq!(received.len(), 1, "{}: not retried", case.provider);
        }
    })
    .await;
}

#[tokio::test]
async fn hashed_and_empty_keys_are_refused_without_asking() {
    for_every_provider(|case| async move {
        let api = FakeApi::start(case.ended).await.unwrap();
        let lookups = case.lookups(&api).await;
        let lookup = lookups.get(case.provider).unwrap();
        for key in ["sha256:0123abcd", "", ".."] {
            assert!(
                matches!(lookup.lookup(key).await, Err(LookupError::Refused(_))),
                "{}: {key:?}",
                case.provider
            );
        }
        assert_eq!(api.count(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_key_is_one_path_segment() {
    let case = cases().into_iter().find(|c| c.provider == "vapi").unwrap();
    let api = FakeApi::start(|_| Reply::status(404)).await.unwrap();
    let lookups = case.lookups(&api).await;
    let answer = lookups
        .get("vapi")
        .unwrap()
        .lookup("../../admin?x=1#y")
        .await;
    assert_eq!(answer, Ok(Lookup::NotFound));
    assert_eq!(api.received()[0].path, "/call/..%2F..%2Fadmin%3Fx=1%23y");
    assert_eq!(api.received()[0].query, None);
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() {
    let case = cases()
        .into_iter()
        .find(|c| c.provider == "retell")
        .unwrap();
    let big = "x".repeat(policy().body_limit + 1);
    let (answer, received, _) = case
        .ask(move |_| json_reply(json!({"call_status": "ended", "transcript": big})))
        .await;
    let text = case.clean_error(&answer);
    assert!(text.contains("larger than"), "{text}");
    assert_eq!(received.len(), 1);
}

#[tokio::test]
async fn retry_after_as_a_date_is_honoured() {
    let case = cases().into_iter().find(|c| c.provider == "vapi").unwrap();
    let far = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
    let (answer, received, _) = case
        .ask(move |_| Reply::status(429).header("retry-after", &far))
        .await;
    let Err(LookupError::RateLimited {
        retry_after_secs: Some(wait),
    }) = answer
    else {
        panic!("{answer:?}");
    };
    assert!((85..=91).contains(&wait), "{wait}");
    assert_eq!(received.len(), 1);
    let (answer, received, _) = case
        .ask(in_turn(vec![
            Reply::status(503).header("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
            Reply::status(404),
        ]))
        .await;
    assert_eq!(answer, Ok(Lookup::NotFound));
    assert_eq!(received.len(), 2);
}

#[tokio::test]
async fn bird_asks_each_channel_until_one_knows_the_call() {
    let case = cases().into_iter().find(|c| c.provider == "bird").unwrap();
    let api = FakeApi::start(|r| {
        if r.path.contains("/channels/ch-2/") {
            json_reply(json!({"status": "busy", "endedAt": END}))
        } else {
            Reply::status(404)
        }
    })
    .await
    .unwrap();
    let mut env = case.env(&api.url());
    env.set(vars::BIRD_CHANNEL_IDS, "ch-1,ch-2,ch-3");
    let config = ProviderApiConfig::from_env(&env).unwrap();
    let lookups = Lookups::from_config(&config, policy()).unwrap();
    let Ok(Lookup::Ended(state)) = lookups.get("bird").unwrap().lookup(case.key).await else {
        panic!("ended");
    };
    assert_eq!(state.outcome, Some(Outcome::Busy));
    let paths: Vec<String> = api.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 2);
    assert!(paths[0].contains("/channels/ch-1/") && paths[1].contains("/channels/ch-2/"));
}

#[tokio::test]
async fn twilio_with_an_api_key_sends_the_key_sid() {
    let case = cases()
        .into_iter()
        .find(|c| c.provider == "twilio")
        .unwrap();
    let api = FakeApi::start(case.ended).await.unwrap();
    let mut env = case.env(&api.url());
    env.set(
        vars::TWILIO_API_KEY_SID,
        "SK00000000000000000000000000000003",
    );
    let config = ProviderApiConfig::from_env(&env).unwrap();
    let lookups = Lookups::from_config(&config, policy()).unwrap();
    let answer = lookups.get("twilio").unwrap().lookup(case.key).await;
    assert!(matches!(answer, Ok(Lookup::Ended(_))), "{answer:?}");
    let request = &api.received()[0];
    assert!(
        request.path.contains(TWILIO_SID),
        "the account names the URL"
    );
    basic(request, "SK00000000000000000000000000000003", TWILIO_TOKEN);
}

#[test]
fn lookups_exist_only_for_configured_providers() {
    let lookups = Lookups::from_env(&Env::default()).unwrap();
    assert!(lookups.is_empty());
    assert!(lookups.get("twilio").is_none());
    let env = Env::from_pairs([
        (vars::RETELL_API_KEY, "k1"),
        (vars::VAPI_API_KEY, "k2"),
        (vars::TWILIO_AUTH_TOKENS, "webhook-only"),
    ]);
    let lookups = Lookups::from_env(&env).unwrap();
    assert_eq!(lookups.providers().collect::<Vec<_>>(), ["retell", "vapi"]);
    assert_eq!(lookups.get("vapi").map(|l| l.provider()), Some("vapi"));
    assert!(lookups.get("twilio").is_none());
    assert_eq!(format!("{lookups:?}"), r#"["retell", "vapi"]"#);
    let err = Lookups::from_env(&Env::from_pairs([(vars::PLIVO_AUTH_ID, "MA1")])).unwrap_err();
    assert_eq!(err.to_string(), "PLIVO_API_TOKEN is not set");
}

#[test]
fn backoff_is_full_jitter_under_its_cap() {
    let policy = RetryPolicy {
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(250),
        ..policy()
    };
    let client = ApiClient::new(policy).unwrap();
    let first: Vec<Duration> = (0..200).map(|_| client.backoff(1)).collect();
    assert!(first.iter().all(|d| *d <= Duration::from_millis(100)));
    let later: Vec<Duration> = (0..200).map(|_| client.backoff(5)).collect();
    assert!(later.iter().all(|d| *d <= Duration::from_millis(250)));
    // Spread out, not a fixed delay.
    assert!(later.iter().any(|d| *d < Duration::from_millis(125)));
    assert!(later.iter().any(|d| *d > Duration::from_millis(125)));
}

#[test]
fn quotes_scrub_before_cutting() {
    let secret = "abcdefghij".to_owned();
    let body = format!("{}{secret}", "x".repeat(PROVIDER_API_ERROR_QUOTE - 5));
    let quoted = quote(body.as_bytes(), std::slice::from_ref(&secret));
    assert!(!quoted.contains("abcde"), "{quoted}");
    assert_eq!(
        shown(&Url::parse("https://u:p@h.example:8443/a/b?k=secret").unwrap()),
        "https://h.example:8443/a/b"
    );
}
