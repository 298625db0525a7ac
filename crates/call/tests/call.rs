//! End to end: a real signalling server on 127.0.0.1:0 and real clients (this crate's engine)
//! in the test, real WebRTC over loopback, real VP8 and Opus. Checks content: the test-pattern
//! frame numbers each side decodes from the other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dyad_call::engine::{CallEvent, ClientConfig, ClientHandle, CountingSink};
use dyad_call::signal::ServerUrl;
use dyad_media::read_marker;
use dyad_proto::EndReason;
use dyad_server::config::ServerConfig;
use dyad_server::turn::{EmbeddedTurnConfig, TurnConfig};
use dyad_server::Store;
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(20);

struct Server {
    url: ServerUrl,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn server(config: ServerConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test");
    let addr = listener.local_addr().expect("test");
    let store = Store::open_in_memory().await.expect("test");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        dyad_server::run(listener, store, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("test");
    });
    Server {
        url: ServerUrl::parse(&format!("http://{addr}")).expect("test"),
        stop: Some(stop),
    }
}

struct Peer {
    h: ClientHandle,
    ev: mpsc::UnboundedReceiver<CallEvent>,
    audio_frames: Arc<std::sync::atomic::AtomicU64>,
}

async fn client(cfg: ClientConfig) -> Peer {
    let (h, mut ev) = dyad_call::start(cfg).await.expect("test");
    match ev.recv().await {
        Some(CallEvent::SignedIn { .. }) => {}
        other => panic!("expected signed in, got {other:?}"),
    }
    let sink = CountingSink::default();
    let audio_frames = Arc::clone(&sink.frames);
    h.set_audio_sink(Box::new(sink));
    Peer {
        h,
        ev,
        audio_frames,
    }
}

async fn user(s: &Server, name: &str) -> Peer {
    client(ClientConfig::new(
        s.url.clone(),
        name,
        &format!("password of {name}"),
    ))
    .await
}

impl Peer {
    /// The first event `pick` maps to `Some`, skipping others (stats, presence...).
    async fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&CallEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.ev.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap_or_else(|| panic!("client stopped while waiting for {what}"));
            if let Some(t) = pick(&ev) {
                return t;
            }
        }
    }

    async fn incoming(&mut self) -> String {
        self.wait("incoming", |e| match e {
            CallEvent::Incoming { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .await
    }

    async fn connected(&mut self) {
        self.wait("connected", |e| {
            matches!(e, CallEvent::Connected { .. }).then_some(())
        })
        .await
    }

    async fn ended(&mut self) -> (EndReason, Arc<dyad_call::stats::StatsHistory>) {
        self.wait("ended", |e| match e {
            CallEvent::Ended { reason, stats, .. } => Some((*reason, Arc::clone(stats))),
            _ => None,
        })
        .await
    }

    async fn stats(&mut self) -> dyad_call::stats::StatsSnapshot {
        self.wait("stats", |e| match e {
            CallEvent::Stats(s) => Some((**s).clone()),
            _ => None,
        })
        .await
    }

    /// Frame numbers read from the decoded remote video for `d`.
    async fn frame_numbers(&self, d: Duration) -> Vec<u32> {
        let mut rx = self.h.remote_video();
        let mut out = Vec::new();
        let end = tokio::time::Instant::now() + d;
        while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
            let frame = rx.borrow_and_update().clone();
            if let Some(f) = frame {
                if let Ok(m) = read_marker(&f.frame) {
                    out.push(m.frame);
                }
            }
        }
        out
    }
}

fn strictly_increasing(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

async fn connect_pair(s: &Server, a: &str, b: &str) -> (Peer, Peer) {
    let mut alice = user(s, a).await;
    let mut bob = user(s, b).await;
    alice.h.dial(b).expect("test");
    bob.incoming().await;
    bob.h.accept().expect("test");
    alice.connected().await;
    bob.connected().await;
    (alice, bob)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_sends_our_own_frames_back() {
    let s = server(ServerConfig::default()).await;
    let echo_cfg = ClientConfig::new(s.url.clone(), "echo", "password of echo").echo();
    let _echo = client(echo_cfg).await;
    let mut alice = user(&s, "alice").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_embedded_turn_server_only() {
    let port = free_udp_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("test");
    let turn = EmbeddedTurnConfig {
        listen,
        public_ip: listen.ip(),
        realm: "dyad.test".into(),
        secret: b"turn test secret".to_vec(),
        ttl_secs: 600,
    };
    let relay = dyad_server::turn::start_embedded_turn(turn.clone())
        .await
        .expect("test");
    let s = server(ServerConfig {
        turn: Some(TurnConfig::Embedded(turn)),
        ..ServerConfig::default()
    })
    .await;
    let mut a_cfg = ClientConfig::new(s.url.clone(), "alice", "password of alice");
    a_cfg.relay_only = true;
    let mut b_cfg = ClientConfig::new(s.url.clone(), "bobby", "password of bobby");
    b_cfg.relay_only = true;
    let mut alice = client(a_cfg).await;
    let mut bob = client(b_cfg).await;
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
    let st = alice.stats().await;
    let pair = st.candidate_pair.expect("pair");
    assert_eq!(pair.local_candidate_type, "relay", "{pair:?}");
    alice.h.hangup().expect("test");
    assert_eq!(bob.ended().await.0, EndReason::UserHangup);
    relay.close().await;
}
