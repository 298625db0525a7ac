//! Talking to the signalling server: the three HTTP calls a client needs (register, login, ICE
//! servers) and the WebSocket session (see docs/protocol.md).
//!
//! HTTP is a minimal HTTP/1.1 client (one request per connection, `Content-Length` bodies, at
//! most [`MAX_HTTP_RESPONSE`] bytes): the server is ours and speaks exactly that, and it saves a
//! dependency tree the size of reqwest's. `http://` and `https://` (rustls; the system's CA bundle,
//! plus the PEM file in `DYAD_CA_FILE` or [`ServerUrl::trusting`] for a self-signed server); the
//! WebSocket follows as `ws://` or `wss://`.

use std::sync::Arc;
use std::time::Duration;

use dyad_proto::http::{Credentials, IceConfig, Session};
use dyad_proto::{ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// Where the system's CA certificates are (Debian and derivatives; others fall back to
/// `DYAD_CA_FILE`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A signalling server's address, from `http://host:port` or `https://host:port`.
#[derive(Debug, Clone)]
pub struct ServerUrl {
    host_port: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    roots: Vec<CertificateDer<'static>>,
}

impl PartialEq for ServerUrl {
    fn eq(&self, other: &Self) -> bool {
        self.host_port == other.host_port && self.tls.is_some() == other.tls.is_some()
    }
}

impl Eq for ServerUrl {}

fn tls_config(roots: &[CertificateDer<'static>]) -> Result<Arc<rustls::ClientConfig>> {
    let mut store = rustls::RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CallError::Protocol(format!("TLS setup: {e}")))?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn pem_certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .map(|it| it.filter_map(std::result::Result::ok).collect())
        .unwrap_or_default()
}

impl ServerUrl {
    /// Parses `http://host:port` or `https://host:port` (a trailing `/` is fine). For https the
    /// trusted roots are the system bundle plus the PEM certificates in `$DYAD_CA_FILE`.
    pub fn parse(url: &str) -> Result<Self> {
        let (rest, tls) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err(CallError::BadUrl(url.into()));
        };
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') || host_port.len() > 255 {
            return Err(CallError::BadUrl(url.into()));
        }
        let mut me = Self {
            host_port: host_port.into(),
            tls: None,
            roots: Vec::new(),
        };
        if tls {
            if ServerName::try_from(me.host().to_string()).is_err() {
                return Err(CallError::BadUrl(url.into()));
            }
            me.roots = pem_certs(std::path::Path::new(SYSTEM_CA_BUNDLE));
            if let Some(extra) = std::env::var_os("DYAD_CA_FILE") {
                me.roots.extend(pem_certs(std::path::Path::new(&extra)));
            }
            me.tls = Some(tls_config(&me.roots)?);
        }
        Ok(me)
    }

    /// Also trusts the PEM certificate(s) in `pem` (a self-signed server). Only for https URLs.
    pub fn trusting(mut self, pem: &[u8]) -> Result<Self> {
        if self.tls.is_none() {
            return Err(CallError::BadUrl(format!("{self}: not an https:// URL")));
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .filter_map(std::result::Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(CallError::Protocol("no PEM certificate to trust".into()));
        }
        self.roots.extend(certs);
        self.tls = Some(tls_config(&self.roots)?);
        Ok(self)
    }

    /// `host:port`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// The host alone (for TLS server names), without brackets for IPv6.
    pub fn host(&self) -> &str {
        let h = match self.host_port.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => &self.host_port,
        };
        h.trim_start_matches('[').trim_end_matches(']')
    }

    /// True for https / wss.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A connected stream to the server: TCP, wrapped in TLS for https.
    async fn open(&self) -> Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(self.host_port())
            .await
            .map_err(|e| CallError::Unreachable(format!("{self}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(self.host().to_string())
            .map_err(|_| CallError::BadUrl(self.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map_err(|e| CallError::Unreachable(format!("{self}: TLS: {e}")))?;
        Ok(Box::new(tls))
    }
}

/// Maps a failed WebSocket upgrade: the server's error body when it sent one.
fn ws_error((server, e): (&ServerUrl, tokio_tungstenite::tungstenite::Error)) -> CallError {
    match e {
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
    }
}

/// A byte stream to the server (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.is_tls() { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host_port)
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
        let mut s = server.open().await?;
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
    split_response(&raw)
}

/// A raw HTTP/1.1 response (as the server sent it, at most [`MAX_HTTP_RESPONSE`] bytes) split
/// into its status and body. Public for the fuzz targets only.
#[doc(hidden)]
pub fn split_response(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
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

/// A response body as `T` (2xx) or the server's error. Public for the fuzz targets only.
#[doc(hidden)]
pub fn json_or_error<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
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

/// Mints a one-use guest link (`POST /v1/invites`), valid `ttl_secs` (server default if
/// `None`). The link is `server` + [`dyad_proto::http::Invite::path`].
pub async fn create_invite(
    server: &ServerUrl,
    token: &str,
    ttl_secs: Option<u64>,
) -> Result<dyad_proto::http::Invite> {
    let body = serde_json::to_vec(&dyad_proto::http::InviteRequest { ttl_secs })
        .map_err(|e| CallError::Protocol(e.to_string()))?;
    let (status, body) = http(server, "POST", "/v1/invites", Some(token), &body).await?;
    json_or_error(status, &body)
}

/// Revokes one of our guest links before it is used.
pub async fn revoke_invite(server: &ServerUrl, token: &str, link: &str) -> Result<()> {
    let path = format!("/v1/invites/{link}");
    let (status, body) = http(server, "DELETE", &path, Some(token), b"").await?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    json_or_error::<serde_json::Value>(status, &body).map(|_| ())
}

/// Revokes `token` on the server (sign out).
pub async fn logout(server: &ServerUrl, token: &str) -> Result<()> {
    let (status, body) = http(server, "POST", "/v1/logout", Some(token), b"").await?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    json_or_error::<serde_json::Value>(status, &body).map(|_| ())
}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// One WebSocket session with the server.
pub struct Connection {
    ws: Ws,
    /// This connection's device id.
    pub device: String,
    /// How often to ping.
    pub ping_interval: Duration,
    /// Whether people who are not contacts may call us, as `welcome` said.
    pub anyone_may_call: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("device", &self.device)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects and waits for `welcome`.
    pub async fn connect(server: &ServerUrl, token: &str, device: &str) -> Result<Self> {
        let scheme = if server.is_tls() { "wss" } else { "ws" };
        let url = format!(
            "{scheme}://{}/v1/ws?device={device}&token={token}",
            server.host_port()
        );
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_FRAME))
            .max_frame_size(Some(MAX_WS_FRAME));
        let connect = async {
            let stream = server.open().await?;
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(|e| (server, e))
                .map_err(ws_error)
        };
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| CallError::Unreachable(format!("{server}: WebSocket timed out")))??;
        let mut conn = Connection {
            ws,
            device: device.into(),
            ping_interval: Duration::from_secs(15),
            anyone_may_call: false,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, conn.recv()).await {
            Ok(Ok(Some(ServerMessage::Welcome {
                device,
                ping_interval_ms,
                anyone_may_call,
                ..
            }))) => {
                conn.device = device;
                conn.anyone_may_call = anyone_may_call;
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
        self.send_text(text).await
    }

    /// Sends one message with a `ref`, which the server echoes in the `ack` or `error` it causes.
    pub async fn send_with_ref(&mut self, msg: &ClientMessage, reference: &str) -> Result<()> {
        let mut value =
            serde_json::to_value(msg).map_err(|e| CallError::Protocol(e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("ref".into(), reference.into());
        }
        self.send_text(value.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<()> {
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
