//! No data lost on a crash: a real `dyad serve` process is SIGKILLed while clients are writing to
//! it; after a restart on the same database every write that had been acknowledged is there.

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_dyad"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
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
