//! HTTP routes and the per-connection WebSocket task. Handlers are thin: parse and bound the
//! input, call the store or the hub, map errors to `{code, message, ref}` bodies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dyad_proto::http::{Credentials, IceConfig, Session};
use dyad_proto::limits::{check_device_id, check_password, check_username, MAX_MESSAGE_BYTES};
use dyad_proto::{parse_client_message, ClientMessage, ErrorCode, ProtoError, ServerMessage};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::hub::{HubEvent, Outbox};
use crate::router::Party;
use crate::store::Store;

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
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(state)
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
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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

fn parse_credentials(body: &[u8]) -> Result<Credentials, ApiError> {
    let creds: Credentials = serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            ErrorCode::MalformedJson
        } else {
            ErrorCode::InvalidField
        };
        ProtoError::new(code, e.to_string())
    })?;
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

async fn register(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let creds = parse_credentials(&body)?;
    state
        .store
        .register(&creds.username, &creds.password, now_unix())
        .await?;
    let session = sign_in(&state, creds.username).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

async fn login(State(state): State<AppState>, body: Bytes) -> Result<Json<Session>, ApiError> {
    let creds = parse_credentials(&body)?;
    state
        .store
        .verify_login(&creds.username, &creds.password)
        .await?;
    Ok(Json(sign_in(&state, creds.username).await?))
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
    state.store.revoke_token(token.unwrap_or_default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ice(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<IceConfig>, ApiError> {
    let username = authenticate(&state, bearer(&headers)).await?;
    let config = match &state.config.turn {
        Some(turn) => crate::turn::ice_config(turn, &username, now_unix()),
        None => IceConfig {
            ice_servers: vec![],
            ttl_secs: 0,
        },
    };
    Ok(Json(config))
}

async fn history(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let username = authenticate(&state, bearer(&headers)).await?;
    let rows = state.store.history(&username, 200).await?;
    Ok(Json(rows).into_response())
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
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers).or(query.token.as_deref());
    let user = authenticate(&state, token).await?;
    let device = query
        .device
        .ok_or_else(|| ProtoError::new(ErrorCode::InvalidField, "device: required"))?;
    check_device_id(&device)?;
    let party = Party::new(user, device);
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
        .on_upgrade(move |socket| connection(socket, party, state)))
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

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Messages in a row over the rate limit before the connection is closed.
const ABUSE_LIMIT: u32 = 50;

async fn connection(mut socket: WebSocket, party: Party, state: AppState) {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let outbox = Outbox::new();
    let (reply, accepted) = oneshot::channel();
    let join = HubEvent::Join {
        party: party.clone(),
        conn,
        outbox: outbox.clone(),
        reply,
    };
    if state.hub.send(join).await.is_err() {
        return close(&mut socket, 1001, "server shutting down").await;
    }
    match accepted.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = socket.send(text(&ServerMessage::Error(e))).await;
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
    };
    if socket.send(text(&welcome)).await.is_ok() {
        serve_connection(&mut socket, &party, &state, &outbox).await;
    }
    let _ = state.hub.send(HubEvent::Leave { party, conn }).await;
}

async fn serve_connection(
    socket: &mut WebSocket,
    party: &Party,
    state: &AppState,
    outbox: &Outbox,
) {
    let idle = Duration::from_millis(state.config.idle_timeout_ms);
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut limit = RateLimit::new(
        state.config.rate_per_sec,
        state.config.rate_burst,
        Instant::now(),
    );
    let mut over_limit = 0u32;
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let bytes = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        deadline = tokio::time::Instant::now() + idle;
                        continue;
                    }
                    Some(Ok(Message::Binary(_))) => None,
                    Some(Ok(Message::Text(t))) => Some(t),
                };
                deadline = tokio::time::Instant::now() + idle;
                if !limit.allow(Instant::now()) {
                    over_limit += 1;
                    if over_limit > ABUSE_LIMIT {
                        return close(socket, 4029, "rate limit").await;
                    }
                    let e = ProtoError::new(ErrorCode::RateLimited, "too many messages: slow down");
                    if socket.send(text(&ServerMessage::Error(e))).await.is_err() {
                        return;
                    }
                    continue;
                }
                over_limit = 0;
                let reply = match bytes {
                    None => Some(ProtoError::new(ErrorCode::MalformedJson, "binary frames are not part of the protocol")),
                    Some(t) => match parse_client_message(t.as_bytes()) {
                        Err(e) => Some(e),
                        Ok(env) if env.message == ClientMessage::Ping => {
                            if socket.send(text(&ServerMessage::Pong)).await.is_err() {
                                return;
                            }
                            None
                        }
                        Ok(envelope) => {
                            let event = HubEvent::Message { party: party.clone(), envelope };
                            if state.hub.send(event).await.is_err() {
                                return close(socket, 1001, "server shutting down").await;
                            }
                            None
                        }
                    },
                };
                if let Some(e) = reply {
                    if socket.send(text(&ServerMessage::Error(e))).await.is_err() {
                        return;
                    }
                }
            }
            outgoing = outbox.next() => match outgoing {
                Some(frame) => {
                    if socket.send(Message::Text(String::from(&*frame).into())).await.is_err() {
                        return;
                    }
                }
                // The hub closed our outbox: this device connected again elsewhere.
                None => return close(socket, 4009, "replaced by a newer connection").await,
            },
            () = tokio::time::sleep_until(deadline) => {
                return close(socket, 4000, "idle timeout").await;
            }
            _ = shutdown.changed() => {
                return close(socket, 1001, "server shutting down").await;
            }
        }
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
