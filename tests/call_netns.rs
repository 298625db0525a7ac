//! A call over a real, impaired link: the callee (`dyad answer`, a real process) lives in its
//! own network namespace joined to this one by a veth pair; `tc tbf` caps the caller's upload.
//! The caller's bandwidth estimate must come down to the cap and the call must keep decoding.
//! Needs root (`ip netns`), as CI and the README's test command have.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dyad_call::engine::{CallEvent, ClientConfig};
use dyad_call::signal::ServerUrl;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_follows_a_rate_capped_link_and_video_keeps_flowing() {
    let id = std::process::id() % 100_000;
    let mut net = Net {
        ns: format!("dyadt{id}"),
        host_if: format!("dya{id}"),
        callee: None,
    };
    let peer_if = format!("dyb{id}");
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
    must(&["ip", "addr", "add", "10.231.7.1/24", "dev", &net.host_if]);
    must(&["ip", "link", "set", &net.host_if, "up"]);
    let nse = |rest: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", net.ns.as_str()];
        v.extend_from_slice(rest);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for cmd in [
        nse(&["ip", "addr", "add", "10.231.7.2/24", "dev", &peer_if]),
        nse(&["ip", "link", "set", &peer_if, "up"]),
        nse(&["ip", "link", "set", "lo", "up"]),
    ] {
        must(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
    }

    let listener = tokio::net::TcpListener::bind("10.231.7.1:0")
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
    // Start well above the cap so the estimator has to find it.
    cfg.start_bps = 1_200_000;
    let (alice, mut ev) = dyad_call::start(cfg).await.expect("alice");
    let deadline = Instant::now() + Duration::from_secs(30);
    'dial: loop {
        assert!(Instant::now() < deadline, "bobby never answered");
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
            Ok(Some(CallEvent::Stats(s))) => {
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
    // ... and climbs back toward it (+8 %/s) instead of sinking: the last target is ≥ 60 % of
    // the cap. (Before our own NACK generator, webrtc-rs's repeated every lost packet every
    // 100 ms; the retransmissions saturated the link and the estimate sank to 80 kbit/s.)
    let last = seen.last().map_or(0, |x| x.1);
    assert!(last >= 240_000, "last target {last}: {seen:?}");
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
