//! Guest links over real HTTP and WebSocket: a user mints a one-use link, the guest redeems it
//! for an account that can call only that user, and the link cannot be used twice, after it
//! expires or after it is revoked.

mod common;

use common::*;
use dyad_proto::ServerMessage;

async fn invite(srv: &TestServer, token: &str, body: &str) -> (u16, serde_json::Value) {
    srv.http("POST", "/v1/invites", Some(token), body.as_bytes())
        .await
}

/// The next `error` frame `c` gets (skipping others).
async fn next_error(c: &mut Client) -> dyad_proto::ProtoError {
    match c
        .expect("error", |m| matches!(m, ServerMessage::Error(_)))
        .await
    {
        ServerMessage::Error(e) => e,
        other => panic!("{other:?}"),
    }
}

async fn redeem(srv: &TestServer, link: &str) -> (u16, serde_json::Value) {
    let body = format!(r#"{{"invite":"{link}"}}"#);
    srv.http("POST", "/v1/guest", None, body.as_bytes()).await
}

#[tokio::test]
async fn a_guest_link_works_once_and_its_guest_can_call_only_the_host() {
    let srv = TestServer::start(fast()).await;
    let alice = srv.register("alice").await;
    let carol = srv.register("carol").await;
    let (status, link) = invite(&srv, &alice, "").await;
    assert_eq!(status, 201, "{link}");
    let link_token = link["token"].as_str().expect("token").to_string();
    assert_eq!(link["path"], format!("/join/{link_token}"));

    // The page is there for the link, with headers that keep the token to this server.
    let (status, _) = srv
        .http("GET", link["path"].as_str().expect("path"), None, b"")
        .await;
    assert_eq!(status, 200);

    let (status, guest) = redeem(&srv, &link_token).await;
    assert_eq!(status, 201, "{guest}");
    assert_eq!(guest["host"], "alice");
    let name = guest["username"].as_str().expect("username").to_string();
    assert!(name.starts_with("guest-"), "{name}");
    let guest_token = guest["token"].as_str().expect("token").to_string();

    // Once only.
    let (status, again) = redeem(&srv, &link_token).await;
    assert_eq!((status, again["code"].as_str()), (410, Some("invite_used")));

    let mut host = srv.connect(&alice, "laptop").await;
    let mut g = srv.connect(&guest_token, "browser").await;
    // No contacts, and calling anyone but the host is refused.
    g.send(r#"{"type":"contact_add","username":"carol","ref":"c1"}"#)
        .await;
    let e = next_error(&mut g).await;
    assert_eq!(
        (e.code.as_str(), e.reference.as_deref()),
        ("not_allowed", Some("c1"))
    );
    g.send(&format!(
        r#"{{"type":"invite","call_id":"guestcall1","to":"carol","sdp":"{}","ref":"i1"}}"#,
        SDP.escape_default()
    ))
    .await;
    let e = next_error(&mut g).await;
    assert_eq!(e.code.as_str(), "not_allowed");
    // The host it may call.
    g.send(&format!(
        r#"{{"type":"invite","call_id":"guestcall2","to":"alice","sdp":"{}"}}"#,
        SDP.escape_default()
    ))
    .await;
    let ring = host
        .expect("invite", |m| matches!(m, ServerMessage::Invite { .. }))
        .await;
    let ServerMessage::Invite { from, call_id, .. } = ring else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), call_id.as_str()),
        (name.as_str(), "guestcall2")
    );

    // Nobody else can call or add the guest (as if the name did not exist).
    let mut c = srv.connect(&carol, "desk").await;
    c.send(&format!(
        r#"{{"type":"contact_add","username":"{name}","ref":"x"}}"#
    ))
    .await;
    let e = next_error(&mut c).await;
    assert_eq!(e.code.as_str(), "unknown_user");

    // A guest cannot mint links, and nobody can register a guest name.
    let (status, v) = invite(&srv, &guest_token, "").await;
    assert_eq!((status, v["code"].as_str()), (403, Some("not_allowed")));
    let body = format!(r#"{{"username":"{name}x","password":"correct horse battery"}}"#);
    let (status, v) = srv
        .http("POST", "/v1/register", None, body.as_bytes())
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_field")));
}

#[tokio::test]
async fn expired_revoked_and_unknown_links_are_refused_with_their_codes() {
    let srv = TestServer::start(fast()).await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bobby").await;
    // Out of range lifetimes.
    for body in [
        r#"{"ttl_secs":5}"#,
        r#"{"ttl_secs":99999999}"#,
        r#"{"ttl":60}"#,
    ] {
        let (status, v) = invite(&srv, &alice, body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("invalid_field")),
            "{body}"
        );
    }
    // Revoked: only by its maker, then gone.
    let (_, link) = invite(&srv, &alice, r#"{"ttl_secs":600}"#).await;
    let token = link["token"].as_str().expect("token").to_string();
    let path = format!("/v1/invites/{token}");
    let (status, _) = srv.http("DELETE", &path, Some(&bob), b"").await;
    assert_eq!(status, 404, "not bob's link");
    let (status, _) = srv.http("DELETE", &path, Some(&alice), b"").await;
    assert_eq!(status, 204);
    let (status, v) = redeem(&srv, &token).await;
    assert_eq!((status, v["code"].as_str()), (410, Some("invite_expired")));
    // Unknown, and garbage of any length.
    let (status, v) = redeem(&srv, "no-such-link").await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
    let (status, v) = redeem(&srv, &"x".repeat(4000)).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
    let (status, v) = srv.http("POST", "/v1/guest", None, b"{}").await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_field")));
}

#[tokio::test]
async fn a_link_past_its_lifetime_has_expired() {
    let store = dyad_server::Store::open_in_memory().await.expect("store");
    store
        .register("alice", "correct horse battery", 1_000)
        .await
        .expect("register");
    let (token, expires_at) = store
        .create_invite("alice", 1_000, 60)
        .await
        .expect("invite");
    assert_eq!(expires_at, 1_060);
    let e = store
        .redeem_invite(&token, 1_060, 3600)
        .await
        .expect_err("expired");
    assert_eq!(e.to_proto().code.as_str(), "invite_expired");
    let (_, host, _, session_expires) = store
        .redeem_invite(
            &store
                .create_invite("alice", 2_000, 60)
                .await
                .expect("invite")
                .0,
            2_059,
            3600,
        )
        .await
        .expect("in time");
    assert_eq!((host.as_str(), session_expires), ("alice", 2_059 + 3600));
}
