//! No data lost on a crash: a real `dyad serve` process is SIGKILLed while clients are writing to
//! it; after a restart on the same database every write that had been acknowledged is there, and
//! the calls that were up go on (a hang-up after the restart reaches the other side; every
//! history row gets an end).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &std::path::Path) -> Serve {
    start_with(db, &[])
}

fn start_with(db: &std::path::Path, args: &[&str]) -> Serve {
    start_on(db, "127.0.0.1:0", args)
}

fn start_on(db: &std::path::Path, listen: &str, args: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dyad"))
        .args(["serve", "--listen", listen, "--db"])
        .arg(db)
        // These tests register and log in thousands of accounts from one address as fast as
        // they can: past the password-attempt throttle.
        .args(["--auth-attempts-per-min", "1000000"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dyad serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("read");
        if let Some(rest) = line.strip_prefix("dyad serve: http://") {
            break rest
                .split_whitespace()
                .next()
                .expect("addr")
                .parse()
                .expect("socket address");
        }
    };
    Serve { child, addr }
}

/// POSTs JSON; returns the status and body (or None if the connection failed).
fn post(addr: SocketAddr, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

fn credentials(i: usize) -> String {
    format!(r#"{{"username":"user{i}","password":"password-{i}"}}"#)
}

#[test]
fn acknowledged_registrations_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("dyad-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("server.db");
    let server = start(&db);
    let addr = server.addr;

    // Four writers register users as fast as they can; each 201 is a commit the server vouched for.
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) && i < 4000 {
                    match post(addr, "/v1/register", &credentials(i)) {
                        Some((201, _)) => acked.lock().expect("lock").push(i),
                        Some((status, body)) => panic!("register user{i}: {status} {body}"),
                        None => return, // the server is gone
                    }
                    i += 4;
                }
            })
        })
        .collect();
    while acked.lock().expect("lock").len() < 60 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL while the writers are still going: no chance to flush anything.
    let mut server = server;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    drop(server);

    let again = start(&db);
    for i in &acked {
        let (status, body) =
            post(again.addr, "/v1/login", &credentials(*i)).expect("login request");
        assert_eq!(
            status, 200,
            "user{i} was acknowledged before the crash but is gone: {body}"
        );
    }
    let (status, _) = post(again.addr, "/v1/register", &credentials(acked[0])).expect("request");
    assert_eq!(status, 409, "the row is really there: the name is taken");
    eprintln!(
        "{} registrations acknowledged before SIGKILL, all present after restart",
        acked.len()
    );
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// GETs with a token; the JSON body.
fn get(addr: SocketAddr, path: &str, token: &str) -> serde_json::Value {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, token: &str, device: &str) -> Ws {
    let url = format!("ws://{addr}/v1/ws?device={device}&token={token}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    ws
}

async fn send(ws: &mut Ws, json: String) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(json))
        .await
        .expect("send");
}

/// Skips messages until one has this `type` (and, if given, this `call_id`); fails after 10 s.
async fn expect(ws: &mut Ws, kind: &str, call: Option<&str>) -> serde_json::Value {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} in time"))
            .expect("open")
            .expect("frame");
        let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&t).expect("json");
        if v["type"] == kind && call.is_none_or(|c| v["call_id"] == c) {
            return v;
        }
        assert_ne!(v["type"], "error", "while waiting for {kind}: {v}");
    }
}

fn token(addr: SocketAddr, user: &str) -> String {
    let body = format!(r#"{{"username":"{user}","password":"password-{user}"}}"#);
    let (status, body) = post(addr, "/v1/register", &body).expect("register");
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["token"].as_str().expect("token").to_string()
}

/// `x` (user `xn`) and `y` (user `yn`) accept each other as contacts: only contacts may call.
async fn befriend(x: &mut Ws, xn: &str, y: &mut Ws, yn: &str) {
    send(
        x,
        format!(r#"{{"type":"contact_add","username":"{yn}","ref":"ask"}}"#),
    )
    .await;
    expect(x, "ack", None).await;
    send(
        y,
        format!(r#"{{"type":"contact_add","username":"{xn}","ref":"yes"}}"#),
    )
    .await;
    expect(y, "ack", None).await;
}

/// Sets up `caller` → `callee` as a connected call `id`.
async fn connected_call(caller: &mut Ws, callee: &mut Ws, id: &str, to: &str, device: &str) {
    send(
        caller,
        format!(r#"{{"type":"invite","call_id":"{id}","to":"{to}","sdp":"v=0\r\n"}}"#),
    )
    .await;
    expect(callee, "invite", Some(id)).await;
    send(
        callee,
        format!(r#"{{"type":"answer","call_id":"{id}","sdp":"v=0\r\n"}}"#),
    )
    .await;
    expect(caller, "answer", Some(id)).await;
    send(
        caller,
        format!(r#"{{"type":"select_answer","call_id":"{id}","device":"{device}"}}"#),
    )
    .await;
    expect(callee, "select_answer", Some(id)).await;
}

/// The history row of `call` as `token`'s user sees it, once `ready` holds (the writer task
/// commits rows a few ms after the event).
fn row(
    addr: SocketAddr,
    token: &str,
    call: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..200 {
        let rows = get(addr, "/v1/history", token);
        if let Some(r) = rows
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["call_id"] == call)
        {
            if ready(r) {
                return r.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("history row of {call} never got there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_survive_sigkill_and_every_row_gets_an_end() {
    let dir = std::env::temp_dir().join(format!("dyad-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("server.db");
    let grace = ["--reconnect-grace-ms", "3000"];
    let server = start_with(&db, &grace);
    let addr = server.addr;
    let [ta, tb, tc, td, te, tf] =
        ["alice", "bob", "carol", "dave", "erin", "frank"].map(|u| token(addr, u));
    let (mut a, mut b) = (
        connect(addr, &ta, "laptop").await,
        connect(addr, &tb, "desk").await,
    );
    let (mut c, mut d) = (
        connect(addr, &tc, "phone").await,
        connect(addr, &td, "phone").await,
    );
    let (mut e, mut f) = (
        connect(addr, &te, "tab").await,
        connect(addr, &tf, "tab").await,
    );
    befriend(&mut a, "alice", &mut b, "bob").await;
    befriend(&mut e, "erin", &mut f, "frank").await;
    befriend(&mut c, "carol", &mut d, "dave").await;
    // alice–bob and erin–frank are talking; carol is ringing dave.
    connected_call(&mut a, &mut b, "call-live", "bob", "desk").await;
    connected_call(&mut e, &mut f, "call-gone", "frank", "tab").await;
    send(
        &mut c,
        r#"{"type":"invite","call_id":"call-ring","to":"dave","sdp":"v=0\r\n"}"#.into(),
    )
    .await;
    expect(&mut d, "invite", Some("call-ring")).await;
    for (t, id) in [(&ta, "call-live"), (&te, "call-gone")] {
        row(addr, t, id, |r| r["answered_at_ms"].is_u64());
    }
    row(addr, &tc, "call-ring", |_| true);

    let mut server = server;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    drop((a, b, c, d, e, f));
    let again = start_with(&db, &grace);
    let addr = again.addr;
    // alice and bob come back and resume; erin and frank come back without resuming (their
    // apps hung up while the server was down, say).
    let (mut a, mut b) = (
        connect(addr, &ta, "laptop").await,
        connect(addr, &tb, "desk").await,
    );
    let (_e, mut f) = (
        connect(addr, &te, "tab").await,
        connect(addr, &tf, "tab").await,
    );
    for ws in [&mut a, &mut b] {
        send(
            ws,
            r#"{"type":"resume","call_id":"call-live","ref":"r"}"#.into(),
        )
        .await;
        expect(ws, "ack", None).await;
    }
    // The presence of a restored call's parties is "in call".
    send(&mut a, r#"{"type":"contact_add","username":"bob"}"#.into()).await;
    let contacts = expect(&mut a, "contacts", None).await;
    assert_eq!(contacts["contacts"][0]["presence"], "in_call", "{contacts}");
    // A hang-up after the restart reaches the other side.
    send(
        &mut a,
        r#"{"type":"hangup","call_id":"call-live","reason":"user_hangup"}"#.into(),
    )
    .await;
    let ended = expect(&mut b, "call_ended", Some("call-live")).await;
    assert_eq!(ended["reason"], "user_hangup", "{ended}");
    // The call nobody resumed ends after the grace, though both are connected.
    let ended = expect(&mut f, "call_ended", Some("call-gone")).await;
    assert_eq!(ended["reason"], "peer_disconnected", "{ended}");
    // Every row has an end.
    let r = row(addr, &ta, "call-live", |r| r["ended_at_ms"].is_u64());
    assert_eq!(
        (r["end_reason"].as_str(), r["ended_by"].as_str()),
        (Some("user_hangup"), Some("alice"))
    );
    let r = row(addr, &te, "call-gone", |r| r["ended_at_ms"].is_u64());
    assert_eq!(r["end_reason"], "peer_disconnected");
    let r = row(addr, &tc, "call-ring", |r| r["ended_at_ms"].is_u64());
    assert_eq!(r["end_reason"], "server_restart");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (≤ 20 s) for an event matching `pred`; a call that ends meanwhile fails the test.
async fn until(
    ev: &mut tokio::sync::mpsc::UnboundedReceiver<dyad_call::engine::CallEvent>,
    what: &str,
    pred: fn(&dyad_call::engine::CallEvent) -> bool,
) {
    use dyad_call::engine::CallEvent;
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ev.recv().await {
                Some(e) if pred(&e) => return,
                Some(CallEvent::Ended { reason, .. }) => panic!("{what}: ended {reason:?}"),
                Some(_) => {}
                None => panic!("{what}: client gone"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no {what} in time");
}

/// Real clients (the dyad-call engine, with media) in a call when the server is SIGKILLed and
/// restarted on the same address: both reconnect and resume (the call outlives the grace), and a
/// hang-up reaches the other side as a hang-up (before, the server had forgotten the call: the hang-up got `unknown_call`
/// and the other side ended seconds later by media failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_after_a_server_restart_reaches_the_other_side() {
    use dyad_call::engine::{CallEvent, ClientConfig};
    use dyad_call::signal::ServerUrl;

    let dir = std::env::temp_dir().join(format!("dyad-restart-call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("server.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let grace = ["--reconnect-grace-ms", "4000"];
    let server = start_on(&db, &listen, &grace);
    let url = ServerUrl::parse(&format!("http://{listen}")).expect("url");
    let (alice, mut a_ev) =
        dyad_call::start(ClientConfig::new(url.clone(), "alice", "password of alice"))
            .await
            .expect("alice signs in");
    let (bob, mut b_ev) = dyad_call::start(ClientConfig::new(url, "bob", "password of bob").echo())
        .await
        .expect("bob signs in");
    // bob answers everything, contact requests too (only contacts may call).
    alice.add_contact("bob").expect("contact_add");
    until(&mut a_ev, "bob accepted", |e| {
        matches!(e, CallEvent::Contacts(list) if list.iter().any(|c| c.username == "bob" && c.state == dyad_proto::ContactState::Accepted))
    })
    .await;
    alice.dial("bob").expect("dial");
    until(&mut a_ev, "alice connected", |e| {
        matches!(e, CallEvent::Connected { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut server = server;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    drop(server);
    let again = start_on(&db, &listen, &grace);
    for ev in [&mut a_ev, &mut b_ev] {
        until(ev, "signalling back", |e| {
            matches!(e, CallEvent::SignallingRestored)
        })
        .await;
    }
    // Past the grace: a restored call that was not resumed would be over by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    alice.hangup().expect("hang up");
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match b_ev.recv().await {
                Some(CallEvent::Ended { reason, .. }) => return reason,
                Some(_) => {}
                None => panic!("bob's client gone"),
            }
        }
    })
    .await
    .expect("bob's call ends");
    assert_eq!(ended, dyad_proto::EndReason::UserHangup);
    alice.shutdown().await;
    bob.shutdown().await;
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
