//! The signalling server against clients that misbehave, over real sockets on 127.0.0.1: one
//! that stops reading, ping floods, WebSocket protocol violations, HTTP requests axum answers
//! itself; and the sockets' own options. Each test failed on the server before it was hardened.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{fast, TestServer, SDP, WAIT};
use dyad_proto::{ContactState, EndReason, Presence, ServerMessage as S};
use dyad_server::ServerConfig;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// `TCP_NODELAY` of a socket descriptor of this process.
fn nodelay(fd: i32) -> Option<bool> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and sized for an int option; an fd that is
    // not a TCP socket makes the call fail, which is handled.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value != 0)
}

/// The local port of a connected TCP socket descriptor (none for a listener or a non-socket).
fn connected_local_port(fd: i32) -> Option<u16> {
    // SAFETY: a zeroed sockaddr_storage is a valid out-buffer for both calls; `len` says its size.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let peer = (&mut addr as *mut libc::sockaddr_storage).cast();
        if libc::getpeername(fd, peer, &mut len) != 0 {
            return None;
        }
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, peer, &mut len) != 0 || i32::from(addr.ss_family) != libc::AF_INET
        {
            return None;
        }
        let v4 = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
        Some(u16::from_be(v4.sin_port))
    }
}

#[tokio::test]
async fn every_accepted_socket_has_tcp_nodelay() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    let _ws = srv.connect(&token, "laptop").await;
    let plain = TcpStream::connect(srv.addr).await.expect("connect");
    // The server runs in this process: its accepted sockets are the descriptors whose local
    // port is the server's (the clients' sockets have the server's port as the peer's).
    let mut seen = 0;
    for _ in 0..100 {
        seen = 0;
        for entry in std::fs::read_dir("/proc/self/fd").expect("fds").flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if fd == plain.as_raw_fd() || connected_local_port(fd) != Some(srv.addr.port()) {
                continue;
            }
            assert_eq!(nodelay(fd), Some(true), "accepted socket {fd}");
            seen += 1;
        }
        if seen >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen >= 2, "found {seen} accepted sockets");
    srv.stop().await;
}

/// The next protocol message if one arrives within `wait`.
async fn poll(c: &mut common::Client, wait: Duration) -> Option<S> {
    match tokio::time::timeout(wait, futures_util::StreamExt::next(&mut c.ws)).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).ok(),
        _ => None,
    }
}

fn candidates(call: &str, n: usize) -> String {
    // 32 candidates of ~480 bytes: a frame of ~16 KiB, numbered by `n`.
    let one = format!(
        r#"{{"candidate":"candidate:{n} 1 udp 2130706431 127.0.0.1 5000 typ host {}","sdp_mid":"0","sdp_mline_index":0}}"#,
        "x".repeat(400)
    );
    let all = vec![one; 32].join(",");
    format!(r#"{{"type":"candidates","call_id":"{call}","candidates":[{all}]}}"#)
}

/// A callee that stops reading while the caller keeps relaying: its queue fills, and the
/// server closes that connection (so the client reconnects and resyncs) instead of dropping
/// frames while it stays up. What the stuck client did receive is a gap-free prefix.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_when_its_queue_is_full() {
    stuck_reader(256 * 1024, 60_000).await;
}

/// The same with a queue that never fills: the write deadline ends the stuck connection.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_at_the_write_deadline() {
    stuck_reader(1 << 30, 1_000).await;
}

async fn stuck_reader(send_queue_bytes: usize, write_timeout_ms: u64) {
    let srv = TestServer::start(ServerConfig {
        idle_timeout_ms: 30_000,
        rate_per_sec: 100_000,
        rate_burst: 100_000,
        send_queue_bytes,
        write_timeout_ms,
        ..fast()
    })
    .await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    srv.befriend("alice", "bob").await;
    let mut a = srv.connect(&ta, "laptop").await;
    let mut b = srv.connect(&tb, "desk").await;
    a.send(&format!(
        r#"{{"type":"invite","call_id":"call-0001","to":"bob","sdp":{SDP:?},"lifetime_ms":30000}}"#
    ))
    .await;
    b.expect("invite", |m| matches!(m, S::Invite { .. })).await;
    b.send(&format!(
        r#"{{"type":"answer","call_id":"call-0001","sdp":{SDP:?}}}"#
    ))
    .await;
    a.expect("answer", |m| matches!(m, S::Answer { .. })).await;
    a.send(r#"{"type":"select_answer","call_id":"call-0001","device":"desk"}"#)
        .await;
    b.expect("selected", |m| matches!(m, S::SelectAnswer { .. }))
        .await;
    // Bob stops reading. Alice relays up to ~64 MiB of candidates: far more than the socket
    // buffers and the 256 KiB queue hold. The call ends once bob's connection is dropped and
    // the 300 ms grace passes.
    let mut sent = 0;
    let mut reason = None;
    while sent < 4096 && reason.is_none() {
        a.send(&candidates("call-0001", sent)).await;
        sent += 1;
        if let Some(S::CallEnded { reason: r, .. }) = poll(&mut a, Duration::from_millis(1)).await {
            reason = Some(r);
        }
    }
    let reason = match reason {
        Some(r) => r,
        None => {
            let S::CallEnded { reason, .. } = a
                .expect("call ended", |m| matches!(m, S::CallEnded { .. }))
                .await
            else {
                panic!("expect returned another message")
            };
            reason
        }
    };
    assert_eq!(reason, EndReason::PeerDisconnected, "after {sent} frames");
    // Bob reads at last: a gap-free run of frames, then the end of the connection.
    let mut next = 0usize;
    let code = loop {
        let msg = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut b.ws))
            .await
            .expect("bob's stream ends in time");
        match msg {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"candidates""#) => {
                let needle = format!("candidate:{next} ");
                assert!(t.contains(&needle), "frame {next} missing");
                next += 1;
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break None,
        }
    };
    assert!(
        next < sent,
        "bob got {next} of {sent}: the queue did overflow"
    );
    assert!(
        code.is_none() || code == Some(4013),
        "closed with {code:?} after {next} frames"
    );
    srv.stop().await;
}

#[tokio::test]
async fn ping_frames_count_against_the_rate_limit() {
    let srv = TestServer::start(ServerConfig {
        rate_per_sec: 5,
        rate_burst: 5,
        idle_timeout_ms: 30_000,
        ..fast()
    })
    .await;
    let token = srv.register("alice").await;
    let mut a = srv.connect(&token, "laptop").await;
    a.expect("contacts", |m| matches!(m, S::Contacts { .. }))
        .await;
    for _ in 0..200 {
        if a.ws.send(Message::Ping(vec![1].into())).await.is_err() {
            break;
        }
    }
    assert_eq!(a.closed().await, Some(4029));
    srv.stop().await;
}

/// A WebSocket opened by hand, to send frames no well-behaved library would.
async fn raw_websocket(srv: &TestServer, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!(
        "GET /v1/ws?device=raw&token={token} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(WAIT, s.read_exact(&mut byte))
            .await
            .expect("upgrade answered")
            .expect("read");
        got.push(byte[0]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    s
}

/// Reads server frames until a close frame; its code, or `None` if the TCP stream just ended.
async fn close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout(WAIT, s.read_exact(&mut head))
            .await
            .expect("a frame or the end in time")
            .ok()?;
        let len = match head[1] & 0x7f {
            126 => usize::from(s.read_u16().await.ok()?),
            127 => usize::try_from(s.read_u64().await.ok()?).ok()?,
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        if head[0] & 0x0f == 0x8 {
            return (len >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// A client frame: FIN + `opcode` (+ `rsv` bits), masked with a zero key unless `masked` is
/// false, carrying `payload` (< 126 bytes) or announcing `len` bytes without sending them.
fn client_frame(opcode: u8, rsv: u8, masked: bool, payload: &[u8], len: Option<u64>) -> Vec<u8> {
    let mut f = vec![0x80 | rsv | opcode];
    let mask = if masked { 0x80 } else { 0 };
    match len {
        Some(n) => {
            f.push(mask | 127);
            f.extend_from_slice(&n.to_be_bytes());
        }
        None => f.push(mask | payload.len() as u8),
    }
    if masked {
        f.extend_from_slice(&[0, 0, 0, 0]);
    }
    if len.is_none() {
        f.extend_from_slice(payload);
    }
    f
}

#[tokio::test]
async fn protocol_violations_close_with_their_rfc_6455_code() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    for (what, frame, code) in [
        (
            "unmasked client frame",
            client_frame(0x1, 0, false, br#"{"type":"ping"}"#, None),
            1002,
        ),
        (
            "reserved bit set",
            client_frame(0x1, 0x40, true, br#"{"type":"ping"}"#, None),
            1002,
        ),
        (
            "text that is not UTF-8",
            client_frame(0x1, 0, true, b"\xff\xfe\"type\"", None),
            1007,
        ),
        (
            "a 1 GiB frame announced",
            client_frame(0x1, 0, true, b"", Some(1 << 30)),
            1009,
        ),
    ] {
        let mut s = raw_websocket(&srv, &token).await;
        s.write_all(&frame).await.expect("write");
        assert_eq!(close_code(&mut s).await, Some(code), "{what}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn every_http_error_is_the_documented_json() {
    let srv = TestServer::start(fast()).await;
    let token = srv.register("alice").await;
    for (method, path, auth, body, status, code) in [
        ("GET", "/nowhere", None, "", 404, "not_found"),
        ("DELETE", "/v1/login", None, "", 405, "method_not_allowed"),
        (
            "GET",
            "/v1/ws?device=a&device=b",
            Some(token.as_str()),
            "",
            400,
            "invalid_field",
        ),
        // Authenticated, but not a WebSocket upgrade.
        (
            "GET",
            "/v1/ws?device=a",
            Some(token.as_str()),
            "",
            400,
            "invalid_field",
        ),
    ] {
        let (got, v) = srv.http(method, path, auth, body.as_bytes()).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    srv.stop().await;
}

/// Presence goes to every device of every online watcher, follows contact changes made on any
/// device, and stops when the contact is removed.
#[tokio::test]
async fn presence_follows_contact_changes_across_devices() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    let mut laptop = srv.connect(&ta, "laptop").await;
    laptop
        .send(r#"{"type":"contact_add","username":"bob","ref":"add"}"#)
        .await;
    laptop.expect("ack", |m| matches!(m, S::Ack { .. })).await;
    // A second device joining after the change sees it in its contact list and gets presence.
    let mut phone = srv.connect(&ta, "phone").await;
    phone
        .expect(
            "contacts with bob",
            |m| matches!(m, S::Contacts { contacts } if contacts.len() == 1),
        )
        .await;
    // Bob's presence reaches alice only once he accepts her request.
    let mut b = srv.connect(&tb, "desk").await;
    b.send(r#"{"type":"contact_add","username":"alice","ref":"accept"}"#)
        .await;
    b.expect("ack", |m| matches!(m, S::Ack { .. })).await;
    for d in [&mut laptop, &mut phone] {
        d.expect(
            "bob accepted, online",
            |m| matches!(m, S::Contacts { contacts } if contacts.len() == 1 && contacts[0].state == ContactState::Accepted && contacts[0].presence == Presence::Online),
        )
        .await;
    }
    drop(b);
    for d in [&mut laptop, &mut phone] {
        d.expect(
            "bob offline",
            |m| matches!(m, S::Presence { username, presence: Presence::Offline } if username == "bob"),
        )
        .await;
    }
    phone
        .send(r#"{"type":"contact_remove","username":"bob","ref":"rm"}"#)
        .await;
    phone
        .expect(
            "empty contacts",
            |m| matches!(m, S::Contacts { contacts } if contacts.is_empty()),
        )
        .await;
    let _b = srv.connect(&tb, "desk").await;
    // No presence of bob any more: the next thing the laptop hears is its own pong.
    laptop.send(r#"{"type":"ping"}"#).await;
    loop {
        match laptop.next().await {
            S::Pong => break,
            S::Presence { username, .. } if username == "bob" => {
                panic!("presence of a removed contact")
            }
            _ => {}
        }
    }
    srv.stop().await;
}

/// Whether the server ended this connection (EOF or reset) within `wait`.
async fn ended_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slow_requests_are_cut_off_and_unauthenticated_sockets_are_bounded() {
    let srv = TestServer::start(ServerConfig {
        request_timeout_ms: 5_000,
        idle_timeout_ms: 30_000,
        admission: dyad_server::accept::AdmissionLimits {
            total: 100,
            per_address: 4,
        },
        ..fast()
    })
    .await;
    let token = srv.register("alice").await;
    // Authenticated WebSockets do not count against the limit.
    let mut sessions = Vec::new();
    for d in ["d1", "d2", "d3", "d4", "d5", "d6"] {
        sessions.push(srv.connect(&token, d).await);
    }
    // A request head that never ends, and a body that never ends.
    let mut head = TcpStream::connect(srv.addr).await.expect("connect");
    head.write_all(b"GET /healthz HTT").await.expect("write");
    let mut body = TcpStream::connect(srv.addr).await.expect("connect");
    body.write_all(
        b"POST /v1/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"username\"",
    )
    .await
    .expect("write");
    // Two silent sockets fill this address's quota of 4; a fifth is closed at once.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(srv.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(srv.addr).await.expect("connect");
    // (Well inside the 5 s head deadline, which would also end an admitted socket.)
    assert!(
        ended_within(&mut fifth, Duration::from_millis(1_500)).await,
        "a fifth unauthenticated socket from one address is refused"
    );
    for s in &mut silent {
        assert!(
            !ended_within(s, Duration::from_millis(100)).await,
            "admitted sockets wait for their request"
        );
    }
    // The trickling body gets its own answer; the others are cut at the head deadline.
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, body.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains(r#""code":"request_timeout""#), "{raw}");
    assert!(
        ended_within(&mut head, WAIT).await,
        "a head that never ends"
    );
    for s in &mut silent {
        assert!(ended_within(s, WAIT).await, "a silent socket");
    }
    // Quota free again; the WebSockets lived through all of it.
    let (status, _) = srv.http("GET", "/healthz", None, b"").await;
    assert_eq!(status, 200);
    for s in &mut sessions {
        s.send(r#"{"type":"ping"}"#).await;
        s.expect("pong", |m| *m == S::Pong).await;
    }
    srv.stop().await;
}

/// A new session's contact list comes from the store with the token check: sorted, with
/// presence.
#[tokio::test]
async fn contacts_come_back_sorted_with_presence_in_a_new_session() {
    let srv = TestServer::start(fast()).await;
    let (ta, tb) = (srv.register("alice").await, srv.register("bob").await);
    srv.register("carol").await;
    let mut a = srv.connect(&ta, "laptop").await;
    for (who, r) in [("carol", "1"), ("bob", "2")] {
        a.send(&format!(
            r#"{{"type":"contact_add","username":"{who}","ref":"{r}"}}"#
        ))
        .await;
        a.expect("ack", |m| matches!(m, S::Ack { .. })).await;
    }
    let mut b = srv.connect(&tb, "desk").await;
    b.send(r#"{"type":"contact_add","username":"alice","ref":"b"}"#)
        .await;
    b.expect(
        "alice online",
        |m| matches!(m, S::Contacts { contacts } if contacts.first().is_some_and(|c| c.presence == Presence::Online)),
    )
    .await;
    drop(a);
    b.expect("alice offline", |m| {
        matches!(
            m,
            S::Presence {
                presence: Presence::Offline,
                ..
            }
        )
    })
    .await;
    let mut a = srv.connect(&ta, "laptop").await;
    let S::Contacts { contacts } = a
        .expect("contacts", |m| matches!(m, S::Contacts { .. }))
        .await
    else {
        panic!("expect returned another message")
    };
    let got: Vec<(&str, Presence, ContactState)> = contacts
        .iter()
        .map(|c| (c.username.as_str(), c.presence, c.state))
        .collect();
    assert_eq!(
        got,
        vec![
            ("bob", Presence::Online, ContactState::Accepted),
            ("carol", Presence::Offline, ContactState::Requested)
        ]
    );
    srv.stop().await;
}
