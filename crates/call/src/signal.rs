//! Talking to the signalling server: the three HTTP calls a client needs (register, login, ICE
//! servers) and the WebSocket session (see docs/protocol.md).
//!
//! HTTP is a minimal HTTP/1.1 client (one request per connection, `Content-Length` bodies, at
//! most [`MAX_HTTP_RESPONSE`] bytes): the server is ours and speaks exactly that, and it saves a
//! dependency tree the size of reqwest's. Plain `http://` only for now.

use std::time::Duration;

use dyad_proto::http::{Credentials, IceConfig, Session};
use dyad_proto::{ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{CallError, Result};

/// Largest HTTP response we read.
pub const MAX_HTTP_RESPONSE: usize = 256 * 1024;
/// Largest WebSocket frame we accept from the server.
pub const MAX_WS_FRAME: usize = 256 * 1024;
/// WebSocket close code: a newer connection of the same device replaced this one.
pub const CLOSE_REPLACED: u16 = 4009;
/// How long any one HTTP exchange or WebSocket connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A signalling server's address, from `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    host_port: String,
}

impl ServerUrl {
    /// Parses `http://host:port` (a trailing `/` is fine).
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| CallError::BadUrl(url.into()))?;
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') || host_port.len() > 255 {
            return Err(CallError::BadUrl(url.into()));
        }
        Ok(Self {
            host_port: host_port.into(),
        })
    }

    /// `host:port`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.host_port)
    }
}

async fn http(
    server: &ServerUrl,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let exchange = async {
        let mut s = TcpStream::connect(server.host_port())
            .await
            .map_err(|e| CallError::Unreachable(format!("{server}: {e}")))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
            server.host_port(),
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut raw = Vec::new();
        let mut limited = s.take(MAX_HTTP_RESPONSE as u64 + 1);
        limited.read_to_end(&mut raw).await?;
        if raw.len() > MAX_HTTP_RESPONSE {
            return Err(CallError::Protocol("HTTP response too large".into()));
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(CONNECT_TIMEOUT, exchange)
        .await
        .map_err(|_| CallError::Unreachable(format!("{server}: no answer in time")))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| CallError::Protocol("HTTP response without a header end".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| CallError::Protocol("HTTP response without a status".into()))?;
    Ok((status, raw[split + 4..].to_vec()))
}

fn json_or_error<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|e| CallError::Protocol(format!("bad response body: {e}")));
    }
    match serde_json::from_slice::<dyad_proto::ProtoError>(body) {
        Ok(e) => Err(CallError::Server {
            code: e.code.to_string(),
            message: e.message,
        }),
        Err(_) => Err(CallError::Server {
            code: "http_error".into(),
            message: format!("HTTP {status}"),
        }),
    }
}

/// Creates an account and signs in.
pub async fn register(server: &ServerUrl, username: &str, password: &str) -> Result<Session> {
    credentials_call(server, "/v1/register", username, password).await
}

/// Signs in.
pub async fn login(server: &ServerUrl, username: &str, password: &str) -> Result<Session> {
    credentials_call(server, "/v1/login", username, password).await
}

/// Signs in, creating the account first if it does not exist (bots, tests, the demo).
pub async fn login_or_register(
    server: &ServerUrl,
    username: &str,
    password: &str,
) -> Result<Session> {
    match login(server, username, password).await {
        Err(CallError::Server { code, .. }) if code == "wrong_credentials" => {
            register(server, username, password).await
        }
        other => other,
    }
}

async fn credentials_call(
    server: &ServerUrl,
    path: &str,
    username: &str,
    password: &str,
) -> Result<Session> {
    let body = serde_json::to_vec(&Credentials {
        username: username.into(),
        password: password.into(),
    })
    .map_err(|e| CallError::Protocol(e.to_string()))?;
    let (status, body) = http(server, "POST", path, None, &body).await?;
    json_or_error(status, &body)
}

/// STUN/TURN servers and credentials for this user.
pub async fn ice_servers(server: &ServerUrl, token: &str) -> Result<IceConfig> {
    let (status, body) = http(server, "GET", "/v1/ice", Some(token), b"").await?;
    json_or_error(status, &body)
}

/// The signed-in user's call history, newest first.
pub async fn history(server: &ServerUrl, token: &str) -> Result<Vec<dyad_proto::http::CallRecord>> {
    let (status, body) = http(server, "GET", "/v1/history", Some(token), b"").await?;
    json_or_error(status, &body)
}

/// Revokes `token` on the server (sign out).
pub async fn logout(server: &ServerUrl, token: &str) -> Result<()> {
    let (status, body) = http(server, "POST", "/v1/logout", Some(token), b"").await?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    json_or_error::<serde_json::Value>(status, &body).map(|_| ())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// One WebSocket session with the server.
#[derive(Debug)]
pub struct Connection {
    ws: Ws,
    /// This connection's device id.
    pub device: String,
    /// How often to ping.
    pub ping_interval: Duration,
}

impl Connection {
    /// Connects and waits for `welcome`.
    pub async fn connect(server: &ServerUrl, token: &str, device: &str) -> Result<Self> {
        let url = format!(
            "ws://{}/v1/ws?device={device}&token={token}",
            server.host_port()
        );
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_FRAME))
            .max_frame_size(Some(MAX_WS_FRAME));
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| CallError::Unreachable(format!("{server}: WebSocket timed out")))?
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let body = resp.body().clone().unwrap_or_default();
                    match serde_json::from_slice::<dyad_proto::ProtoError>(&body) {
                        Ok(pe) => CallError::Server {
                            code: pe.code.to_string(),
                            message: pe.message,
                        },
                        Err(_) => CallError::Server {
                            code: "http_error".into(),
                            message: format!("HTTP {}", resp.status()),
                        },
                    }
                }
                other => CallError::Unreachable(format!("{server}: {other}")),
            })?;
        let mut conn = Connection {
            ws,
            device: device.into(),
            ping_interval: Duration::from_secs(15),
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, conn.recv()).await {
            Ok(Ok(Some(ServerMessage::Welcome {
                device,
                ping_interval_ms,
                ..
            }))) => {
                conn.device = device;
                conn.ping_interval = Duration::from_millis(ping_interval_ms.clamp(1_000, 60_000));
                Ok(conn)
            }
            Ok(Ok(Some(ServerMessage::Error(e)))) => Err(CallError::Server {
                code: e.code.to_string(),
                message: e.message,
            }),
            Ok(Ok(other)) => Err(CallError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Unreachable(format!("{server}: no welcome"))),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<()> {
        let text = serde_json::to_string(msg).map_err(|e| CallError::Protocol(e.to_string()))?;
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))
    }

    /// The next protocol message; `None` when the server closed the connection. Frames that
    /// are not valid protocol are skipped (logged), never fatal: a newer server may send types
    /// we do not know yet.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        loop {
            let Some(frame) = self.ws.next().await else {
                return Ok(None);
            };
            match frame.map_err(|e| CallError::Unreachable(e.to_string()))? {
                Message::Text(text) => match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(m) => return Ok(Some(m)),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a server message we do not understand");
                    }
                },
                Message::Close(Some(frame)) if u16::from(frame.code) == CLOSE_REPLACED => {
                    return Err(CallError::Server {
                        code: "replaced".into(),
                        message: "signed in on this device from another connection".into(),
                    })
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
    }
}
