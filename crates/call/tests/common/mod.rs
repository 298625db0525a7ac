//! What the end-to-end tests share: a real signalling server on 127.0.0.1:0 and real clients
//! (this crate's engine) with helpers to wait for their events and read what they decode.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dyad_call::engine::{CallEvent, ClientConfig, ClientHandle, CountingSink};
use dyad_call::signal::ServerUrl;
use dyad_media::read_marker;
use dyad_proto::{ContactState, EndReason};
use dyad_server::config::ServerConfig;
use dyad_server::Store;
use tokio::sync::{mpsc, oneshot};

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Server {
    pub url: ServerUrl,
    /// The server's store: test users are made contacts the way two `contact_add`s would.
    pub store: Store,
    /// Who [`user`] signed in so far (each new one becomes everyone's contact).
    users: std::sync::Mutex<Vec<String>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    /// Makes two signed-up users accepted contacts of each other (only accepted contacts may
    /// call each other; see crates/server/tests/server.rs for the consent itself).
    pub async fn befriend(&self, a: &str, b: &str) {
        self.store.make_contacts(a, b).await.expect("contacts");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn server(config: ServerConfig) -> Server {
    server_on("127.0.0.1", config).await
}

/// A server on `ip` (any free port).
pub async fn server_on(ip: &str, config: ServerConfig) -> Server {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("test");
    let addr = listener.local_addr().expect("test");
    let store = Store::open_in_memory().await.expect("test");
    let kept = store.clone();
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
        store: kept,
        users: std::sync::Mutex::new(Vec::new()),
        stop: Some(stop),
    }
}

/// A server with a self-signed certificate for `localhost` on 127.0.0.1 (any free port); its
/// files live in a temporary directory that goes with it.
pub struct TlsServer {
    pub port: u16,
    /// The certificate, to trust.
    pub cert_pem: String,
    /// The temporary directory (other files of the test may go there too).
    pub dir: std::path::PathBuf,
    /// The server's store (to make test users contacts).
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn tls_server(name: &str) -> TlsServer {
    tls_server_with(name, ServerConfig::default(), |_, _| {}).await
}

/// [`tls_server`] with this configuration; `port_known` sees it with the port chosen before
/// the server starts (for ICE URLs that name it).
pub async fn tls_server_with(
    name: &str,
    mut config: ServerConfig,
    port_known: impl FnOnce(&mut ServerConfig, u16),
) -> TlsServer {
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("dyad-call-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    config.tls = Some(dyad_server::tls::TlsSettings::from_pem_files(&cert, &key).expect("PEM"));
    port_known(&mut config, port);
    let store = Store::open_in_memory().await.expect("store");
    let kept = store.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dyad_server::run(listener, store, config, async {
        let _ = stopped.await;
    }));
    TlsServer {
        port,
        cert_pem: issued.cert.pem(),
        dir,
        store: kept,
        stop: Some(stop),
    }
}

pub struct Peer {
    pub h: ClientHandle,
    pub ev: mpsc::UnboundedReceiver<CallEvent>,
    pub audio_frames: Arc<std::sync::atomic::AtomicU64>,
}

pub async fn client(cfg: ClientConfig) -> Peer {
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

/// A signed-in user, an accepted contact of every user made before on this server.
pub async fn user(s: &Server, name: &str) -> Peer {
    let peer = client(ClientConfig::new(
        s.url.clone(),
        name,
        &format!("password of {name}"),
    ))
    .await;
    let before = s.users.lock().map(|u| u.clone()).unwrap_or_default();
    for other in before {
        s.befriend(name, &other).await;
    }
    if let Ok(mut u) = s.users.lock() {
        u.push(name.to_string());
    }
    peer
}

impl Peer {
    /// The first event `pick` maps to `Some`, skipping others (stats, presence...).
    pub async fn wait<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&CallEvent) -> Option<T>,
    ) -> T {
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

    pub async fn incoming(&mut self) -> String {
        self.wait("incoming", |e| match e {
            CallEvent::Incoming { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .await
    }

    pub async fn connected(&mut self) {
        self.wait("connected", |e| {
            matches!(e, CallEvent::Connected { .. }).then_some(())
        })
        .await
    }

    pub async fn ended(&mut self) -> (EndReason, Arc<dyad_call::stats::StatsHistory>) {
        self.wait("ended", |e| match e {
            CallEvent::Ended { reason, stats, .. } => Some((*reason, Arc::clone(stats))),
            _ => None,
        })
        .await
    }

    /// The message of the first error event with `code` (skipping everything else).
    pub async fn error(&mut self, code: &str) -> String {
        self.wait(code, |e| match e {
            CallEvent::Error { code: c, message } if c == code => Some(message.clone()),
            _ => None,
        })
        .await
    }

    pub async fn stats(&mut self) -> dyad_call::stats::StatsSnapshot {
        self.wait("stats", |e| match e {
            CallEvent::Stats(p) => Some(p.snapshot.clone()),
            _ => None,
        })
        .await
    }

    /// Frame numbers read from the decoded remote video for `d`.
    pub async fn frame_numbers(&self, d: Duration) -> Vec<u32> {
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

/// `a` (signed in as `a_name`) asks `b_name` to be a contact and waits until the request is
/// accepted (by `b`, or by itself when `b` is `None`: a bot that accepts every request).
pub async fn befriend_live(a: &mut Peer, a_name: &str, b: Option<&mut Peer>, b_name: &str) {
    a.h.add_contact(b_name).expect("contact_add");
    if let Some(b) = b {
        b.wait("a contact request", |e| match e {
            CallEvent::Contacts(list) => list
                .iter()
                .any(|c| c.username == a_name && c.state == ContactState::Incoming)
                .then_some(()),
            _ => None,
        })
        .await;
        b.h.add_contact(a_name).expect("accept");
    }
    a.wait("an accepted contact", |e| match e {
        CallEvent::Contacts(list) => list
            .iter()
            .any(|c| c.username == b_name && c.state == ContactState::Accepted)
            .then_some(()),
        _ => None,
    })
    .await;
}

pub fn strictly_increasing(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

pub async fn connect_pair(s: &Server, a: &str, b: &str) -> (Peer, Peer) {
    let mut alice = user(s, a).await;
    let mut bob = user(s, b).await;
    alice.h.dial(b).expect("test");
    bob.incoming().await;
    bob.h.accept().expect("test");
    alice.connected().await;
    bob.connected().await;
    (alice, bob)
}

/// Keeps what it plays, for checking content.
pub struct KeepSink(pub Arc<std::sync::Mutex<Vec<i16>>>);

impl dyad_media::AudioSink for KeepSink {
    fn play(&mut self, frame: &dyad_media::AudioFrame) -> dyad_media::Result<()> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(&frame.samples);
        }
        Ok(())
    }
}

/// (frequency by zero crossings, RMS level in dBFS) of the last second of 48 kHz mono `samples`.
pub fn tone_of(samples: &[i16]) -> Option<(f64, f64)> {
    let last = samples.get(samples.len().checked_sub(48_000)?..)?;
    let crossings = last.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let rms = (last.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / last.len() as f64).sqrt();
    Some((crossings as f64 / 2.0, 20.0 * (rms / 32768.0).log10()))
}

/// A server over a database file that can be stopped and started again on the same address.
pub struct Restartable {
    pub addr: std::net::SocketAddr,
    pub dir: std::path::PathBuf,
    config: ServerConfig,
    /// The first start's listener, bound when the address was picked (nobody can take it).
    first: std::sync::Mutex<Option<tokio::net::TcpListener>>,
}

impl Restartable {
    /// Picks the address and the database file (in a fresh directory named after `tag`).
    pub async fn new(tag: &str, config: ServerConfig) -> Restartable {
        let dir = std::env::temp_dir().join(format!("dyad-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = probe.local_addr().expect("addr");
        Restartable {
            addr,
            dir,
            config,
            first: std::sync::Mutex::new(Some(probe)),
        }
    }

    /// Starts it (again): the sender stops it, the handle ends when it has.
    pub async fn start(&self) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let first = self.first.lock().expect("lock").take();
        let listener = match first {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(self.addr)
                .await
                .expect("rebind"),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (db, config) = (self.dir.join("dyad.db"), self.config.clone());
        let task = tokio::spawn(async move {
            let store = Store::open(&db).await.expect("store");
            dyad_server::run(listener, store, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server");
        });
        (stop, task)
    }
}
