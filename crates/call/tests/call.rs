//! End to end: a real signalling server on 127.0.0.1:0 and real clients (this crate's engine)
//! in the test, real WebRTC over loopback, real VP8 and Opus. Checks content: the test-pattern
//! frame numbers each side decodes from the other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dyad_call::engine::{CallEvent, ClientConfig};
use dyad_call::signal::ServerUrl;
use dyad_media::read_marker;
use dyad_proto::EndReason;
use dyad_server::config::ServerConfig;
use dyad_server::turn::{EmbeddedTurnConfig, TurnConfig};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carries_video_and_audio_both_ways_and_hangs_up() {
    let s = server(ServerConfig::default()).await;
    let (mut alice, mut bob) = connect_pair(&s, "alice", "bobby").await;
    let (a_frames, b_frames) = tokio::join!(
        alice.frame_numbers(Duration::from_secs(3)),
        bob.frame_numbers(Duration::from_secs(3))
    );
    for (who, f) in [("alice", &a_frames), ("bob", &b_frames)] {
        assert!(f.len() >= 40, "{who} decoded {} frames", f.len());
        assert!(strictly_increasing(f), "{who}: {f:?}");
    }
    let st = alice.stats().await;
    assert!(st.outbound_video.packets_sent > 0 && st.outbound_video.bitrate > 50_000.0);
    assert!(st.inbound_video.frames_decoded > 0 && st.inbound_video.frames_per_second > 15.0);
    assert_eq!(
        (st.inbound_video.frame_width, st.inbound_video.frame_height),
        (640, 480)
    );
    assert!(
        st.inbound_audio.frames_decoded > 0,
        "{:?}",
        st.inbound_audio
    );
    assert!(st.outbound_video.frames_encoded > 0);
    assert!(st.estimate.available_outgoing_bitrate >= 50_000.0);
    let g2g = st
        .inbound_video
        .glass_to_glass_ms
        .expect("latency from the markers");
    assert!(g2g > 0.0 && g2g < 1000.0, "{g2g}");
    let pair = st.candidate_pair.expect("a selected candidate pair");
    assert_eq!(pair.local_candidate_type, "host");
    assert!(
        alice
            .audio_frames
            .load(std::sync::atomic::Ordering::Relaxed)
            > 50
    );
    alice.h.hangup().expect("test");
    let (ra, hist) = alice.ended().await;
    let (rb, _) = bob.ended().await;
    assert_eq!((ra, rb), (EndReason::UserHangup, EndReason::UserHangup));
    assert!(!hist.snapshots.is_empty());
    assert!(hist.to_json().contains("\"inboundVideo\""));
    // The server's history row has the pair each side selected and the time to connect (its
    // writer runs behind the hub: wait for the end to be written).
    let mut row = None;
    for _ in 0..100 {
        let rows = s.store.history("alice", 1).await.expect("history");
        if rows.first().is_some_and(|r| r.ended_at_ms.is_some()) {
            row = rows.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = row.expect("the call's history row, ended");
    for path in [&row.caller_path, &row.callee_path] {
        let path = path.as_deref().unwrap_or_default();
        assert!(
            path.starts_with("host/") && path.ends_with(" udp"),
            "on loopback both sides use a host candidate over UDP: {row:?}"
        );
    }
    assert!(
        row.connect_ms.is_some_and(|ms| ms < 20_000),
        "time to connect recorded: {row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_and_cancel_end_both_sides_with_their_reason() {
    let s = server(ServerConfig::default()).await;
    let mut alice = user(&s, "alice").await;
    let mut bob = user(&s, "bobby").await;
    alice.h.dial("bobby").expect("test");
    bob.incoming().await;
    bob.h.reject().expect("test");
    assert_eq!(alice.ended().await.0, EndReason::Rejected);
    assert_eq!(bob.ended().await.0, EndReason::Rejected);

    alice.h.dial("bobby").expect("test");
    bob.incoming().await;
    alice
        .wait("remote ringing", |e| {
            matches!(e, CallEvent::RemoteRinging { .. }).then_some(())
        })
        .await;
    alice.h.hangup().expect("test");
    assert_eq!(alice.ended().await.0, EndReason::Cancelled);
    assert_eq!(bob.ended().await.0, EndReason::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_invite_times_out_and_a_busy_callee_says_so() {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    cfg.invite_lifetime_ms = 5_000;
    let mut alice = client(cfg).await;
    let mut bob = user(&s, "bobby").await;
    s.befriend("alice", "bobby").await;
    alice.h.dial("bobby").expect("test");
    bob.incoming().await;
    assert_eq!(alice.ended().await.0, EndReason::InviteTimeout);
    assert_eq!(bob.ended().await.0, EndReason::InviteTimeout);

    // bob in a call with carol: alice hears busy.
    let mut carol = user(&s, "carol").await;
    carol.h.dial("bobby").expect("test");
    bob.incoming().await;
    bob.h.accept().expect("test");
    carol.connected().await;
    alice.h.dial("bobby").expect("test");
    assert_eq!(alice.ended().await.0, EndReason::Busy);
    carol.h.hangup().expect("test");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
}

/// Issue 17 item 1: on the embedded server the echo contact's account had a fixed, published
/// password and the default device id, so another local user could sign in as it, replace the
/// bot's connection and receive the victim's "Echo test" call. Now its token is minted from the
/// store and no password signs in as it; the victim's call still reaches the real bot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_sign_in_as_the_local_echo_contact() {
    use dyad_server::embedded::{EmbeddedServer, ECHO_USER};
    let server = EmbeddedServer::start(dyad_server::Store::open_in_memory().await.expect("store"))
        .await
        .expect("embedded");
    let url = ServerUrl::parse(&server.url).expect("url");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = server.echo_token(now).await.expect("echo token");
    let _bot = dyad_call::echo::EchoBot::start(url.clone(), ECHO_USER, token)
        .await
        .expect("bot");
    // The password the bot used to have, and a few others: none signs in; the name is taken.
    for guess in [
        "dyad echo bot password",
        "dyad local password",
        "password of echo",
    ] {
        assert!(
            dyad_call::signal::login(&url, ECHO_USER, guess)
                .await
                .is_err(),
            "signed in as the echo contact with {guess:?}"
        );
    }
    assert!(
        dyad_call::signal::register(&url, ECHO_USER, "a brand new password")
            .await
            .is_err()
    );
    // The victim's echo test reaches the bot: its own frames come back.
    let mut cfg = ClientConfig::new(url, "victim", "");
    cfg.token = Some(server.local_token("victim", now).await.expect("token"));
    cfg.register = false;
    server.add_echo_contact("victim").await.expect("contact");
    let mut victim = client(cfg).await;
    victim.h.dial(ECHO_USER).expect("dial");
    victim.connected().await;
    let frames = victim.frame_numbers(Duration::from_secs(2)).await;
    assert!(
        frames.len() >= 20 && strictly_increasing(&frames),
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_sends_our_own_frames_back() {
    let s = server(ServerConfig::default()).await;
    let echo_cfg = ClientConfig::new(s.url.clone(), "echo", "password of echo").echo();
    let _echo = client(echo_cfg).await;
    let mut alice = user(&s, "alice").await;
    // The bot accepts every contact request (only contacts may call).
    befriend_live(&mut alice, "alice", None, "echo").await;
    alice.h.dial("echo").expect("test");
    alice.connected().await;
    let frames = alice.frame_numbers(Duration::from_secs(3)).await;
    assert!(frames.len() >= 30, "{} frames back", frames.len());
    assert!(strictly_increasing(&frames), "{frames:?}");
    // They are alice's own numbers: the test pattern alice sends started at 0 a moment ago.
    assert!(*frames.last().expect("test") < 30 * 10);
    let st = alice.stats().await;
    assert!(st.inbound_audio.frames_decoded > 0);
    alice.h.hangup().expect("test");
    assert_eq!(alice.ended().await.0, EndReason::UserHangup);
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("test")
        .local_addr()
        .expect("test")
        .port()
}

/// The shared secret of [`embedded_relay`]'s credentials.
const TURN_SECRET: &[u8] = b"turn test secret";

/// An embedded TURN server on loopback (UDP, and TCP on the same port); `loopback_peers`: it
/// relays to loopback addresses too.
async fn embedded_relay(
    loopback_peers: bool,
) -> (EmbeddedTurnConfig, dyad_server::turn::EmbeddedTurn) {
    let port = free_udp_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("test");
    let mut turn = EmbeddedTurnConfig::new(listen, listen.ip(), TURN_SECRET.to_vec(), 600);
    if loopback_peers {
        turn.allow_peers = vec!["127.0.0.0/8".parse().expect("net")];
    }
    let relay = dyad_server::turn::start_embedded_turn(turn.clone())
        .await
        .expect("test");
    (turn, relay)
}

/// A signalling server handing out an embedded TURN server on loopback; `loopback_peers`: it
/// relays to loopback addresses too (else, as by default, only to public ones and its own relays).
async fn server_with_turn(loopback_peers: bool) -> (Server, dyad_server::turn::EmbeddedTurn) {
    let (turn, relay) = embedded_relay(loopback_peers).await;
    let s = server(ServerConfig {
        turn: Some(TurnConfig::Embedded(turn)),
        ..ServerConfig::default()
    })
    .await;
    (s, relay)
}

/// alice calls bobby with both relay-only (`befriend` makes them contacts); checks frames flow
/// both ways and hangs up; returns alice's selected pair.
async fn relay_only_call(
    url: &ServerUrl,
    befriend: impl std::future::Future<Output = ()>,
) -> dyad_call::rtc::PathInfo {
    let mut a_cfg = ClientConfig::new(url.clone(), "alice", "password of alice");
    a_cfg.relay_only = true;
    let mut b_cfg = ClientConfig::new(url.clone(), "bobby", "password of bobby");
    b_cfg.relay_only = true;
    let mut alice = client(a_cfg).await;
    let mut bob = client(b_cfg).await;
    befriend.await;
    alice.h.dial("bobby").expect("test");
    bob.incoming().await;
    bob.h.accept().expect("test");
    alice.connected().await;
    bob.connected().await;
    let frames = bob.frame_numbers(Duration::from_secs(2)).await;
    assert!(
        frames.len() >= 20 && strictly_increasing(&frames),
        "{frames:?}"
    );
    let frames = alice.frame_numbers(Duration::from_secs(1)).await;
    assert!(
        frames.len() >= 10 && strictly_increasing(&frames),
        "{frames:?}"
    );
    let pair = alice.stats().await.candidate_pair.expect("pair");
    alice.h.hangup().expect("test");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    pair
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_embedded_turn_server_only() {
    // No peer networks allowed: both sides are relayed, so each relay's peer is the other relay
    // on the server's own address, which the guard allows for live relays only.
    let (s, relay) = server_with_turn(false).await;
    let pair = relay_only_call(&s.url, s.befriend("alice", "bobby")).await;
    assert_eq!(pair.local_candidate_type, "relay", "{pair:?}");
    relay.close().await;
}

/// A network that lets no UDP out to the server: the server hands out TURN over TCP only, and
/// both sides are relay-only. The call runs through the local shims over TCP to the embedded
/// relay (the agent itself speaks TURN over UDP only), and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_relayed_over_tcp_only_connects_and_names_its_path() {
    let (_, relay) = embedded_relay(false).await;
    let tcp = relay.tcp_addr().expect("TURN over TCP");
    let s = server(ServerConfig {
        turn: Some(TurnConfig::External {
            urls: vec![format!("turn:{tcp}?transport=tcp")],
            secret: TURN_SECRET.to_vec(),
            ttl_secs: 600,
        }),
        ..ServerConfig::default()
    })
    .await;
    let pair = relay_only_call(&s.url, s.befriend("alice", "bobby")).await;
    assert_eq!(
        (pair.local_candidate_type.as_str(), pair.protocol.as_str()),
        ("relay", "tcp"),
        "{pair:?}"
    );
    assert!(pair.describe().ends_with("over TCP"), "{}", pair.describe());
    relay.close().await;
}

/// A network that allows only TLS to the server's HTTPS port: the server hands out `turns:` on
/// that port only (TURN over TLS, ALPN `stun.turn`), both sides are relay-only, and the call runs
/// through the shims over TLS, trusting what the server URL trusts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_relayed_over_tls_on_the_https_port_connects_and_names_its_path() {
    let (_, relay) = embedded_relay(false).await;
    let streams = relay.streams();
    let s = common::tls_server_with("turns", ServerConfig::default(), |c, https| {
        c.turn = Some(TurnConfig::External {
            urls: vec![format!("turns:localhost:{https}?transport=tcp")],
            secret: TURN_SECRET.to_vec(),
            ttl_secs: 600,
        });
        c.turn_over_tls = Some(streams);
    })
    .await;
    let url = ServerUrl::parse(&format!("https://localhost:{}", s.port))
        .expect("url")
        .trusting(s.cert_pem.as_bytes())
        .expect("pem");
    let store = s.store.clone();
    let befriend = async move {
        store
            .make_contacts("alice", "bobby")
            .await
            .expect("contacts");
    };
    let pair = relay_only_call(&url, befriend).await;
    assert_eq!(
        (pair.local_candidate_type.as_str(), pair.protocol.as_str()),
        ("relay", "tls"),
        "{pair:?}"
    );
    relay.close().await;
}

/// Bob lets anyone call; mallory, not a contact, calls him. The call rings as a stranger's and
/// runs relay to relay: bob gathers no other candidate and the server passes none, so mallory
/// never learns bob's address (neither side is configured relay-only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_call_runs_through_the_relay_only() {
    // Loopback peers allowed, as public addresses would be: so a host candidate of bob's, if
    // one were used, would connect and show.
    let (s, relay) = server_with_turn(true).await;
    let mut bob = user(&s, "bobby").await;
    let mut mallory = client(ClientConfig::new(
        s.url.clone(),
        "mallory",
        "password of mallory",
    ))
    .await;
    // Not a contact and bob's door closed: refused.
    mallory.h.dial("bobby").expect("dial");
    let code = mallory
        .wait("refusal", |e| match e {
            CallEvent::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "not_allowed");
    mallory.ended().await;
    bob.h.set_privacy(true).expect("privacy");
    bob.wait("privacy open", |e| {
        matches!(
            e,
            CallEvent::Privacy {
                anyone_may_call: true
            }
        )
        .then_some(())
    })
    .await;
    mallory.h.dial("bobby").expect("dial");
    let stranger = bob
        .wait("incoming", |e| match e {
            CallEvent::Incoming { stranger, .. } => Some(*stranger),
            _ => None,
        })
        .await;
    assert!(stranger, "the call is marked as a stranger's");
    bob.h.accept().expect("accept");
    mallory.connected().await;
    bob.connected().await;
    let frames = bob.frame_numbers(Duration::from_secs(2)).await;
    assert!(
        frames.len() >= 20 && strictly_increasing(&frames),
        "{frames:?}"
    );
    let theirs = mallory.stats().await.candidate_pair.expect("pair");
    assert_eq!(
        theirs.remote_candidate_type, "relay",
        "mallory reaches bob only at his relay: {theirs:?}"
    );
    let ours = bob.stats().await.candidate_pair.expect("pair");
    assert_eq!(ours.local_candidate_type, "relay", "{ours:?}");
    mallory.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    relay.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_get_a_keyframe_request_and_the_picture_recovers() {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    // Every 20th frame alice sends is garbage that libvpx refuses.
    cfg.corrupt_every = Some(20);
    let mut alice = client(cfg).await;
    let mut bob = user(&s, "bobby").await;
    s.befriend("alice", "bobby").await;
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    alice.connected().await;
    bob.connected().await;
    let frames = bob.frame_numbers(Duration::from_secs(4)).await;
    assert!(frames.len() >= 40, "{} frames", frames.len());
    assert!(strictly_increasing(&frames), "{frames:?}");
    // Frames kept decoding after the first corrupt one (number 20 onwards).
    assert!(*frames.last().expect("frames") > 60, "{frames:?}");
    let mut sent = alice.stats().await;
    let mut got = bob.stats().await;
    for _ in 0..3 {
        sent = alice.stats().await;
        got = bob.stats().await;
    }
    assert!(
        got.inbound_video.pli_count > 0,
        "bob asked for keyframes: {:?}",
        got.inbound_video
    );
    assert!(got.inbound_video.frames_dropped > 0);
    assert!(sent.outbound_video.pli_count > 0, "alice heard them");
    assert!(
        sent.outbound_video.key_frames_encoded > 1,
        "and sent keyframes"
    );
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_that_never_decodes_ends_the_call_media_failed() {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    cfg.corrupt_every = Some(1);
    let mut alice = client(cfg).await;
    let mut bob = user(&s, "bobby").await;
    s.befriend("alice", "bobby").await;
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    bob.connected().await;
    let started = tokio::time::Instant::now();
    assert_eq!(bob.ended().await.0, EndReason::MediaFailed);
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(alice.ended().await.0, EndReason::MediaFailed);
}

/// A raw protocol client (no engine): the other side may send anything.
async fn raw_peer(
    s: &Server,
    name: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let session = dyad_call::signal::login_or_register(&s.url, name, "password of raw")
        .await
        .expect("register");
    let url = format!(
        "ws://{}/v1/ws?device=raw&token={}",
        s.url.host_port(),
        session.token
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    ws
}

async fn raw_until(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    want: &str,
) -> serde_json::Value {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {want}"))
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).expect("json");
            if v["type"] == want {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_end_the_call_with_a_reason_and_the_client_keeps_working() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = server(ServerConfig::default()).await;
    let mut bob = user(&s, "bobby").await;
    let mut raw = raw_peer(&s, "mallory").await;
    // A hostile peer that bob accepted as a contact (strangers cannot call at all).
    s.befriend("bobby", "mallory").await;
    let h264_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:102 H264/90000\r\n";
    for (i, sdp) in ["v=0 this is not SDP\r\nm=nonsense", h264_only]
        .into_iter()
        .enumerate()
    {
        let call_id = format!("bad-offer-{i:04}");
        let invite = serde_json::json!({
            "type": "invite", "call_id": call_id, "to": "bobby", "sdp": sdp
        });
        raw.send(Message::text(invite.to_string()))
            .await
            .expect("send");
        bob.incoming().await;
        bob.h.accept().expect("accept");
        let code = bob
            .wait("error", |e| match e {
                CallEvent::Error { code, .. } => Some(code.clone()),
                _ => None,
            })
            .await;
        assert!(code == "bad_sdp" || code == "no_common_codec", "{code}");
        assert_eq!(bob.ended().await.0, EndReason::MediaFailed);
        let ended = raw_until(&mut raw, "call_ended").await;
        assert_eq!(ended["reason"], "media_failed", "{ended}");
        // A candidate for the closed call: the server refuses it; bob never sees it.
        let late = serde_json::json!({
            "type": "candidates", "call_id": call_id,
            "candidates": [{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}]
        });
        raw.send(Message::text(late.to_string()))
            .await
            .expect("send");
        raw_until(&mut raw, "error").await;
    }
    // bob still works: a real call connects.
    let mut alice = user(&s, "alice").await;
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    alice.connected().await;
    let frames = alice.frame_numbers(Duration::from_secs(1)).await;
    assert!(!frames.is_empty());
    alice.h.hangup().expect("hangup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_off_shows_black_not_a_frozen_frame_and_comes_back() {
    let s = server(ServerConfig::default()).await;
    let (alice, bob) = connect_pair(&s, "alice", "bobby").await;
    assert!(!bob
        .frame_numbers(Duration::from_millis(800))
        .await
        .is_empty());
    alice.h.mute_video(true).expect("mute");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While muted: frames keep coming (5 fps), black, without markers.
    let mut rx = bob.h.remote_video();
    let end = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut black = 0;
    while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
        let f = rx.borrow_and_update().clone().expect("frame");
        assert!(
            read_marker(&f.frame).is_err(),
            "a test-pattern frame while muted"
        );
        let mean =
            f.frame.y().iter().map(|&v| u64::from(v)).sum::<u64>() / f.frame.y().len() as u64;
        assert!(mean < 40, "not black: mean luma {mean}");
        black += 1;
    }
    assert!(black >= 3, "{black} black frames in 1 s");
    alice.h.mute_video(false).expect("unmute");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames = bob.frame_numbers(Duration::from_secs(1)).await;
    assert!(frames.len() >= 10, "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_when_the_server_comes_back() {
    let srv = Restartable::new("reconnect", ServerConfig::default()).await;
    let (addr, dir) = (srv.addr, srv.dir.clone());
    let (stop1, first) = srv.start().await;
    let url = ServerUrl::parse(&format!("http://{addr}")).expect("url");
    let mut alice = client(ClientConfig::new(url.clone(), "alice", "password of alice")).await;
    let _ = stop1.send(());
    first.await.expect("first server stopped");
    alice
        .wait("signalling lost", |e| {
            matches!(e, CallEvent::SignallingLost).then_some(())
        })
        .await;
    // Same address, same database: the token still holds.
    let (_stop2, _second) = srv.start().await;
    alice
        .wait("signalling back", |e| {
            matches!(e, CallEvent::SignallingRestored).then_some(())
        })
        .await;
    let mut bob = client(ClientConfig::new(url, "bobby", "password of bobby")).await;
    befriend_live(&mut alice, "alice", Some(&mut bob), "bobby").await;
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    alice.connected().await;
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_video_source_mid_call_needs_no_redial() {
    // A Y4M file whose frames carry numbers from 100 000: after the switch the far side must
    // read those.
    let path = std::env::temp_dir().join(format!("dyad-switch-{}.y4m", std::process::id()));
    let format = dyad_media::VideoFormat {
        width: 640,
        height: 480,
        fps: 30,
    };
    let file = std::fs::File::create(&path).expect("create y4m");
    let mut w = dyad_media::Y4mWriter::new(std::io::BufWriter::new(file), format).expect("y4m");
    for i in 0..60 {
        let f = dyad_media::testpattern::render(640, 480, 100_000 + i, 0).expect("render");
        w.write_frame(&f).expect("write");
    }
    w.finish().expect("finish");
    let s = server(ServerConfig::default()).await;
    let (alice, mut bob) = connect_pair(&s, "alice", "bobby").await;
    let before = bob.frame_numbers(Duration::from_millis(800)).await;
    assert!(before.iter().all(|&n| n < 100_000) && !before.is_empty());
    alice
        .h
        .switch_video(dyad_call::VideoInput::Y4m(path.clone()))
        .expect("switch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = bob.frame_numbers(Duration::from_secs(1)).await;
    assert!(after.len() >= 10, "{after:?}");
    assert!(after.iter().all(|&n| n >= 100_000), "{after:?}");
    // Same call throughout.
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(10), bob.ev.recv()).await {
        assert!(!matches!(e, CallEvent::Ended { .. }), "{e:?}");
    }
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_arrives_at_its_frequency_and_level() {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    cfg.media.audio = dyad_call::AudioInput::Tone;
    let mut alice = client(cfg).await;
    let mut bob = user(&s, "bobby").await;
    s.befriend("alice", "bobby").await;
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    bob.h.set_audio_sink(Box::new(KeepSink(Arc::clone(&heard))));
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    bob.connected().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_level = alice.stats().await.outbound_audio.audio_level_dbfs;
    let samples = heard.lock().expect("lock").clone();
    // The last second, 48 kHz mono.
    assert!(samples.len() >= 48_000, "{} samples", samples.len());
    let last = &samples[samples.len() - 48_000..];
    let crossings = last.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let hz = crossings as f64 / 2.0;
    assert!((hz - 440.0).abs() <= 5.0, "{hz} Hz");
    let rms = (last.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / last.len() as f64).sqrt();
    let level = 20.0 * (rms / 32768.0).log10();
    assert!(
        (level - sent_level).abs() <= 2.0,
        "sent {sent_level:.1} dBFS, heard {level:.1}"
    );
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
}

/// What alice hears of her own voice (speech-like) when bobby's loudspeaker plays it into a
/// simulated room whose microphone bobby sends back, with `processing` on bobby's microphone:
/// the level of the last 3 s of an 8 s call, dBFS (the near end of bobby's room is silent, so
/// all of it is echo).
async fn own_voice_heard_back(processing: dyad_media::ProcessingConfig) -> f64 {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    cfg.media.audio = dyad_call::AudioInput::Speech;
    let alice = client(cfg).await;
    let (speaker, microphone) =
        dyad_media::room::acoustic_loop(dyad_media::room::EchoPath::default(), Some(-85.0), 3);
    let mut cfg = ClientConfig::new(s.url.clone(), "bobby", "password of bobby");
    cfg.media.audio = dyad_call::AudioInput::Microphone;
    cfg.media.microphone = Some(dyad_call::media::SharedMicrophone::new(microphone));
    cfg.media.processing = processing;
    let mut bob = client(cfg).await;
    s.befriend("alice", "bobby").await;
    bob.h.set_audio_sink(Box::new(speaker));
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    alice
        .h
        .set_audio_sink(Box::new(KeepSink(Arc::clone(&heard))));
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    bob.connected().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let samples = heard.lock().expect("lock").clone();
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    assert!(
        samples.len() >= 3 * 48_000,
        "{} samples heard",
        samples.len()
    );
    let last = &samples[samples.len() - 3 * 48_000..];
    let power = last.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / last.len() as f64;
    10.0 * (power.max(1e-3) / (32768.0 * 32768.0)).log10()
}

/// Echo cancellation in a real call: the playout thread feeds the canceller what the
/// loudspeaker plays, the capture thread cancels it from the microphone. Off, alice hears her
/// own voice come back from bobby's room (≈ 10 dB below what she sends); on, it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_side_does_not_hear_itself_from_our_loudspeaker() {
    let off = own_voice_heard_back(dyad_media::ProcessingConfig::OFF).await;
    assert!(
        off > -45.0,
        "without cancellation the echo is loud: {off:.1} dBFS"
    );
    let on = own_voice_heard_back(dyad_media::ProcessingConfig::ALL).await;
    eprintln!("own voice heard back: {off:.1} dBFS without cancellation, {on:.1} dBFS with");
    assert!(
        on < off - 25.0,
        "echo {on:.1} dBFS with cancellation, {off:.1} dBFS without"
    );
}

/// A microphone that gives a tone for `frames` frames and then fails, as an unplugged one does.
struct UnpluggedAfter {
    tone: dyad_media::Tone,
    frames: u32,
}

impl dyad_media::AudioSource for UnpluggedAfter {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> dyad_media::Result<dyad_media::AudioFrame> {
        if self.frames == 0 {
            return Err(dyad_media::MediaError::Device("the device is gone".into()));
        }
        self.frames -= 1;
        self.tone.next_frame()
    }
}

/// A call from bobby, whose microphone is `source` standing in for a real one (with
/// `processing`), to alice, who keeps what she hears: (server, alice, bobby, alice's samples).
async fn call_from_a_stand_in_microphone(
    source: impl dyad_media::AudioSource + 'static,
    microphone_id: Option<&str>,
    processing: dyad_media::ProcessingConfig,
) -> (Server, Peer, Peer, Arc<std::sync::Mutex<Vec<i16>>>) {
    let s = server(ServerConfig::default()).await;
    let mut alice = user(&s, "alice").await;
    let mut cfg = ClientConfig::new(s.url.clone(), "bobby", "password of bobby");
    cfg.media.audio = dyad_call::AudioInput::Microphone;
    cfg.media.microphone_id = microphone_id.map(str::to_string);
    cfg.media.microphone = Some(dyad_call::media::SharedMicrophone::new(source));
    cfg.media.processing = processing;
    let bob = client(cfg).await;
    s.befriend("alice", "bobby").await;
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    alice
        .h
        .set_audio_sink(Box::new(KeepSink(Arc::clone(&heard))));
    bob.h.dial("alice").expect("dial");
    alice.incoming().await;
    alice.h.accept().expect("accept");
    alice.connected().await;
    (s, alice, bob, heard)
}

fn a_tone() -> dyad_media::Tone {
    dyad_media::Tone::new(1, dyad_media::clock::system_clock(), 440.0, -20.0).expect("tone")
}

/// Unplugging the microphone mid-call: the call says so and goes on (on this machine, with no
/// other microphone, with silence), instead of quietly sending nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microphone_unplugged_mid_call_is_replaced_and_the_user_told() {
    let unplugged = UnpluggedAfter {
        tone: a_tone(),
        frames: 100,
    };
    let (_s, mut alice, mut bob, heard) = call_from_a_stand_in_microphone(
        unplugged,
        Some("alsa:hw:CARD=Gone,DEV=0"),
        dyad_media::ProcessingConfig::ALL,
    )
    .await;
    let message = bob.error("microphone_replaced").await;
    assert!(message.contains("The microphone stopped"), "{message}");
    // Audio keeps flowing after it (silence here: this machine has no other microphone).
    let before = heard.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = heard.lock().expect("lock").len();
    assert!(
        after - before >= 40_000,
        "{} samples in 1 s",
        after - before
    );
    bob.h.hangup().expect("hangup");
    assert_eq!(alice.ended().await.0, EndReason::UserHangup);
}

/// A microphone that stalls once (a read timeout) and goes on.
struct StallsOnce {
    tone: dyad_media::Tone,
    frames: u32,
}

impl dyad_media::AudioSource for StallsOnce {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> dyad_media::Result<dyad_media::AudioFrame> {
        self.frames += 1;
        if self.frames == 50 {
            return Err(dyad_media::MediaError::Timeout("a stall".into()));
        }
        self.tone.next_frame()
    }
}

/// One stall of the microphone is not an unplug: nothing is replaced and the tone goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microphone_that_stalls_once_is_kept() {
    let stalls = StallsOnce {
        tone: a_tone(),
        frames: 0,
    };
    let (_s, mut alice, mut bob, heard) =
        call_from_a_stand_in_microphone(stalls, None, dyad_media::ProcessingConfig::OFF).await;
    // Past the stall (frame 50 = 1 s) by two seconds: no replacement said, the tone still heard.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, bob.ev.recv()).await {
        if let CallEvent::Error { code, message } = &ev {
            assert_ne!(code, "microphone_replaced", "{message}");
        }
    }
    let samples = heard.lock().expect("lock").clone();
    let (hz, _) = tone_of(&samples).expect("a second heard");
    assert!((hz - 440.0).abs() <= 5.0, "{hz} Hz");
    bob.h.hangup().expect("hangup");
    assert_eq!(alice.ended().await.0, EndReason::UserHangup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_only_client_whose_token_expired_says_so_once_and_stops() {
    let config = ServerConfig {
        token_ttl_secs: 2,
        ..ServerConfig::default()
    };
    let srv = Restartable::new("expired", config).await;
    let (addr, dir) = (srv.addr, srv.dir.clone());
    let (stop1, first) = srv.start().await;
    let url = ServerUrl::parse(&format!("http://{addr}")).expect("url");
    let session = dyad_call::signal::register(&url, "alice", "password of alice")
        .await
        .expect("register");
    // As the desktop app starts it: the stored token, no password.
    let mut cfg = ClientConfig::new(url, "alice", "");
    cfg.token = Some(session.token);
    cfg.register = false;
    let mut alice = client(cfg).await;
    let _ = stop1.send(());
    first.await.expect("first server stopped");
    alice
        .wait("signalling lost", |e| {
            matches!(e, CallEvent::SignallingLost).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_stop2, _second) = srv.start().await;
    let code = alice
        .wait("session expired", |e| match e {
            CallEvent::SessionExpired { code, .. } => Some(code.clone()),
            CallEvent::SignallingRestored => panic!("an expired token was accepted"),
            _ => None,
        })
        .await;
    // `token_expired`, or `unauthorized` once the restarted server's purge has deleted it.
    assert!(code == "token_expired" || code == "unauthorized", "{code}");
    // Final: no more attempts (each would be an error event, and a login the server counts).
    let more = tokio::time::timeout(Duration::from_secs(4), alice.ev.recv()).await;
    assert!(
        !matches!(
            more,
            Ok(Some(
                CallEvent::Error { .. } | CallEvent::SessionExpired { .. }
            ))
        ),
        "{more:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A microphone 150 ms slow (a Bluetooth headset): each frame reaches the encoder 150 ms after
/// it was captured, and says so in its capture time. What it heard: a 100 ms, 1 kHz burst at
/// the start of every second of the capture clock, silence between.
struct SlowMicrophone;

const MIC_LATENCY_US: u64 = 150_000;

impl dyad_media::AudioSource for SlowMicrophone {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> dyad_media::Result<dyad_media::AudioFrame> {
        let captured = unix_us() - MIC_LATENCY_US;
        let samples = (0..960u64)
            .map(|i| {
                let t = captured + i * 1_000_000 / 48_000;
                if t % 1_000_000 < 100_000 {
                    let phase = (t % 1000) as f64 / 1000.0 * std::f64::consts::TAU;
                    (phase.sin() * 12_000.0) as i16
                } else {
                    0
                }
            })
            .collect();
        dyad_media::AudioFrame::new(1, samples, captured)
    }
}

/// Keeps when each sample was handed to the speaker: (Unix µs of a frame's first sample, its
/// samples).
type Played = Arc<std::sync::Mutex<Vec<(u64, Vec<i16>)>>>;

struct TimedSink(Played);

impl dyad_media::AudioSink for TimedSink {
    fn play(&mut self, frame: &dyad_media::AudioFrame) -> dyad_media::Result<()> {
        if let Ok(mut v) = self.0.lock() {
            v.push((unix_us(), frame.samples.clone()));
        }
        Ok(())
    }
}

/// Alice (slow microphone, test pattern) calls bobby; from 6 s to 12 s into the call bobby
/// measures, at his speaker and his screen, how long after capture each burst starts playing
/// and each frame is shown. Returns (median video delay − median audio delay, ms; the offset
/// bobby's statistics showed, ms).
async fn lip_sync_offset(lip_sync: bool) -> (f64, f64) {
    let s = server(ServerConfig::default()).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    cfg.media.audio = dyad_call::AudioInput::Microphone;
    cfg.media.microphone = Some(dyad_call::media::SharedMicrophone::new(SlowMicrophone));
    cfg.media.processing = dyad_media::ProcessingConfig::OFF;
    let alice = client(cfg).await;
    let mut cfg = ClientConfig::new(s.url.clone(), "bobby", "password of bobby");
    cfg.lip_sync = lip_sync;
    let mut bob = client(cfg).await;
    s.befriend("alice", "bobby").await;
    let played: Played = Arc::default();
    bob.h
        .set_audio_sink(Box::new(TimedSink(Arc::clone(&played))));
    alice.h.dial("bobby").expect("dial");
    bob.incoming().await;
    bob.h.accept().expect("accept");
    bob.connected().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let from = unix_us();
    let mut rx = bob.h.remote_video();
    let mut video = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
        let f = rx.borrow_and_update().clone();
        if let Some(m) = f.and_then(|f| read_marker(&f.frame).ok()) {
            video.push(m.age_us(unix_us()) as f64 / 1e3);
        }
    }
    // What bobby's statistics showed over the same seconds (the last five snapshots).
    let history = bob.h.stats().await.expect("stats").expect("a call");
    let mut offsets: Vec<f64> = history
        .snapshots
        .iter()
        .rev()
        .take(5)
        .filter_map(|s| s.av_sync.offset_ms)
        .collect();
    offsets.sort_by(f64::total_cmp);
    let shown = offsets.get(offsets.len() / 2).copied();
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    // Each burst's first loud sample, after at least 200 ms of quiet.
    let mut audio = Vec::new();
    let mut quiet_since: Option<u64> = None;
    for (at, samples) in played.lock().expect("lock").iter() {
        for (i, v) in samples.iter().enumerate() {
            let t = at + i as u64 * 1_000_000 / 48_000;
            if v.unsigned_abs() > 3000 {
                if quiet_since.is_some_and(|q| t.saturating_sub(q) > 200_000) && t > from {
                    // Captured at the whole second before (the delay is well under 1 s).
                    audio.push((t % 1_000_000) as f64 / 1e3);
                }
                quiet_since = None;
            } else {
                quiet_since.get_or_insert(t);
            }
        }
    }
    assert!(audio.len() >= 4, "bursts heard: {audio:?}");
    assert!(video.len() >= 100, "{} frames shown", video.len());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (v, a) = (median(video), median(audio.clone()));
    eprintln!(
        "lip sync {}: video {v:.0} ms after capture, audio {a:.0} ms ({audio:.0?}); shown \
         {shown:?}",
        if lip_sync { "on" } else { "off" }
    );
    (v - a, shown.unwrap_or(f64::NAN))
}

/// Lip sync in a real call, measured at the receiver's speaker and screen: with a microphone
/// 150 ms slower than the camera, the picture is held back until both play within ±45 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sound_and_picture_play_within_45_ms_of_each_other() {
    let (off, _) = lip_sync_offset(false).await;
    assert!(
        off < -100.0,
        "without lip sync the picture leads: {off:.0} ms"
    );
    let (on, shown) = lip_sync_offset(true).await;
    assert!(on.abs() <= 45.0, "offset {on:.0} ms with lip sync");
    assert!(
        (shown - on).abs() <= 35.0,
        "the statistics showed {shown:.0} ms, measured {on:.0} ms"
    );
}

/// A speaker that plays `frames` frames and then fails as an unplugged device does; counts
/// every frame it is handed after that.
struct UnpluggedSpeaker {
    frames: u32,
    after: Arc<std::sync::atomic::AtomicU32>,
}

impl dyad_media::AudioSink for UnpluggedSpeaker {
    fn play(&mut self, _: &dyad_media::AudioFrame) -> dyad_media::Result<()> {
        if self.frames == 0 {
            self.after
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(dyad_media::MediaError::Device("the device is gone".into()));
        }
        self.frames -= 1;
        Ok(())
    }
}

/// The speaker in use goes away mid-call: the system default takes over (none here, so the
/// call goes on silent), the user is told once, the dead device is not fed again, and the
/// call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_unplugged_mid_call_is_replaced_and_the_user_told() {
    let s = server(ServerConfig::default()).await;
    let (alice, mut bob) = connect_pair(&s, "alice", "bobby").await;
    let after = Arc::new(std::sync::atomic::AtomicU32::new(0));
    bob.h.set_audio_sink(Box::new(UnpluggedSpeaker {
        frames: 50,
        after: Arc::clone(&after),
    }));
    let message = bob.error("speaker_replaced").await;
    assert!(message.contains("The speaker stopped"), "{message}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        after.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the gone device was fed again"
    );
    // Still the same call, and the picture still moves.
    let frames = bob.frame_numbers(Duration::from_secs(1)).await;
    assert!(frames.len() >= 10, "{frames:?}");
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(10), bob.ev.recv()).await {
        if let CallEvent::Error { code, message } = &e {
            assert_ne!(code, "speaker_replaced", "told twice: {message}");
        }
    }
    alice.h.hangup().expect("hangup");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
}
