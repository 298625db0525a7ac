//! A peer process dies mid-call: `dyad answer` (a real process) is SIGKILLed while in a call with
//! a client in this test; the survivor's call must end with a reason within a bound, not hang.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dyad_call::engine::{CallEvent, ClientConfig};
use dyad_call::signal::ServerUrl;
use dyad_proto::EndReason;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_ends_with_a_reason_when_the_peer_process_is_killed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store = dyad_server::Store::open_in_memory().await.expect("store");
    let mut config = dyad_server::ServerConfig::default();
    // The server ends a call whose party stays disconnected this long.
    config.router.reconnect_grace_ms = 3_000;
    tokio::spawn(dyad_server::run(
        listener,
        store,
        config,
        std::future::pending(),
    ));
    let url = format!("http://{addr}");

    let answerer = Command::new(env!("CARGO_BIN_EXE_dyad"))
        .args(["answer", "--server", &url, "--user", "bobby"])
        .env("DYAD_PASSWORD", "password of bobby")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dyad answer");
    let mut answerer = Killed(answerer);

    let cfg = ClientConfig::new(
        ServerUrl::parse(&url).expect("url"),
        "alice",
        "password of alice",
    );
    let (alice, mut ev) = dyad_call::start(cfg).await.expect("alice signs in");
    // bobby may still be signing in (argon2 takes a moment): dial until it answers.
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
    // Media flows, then the peer dies without a word.
    tokio::time::sleep(Duration::from_secs(1)).await;
    answerer.0.kill().expect("kill");
    let killed_at = Instant::now();
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(30), ev.recv()).await {
            Ok(Some(CallEvent::Ended { reason, .. })) => break reason,
            Ok(Some(_)) => {}
            other => panic!("the call did not end: {other:?}"),
        }
    };
    let took = killed_at.elapsed();
    assert!(
        matches!(
            reason,
            EndReason::PeerDisconnected | EndReason::IceFailed | EndReason::IceTimeout
        ),
        "{reason:?}"
    );
    // The server's grace (3 s) or ICE failure (8 s + 10 s restart) ends it.
    assert!(took < Duration::from_secs(25), "took {took:?}");
    eprintln!("call ended {reason:?} {took:?} after the kill");
    alice.shutdown().await;
}
