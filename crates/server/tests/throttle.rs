//! Password attempts are throttled per account and per source address, before any hashing,
//! with a stable `rate_limited` code and `Retry-After`.

mod common;

use common::*;
use dyad_server::throttle::ThrottleConfig;

async fn login(srv: &TestServer, user: &str, password: &str) -> (u16, String, serde_json::Value) {
    let body = format!(r#"{{"username":"{user}","password":"{password}"}}"#);
    srv.http_with_head("POST", "/v1/login", None, body.as_bytes())
        .await
}

#[tokio::test]
async fn guessing_a_password_is_throttled_per_account_and_per_address() {
    let srv = TestServer::start(dyad_server::config::ServerConfig {
        throttle: ThrottleConfig {
            per_address_per_min: 6.0,
            per_address_burst: 8.0,
            per_account_per_min: 6.0,
            per_account_burst: 4.0,
        },
        ..fast()
    })
    .await;
    srv.register("alice").await;
    // Four guesses at alice's password, then the account waits (6 a minute: 10 s).
    for _ in 0..4 {
        let (status, _, v) = login(&srv, "alice", "not the password").await;
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("wrong_credentials"))
        );
    }
    let (status, head, v) = login(&srv, "alice", "correct horse alice").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let retry: u64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After header");
    assert!((1..=10).contains(&retry), "Retry-After: {retry}");
    // Other accounts from this address go on until the address's own budget (8) is spent:
    // 1 register + 4 guesses + the refused one (not counted) so far.
    let (status, _, v) = login(&srv, "bob", "no such user here").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("wrong_credentials"))
    );
    let (status, _, _) = login(&srv, "carol", "no such user here").await;
    assert_eq!(status, 401);
    let (status, _, _) = login(&srv, "dave", "no such user here").await;
    assert_eq!(status, 401);
    let (status, _, v) = login(&srv, "erin", "no such user here").await;
    assert_eq!((status, v["code"].as_str()), (429, Some("rate_limited")));
    // Registering counts against the address too.
    let body = br#"{"username":"frank","password":"correct horse frank"}"#;
    let (status, _, v) = srv.http_with_head("POST", "/v1/register", None, body).await;
    assert_eq!((status, v["code"].as_str()), (429, Some("rate_limited")));
}
