//! HTTP routes and the per-connection WebSocket task. Handlers are thin: parse and bound the
//! input, call the store or the hub, map errors to `{code, message, ref}` bodies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::Path;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use dyad_proto::http::{
    Credentials, GuestRequest, GuestSession, IceConfig, Invite, InviteRequest, Session,
};
use dyad_proto::limits::{
    check_device_id, check_new_username, check_password, check_username, MAX_MESSAGE_BYTES,
};
use dyad_proto::{parse_client_message, ClientMessage, ErrorCode, ProtoError, ServerMessage};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::accept::Admission;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::hub::{ContactChange, HubEvent, Outbox};
use crate::router::Party;
use crate::store::{CallPermission, Store, GUEST_PREFIX};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Accounts, tokens, contacts, history.
    pub store: Store,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The hub's inbox.
    pub hub: mpsc::Sender<HubEvent>,
    /// Connection id counter.
    pub next_conn: Arc<AtomicU64>,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Password attempts per source and per account.
    pub throttle: Arc<std::sync::Mutex<crate::throttle::Throttle>>,
    /// Live WebSocket sessions (by connection id) and the tag of the token each was opened
    /// with: logging the token out closes them.
    pub live: Arc<std::sync::Mutex<LiveSessions>>,
    /// Keeps the hub's contact index in step with the store. A contact change holds it
    /// exclusively from its write to the store until its event is queued for the hub, so the
    /// hub applies changes in the order the store did; a join holds it shared from reading the
    /// contact list until its `Join` is queued, so no change falls between the two.
    pub contacts_order: Arc<tokio::sync::RwLock<()>>,
}

/// See [`AppState::live`]. Small on purpose (≈ 40 B a session, every idle session has one): a
/// logout scans it, and logouts are rare.
pub type LiveSessions = std::collections::HashMap<u64, (u64, Arc<Outbox>)>;

/// The first 8 bytes of a token's SHA-256: what a live session remembers of its token (two live
/// tokens share one with probability 2^-64 per pair).
fn token_tag(token: &str) -> u64 {
    let hash = crate::store::token_hash(token);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(tag)
}

fn live(state: &AppState) -> std::sync::MutexGuard<'_, LiveSessions> {
    state
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/ice", get(ice))
        .route("/v1/history", get(history))
        .route("/v1/ws", get(websocket))
        .route("/v1/invites", post(create_invite))
        .route("/v1/invites/{token}", delete(revoke_invite))
        .route("/v1/guest", post(redeem_invite))
        .route("/join/guest.js", get(crate::guest::script))
        .route("/join/guest.css", get(crate::guest::style))
        .route("/join/{token}", get(crate::guest::page))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError(ProtoError::new(ErrorCode::NotFound, "no such route")) })
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Every error leaves as the documented `{code, message}` JSON body, including those axum's
/// extractors and router answer themselves in plain text (a bad query string, a wrong method, a
/// body over the limit, a WebSocket upgrade without its headers).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidField,
    };
    // axum's rejection texts are short; a longer body is cut, not buffered whole.
    let text = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    (status, Json(ProtoError::new(code, message))).into_response()
}

/// An error as an HTTP response: status from the code, body `{code, message}`.
#[derive(Debug)]
pub struct ApiError(ProtoError);

impl From<ProtoError> for ApiError {
    fn from(e: ProtoError) -> Self {
        Self(e)
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        Self(e.to_proto())
    }
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized | ErrorCode::TokenExpired | ErrorCode::WrongCredentials => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::UsernameTaken | ErrorCode::DuplicateCall => StatusCode::CONFLICT,
        ErrorCode::UnknownUser | ErrorCode::UnknownCall => StatusCode::NOT_FOUND,
        ErrorCode::TooManyConnections | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::NotAllowed => StatusCode::FORBIDDEN,
        ErrorCode::InviteExpired | ErrorCode::InviteUsed => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status_of(self.0.code), Json(self.0)).into_response()
    }
}

fn now_unix() -> u64 {
    crate::hub::now_ms() / 1000
}

/// A body that did not parse: `malformed_json` for bad JSON, `invalid_field` for a wrong shape.
fn bad_json(e: serde_json::Error) -> ProtoError {
    let code = if e.is_syntax() || e.is_eof() {
        ErrorCode::MalformedJson
    } else {
        ErrorCode::InvalidField
    };
    ProtoError::new(code, e.to_string())
}

#[doc(hidden)] // public for the fuzz targets only
pub fn parse_credentials(body: &[u8]) -> Result<Credentials, ApiError> {
    let creds: Credentials = serde_json::from_slice(body).map_err(bad_json)?;
    check_username(&creds.username)?;
    check_password(&creds.password)?;
    Ok(creds)
}

async fn sign_in(state: &AppState, username: String) -> Result<Session, ApiError> {
    let (token, expires_at) = state
        .store
        .create_token(&username, now_unix(), state.config.token_ttl_secs)
        .await?;
    Ok(Session {
        token,
        username,
        expires_at,
    })
}

/// Reads a request body within the request deadline and the size limit.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let deadline = Duration::from_millis(state.config.request_timeout_ms);
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_MESSAGE_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ProtoError::new(
            ErrorCode::TooLarge,
            format!("bodies are limited to {MAX_MESSAGE_BYTES} bytes"),
        )
        .into()),
        Err(_) => Err(ProtoError::new(
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        )
        .into()),
    }
}

/// One password attempt: `None` when allowed, else the `rate_limited` answer (429 with
/// `Retry-After`) because its source or account has tried too often. Checked before any hashing.
fn throttled(
    state: &AppState,
    admission: Option<&Extension<Arc<Admission>>>,
    account: Option<&str>,
) -> Option<Response> {
    let source = admission.map(|Extension(a)| a.source());
    let verdict = state
        .throttle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .attempt(source, account, Instant::now());
    verdict.err().map(|wait| {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let e = ProtoError::new(
            ErrorCode::RateLimited,
            format!("too many attempts: try again in {secs} s"),
        );
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            Json(e),
        )
            .into_response()
    })
}

async fn register(
    State(state): State<AppState>,
    admission: Option<Extension<Arc<Admission>>>,
    body: Body,
) -> Result<Response, ApiError> {
    let creds = parse_credentials(&read_body(&state, body).await?)?;
    check_new_username(&creds.username)?;
    if let Some(limited) = throttled(&state, admission.as_ref(), None) {
        return Ok(limited);
    }
    // `guest-` names are guest links' (and `guest.`/`guest_` would pass for them).
    let guest_like = creds
        .username
        .strip_prefix("guest")
        .is_some_and(|rest| rest.starts_with(['-', '.', '_']));
    if guest_like {
        return Err(ProtoError::new(
            ErrorCode::InvalidField,
            format!("username: names starting with {GUEST_PREFIX} are for guest links"),
        )
        .into());
    }
    state
        .store
        .register(&creds.username, &creds.password, now_unix())
        .await?;
    let session = sign_in(&state, creds.username).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

async fn login(
    State(state): State<AppState>,
    admission: Option<Extension<Arc<Admission>>>,
    body: Body,
) -> Result<Response, ApiError> {
    let creds = parse_credentials(&read_body(&state, body).await?)?;
    if let Some(limited) = throttled(&state, admission.as_ref(), Some(&creds.username)) {
        return Ok(limited);
    }
    state
        .store
        .verify_login(&creds.username, &creds.password)
        .await?;
    Ok(Json(sign_in(&state, creds.username).await?).into_response())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The username behind a token, or `unauthorized` / `token_expired`.
async fn authenticate(state: &AppState, token: Option<&str>) -> Result<String, ApiError> {
    let token =
        token.ok_or_else(|| ProtoError::new(ErrorCode::Unauthorized, "a token is required"))?;
    Ok(state.store.check_token(token, now_unix()).await?)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let token = bearer(&headers);
    authenticate(&state, token).await?;
    let token = token.unwrap_or_default();
    state.store.revoke_token(token).await?;
    // Its live sessions end too (4001): a logged-out token must not keep a device online.
    let tag = token_tag(token);
    for (t, outbox) in live(&state).values() {
        if *t == tag {
            outbox.log_out();
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn ice(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<IceConfig>, ApiError> {
    let username = authenticate(&state, bearer(&headers)).await?;
    let mut config = match &state.config.turn {
        Some(turn) => crate::turn::ice_config(turn, &username, now_unix()),
        None => IceConfig {
            ice_servers: vec![],
            ttl_secs: 0,
            nat_test: None,
        },
    };
    // TURN over TLS on this very port, under the name the client reached it by (which is the
    // certificate's, or the client could not have asked).
    if state.config.tls.is_some() && state.config.turn_over_tls.is_some() {
        if let Some(host) = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(turns_host)
        {
            if let Some(turn) = config.ice_servers.iter_mut().find(|s| s.username.is_some()) {
                turn.urls.push(format!("turns:{host}?transport=tcp"));
            }
        }
    }
    Ok(Json(config))
}

/// `host:port` for a `turns:` URL from a request's Host header (443 when it names none), or
/// `None` when it is not a plain host name or address.
fn turns_host(host: &str) -> Option<String> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        return None;
    }
    let has_port = match host.rsplit_once(':') {
        Some((h, port)) => {
            !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && !h.ends_with(':')
                && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    Some(if has_port {
        host.to_string()
    } else {
        format!("{host}:443")
    })
}

async fn history(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let username = authenticate(&state, bearer(&headers)).await?;
    let rows = state.store.history(&username, 200).await?;
    Ok(Json(rows).into_response())
}

/// Guest links last 1 min – 7 days.
const INVITE_TTL: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;

#[doc(hidden)] // public for the fuzz targets only
pub fn parse_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_json(e).into())
}

/// `POST /v1/invites`: a one-use guest link for the signed-in user.
async fn create_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let host = authenticate(&state, bearer(&headers)).await?;
    let req: InviteRequest = parse_json(&read_body(&state, body).await?)?;
    let ttl = req.ttl_secs.unwrap_or(state.config.invite_ttl_secs);
    if !INVITE_TTL.contains(&ttl) {
        return Err(ProtoError::new(
            ErrorCode::InvalidField,
            format!(
                "ttl_secs: {}–{} seconds",
                INVITE_TTL.start(),
                INVITE_TTL.end()
            ),
        )
        .into());
    }
    let (token, expires_at) = state.store.create_invite(&host, now_unix(), ttl).await?;
    let invite = Invite {
        path: format!("/join/{token}"),
        token,
        expires_at,
    };
    Ok((StatusCode::CREATED, Json(invite)).into_response())
}

/// `DELETE /v1/invites/{token}`: the link stops working.
async fn revoke_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let host = authenticate(&state, bearer(&headers)).await?;
    state.store.revoke_invite(&host, &token, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(hidden)] // public for the fuzz targets only
pub struct GuestBody {
    invite: Option<String>,
}

/// `POST /v1/guest`: the guest page redeems its link for a guest account.
async fn redeem_invite(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body: GuestBody = parse_json(&read_body(&state, body).await?)?;
    let req = GuestRequest {
        invite: body
            .invite
            .ok_or_else(|| ProtoError::new(ErrorCode::InvalidField, "invite: required"))?,
    };
    let (username, host, token, expires_at) = state
        .store
        .redeem_invite(&req.invite, now_unix(), state.config.guest_ttl_secs)
        .await?;
    let session = GuestSession {
        token,
        username,
        host,
        expires_at,
    };
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// `GET /v1/ws` query.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// The device id (stable per device).
    device: Option<String>,
    /// The token, for clients that cannot set an `Authorization` header on a WebSocket.
    token: Option<String>,
}

async fn websocket(
    State(state): State<AppState>,
    admission: Option<Extension<Arc<Admission>>>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers).or(query.token.as_deref());
    // The token check and the contact list in one database round trip: joins are what a
    // restarted server does 19 000 times at once.
    let token =
        token.ok_or_else(|| ProtoError::new(ErrorCode::Unauthorized, "a token is required"))?;
    let order = state.contacts_order.clone().read_owned().await;
    let session = state.store.open_session(token, now_unix()).await?;
    let tag = token_tag(token);
    let expires_at = session.expires_at;
    let (user, contacts, guest_of) = (session.user, session.contacts, session.guest_of);
    let anyone_may_call = session.anyone_may_call;
    let device = query
        .device
        .ok_or_else(|| ProtoError::new(ErrorCode::InvalidField, "device: required"))?;
    check_device_id(&device)?;
    let party = Party::new(user, device);
    // From here the connection is a user's, under the per-user device limit: it no longer
    // counts against the limits on unauthenticated connections.
    if let Some(Extension(admission)) = admission {
        admission.authenticated();
    }
    // Authenticate first, so a stranger learns nothing from how the upgrade fails.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    Ok(upgrade
        // Small buffers: an idle connection should cost a few KiB, not tungstenite's 128 KiB
        // defaults. The read buffer grows for a large frame, which is then read 256 bytes per
        // call; a 4 KiB buffer cost 4.3 KiB more per idle session (docs/benchmarks.md). Frames
        // up to 4× our limit are read and refused with `too_large` (the connection survives);
        // beyond that the library closes it (1009).
        .read_buffer_size(256)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE_BYTES * 4)
        .max_frame_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| {
            let token = TokenInfo { tag, expires_at };
            let user = UserInfo {
                contacts,
                guest_of,
                anyone_may_call,
                order,
            };
            connection(socket, party, user, token, state)
        }))
}

/// A token bucket: `rate` per second sustained, `burst` at once. Time is passed in.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn text(msg: &ServerMessage) -> Message {
    Message::Text(msg.to_json().into())
}

/// Sends one frame within the write deadline; false when the connection is gone or stuck (the
/// caller then ends it: a client that stopped reading cannot hold its task for ever).
async fn send(socket: &mut WebSocket, msg: Message, deadline: Duration) -> bool {
    // Boxed: a timer inlined at each of the loop's send points grew every idle session's task.
    matches!(
        Box::pin(tokio::time::timeout(deadline, socket.send(msg))).await,
        Ok(Ok(()))
    )
}

/// Closes the connection. Boxed: the closing handshake's timers and reads would otherwise be
/// inlined into every connection's task and grow each idle session by their size.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    Box::pin(close_now(socket, code, reason)).await;
}

async fn close_now(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // Bounded like every write: a peer that does not read gets its TCP connection dropped.
    let sent = tokio::time::timeout(CLOSE_DEADLINE, socket.send(frame)).await;
    if matches!(sent, Ok(Ok(()))) {
        // The closing handshake (RFC 6455 §7.1.1): read and discard what the client still sends
        // until its close reply, so the TCP connection ends cleanly instead of being reset under
        // unread data (which can destroy our close frame before the client reads it). Bounded:
        // at most CLOSE_DEADLINE, and a client silent for CLOSE_QUIET is not waited for.
        let _ = tokio::time::timeout(CLOSE_DEADLINE, async {
            while let Ok(Some(Ok(m))) = tokio::time::timeout(CLOSE_QUIET, socket.recv()).await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// How long a close frame may take to go out before the connection is just dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// How long a closing client may stay silent before we stop waiting for its close reply.
const CLOSE_QUIET: Duration = Duration::from_millis(250);

/// Messages in a row over the rate limit before the connection is closed.
const ABUSE_LIMIT: u32 = 50;

/// The RFC 6455 §7.4.1 close code for a frame the WebSocket layer refused: 1007 for text that
/// is not UTF-8, 1009 for a message over the size limit, 1002 for any other protocol violation
/// (unmasked client frame, reserved bits, bad opcode or fragmentation); `None` when the
/// connection itself failed (nothing can be sent).
fn violation_code(e: axum::Error) -> Option<u16> {
    use tungstenite::Error as E;
    let inner = e.into_inner();
    match inner.downcast_ref::<E>()? {
        E::Utf8(_) => Some(1007),
        E::Capacity(_) => Some(1009),
        E::Protocol(_) => Some(1002),
        _ => None,
    }
}

/// The token a session was opened with.
struct TokenInfo {
    tag: u64,
    expires_at: u64,
}

/// What was read about the user with the token check, so a join never makes the hub wait for
/// the database.
struct UserInfo {
    contacts: Vec<(String, dyad_proto::ContactState)>,
    guest_of: Option<String>,
    anyone_may_call: bool,
    /// Held until the `Join` is queued (see [`AppState::contacts_order`]).
    order: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// One WebSocket session.
async fn connection(
    mut socket: WebSocket,
    party: Party,
    user: UserInfo,
    token: TokenInfo,
    state: AppState,
) {
    let UserInfo {
        contacts,
        guest_of,
        anyone_may_call,
        order,
    } = user;
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let write = Duration::from_millis(state.config.write_timeout_ms);
    let outbox = Outbox::new();
    let (reply, accepted) = oneshot::channel();
    let join = HubEvent::Join {
        party: party.clone(),
        conn,
        outbox: outbox.clone(),
        contacts,
        reply,
    };
    let queued = to_hub(&state, join).await;
    drop(order);
    if !queued {
        return close(&mut socket, 1001, "server shutting down").await;
    }
    match accepted.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = send(&mut socket, text(&ServerMessage::Error(e)), write).await;
            return close(&mut socket, 4008, "refused").await;
        }
        Err(_) => return close(&mut socket, 1001, "server shutting down").await,
    }
    let welcome = ServerMessage::Welcome {
        protocol_version: dyad_proto::PROTOCOL_VERSION,
        username: party.user.clone(),
        device: party.device.clone(),
        ping_interval_ms: state.config.ping_interval_ms,
        idle_timeout_ms: state.config.idle_timeout_ms,
        anyone_may_call,
    };
    if send(&mut socket, text(&welcome), write).await {
        live(&state).insert(conn, (token.tag, outbox.clone()));
        let who = Who {
            party: &party,
            guest_of: guest_of.as_deref(),
            expires_at: token.expires_at,
        };
        serve_connection(&mut socket, who, &state, &outbox).await;
        live(&state).remove(&conn);
    }
    to_hub(&state, HubEvent::Leave { party, conn }).await;
}

/// Hands an event to the hub; false when the hub is gone (shutting down). Boxed: a channel send
/// future is ≈ 600 B, and inlined at each of its three call sites it made every idle session's
/// task that much larger (docs/benchmarks.md).
async fn to_hub(state: &AppState, event: HubEvent) -> bool {
    Box::pin(state.hub.send(event)).await.is_ok()
}

/// What one incoming WebSocket message is, for the loop below.
enum Incoming {
    Control,
    Binary,
    Text(axum::extract::ws::Utf8Bytes),
}

/// What the connection loop does after one incoming message.
enum Next {
    /// Go on.
    Read,
    /// End the connection (it is gone, or the hub is).
    Stop,
    /// Close it with this code.
    Close(u16, &'static str),
}

/// The per-connection limits on what a client sends.
struct Limits {
    rate: RateLimit,
    over: u32,
    write: Duration,
}

/// Whose connection: the party, and for a guest account the one user it may call.
#[derive(Clone, Copy)]
struct Who<'a> {
    party: &'a Party,
    guest_of: Option<&'a str>,
    /// The session's token expires then (UNIX seconds): the connection closes with 4001.
    expires_at: u64,
}

async fn serve_connection(socket: &mut WebSocket, who: Who<'_>, state: &AppState, outbox: &Outbox) {
    let idle = Duration::from_millis(state.config.idle_timeout_ms);
    let write = Duration::from_millis(state.config.write_timeout_ms);
    let mut deadline = tokio::time::Instant::now() + idle;
    // The token's expiry on this task's clock (one timer for both deadlines).
    let expiry = tokio::time::Instant::now()
        + Duration::from_secs(
            who.expires_at
                .saturating_sub(now_unix())
                .min(100 * 365 * 86_400),
        );
    let mut limits = Limits {
        rate: RateLimit::new(
            state.config.rate_per_sec,
            state.config.rate_burst,
            Instant::now(),
        ),
        over: 0,
        write,
    };
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let incoming = match incoming {
                    None | Some(Ok(Message::Close(_))) => return,
                    Some(Err(e)) => {
                        if let Some(code) = violation_code(e) {
                            close(socket, code, "protocol violation").await;
                        }
                        return;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Control,
                    Some(Ok(Message::Binary(_))) => Incoming::Binary,
                    Some(Ok(Message::Text(t))) => Incoming::Text(t),
                };
                deadline = tokio::time::Instant::now() + idle;
                // Boxed: what handling a message awaits (the store, the hub's channel, a reply)
                // would otherwise sit in every idle session's task (≈ 1 KiB; benchmarks.md).
                let next = Box::pin(on_incoming(socket, who, state, &mut limits, incoming)).await;
                match next {
                    Next::Read => {}
                    Next::Stop => return,
                    Next::Close(code, reason) => return close(socket, code, reason).await,
                }
            }
            outgoing = outbox.next() => match outgoing {
                Some(frame) => {
                    if !send(socket, Message::Text(String::from(&*frame).into()), write).await {
                        return;
                    }
                }
                // The hub dropped this connection for not reading fast enough: the client
                // reconnects and gets everything afresh.
                None if outbox.overflowed() => {
                    return close(socket, 4013, "send queue full: reconnect").await;
                }
                // Its token was logged out.
                None if outbox.logged_out() => {
                    return close(socket, 4001, "logged out: sign in again").await;
                }
                // The hub closed our outbox: this device connected again elsewhere.
                None => return close(socket, 4009, "replaced by a newer connection").await,
            },
            () = tokio::time::sleep_until(deadline.min(expiry)) => {
                if tokio::time::Instant::now() >= expiry {
                    return close(socket, 4001, "token expired: sign in again").await;
                }
                if tokio::time::Instant::now() >= deadline {
                    return close(socket, 4000, "idle timeout").await;
                }
            }
            _ = shutdown.changed() => {
                return close(socket, 1001, "server shutting down").await;
            }
        }
    }
}

/// One message from the client: rate-limited (control frames count too: the WebSocket layer
/// answers every ping with a pong, so an unlimited ping flood costs as much as a message flood),
/// parsed, answered in place (`ping`, errors), stored (contact changes) or handed to the hub.
async fn on_incoming(
    socket: &mut WebSocket,
    who: Who<'_>,
    state: &AppState,
    limits: &mut Limits,
    incoming: Incoming,
) -> Next {
    let reply = |ok: bool| if ok { Next::Read } else { Next::Stop };
    if !limits.rate.allow(Instant::now()) {
        limits.over += 1;
        if limits.over > ABUSE_LIMIT {
            return Next::Close(4029, "rate limit");
        }
        if matches!(incoming, Incoming::Control) {
            return Next::Read;
        }
        let e = ProtoError::new(ErrorCode::RateLimited, "too many messages: slow down");
        return reply(send(socket, text(&ServerMessage::Error(e)), limits.write).await);
    }
    limits.over = 0;
    let error = match incoming {
        Incoming::Control => return Next::Read,
        Incoming::Binary => ProtoError::new(
            ErrorCode::MalformedJson,
            "binary frames are not part of the protocol",
        ),
        Incoming::Text(t) => match parse_client_message(t.as_bytes()) {
            Err(e) => e,
            Ok(env) if env.message == ClientMessage::Ping => {
                return reply(send(socket, text(&ServerMessage::Pong), limits.write).await);
            }
            Ok(envelope) => match call_rules(state, who, envelope).await {
                Ok(envelope) => match stored_change(state, who.party, envelope).await {
                    Ok((event, order)) => {
                        let queued = to_hub(state, event).await;
                        drop(order);
                        return if queued {
                            Next::Read
                        } else {
                            Next::Close(1001, "server shutting down")
                        };
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            },
        },
    };
    reply(send(socket, text(&ServerMessage::Error(error)), limits.write).await)
}

/// Who may call whom. Guest accounts call their host and nothing else (no contacts, no
/// presence), and nobody but its host may call or add a guest (a stranger gets `unknown_user`, as
/// for a name that does not exist). Everyone else calls accepted contacts, or someone who lets
/// anyone call — then the call is marked relay-only (the router passes only relayed candidates),
/// and needs a TURN server; `not_allowed` otherwise.
async fn call_rules(
    state: &AppState,
    who: Who<'_>,
    mut envelope: dyad_proto::ClientEnvelope,
) -> Result<dyad_proto::ClientEnvelope, ProtoError> {
    let reference = envelope.reference.clone();
    let refuse = |code, message: String| Err(ProtoError::new(code, message).with_ref(reference));
    // Only the server decides that a call is a stranger's (it changes what the router hides and
    // records): whatever the client said is dropped here.
    if let ClientMessage::Invite { relay_only, .. } = &mut envelope.message {
        *relay_only = false;
    }
    match (&mut envelope.message, who.guest_of) {
        (
            ClientMessage::ContactAdd { .. }
            | ClientMessage::ContactRemove { .. }
            | ClientMessage::ContactList
            | ClientMessage::SetPrivacy { .. },
            Some(_),
        ) => refuse(ErrorCode::NotAllowed, "a guest has no contacts".into()),
        (ClientMessage::Invite { to, .. }, Some(host)) if to != host => refuse(
            ErrorCode::NotAllowed,
            format!("a guest can call only {host}"),
        ),
        (
            ClientMessage::Invite { to: name, .. } | ClientMessage::ContactAdd { username: name },
            None,
        ) if name.starts_with(GUEST_PREFIX) => {
            let host = state
                .store
                .guest_host(name)
                .await
                .map_err(|e| e.to_proto())?;
            if host.as_deref() == Some(who.party.user.as_str()) {
                Ok(envelope)
            } else {
                refuse(ErrorCode::UnknownUser, "no such user".into())
            }
        }
        (ClientMessage::Invite { to, relay_only, .. }, None) if !state.config.open_calls => {
            if *to == who.party.user {
                // The router's own answer (`self_reference`).
                return Ok(envelope);
            }
            match state.store.call_permission(&who.party.user, to).await {
                Ok(CallPermission::Contact) => Ok(envelope),
                Ok(CallPermission::Stranger) if state.config.turn.is_some() => {
                    *relay_only = true;
                    Ok(envelope)
                }
                Ok(CallPermission::Stranger) => refuse(
                    ErrorCode::NotAllowed,
                    "calls from people who are not contacts go through a relay, and this \
                     server has none"
                        .into(),
                ),
                Err(e) => Err(e.to_proto().with_ref(envelope.reference)),
            }
        }
        _ => Ok(envelope),
    }
}

/// The hub event for a message: contact and privacy changes are stored here first (the hub
/// never waits for the database); everything else goes to the hub as it is. A failed change is
/// the error to send back.
/// A contact change comes back with the guard that orders it (see
/// [`AppState::contacts_order`]): drop it once the event is queued for the hub.
async fn stored_change(
    state: &AppState,
    party: &Party,
    envelope: dyad_proto::ClientEnvelope,
) -> Result<(HubEvent, Option<tokio::sync::OwnedRwLockWriteGuard<()>>), ProtoError> {
    let is_contact_change = matches!(
        envelope.message,
        ClientMessage::ContactAdd { .. } | ClientMessage::ContactRemove { .. }
    );
    let order = if is_contact_change {
        Some(state.contacts_order.clone().write_owned().await)
    } else {
        None
    };
    let (result, change) = match &envelope.message {
        ClientMessage::ContactAdd { username } => (
            state.store.add_contact(&party.user, username).await,
            ContactChange::Added(username.clone(), dyad_proto::ContactState::Requested),
        ),
        ClientMessage::ContactRemove { username } => (
            state
                .store
                .remove_contact(&party.user, username)
                .await
                .map(|changed| changed.then_some(dyad_proto::ContactState::Requested)),
            ContactChange::Removed(username.clone()),
        ),
        ClientMessage::SetPrivacy { anyone_may_call } => {
            return match state
                .store
                .set_anyone_may_call(&party.user, *anyone_may_call)
                .await
            {
                Ok(()) => Ok((
                    HubEvent::Privacy {
                        party: party.clone(),
                        anyone_may_call: *anyone_may_call,
                        reference: envelope.reference,
                    },
                    None,
                )),
                Err(e) => Err(e.to_proto().with_ref(envelope.reference)),
            };
        }
        _ => {
            return Ok((
                HubEvent::Message {
                    party: party.clone(),
                    envelope,
                },
                None,
            ))
        }
    };
    // `now`: the add's new state, `None` when nothing changed (then only the sender's list is
    // sent again: a repeated add or remove costs the other person nothing).
    match result {
        Ok(now) => Ok((
            HubEvent::Contacts {
                party: party.clone(),
                change: match (change, now) {
                    (_, None) => ContactChange::Unchanged,
                    (ContactChange::Added(name, _), Some(state)) => {
                        ContactChange::Added(name, state)
                    }
                    (change, Some(_)) => change,
                },
                reference: envelope.reference,
            },
            order,
        )),
        Err(e) => Err(e.to_proto().with_ref(envelope.reference)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| rl.allow(t0)).count(), 5);
        assert!(
            !rl.allow(t0 + Duration::from_millis(50)),
            "half a token is not enough"
        );
        assert!(rl.allow(t0 + Duration::from_millis(100)));
        assert_eq!(
            (0..20)
                .filter(|_| rl.allow(t0 + Duration::from_secs(10)))
                .count(),
            5
        );
    }
}
