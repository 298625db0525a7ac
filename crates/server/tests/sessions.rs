//! A session lives only as long as its token: logging the token out or its expiry closes the
//! live WebSocket (4001), and expired tokens are deleted.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// The close code the server ends `c` with (skipping other frames), within `wait`.
async fn closed_with(c: &mut Client, wait: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("closed in time");
        match msg {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn logging_out_closes_the_tokens_live_sessions_and_only_those() {
    let srv = TestServer::start(dyad_server::config::ServerConfig {
        idle_timeout_ms: 60_000,
        ..fast()
    })
    .await;
    let laptop_token = srv.register("alice").await;
    let body = br#"{"username":"alice","password":"correct horse alice"}"#;
    let (_, v) = srv.http("POST", "/v1/login", None, body).await;
    let phone_token = v["token"].as_str().expect("token").to_string();
    let mut laptop = srv.connect(&laptop_token, "laptop").await;
    let mut phone = srv.connect(&phone_token, "phone").await;
    let (status, _) = srv
        .http("POST", "/v1/logout", Some(&laptop_token), b"")
        .await;
    assert_eq!(status, 204);
    assert_eq!(closed_with(&mut laptop, Duration::from_secs(2)).await, 4001);
    // The other token's session stays.
    phone.send(r#"{"type":"ping"}"#).await;
    phone
        .expect("pong", |m| matches!(m, dyad_proto::ServerMessage::Pong))
        .await;
    // And the logged-out token cannot come back.
    let url = format!("ws://{}/v1/ws?device=laptop&token={laptop_token}", srv.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn a_session_closes_when_its_token_expires_and_expired_tokens_are_purged() {
    let srv = TestServer::start(dyad_server::config::ServerConfig {
        token_ttl_secs: 2,
        idle_timeout_ms: 60_000,
        purge_interval_secs: 1,
        ..fast()
    })
    .await;
    let token = srv.register("alice").await;
    let mut c = srv.connect(&token, "laptop").await;
    let code = closed_with(&mut c, Duration::from_secs(5)).await;
    assert_eq!(code, 4001, "closed at the token's expiry");
    // Expired: refused as expired until the purge deletes it, then as unknown.
    let mut seen = Vec::new();
    for _ in 0..40 {
        let (_, v) = srv.http("GET", "/v1/ice", Some(&token), b"").await;
        let code = v["code"].as_str().unwrap_or("").to_string();
        if seen.last() != Some(&code) {
            seen.push(code.clone());
        }
        if code == "unauthorized" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("unauthorized"),
        "{seen:?}"
    );
}
