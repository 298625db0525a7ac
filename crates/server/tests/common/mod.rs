//! A real server on 127.0.0.1:0 and small real clients (raw HTTP/1.1, tokio-tungstenite).

#![allow(dead_code)]

use std::time::Duration;

use dyad_proto::ServerMessage;
use dyad_server::router::RouterConfig;
use dyad_server::{ServerConfig, Store};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
/// How long a test waits for something that should happen (generous: CI machines are busy).
pub const WAIT: Duration = Duration::from_secs(10);

/// Short timers, so timeouts and the reconnect grace pass within a test.
pub fn fast() -> ServerConfig {
    ServerConfig {
        ping_interval_ms: 200,
        idle_timeout_ms: 1_000,
        router: RouterConfig {
            reconnect_grace_ms: 300,
        },
        ..ServerConfig::default()
    }
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The server's store (for setting up accounts the way the protocol would).
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> Self {
        let store = Store::open_in_memory().await.expect("store");
        Self::start_with(store, config).await
    }

    pub async fn start_with(store: Store, config: ServerConfig) -> Self {
        let kept = store.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dyad_server::run(listener, store, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server ran");
        });
        Self {
            addr,
            store: kept,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .expect("server stops")
                .expect("server task");
        }
    }

    /// Makes two registered users accepted contacts of each other, as two `contact_add`s
    /// would (call this before they connect: a live session learns of changes only through
    /// the protocol).
    pub async fn befriend(&self, a: &str, b: &str) {
        self.store.make_contacts(a, b).await.expect("contacts");
    }

    /// One HTTP/1.1 request; returns (status, the response head, parsed JSON body or Null).
    pub async fn http_with_head(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, String, Value) {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .expect("read");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status line");
        (
            status,
            head.to_string(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// One HTTP/1.1 request; returns (status, parsed JSON body or Null).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let (status, _, body) = self.http_with_head(method, path, token, body).await;
        (status, body)
    }

    /// Registers a user and returns their token.
    pub async fn register(&self, user: &str) -> String {
        let body = format!(r#"{{"username":"{user}","password":"correct horse {user}"}}"#);
        let (status, v) = self
            .http("POST", "/v1/register", None, body.as_bytes())
            .await;
        assert_eq!(status, 201, "register {user}: {v}");
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn connect(&self, token: &str, device: &str) -> Client {
        let url = format!("ws://{}/v1/ws?device={device}&token={token}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let mut c = Client {
            ws,
            device: device.into(),
            anyone_may_call: false,
        };
        match c.next().await {
            ServerMessage::Welcome {
                device: d,
                anyone_may_call,
                ..
            } => {
                assert_eq!(d, device);
                c.anyone_may_call = anyone_may_call;
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }

    pub async fn history(&self, token: &str) -> Vec<Value> {
        let (status, v) = self.http("GET", "/v1/history", Some(token), b"").await;
        assert_eq!(status, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }
}

pub struct Client {
    pub ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    pub device: String,
    /// What `welcome` said of the user's privacy setting.
    pub anyone_may_call: bool,
}

impl Client {
    pub async fn send(&mut self, json: &str) {
        self.ws
            .send(Message::Text(json.into()))
            .await
            .expect("send");
    }

    /// The next protocol message (skipping nothing).
    pub async fn next(&mut self) -> ServerMessage {
        self.next_within(WAIT).await
    }

    async fn next_within(&mut self, wait: Duration) -> ServerMessage {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: nothing within {wait:?}", self.device))
                .expect("stream open")
                .expect("frame");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(&t).unwrap_or_else(|e| panic!("{t}: {e}"))
                }
                Message::Close(f) => panic!("{}: closed {f:?}", self.device),
                _ => continue,
            }
        }
    }

    /// Skips messages until one matches; fails after [`WAIT`].
    pub async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> ServerMessage {
        self.expect_within(what, WAIT, pred).await
    }

    /// Skips messages until one matches; fails after `wait`.
    pub async fn expect_within(
        &mut self,
        what: &str,
        wait: Duration,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!("{}: no {what} within {wait:?}", self.device);
            }
            let m = self.next_within(left).await;
            if pred(&m) {
                return m;
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closed in time")
            {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
            }
        }
    }
}
