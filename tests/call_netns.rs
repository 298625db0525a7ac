//! A call over a real, impaired link: the callee (`dyad answer`, a real process) lives in its
//! own network namespace joined to this one by a veth pair; `tc tbf` caps the caller's upload.
//! The caller's bandwidth estimate must come down to the cap and the call must keep decoding.
//! Needs root (`ip netns`), as CI and the README's test command have.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dyad_call::engine::{CallEvent, ClientConfig};
use dyad_call::signal::ServerUrl;

/// The two calls run one after the other: each is a real-time measurement (the estimator's climb
/// is judged in seconds), and two calls plus their media threads on 2 cores disturb each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must(args: &[&str]) {
    assert!(sh(args), "failed: {}", args.join(" "));
}

/// The namespace, the veth pair and the callee process; all removed on drop.
struct Net {
    ns: String,
    host_if: String,
    callee: Option<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(c) = &mut self.callee {
            let _ = c.kill();
            let _ = c.wait();
        }
        sh(&["ip", "link", "del", &self.host_if]);
        sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// What a test run that was killed (Ctrl-C, a timeout) left of namespace `tag`: its veth
/// still holds 10.231.`tag`.1 on this side, and a new run's packets would leave through it
/// ("signalling server unreachable"). Names carry the run's pid; a pid no longer running is
/// stale.
fn remove_stale(tag: u8) {
    let stale = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(&format!("x{tag}")))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let list = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for line in list(&["ip", "-o", "link", "show"]).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if stale(name, "dya") {
            sh(&["ip", "link", "del", name]);
        }
    }
    for line in list(&["ip", "netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if stale(name, "dyadt") {
            sh(&["ip", "netns", "del", name]);
        }
    }
}

/// Builds namespace `tag` (its own /24), starts a server on this side and `dyad answer` (user
/// bobby) inside, signs alice in with `cfg_edit` applied and dials until the call is connected.
async fn connected_call(
    tag: u8,
    cfg_edit: impl FnOnce(&mut ClientConfig),
) -> (
    Net,
    dyad_call::ClientHandle,
    tokio::sync::mpsc::UnboundedReceiver<CallEvent>,
) {
    remove_stale(tag);
    let id = std::process::id() % 100_000;
    let mut net = Net {
        ns: format!("dyadt{id}x{tag}"),
        host_if: format!("dya{id}x{tag}"),
        callee: None,
    };
    let peer_if = format!("dyb{id}x{tag}");
    let host_ip = format!("10.231.{tag}.1");
    must(&["ip", "netns", "add", &net.ns]);
    must(&[
        "ip",
        "link",
        "add",
        &net.host_if,
        "type",
        "veth",
        "peer",
        "name",
        &peer_if,
    ]);
    must(&["ip", "link", "set", &peer_if, "netns", &net.ns]);
    must(&[
        "ip",
        "addr",
        "add",
        &format!("{host_ip}/24"),
        "dev",
        &net.host_if,
    ]);
    must(&["ip", "link", "set", &net.host_if, "up"]);
    let peer_cidr = format!("10.231.{tag}.2/24");
    for rest in [
        vec![
            "ip",
            "addr",
            "add",
            peer_cidr.as_str(),
            "dev",
            peer_if.as_str(),
        ],
        vec!["ip", "link", "set", peer_if.as_str(), "up"],
        vec!["ip", "link", "set", "lo", "up"],
    ] {
        must(&[&["ip", "netns", "exec", net.ns.as_str()][..], &rest[..]].concat());
    }
    let listener = tokio::net::TcpListener::bind(format!("{host_ip}:0"))
        .await
        .expect("bind on the veth");
    let addr = listener.local_addr().expect("addr");
    let store = dyad_server::Store::open_in_memory().await.expect("store");
    tokio::spawn(dyad_server::run(
        listener,
        store,
        dyad_server::ServerConfig::default(),
        std::future::pending(),
    ));
    let url = format!("http://{addr}");
    net.callee = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns,
                env!("CARGO_BIN_EXE_dyad"),
                "answer",
            ])
            .args(["--server", &url, "--user", "bobby"])
            .env("DYAD_PASSWORD", "password of bobby")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dyad answer in the namespace"),
    );
    let mut cfg = ClientConfig::new(
        ServerUrl::parse(&url).expect("url"),
        "alice",
        "password of alice",
    );
    cfg_edit(&mut cfg);
    let (alice, mut ev) = dyad_call::start(cfg).await.expect("alice");
    let deadline = Instant::now() + Duration::from_secs(30);
    'dial: loop {
        assert!(Instant::now() < deadline, "bobby never answered");
        // `dyad answer` accepts contact requests (only contacts may call); until bobby has
        // signed up this fails, and the call below ends: try again.
        alice.add_contact("bobby").expect("contact_add");
        tokio::time::sleep(Duration::from_millis(200)).await;
        alice.dial("bobby").expect("dial");
        loop {
            match tokio::time::timeout(Duration::from_secs(20), ev.recv()).await {
                Ok(Some(CallEvent::Connected { .. })) => break 'dial,
                Ok(Some(CallEvent::Ended { .. })) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue 'dial;
                }
                Ok(Some(_)) => {}
                other => panic!("while dialling: {other:?}"),
            }
        }
    }
    (net, alice, ev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_follows_a_rate_capped_link_and_video_keeps_flowing() {
    let _one_at_a_time = SERIAL.lock().await;
    // Start well above the cap so the estimator has to find it.
    let (net, alice, mut ev) = connected_call(7, |c| c.start_bps = 1_200_000).await;
    // 400 kbit/s up from alice (the veth's egress on this side).
    must(&[
        "tc",
        "qdisc",
        "add",
        "dev",
        &net.host_if,
        "root",
        "tbf",
        "rate",
        "400kbit",
        "burst",
        "16kbit",
        "latency",
        "300ms",
    ]);
    let capped_at = Instant::now();
    let mut seen = Vec::new();
    let mut nacks = 0;
    let mut settled = None;
    while capped_at.elapsed() < Duration::from_secs(25) {
        match tokio::time::timeout(Duration::from_secs(5), ev.recv()).await {
            Ok(Some(CallEvent::Stats(p))) => {
                let s = &p.snapshot;
                let target = s.estimate.available_outgoing_bitrate;
                nacks = s.outbound_video.nack_count;
                seen.push((
                    capped_at.elapsed().as_secs_f64(),
                    target as u64,
                    s.outbound_video.frame_width,
                ));
                if target <= 480_000.0 && settled.is_none() {
                    settled = Some(capped_at.elapsed());
                }
                if settled.is_some_and(|t| capped_at.elapsed() > t + Duration::from_secs(8)) {
                    break;
                }
            }
            Ok(Some(CallEvent::Ended { reason, .. })) => panic!("call ended: {reason:?}"),
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    eprintln!("after the cap (s, target bit/s, width): {seen:?}");
    let settled = settled.unwrap_or_else(|| panic!("never came down to the cap: {seen:?}"));
    assert!(
        settled < Duration::from_secs(15),
        "took {settled:?}: {seen:?}"
    );
    // After settling it stays near the cap, not back above it.
    let after: Vec<u64> = seen
        .iter()
        .filter(|(t, _, _)| *t > settled.as_secs_f64() + 1.0)
        .map(|x| x.1)
        .collect();
    assert!(after.iter().all(|&b| b <= 560_000), "{seen:?}");
    // ... and climbs back toward it (+8 %/s) instead of sinking: over the last 4 s the target
    // averages ≥ 60 % of the cap. (Before our own NACK generator, webrtc-rs's repeated every
    // lost packet every 100 ms; the retransmissions saturated the link and the estimate sank to
    // 80 kbit/s.) Not the last sample alone: at the cap the estimate is a sawtooth — it climbs
    // to ≈ 400 kbit/s, detects overuse and is cut to ≈ 0.85 × what was acknowledged, 190–260
    // kbit/s here — and 3 runs in 9 ended the window on the cut.
    let tail: Vec<u64> = seen.iter().rev().take(4).map(|x| x.1).collect();
    let level = tail.iter().sum::<u64>() / tail.len().max(1) as u64;
    assert!(
        level >= 240_000,
        "mean of the last 4 targets {level}: {seen:?}"
    );
    assert!(nacks < 300, "{nacks} packets NACKed: a NACK storm");
    // The callee keeps decoding: alice's remote-inbound reports keep arriving with low loss.
    let hist = alice.stats().await.expect("stats").expect("a call");
    let last = hist.snapshots.back().expect("snapshot");
    assert!(
        last.remote_inbound_video.fraction_lost < 0.2,
        "{:?}",
        last.remote_inbound_video
    );
    alice.hangup().expect("hangup");
    alice.shutdown().await;
}

/// Frame numbers alice reads from bob's video for `d`.
async fn frames(alice: &dyad_call::ClientHandle, d: Duration) -> Vec<u32> {
    let mut rx = alice.remote_video();
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + d;
    while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
        let f = rx.borrow_and_update().clone();
        if let Some(m) = f.and_then(|f| dyad_media::read_marker(&f.frame).ok()) {
            out.push(m.frame);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_media_path_is_restarted_through_negotiate_and_the_call_survives() {
    let _one_at_a_time = SERIAL.lock().await;
    let (net, alice, mut ev) = connected_call(8, |_| {}).await;
    let before = frames(&alice, Duration::from_secs(1)).await;
    assert!(!before.is_empty(), "no video before the outage");
    // Drop all UDP into the callee's namespace: media dies, signalling (TCP) lives.
    let nft = |rule: &str| {
        let mut v = vec!["ip", "netns", "exec", net.ns.as_str(), "nft"];
        v.extend(rule.split(' '));
        must(&v);
    };
    nft("add table inet dyadtest");
    nft("add chain inet dyadtest in { type filter hook input priority 0 ; policy accept ; }");
    nft("add rule inet dyadtest in meta l4proto udp drop");
    let blocked = Instant::now();
    // The callee's side fails (only its input is blocked); it offers an ICE restart through
    // `negotiate` 2 s later and the caller answers it.
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ev.recv()).await {
            Ok(Some(CallEvent::Stats(p)))
                if p.snapshot.events.iter().any(|e| e == "ice_restart") =>
            {
                break
            }
            Ok(Some(CallEvent::Ended { reason, .. })) => {
                panic!("ended before a restart: {reason:?}")
            }
            Ok(Some(_)) => {}
            other => panic!("no ICE restart: {other:?}"),
        }
    }
    let restart_after = blocked.elapsed();
    nft("delete table inet dyadtest");
    let unblocked = Instant::now();
    // The video comes back within a few seconds: in the first (ICE's checks on the new
    // credentials, then a keyframe), or with both cores busy in the second (4 of 8 runs); CI
    // once saw 1 frame in the first 4 s. Bounded at 10 s, and a failure says what alice's
    // side received meanwhile.
    let mut after = Vec::new();
    let mut per_second = Vec::new();
    while after.len() < 20 && unblocked.elapsed() < Duration::from_secs(10) {
        let f = frames(&alice, Duration::from_secs(1)).await;
        per_second.push(f.len());
        after.extend(f);
    }
    let back_after = unblocked.elapsed();
    eprintln!(
        "restart offered {restart_after:?} after the block; {} frames in {back_after:?} after \
         it was lifted ({per_second:?} a second), first {:?}",
        after.len(),
        after.first()
    );
    if after.len() < 20 {
        let hist = alice.stats().await.expect("stats").expect("a call");
        let last = hist.snapshots.back().map(|s| &s.inbound_video);
        panic!("video did not come back: {after:?}; alice's inbound video: {last:?}");
    }
    assert!(after[0] > *before.last().expect("before"), "{after:?}");
    // Each second's reading starts from a new receiver, which may see the last frame again.
    after.dedup();
    assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");
    // Still the same call: nothing ended it.
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(10), ev.recv()).await {
        assert!(!matches!(e, CallEvent::Ended { .. }), "{e:?}");
    }
    alice.hangup().expect("hangup");
    alice.shutdown().await;
}
