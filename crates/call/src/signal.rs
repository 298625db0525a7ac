//! Talking to the signalling server: the HTTP calls a client needs (register, login, ICE
//! servers, history, guest links, logout) and the WebSocket session (see docs/protocol.md).
//!
//! HTTP/1.1 is hyper's client (one request per connection; bodies of any framing, at most
//! [`MAX_HTTP_RESPONSE`] bytes). `http://` and `https://` (rustls, trusting the operating
//! system's CA certificates, plus the PEM file in `DYAD_CA_FILE` or [`ServerUrl::trusting`] for
//! a self-signed server); the WebSocket follows as `ws://` or `wss://`. Both go through an HTTP
//! proxy when `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` say so (with `NO_PROXY`, as curl reads
//! them) or [`ServerUrl::through_proxy`] names one: a `CONNECT` tunnel (hyper-util's), with TLS
//! to the server inside it, as browsers do.

use std::sync::Arc;
use std::time::Duration;

use dyad_proto::http::{Credentials, IceConfig, Session};
use dyad_proto::{ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

use crate::error::{CallError, Result};

/// Largest HTTP response we read.
pub const MAX_HTTP_RESPONSE: usize = 256 * 1024;
/// Largest WebSocket frame we accept from the server.
pub const MAX_WS_FRAME: usize = 256 * 1024;
/// WebSocket close code: a newer connection of the same device replaced this one.
pub const CLOSE_REPLACED: u16 = 4009;
/// How long any one HTTP exchange or WebSocket connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A signalling server's address, from `http://host:port` or `https://host:port`, and how to
/// reach it (directly or through a proxy).
#[derive(Debug, Clone)]
pub struct ServerUrl {
    host_port: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    roots: Vec<CertificateDer<'static>>,
    proxy: Arc<Matcher>,
}

/// The operating system's trusted CA certificates (on Linux the distribution's bundle, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`). Read once per process.
fn system_roots() -> Vec<CertificateDer<'static>> {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("system CA certificates: {e}");
            }
            found.certs
        })
        .clone()
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

/// A TLS client configuration for TURN over TLS (`turns:`, ALPN `stun.turn`) trusting `roots`.
fn turn_tls(roots: &[CertificateDer<'static>]) -> Result<Arc<rustls::ClientConfig>> {
    let mut config = (*tls_config(roots)?).clone();
    config.alpn_protocols = vec![b"stun.turn".to_vec()];
    Ok(Arc::new(config))
}

/// A `CONNECT` tunnel through the proxy `via` to `host_port` (`what` names it in errors).
async fn tunnel(
    via: &hyper_util::client::proxy::matcher::Intercept,
    host_port: &str,
    what: &str,
) -> Result<TcpStream> {
    let proxy = via.uri().clone();
    if proxy.scheme_str() != Some("http") {
        return Err(CallError::Unreachable(format!(
            "{what}: proxy {proxy}: only http:// proxies (HTTP CONNECT) are supported"
        )));
    }
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let mut tunnel = Tunnel::new(proxy.clone(), http);
    if let Some(auth) = via.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    // CONNECT names the target as host:port; the tunnel takes it from this URI.
    let target: hyper::Uri = format!("http://{host_port}")
        .parse()
        .map_err(|_| CallError::BadUrl(what.to_string()))?;
    let io = tunnel
        .oneshot(target)
        .await
        .map_err(|e| CallError::Unreachable(format!("{what} through proxy {proxy}: {e}")))?;
    Ok(io.into_inner())
}

/// How a TURN-over-TCP/TLS shim reaches its server: directly, or through an HTTP proxy's
/// `CONNECT` (as browsers do for TURN/TLS), chosen as for `https://host:port` by the proxy
/// settings of the signalling server's URL ([`ServerUrl::stream_route`]).
#[derive(Debug, Clone, Default)]
pub struct StreamRoute {
    proxy: Option<Arc<Matcher>>,
}

impl StreamRoute {
    /// A TCP stream to `host:port`, tunnelled through the proxy when the settings say so. As
    /// for signalling, a proxy that refuses the tunnel is not gone around: many allow `CONNECT`
    /// to 443 only, and then TURN over TLS on the server's HTTPS port is the relay that works.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream> {
        let host_port = join_host_port(host, port);
        let dst: hyper::Uri = format!("https://{host_port}")
            .parse()
            .map_err(|_| CallError::BadUrl(host_port.clone()))?;
        match self.proxy.as_ref().and_then(|p| p.intercept(&dst)) {
            Some(via) => tunnel(&via, &host_port, &host_port).await,
            None => TcpStream::connect((host, port))
                .await
                .map_err(|e| CallError::Unreachable(format!("{host_port}: {e}"))),
        }
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// [`ServerUrl::turn_tls_config`] without a server: the system's CA certificates and
/// `$DYAD_CA_FILE`.
pub fn turn_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = system_roots();
    if let Some(extra) = std::env::var_os("DYAD_CA_FILE") {
        roots.extend(pem_certs(std::path::Path::new(&extra)));
    }
    turn_tls(&roots)
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
            proxy: Arc::new(Matcher::from_env()),
        };
        if tls {
            if ServerName::try_from(me.host().to_string()).is_err() {
                return Err(CallError::BadUrl(url.into()));
            }
            me.roots = system_roots();
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

    /// Reaches the server through the HTTP proxy at `proxy` (`http://host:port`, optionally
    /// `http://user:password@host:port`) whatever the environment says; `None` connects
    /// directly.
    pub fn through_proxy(mut self, proxy: Option<&str>) -> Result<Self> {
        self.proxy = match proxy {
            None => Arc::new(Matcher::builder().build()),
            Some(p) => {
                if !p.starts_with("http://") || p.parse::<hyper::Uri>().is_err() {
                    return Err(CallError::BadUrl(format!(
                        "{p}: a proxy is http://host:port"
                    )));
                }
                Arc::new(Matcher::builder().all(p.to_string()).build())
            }
        };
        Ok(self)
    }

    /// The proxy this server is reached through, if any (`http://host:port`).
    pub fn proxy(&self) -> Option<String> {
        let dst = self.uri().ok()?;
        let via = self.proxy.intercept(&dst)?;
        Some(via.uri().to_string())
    }

    fn uri(&self) -> Result<hyper::Uri> {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}/", self.host_port)
            .parse()
            .map_err(|_| CallError::BadUrl(self.to_string()))
    }

    /// The TLS configuration for this server's `turns:` relays: what its https:// URL trusts
    /// (with [`ServerUrl::trusting`]'s certificates), or the system's for an http:// URL.
    pub fn turn_tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        if self.roots.is_empty() {
            return turn_tls_config();
        }
        turn_tls(&self.roots)
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

    /// The server is on this computer: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// True for https / wss.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A TCP stream to the server, or to the proxy and tunnelled on to the server.
    async fn tcp(&self) -> Result<TcpStream> {
        let dst = self.uri()?;
        match self.proxy.intercept(&dst) {
            None => TcpStream::connect(self.host_port())
                .await
                .map_err(|e| CallError::Unreachable(format!("{self}: {e}"))),
            Some(via) => tunnel(&via, &self.host_port, &self.to_string()).await,
        }
    }

    /// How TURN over TCP and TLS reaches its server: through the proxy this server is reached
    /// by, where the proxy settings name one for it.
    pub fn stream_route(&self) -> StreamRoute {
        StreamRoute {
            proxy: Some(self.proxy.clone()),
        }
    }

    /// A connected stream to the server: TCP, wrapped in TLS for https.
    async fn open(&self) -> Result<Box<dyn Io>> {
        let tcp = self.tcp().await?;
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
    let failed = |e: &dyn std::fmt::Display| CallError::Unreachable(format!("{server}: {e}"));
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, server.host_port())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
            body,
        )))
        .map_err(|e| CallError::Protocol(format!("HTTP request: {e}")))?;
    let exchange = async {
        let io = server.open().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| failed(&e))?;
        // The connection is driven beside the request and ends with it.
        let driver = tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_HTTP_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    CallError::Protocol("HTTP response too large".into())
                } else {
                    failed(&e)
                }
            })?
            .to_bytes()
            .to_vec();
        drop(sender);
        driver.abort();
        Ok((status, body))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, exchange)
        .await
        .map_err(|_| CallError::Unreachable(format!("{server}: no answer in time")))?
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
