//! Interop with a third-party WebRTC stack: aiortc (Python; its own ICE, DTLS, SRTP, RTP, VP8
//! and Opus through PyAV) speaking docs/protocol.md, against this crate's engine, through a
//! real signalling server on 127.0.0.1. Both directions of the offer; content checked both ways:
//! the test-pattern frame numbers each side reads from the other's decoded video, and the
//! frequency of the other side's tone.
//!
//! The peer is `tests/peers/aiortc_peer.py`, run by the Python of the venv that
//! `scripts/aiortc-venv.sh` makes (`DYAD_AIORTC_PYTHON` overrides). aiortc offers VP8 as payload
//! type 97 and Opus as 96 (ours: 96 and 111) and sends no transport-cc feedback, so these calls
//! cover the offerer's payload types, estimation from receiver reports alone and generic NACK
//! with an SDP another stack parses.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use dyad_call::engine::ClientConfig;
use dyad_proto::EndReason;
use dyad_server::config::ServerConfig;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

mod common;
use common::*;

/// The tone aiortc sends (Dyad's is 440 Hz).
const AIORTC_TONE_HZ: f64 = 660.0;

fn aiortc_python() -> PathBuf {
    if let Some(p) = std::env::var_os("DYAD_AIORTC_PYTHON") {
        return p.into();
    }
    let tools = std::env::var_os("DYAD_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/dyad-tools"),
        PathBuf::from,
    );
    let python = tools.join("aiortc/bin/python");
    assert!(
        python.exists(),
        "aiortc is not installed: run `bash scripts/aiortc-venv.sh` (it makes {}), or point \
         DYAD_AIORTC_PYTHON at a Python that has tests/peers/requirements.txt",
        python.display()
    );
    python
}

/// A running aiortc peer and the JSON lines it prints.
struct Aiortc {
    _child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Aiortc {
    fn start(s: &Server, args: &[&str]) -> Aiortc {
        Self::start_in(None, s, args)
    }

    /// The same inside network namespace `ns`.
    fn start_in(ns: Option<&str>, s: &Server, args: &[&str]) -> Aiortc {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/aiortc_peer.py");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(aiortc_python());
                c
            }
            None => tokio::process::Command::new(aiortc_python()),
        };
        let mut child = cmd
            .arg("-u")
            .arg(script)
            .args(["--server", &s.url.to_string(), "--timeout", "60"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the aiortc peer");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("aiortc: {line}"),
                }
            }
        });
        Aiortc {
            _child: child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line with `"event": event` (every line before it is kept in `seen`).
    async fn until(&mut self, event: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let v = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("aiortc: timed out waiting for {event}: {:?}", self.seen)
                })
                .unwrap_or_else(|| panic!("aiortc exited before {event}: {:?}", self.seen));
            self.seen.push(v.clone());
            if v["event"] == event {
                return v;
            }
        }
    }
}

/// Signs up the account the aiortc peer will use and makes it and `dyad_user` accepted contacts
/// (only contacts may call each other; the peer signs in to the account it finds).
async fn aiortc_is_a_contact_of(s: &Server, dyad_user: &str) {
    dyad_call::signal::register(&s.url, "aiortc", "password of aiortc")
        .await
        .expect("aiortc's account");
    s.befriend(dyad_user, "aiortc").await;
}

/// A Dyad user that sends the 440 Hz tone and the test pattern and keeps what it hears.
async fn dyad_user(s: &Server, name: &str) -> (Peer, Arc<std::sync::Mutex<Vec<i16>>>) {
    let mut cfg = ClientConfig::new(s.url.clone(), name, &format!("password of {name}"));
    cfg.media.audio = dyad_call::AudioInput::Tone;
    let peer = client(cfg).await;
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    peer.h
        .set_audio_sink(Box::new(KeepSink(Arc::clone(&heard))));
    (peer, heard)
}

/// What Dyad got from aiortc over 3 s of a connected call: frame numbers increase, the tone
/// is aiortc's, and the statistics count it as aiortc's codec, not as unknown packets.
async fn dyad_receives_aiortc(dyad: &mut Peer, heard: &std::sync::Mutex<Vec<i16>>) {
    let frames = dyad.frame_numbers(Duration::from_secs(3)).await;
    assert!(
        frames.len() >= 45,
        "Dyad read {} aiortc frames",
        frames.len()
    );
    assert!(strictly_increasing(&frames), "{frames:?}");
    let samples = heard.lock().expect("lock").clone();
    let (hz, dbfs) = tone_of(&samples).expect("a second of aiortc's audio");
    assert!((hz - AIORTC_TONE_HZ).abs() <= 5.0, "Dyad heard {hz} Hz");
    assert!(dbfs > -20.0, "Dyad heard {dbfs:.1} dBFS");
    let mut stats = dyad.stats().await;
    while stats.call_seconds < 3.0 {
        stats = dyad.stats().await;
    }
    assert_eq!(stats.inbound_video.packets_unknown_payload_type, 0);
    assert_eq!(stats.inbound_audio.packets_unknown_payload_type, 0);
    assert!(stats.inbound_video.frames_decoded >= 60, "{stats:?}");
    assert!(stats.inbound_audio.packets_received >= 100, "{stats:?}");
}

/// What aiortc says it got from Dyad by the end of the call: our frame numbers, in order, and
/// our 440 Hz tone.
fn aiortc_received_dyad(summary: &Value, at_least: u64) {
    let decoded = summary["frames_decoded"].as_u64().unwrap_or(0);
    assert!(
        decoded >= at_least,
        "aiortc decoded {decoded} frames: {summary}"
    );
    assert_eq!(summary["frames_in_order"], true, "{summary}");
    assert_eq!(summary["frames_unreadable"], 0, "{summary}");
    let hz = summary["audio_hz"].as_f64().unwrap_or(0.0);
    assert!((hz - 440.0).abs() <= 5.0, "aiortc heard {hz} Hz: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_calls_dyad_and_both_decode_the_other() {
    let s = server(ServerConfig::default()).await;
    let (mut dyad, heard) = dyad_user(&s, "dyadbob").await;
    aiortc_is_a_contact_of(&s, "dyadbob").await;
    let mut peer = Aiortc::start(&s, &["--call", "dyadbob"]);
    peer.until("signed_in").await;
    dyad.incoming().await;
    dyad.h.accept().expect("accept");
    dyad.connected().await;
    assert_eq!(
        peer.until("first_frame").await["frame"]
            .as_u64()
            .map(|f| f < 30),
        Some(true)
    );
    dyad_receives_aiortc(&mut dyad, &heard).await;
    // Our trickled candidates named a real mid (aiortc's offer bundles on "0").
    let mids: Vec<&Value> = peer
        .seen
        .iter()
        .filter(|v| v["event"] == "remote_candidate")
        .map(|v| &v["sdp_mid"])
        .collect();
    assert!(
        !mids.is_empty() && mids.iter().all(|m| *m == "0"),
        "{mids:?}"
    );
    dyad.h.hangup().expect("hangup");
    let summary = peer.until("summary").await;
    assert_eq!(summary["ended"]["reason"], "user_hangup", "{summary}");
    assert_eq!(summary["ended"]["by"], "dyadbob", "{summary}");
    aiortc_received_dyad(&summary, 60);
    assert_eq!(dyad.ended().await.0, EndReason::UserHangup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dyad_calls_aiortc_and_both_decode_the_other() {
    let s = server(ServerConfig::default()).await;
    let (mut dyad, heard) = dyad_user(&s, "dyadann").await;
    aiortc_is_a_contact_of(&s, "dyadann").await;
    let mut peer = Aiortc::start(&s, &["--answer", "--seconds", "6"]);
    peer.until("signed_in").await;
    dyad.h.dial("aiortc").expect("dial");
    dyad.connected().await;
    dyad_receives_aiortc(&mut dyad, &heard).await;
    // aiortc hangs up after 6 s.
    let (reason, _) = dyad.ended().await;
    assert_eq!(reason, EndReason::UserHangup);
    let summary = peer.until("summary").await;
    assert_eq!(summary["ended"]["by"], "aiortc", "{summary}");
    aiortc_received_dyad(&summary, 100);
}

fn sh(args: &[&str]) -> bool {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(sh(args), "failed: {}", args.join(" "));
}

/// A namespace joined to this one by a veth pair (198.18.`net`.1 here, .2 inside; the
/// benchmarking range, no route out), with `loss_percent` of the UDP arriving at either end of
/// the pair dropped by nftables (ingress hooks on the two veth devices: dropped on output
/// instead, the sender's `sendto` would fail with EPERM, which a lossy network never does).
/// Removed on drop.
struct LossyNet {
    ns: String,
    host_if: String,
}

impl LossyNet {
    fn new(net: u8, loss_percent: u8) -> LossyNet {
        let id = std::process::id() % 100_000;
        let n = LossyNet {
            ns: format!("dyadai{id}"),
            host_if: format!("dyai{id}"),
        };
        let peer_if = format!("dyaj{id}");
        let (host_ip, ns_ip) = (format!("198.18.{net}.1/24"), format!("198.18.{net}.2/24"));
        must(&["ip", "netns", "add", &n.ns]);
        must(&[
            "ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        must(&["ip", "link", "set", &peer_if, "netns", &n.ns]);
        must(&["ip", "addr", "add", &host_ip, "dev", &n.host_if]);
        must(&["ip", "link", "set", &n.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", n.ns.as_str()];
            v.extend_from_slice(args);
            must(&v);
        };
        inside(&["ip", "addr", "add", &ns_ip, "dev", &peer_if]);
        inside(&["ip", "link", "set", &peer_if, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        let rules = |table: &str, device: &str| {
            format!(
                "table netdev {table} {{\n\
                 chain in {{ type filter hook ingress device \"{device}\" priority 0; \
                 ip protocol udp numgen random mod 100 < {loss_percent} drop; }}\n\
                 }}\n"
            )
        };
        let file = std::env::temp_dir().join(format!("{}.nft", n.ns));
        let path = file.to_string_lossy().to_string();
        std::fs::write(&file, rules("dyadloss", &peer_if)).expect("write nft rules");
        inside(&["nft", "-f", &path]);
        std::fs::write(&file, rules(&n.ns, &n.host_if)).expect("write nft rules");
        must(&["nft", "-f", &path]);
        let _ = std::fs::remove_file(file);
        n
    }
}

impl Drop for LossyNet {
    fn drop(&mut self) {
        sh(&["nft", "delete", "table", "netdev", &self.ns]);
        sh(&["ip", "link", "del", &self.host_if]);
        sh(&["ip", "netns", "del", &self.ns]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_lossy_link_nacks_are_answered_both_ways_and_video_keeps_decoding() {
    // aiortc in a namespace, 5 % of UDP lost each way, Dyad here.
    let net = LossyNet::new(77, 5);
    let s = server_on("198.18.77.1", ServerConfig::default()).await;
    let (mut dyad, _heard) = dyad_user(&s, "dyadlossy").await;
    aiortc_is_a_contact_of(&s, "dyadlossy").await;
    let mut peer = Aiortc::start_in(
        Some(&net.ns),
        &s,
        &["--call", "dyadlossy", "--host-ip", "198.18.77.2"],
    );
    peer.until("signed_in").await;
    dyad.incoming().await;
    dyad.h.accept().expect("accept");
    dyad.connected().await;
    peer.until("first_frame").await;
    let frames = dyad.frame_numbers(Duration::from_secs(6)).await;
    assert!(frames.len() >= 60, "Dyad read {} frames", frames.len());
    assert!(strictly_increasing(&frames), "{frames:?}");
    let mut stats = dyad.stats().await;
    while stats.call_seconds < 6.0 {
        stats = dyad.stats().await;
    }
    let (vo, vi) = (&stats.outbound_video, &stats.inbound_video);
    // aiortc asked for our lost packets and we sent them again; we asked for its.
    assert!(vo.nack_count > 0, "no NACK from aiortc: {vo:?}");
    assert!(vo.retransmitted_packets_sent > 0, "{vo:?}");
    assert!(vi.nack_count > 0, "we never NACKed aiortc: {vi:?}");
    // (`packets_lost` counts what never came: the retransmissions filled the gaps.)
    dyad.h.hangup().expect("hangup");
    let summary = peer.until("summary").await;
    // aiortc answered our NACKs, and read our frames in order through the loss.
    assert!(
        summary["retransmitted"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert!(summary["nacks_sent"].as_u64().unwrap_or(0) > 0, "{summary}");
    assert_eq!(summary["frames_in_order"], true, "{summary}");
    assert!(
        summary["frames_decoded"].as_u64().unwrap_or(0) >= 60,
        "{summary}"
    );
}
