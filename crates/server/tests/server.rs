//! The signalling server over real sockets on 127.0.0.1:0: accounts, bad input, presence and
//! every call path with two and three users (one on two devices); history rows match.

mod common;

use common::{fast, TestServer, SDP};
use dyad_proto::{ContactState, EndReason, ErrorCode, Presence, ServerMessage as S};
use dyad_server::ServerConfig;

fn invite(call: &str, to: &str, lifetime_ms: u64) -> String {
    format!(
        r#"{{"type":"invite","call_id":"{call}","to":"{to}","sdp":{SDP:?},"lifetime_ms":{lifetime_ms}}}"#
    )
}

fn is_error(code: ErrorCode) -> impl Fn(&S) -> bool {
    move |m| matches!(m, S::Error(e) if e.code == code)
}

fn ended(call: &'static str, reason: EndReason) -> impl Fn(&S) -> bool {
    move |m| matches!(m, S::CallEnded { call_id, reason: r, .. } if call_id == call && *r == reason)
}

#[tokio::test]
async fn accounts_tokens_and_bad_http_input() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    let (status, v) = srv
        .http(
            "POST",
            "/v1/register",
            None,
            br#"{"username":"alice","password":"another password"}"#,
        )
        .await;
    assert_eq!((status, v["code"].as_str()), (409, Some("username_taken")));
    let (status, v) = srv
        .http(
            "POST",
            "/v1/login",
            None,
            br#"{"username":"alice","password":"wrong password!"}"#,
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("wrong_credentials"))
    );
    let (status, v) = srv
        .http(
            "POST",
            "/v1/login",
            None,
            br#"{"username":"nobody","password":"wrong password!"}"#,
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("wrong_credentials")),
        "unknown user looks the same"
    );
    let (status, v) = srv
        .http(
            "POST",
            "/v1/login",
            None,
            br#"{"username":"alice","password":"correct horse alice"}"#,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["expires_at"].as_u64().is_some_and(|t| t > 1_700_000_000));
    for (body, code) in [
        (&b"{not json"[..], "malformed_json"),
        (br#"{"username":"bob"}"#, "invalid_field"),
        (
            br#"{"username":"Bad Name","password":"long enough"}"#,
            "invalid_field",
        ),
        (br#"{"username":"bob","password":"short"}"#, "invalid_field"),
        (br#"{"username":"bob","password":7}"#, "invalid_field"),
    ] {
        let (status, v) = srv.http("POST", "/v1/register", None, body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some(code)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let huge = vec![b'x'; 70_000];
    let (status, _) = srv.http("POST", "/v1/register", None, &huge).await;
    assert_eq!(status, 413);
    let (status, v) = srv.http("GET", "/v1/ice", None, b"").await;
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = srv.http("GET", "/v1/ice", Some(&token), b"").await;
    assert_eq!(status, 200);
    let (status, _) = srv.http("POST", "/v1/logout", Some(&token), b"").await;
    assert_eq!(status, 204);
    let (status, v) = srv.http("GET", "/v1/history", Some(&token), b"").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("unauthorized")),
        "logged out"
    );
    srv.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refused_with_their_own_code() {
    let srv = TestServer::start(ServerConfig {
        token_ttl_secs: 0,
        ..fast()
    })
    .await;
    let token = srv.register("alice").await;
    let (status, v) = srv.http("GET", "/v1/history", Some(&token), b"").await;
    assert_eq!((status, v["code"].as_str()), (401, Some("token_expired")));
    srv.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_survives() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    let mut a = srv.connect(&token, "laptop").await;
    a.expect("contacts", |m| matches!(m, S::Contacts { .. }))
        .await;
    for (frame, code) in [
        ("{oops".to_string(), ErrorCode::MalformedJson),
        (
            r#"{"type":"warp","ref":"r1"}"#.to_string(),
            ErrorCode::UnknownType,
        ),
        (
            r#"{"type":"answer","call_id":"call-0001"}"#.to_string(),
            ErrorCode::InvalidField,
        ),
        (
            r#"{"type":"hangup","call_id":"call-0001","reason":"user_hangup","ref":"r2"}"#
                .to_string(),
            ErrorCode::UnknownCall,
        ),
        (
            format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(100_000)),
            ErrorCode::TooLarge,
        ),
        (
            r#"{"type":"contact_add","username":"ghost"}"#.to_string(),
            ErrorCode::UnknownUser,
        ),
        (
            r#"{"type":"contact_add","username":"alice"}"#.to_string(),
            ErrorCode::SelfReference,
        ),
    ] {
        a.send(&frame).await;
        match a.next().await {
            S::Error(e) => assert_eq!(e.code, code, "{}", &frame[..frame.len().min(80)]),
            other => panic!("{other:?}"),
        }
    }
    a.send(r#"{"type":"ping"}"#).await;
    assert_eq!(a.next().await, S::Pong, "still alive after bad input");
    // Unauthenticated or malformed upgrades are refused before the upgrade.
    let (status, v) = srv.http("GET", "/v1/ws?device=x", None, b"").await;
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    srv.stop().await;
}

#[tokio::test]
async fn rate_limit_connection_limit_and_idle_timeout() {
    let srv = TestServer::start(ServerConfig {
        rate_per_sec: 5,
        rate_burst: 5,
        max_connections_per_user: 2,
        ..fast()
    })
    .await;
    let token = srv.register("alice").await;
    let mut a = srv.connect(&token, "one").await;
    for _ in 0..10 {
        a.send(r#"{"type":"ping"}"#).await;
    }
    a.expect("rate_limited", is_error(ErrorCode::RateLimited))
        .await;
    let _b = srv.connect(&token, "two").await;
    let url = format!("ws://{}/v1/ws?device=three&token={token}", srv.addr);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let mut third = common::Client {
        ws,
        device: "three".into(),
        anyone_may_call: false,
    };
    third
        .expect(
            "too_many_connections",
            is_error(ErrorCode::TooManyConnections),
        )
        .await;
    // A silent connection is closed after idle_timeout (1 s here).
    let mut silent = srv.connect(&srv.register("bob").await, "quiet").await;
    assert_eq!(silent.closed().await, Some(4000));
    srv.stop().await;
}

#[tokio::test]
async fn contacts_and_presence() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    let mut a = srv.connect(&ta, "laptop").await;
    a.send(r#"{"type":"contact_add","username":"bob","ref":"add"}"#)
        .await;
    a.expect(
        "ack",
        |m| matches!(m, S::Ack { reference } if reference == "add"),
    )
    .await;
    let contacts = a
        .expect(
            "contacts",
            |m| matches!(m, S::Contacts { contacts } if !contacts.is_empty()),
        )
        .await;
    assert!(
        matches!(&contacts, S::Contacts { contacts } if contacts[0].presence == Presence::Offline && contacts[0].state == ContactState::Requested),
        "{contacts:?}"
    );
    let mut b = srv.connect(&tb, "desk").await;
    b.expect(
        "alice's request",
        |m| matches!(m, S::Contacts { contacts } if contacts.len() == 1 && contacts[0].username == "alice" && contacts[0].state == ContactState::Incoming),
    )
    .await;
    b.send(r#"{"type":"contact_add","username":"alice"}"#).await;
    a.expect(
        "bob accepted, and is online",
        |m| matches!(m, S::Contacts { contacts } if contacts[0].state == ContactState::Accepted && contacts[0].presence == Presence::Online),
    )
    .await;
    drop(b);
    a.expect(
        "bob offline",
        |m| matches!(m, S::Presence { username, presence: Presence::Offline } if username == "bob"),
    )
    .await;
    a.send(r#"{"type":"contact_remove","username":"bob"}"#)
        .await;
    a.expect(
        "empty contacts",
        |m| matches!(m, S::Contacts { contacts } if contacts.is_empty()),
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn answered_on_one_of_two_devices_then_hung_up() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    srv.befriend("alice", "bob").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut desk = srv.connect(&tb, "desk").await;
    let mut phone = srv.connect(&tb, "phone").await;
    a.send(&invite("call-0001", "bob", 30_000)).await;
    for d in [&mut desk, &mut phone] {
        d.expect("invite", |m| matches!(m, S::Invite { call_id, from, .. } if call_id == "call-0001" && from == "alice")).await;
    }
    phone
        .send(r#"{"type":"ringing","call_id":"call-0001"}"#)
        .await;
    a.expect(
        "ringing",
        |m| matches!(m, S::Ringing { device, .. } if device == "phone"),
    )
    .await;
    a.send(r#"{"type":"candidates","call_id":"call-0001","candidates":[{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdp_mid":"0","sdp_mline_index":0}]}"#).await;
    phone
        .expect(
            "caller candidates",
            |m| matches!(m, S::Candidates { candidates, .. } if candidates.len() == 1),
        )
        .await;
    phone
        .send(&format!(
            r#"{{"type":"answer","call_id":"call-0001","sdp":{SDP:?}}}"#
        ))
        .await;
    a.expect(
        "answer",
        |m| matches!(m, S::Answer { device, .. } if device == "phone"),
    )
    .await;
    a.send(r#"{"type":"select_answer","call_id":"call-0001","device":"phone"}"#)
        .await;
    phone
        .expect(
            "selected",
            |m| matches!(m, S::SelectAnswer { device, .. } if device == "phone"),
        )
        .await;
    desk.expect(
        "answered elsewhere",
        ended("call-0001", EndReason::AnsweredElsewhere),
    )
    .await;
    phone.send(r#"{"type":"candidates","call_id":"call-0001","candidates":[],"end_of_candidates":true}"#).await;
    a.expect("end of candidates", |m| {
        matches!(
            m,
            S::Candidates {
                end_of_candidates: true,
                ..
            }
        )
    })
    .await;
    phone.send(r#"{"type":"negotiate","call_id":"call-0001","description":{"type":"offer","sdp":"v=0\r\n"}}"#).await;
    a.expect("negotiate", |m| matches!(m, S::Negotiate { .. }))
        .await;
    a.send(r#"{"type":"hangup","call_id":"call-0001","reason":"user_hangup"}"#)
        .await;
    phone
        .expect("hung up", ended("call-0001", EndReason::UserHangup))
        .await;
    let rows = wait_for_history(&srv, &ta, "call-0001").await;
    assert_eq!(rows["caller"], "alice");
    assert_eq!(rows["callee"], "bob");
    assert_eq!(rows["end_reason"], "user_hangup");
    assert_eq!(rows["ended_by"], "alice");
    assert!(rows["answered_at_ms"].as_u64().is_some(), "{rows}");
    srv.stop().await;
}

/// The history row of `call`, once it has an end (the writer runs beside the hub).
async fn wait_for_history(srv: &TestServer, token: &str, call: &str) -> serde_json::Value {
    for _ in 0..100 {
        if let Some(row) = srv
            .history(token)
            .await
            .into_iter()
            .find(|r| r["call_id"] == call && !r["end_reason"].is_null())
        {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no ended history row for {call}");
}

#[tokio::test]
async fn decline_busy_cancel_unavailable_and_timeout() {
    // These clients do not ping: keep them alive through the 5 s ring.
    let srv = TestServer::start(ServerConfig {
        idle_timeout_ms: 20_000,
        ..fast()
    })
    .await;
    let (ta, tb, tc) = (
        srv.register("alice").await,
        srv.register("bob").await,
        srv.register("carol").await,
    );
    srv.befriend("alice", "bob").await;
    srv.befriend("carol", "bob").await;
    srv.befriend("alice", "carol").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut b = srv.connect(&tb, "desk").await;
    let mut c = srv.connect(&tc, "tablet").await;

    a.send(&invite("call-decline", "bob", 30_000)).await;
    b.expect("invite", |m| matches!(m, S::Invite { .. })).await;
    b.send(r#"{"type":"reject","call_id":"call-decline"}"#)
        .await;
    a.expect("rejected", ended("call-decline", EndReason::Rejected))
        .await;
    assert_eq!(
        wait_for_history(&srv, &ta, "call-decline").await["end_reason"],
        "rejected"
    );

    a.send(&invite("call-busy-1", "bob", 30_000)).await;
    b.expect(
        "invite",
        |m| matches!(m, S::Invite { call_id, .. } if call_id == "call-busy-1"),
    )
    .await;
    c.send(&invite("call-busy-2", "bob", 30_000)).await;
    c.expect("busy", ended("call-busy-2", EndReason::Busy))
        .await;
    assert_eq!(
        wait_for_history(&srv, &tc, "call-busy-2").await["end_reason"],
        "busy"
    );

    a.send(r#"{"type":"cancel","call_id":"call-busy-1"}"#).await;
    b.expect("cancelled", ended("call-busy-1", EndReason::Cancelled))
        .await;
    assert_eq!(
        wait_for_history(&srv, &tb, "call-busy-1").await["end_reason"],
        "cancelled"
    );

    c.send(&invite("call-nobody", "dave", 30_000)).await;
    c.expect("no such user", is_error(ErrorCode::UnknownUser))
        .await;

    // The shortest lifetime the protocol allows is 5 s: ring, nobody answers, both sides end.
    a.send(&invite("call-timeout", "carol", 5_000)).await;
    c.expect(
        "invite",
        |m| matches!(m, S::Invite { call_id, .. } if call_id == "call-timeout"),
    )
    .await;
    // The call must end by itself, 5 s after the invite: allow that plus scheduling slack.
    let wait = std::time::Duration::from_secs(15);
    a.expect_within(
        "timeout",
        wait,
        ended("call-timeout", EndReason::InviteTimeout),
    )
    .await;
    c.expect("timeout", ended("call-timeout", EndReason::InviteTimeout))
        .await;
    assert_eq!(
        wait_for_history(&srv, &ta, "call-timeout").await["end_reason"],
        "invite_timeout"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_vanished_peer_ends_the_call_after_the_grace() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    srv.befriend("alice", "bob").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut b = srv.connect(&tb, "desk").await;
    a.send(&invite("call-gone", "bob", 30_000)).await;
    b.expect("invite", |m| matches!(m, S::Invite { .. })).await;
    b.send(&format!(
        r#"{{"type":"answer","call_id":"call-gone","sdp":{SDP:?}}}"#
    ))
    .await;
    a.expect("answer", |m| matches!(m, S::Answer { .. })).await;
    a.send(r#"{"type":"select_answer","call_id":"call-gone","device":"desk"}"#)
        .await;
    b.expect("selected", |m| matches!(m, S::SelectAnswer { .. }))
        .await;
    drop(b); // the process dies: TCP closes
    a.expect("peer gone", ended("call-gone", EndReason::PeerDisconnected))
        .await;
    assert_eq!(
        wait_for_history(&srv, &ta, "call-gone").await["end_reason"],
        "peer_disconnected"
    );
    srv.stop().await;
}

#[tokio::test]
async fn glare_over_the_wire_leaves_one_call() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    srv.befriend("alice", "bob").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut b = srv.connect(&tb, "desk").await;
    a.send(&invite("call-aaaa", "bob", 30_000)).await;
    b.send(&invite("call-bbbb", "alice", 30_000)).await;
    // Whatever the order the server saw them in, bob ends up with alice's lower-id call
    // marked as glare, and his own call replaced.
    b.expect("replaced", ended("call-bbbb", EndReason::Replaced))
        .await;
    b.expect(
        "glare invite",
        |m| matches!(m, S::Invite { call_id, glare: true, .. } if call_id == "call-aaaa"),
    )
    .await;
    b.send(&format!(
        r#"{{"type":"answer","call_id":"call-aaaa","sdp":{SDP:?}}}"#
    ))
    .await;
    a.expect(
        "answer",
        |m| matches!(m, S::Answer { call_id, .. } if call_id == "call-aaaa"),
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn the_same_device_connecting_again_replaces_the_old_connection() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    let mut first = srv.connect(&token, "laptop").await;
    let mut second = srv.connect(&token, "laptop").await;
    assert_eq!(
        first.closed().await,
        Some(4009),
        "old connection closed as replaced"
    );
    second.send(r#"{"type":"ping"}"#).await;
    second.expect("pong", |m| *m == S::Pong).await;
    srv.stop().await;
}

#[tokio::test]
async fn look_alike_names_are_refused_at_registration() {
    let srv = TestServer::start(fast()).await;
    srv.register("alice").await;
    for (name, status, code) in [
        ("al1ce", 409, "username_taken"),
        ("a.lice", 409, "username_taken"),
        ("a_l-ice", 409, "username_taken"),
        ("alic3", 409, "username_taken"),
        ("alice.", 400, "invalid_field"),
        ("alice-", 400, "invalid_field"),
        ("alice_", 400, "invalid_field"),
        ("ali..ce", 400, "invalid_field"),
        ("guest.1234abcd", 400, "invalid_field"),
        ("guest_1234abcd", 400, "invalid_field"),
    ] {
        let body = format!(r#"{{"username":"{name}","password":"a good password"}}"#);
        let (got, v) = srv
            .http("POST", "/v1/register", None, body.as_bytes())
            .await;
        assert_eq!((got, v["code"].as_str()), (status, Some(code)), "{name}");
    }
    // A name that only shares letters is fine, and the original still signs in.
    srv.register("alicia").await;
    let (status, _) = srv
        .http(
            "POST",
            "/v1/login",
            None,
            br#"{"username":"alice","password":"correct horse alice"}"#,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn strangers_see_no_presence_and_cannot_call_unless_allowed_and_then_only_relayed() {
    let turn = dyad_server::turn::TurnConfig::External {
        urls: vec!["turn:198.51.100.1:3478?transport=udp".into()],
        secret: b"s".to_vec(),
        ttl_secs: 600,
    };
    let srv = TestServer::start(ServerConfig {
        turn: Some(turn),
        ..fast()
    })
    .await;
    let (ta, tm) = (srv.register("alice").await, srv.register("mallory").await);
    let mut a = srv.connect(&ta, "laptop").await;
    assert!(!a.anyone_may_call, "closed by default (welcome)");
    let mut m = srv.connect(&tm, "evil").await;
    // A request is all mallory gets: no presence, no call.
    m.send(r#"{"type":"contact_add","username":"alice","ref":"req"}"#)
        .await;
    m.expect(
        "a request",
        |x| matches!(x, S::Contacts { contacts } if contacts.first().is_some_and(|c| c.state == ContactState::Requested && c.presence == Presence::Offline)),
    )
    .await;
    a.expect(
        "an incoming request",
        |x| matches!(x, S::Contacts { contacts } if contacts.first().is_some_and(|c| c.username == "mallory" && c.state == ContactState::Incoming)),
    )
    .await;
    m.send(&invite("call-strange", "alice", 30_000)).await;
    m.expect("not allowed", is_error(ErrorCode::NotAllowed))
        .await;
    // Alice goes offline and comes back: nobody who only asked may see it, in the session
    // that asked or in a new one (whose list comes from the store).
    drop(m);
    let mut m = srv.connect(&tm, "evil").await;
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut a = srv.connect(&ta, "laptop").await;
    // Nothing of alice's presence reached mallory (anything queued so far is seen now).
    m.send(r#"{"type":"contact_list","ref":"sync"}"#).await;
    loop {
        match m.next().await {
            S::Presence { username, .. } => panic!("mallory saw {username}'s presence"),
            S::Ack { reference } if reference == "sync" => break,
            _ => {}
        }
    }
    // Declining removes the request.
    a.send(r#"{"type":"contact_remove","username":"mallory"}"#)
        .await;
    m.expect(
        "request gone",
        |x| matches!(x, S::Contacts { contacts } if contacts.is_empty()),
    )
    .await;
    // Alice lets anyone call: mallory's call rings, marked relay-only, without host candidates.
    a.send(r#"{"type":"set_privacy","anyone_may_call":true,"ref":"open"}"#)
        .await;
    a.expect("privacy: open", |x| {
        matches!(
            x,
            S::Privacy {
                anyone_may_call: true
            }
        )
    })
    .await;
    let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 192.0.2.66 5000 typ host\r\na=candidate:2 1 udp 16777215 198.51.100.1 7000 typ relay raddr 0.0.0.0 rport 0\r\n";
    m.send(&format!(
        r#"{{"type":"invite","call_id":"call-strange","to":"alice","sdp":{sdp:?}}}"#
    ))
    .await;
    let ring = a
        .expect("a stranger's call", |x| matches!(x, S::Invite { .. }))
        .await;
    assert!(
        matches!(&ring, S::Invite { relay_only: true, sdp, from, .. } if from == "mallory" && !sdp.contains("typ host") && sdp.contains("typ relay")),
        "{ring:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_stranger_cannot_call_through_a_server_without_a_relay() {
    let srv = TestServer::start(fast()).await;
    let (ta, tm) = (srv.register("alice").await, srv.register("mallory").await);
    let mut a = srv.connect(&ta, "laptop").await;
    a.send(r#"{"type":"set_privacy","anyone_may_call":true,"ref":"open"}"#)
        .await;
    a.expect(
        "ack",
        |x| matches!(x, S::Ack { reference } if reference == "open"),
    )
    .await;
    let mut m = srv.connect(&tm, "evil").await;
    m.send(&invite("call-strange", "alice", 30_000)).await;
    m.expect(
        "not allowed: it would have to be relayed",
        is_error(ErrorCode::NotAllowed),
    )
    .await;
    // The setting survives a new session.
    drop(a);
    let a = srv.connect(&ta, "laptop").await;
    assert!(a.anyone_may_call, "still open (welcome)");
    srv.stop().await;
}

#[tokio::test]
async fn an_open_server_lets_anyone_call_anyone_directly() {
    let srv = TestServer::start(ServerConfig {
        open_calls: true,
        ..fast()
    })
    .await;
    let (ta, tm) = (srv.register("alice").await, srv.register("mallory").await);
    let mut a = srv.connect(&ta, "laptop").await;
    let mut m = srv.connect(&tm, "evil").await;
    m.send(&invite("call-open-1", "alice", 30_000)).await;
    let ring = a
        .expect("a call without contacts", |x| matches!(x, S::Invite { .. }))
        .await;
    assert!(
        matches!(
            ring,
            S::Invite {
                relay_only: false,
                ..
            }
        ),
        "{ring:?}"
    );
    srv.stop().await;
}

/// Two callers may use the same call id at once; each one's history row gets its own answer and
/// end (the rows were found by id alone before).
#[tokio::test]
async fn history_rows_of_two_callers_with_one_call_id_stay_apart() {
    let store = dyad_server::Store::open_in_memory().await.expect("store");
    store
        .call_started("same-id-1", ("alice", "laptop"), "bob", 1_000, false)
        .await
        .expect("row");
    store
        .call_started("same-id-1", ("carol", "tablet"), "dave", 1_100, true)
        .await
        .expect("row");
    store
        .call_answered(("alice", "same-id-1"), "desk", 1_200)
        .await
        .expect("answered");
    // alice's is the older row: found by id alone, carol's (the newest) would get these.
    store
        .call_ended(
            ("alice", "same-id-1"),
            1_300,
            EndReason::UserHangup,
            Some("bob"),
        )
        .await
        .expect("ended");
    let alice = store.history("alice", 10).await.expect("history");
    let carol = store.history("carol", 10).await.expect("history");
    // The open one is carol's, remembered as a stranger's (relay-only) call for a restart.
    let open = store.open_calls().await.expect("open calls");
    assert_eq!(
        open.iter()
            .map(|c| (c.caller.as_str(), c.relay_only))
            .collect::<Vec<_>>(),
        vec![("carol", true)]
    );
    assert_eq!(
        (
            alice[0].answered_at_ms,
            alice[0].ended_at_ms,
            alice[0].end_reason.as_deref()
        ),
        (Some(1_200), Some(1_300), Some("user_hangup")),
        "{alice:?}"
    );
    assert_eq!(
        (carol[0].answered_at_ms, carol[0].ended_at_ms),
        (None, None),
        "{carol:?}"
    );
}

#[tokio::test]
async fn a_client_cannot_mark_its_own_call_relay_only_and_repeated_changes_cost_the_other_nothing()
{
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    let tm = srv.register("mallory").await;
    srv.befriend("alice", "bob").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut b = srv.connect(&tb, "desk").await;
    // relay_only would hide "busy" and the history row: only the server may set it.
    a.send(&format!(
        r#"{{"type":"invite","call_id":"call-self","to":"bob","sdp":{SDP:?},"relay_only":true}}"#
    ))
    .await;
    let ring = b.expect("invite", |m| matches!(m, S::Invite { .. })).await;
    assert!(
        matches!(
            ring,
            S::Invite {
                relay_only: false,
                ..
            }
        ),
        "{ring:?}"
    );
    // A stranger repeating removes (nothing to remove) makes no list reach bob.
    let mut m = srv.connect(&tm, "evil").await;
    for i in 0..5 {
        m.send(&format!(
            r#"{{"type":"contact_remove","username":"bob","ref":"rm{i}"}}"#
        ))
        .await;
        m.expect("ack", |x| matches!(x, S::Ack { .. })).await;
    }
    b.send(r#"{"type":"contact_list","ref":"sync"}"#).await;
    let mut lists = 0;
    loop {
        match b.next().await {
            S::Contacts { .. } => lists += 1,
            S::Ack { reference } if reference == "sync" => break,
            _ => {}
        }
    }
    // The one list is the answer to bob's own contact_list.
    assert!(lists <= 2, "{lists} contact lists pushed to bob");
    srv.stop().await;
}
