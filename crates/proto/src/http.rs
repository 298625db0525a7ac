//! HTTP request and response bodies (JSON). Paths: `POST /v1/register`, `POST /v1/login`,
//! `POST /v1/logout`, `GET /v1/ice`, `GET /v1/ws` (upgrade), guest links (`POST /v1/invites`,
//! `DELETE /v1/invites/{token}`, `POST /v1/guest`). Errors are [`crate::ProtoError`]
//! bodies with a 4xx/5xx status.

use serde::{Deserialize, Serialize};

/// `POST /v1/register` and `POST /v1/login` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// See [`crate::limits::check_username`].
    pub username: String,
    /// See [`crate::limits::check_password`].
    pub password: String,
}

/// `POST /v1/login` response (also returned by register, which signs the new user in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Bearer token for HTTP (`Authorization: Bearer …`) and the WebSocket (`?token=…`).
    pub token: String,
    /// The signed-in username.
    pub username: String,
    /// When the token stops working, UNIX seconds.
    pub expires_at: u64,
}

/// One ICE server, in the shape of WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:host:port` / `turn:host:port?transport=udp` URLs.
    pub urls: Vec<String>,
    /// TURN REST username `<expiry-unix>:<username>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN REST password: base64(HMAC-SHA1(secret, username)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `GET /v1/ice` response: where to find STUN/TURN and the credentials for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceConfig {
    /// The servers, STUN first.
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid.
    pub ttl_secs: u64,
    /// A second STUN address of the server's (`stun:host:port`), for "Test my network" to tell
    /// whether this network's NAT maps each destination apart; not an ICE server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_test: Option<String>,
}

/// `GET /v1/history`: one row of call history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call id.
    pub call_id: String,
    /// Caller username.
    pub caller: String,
    /// Callee username.
    pub callee: String,
    /// When the invite was sent, ms since the UNIX epoch.
    pub started_at_ms: u64,
    /// When the caller selected an answer; absent for calls that never connected.
    pub answered_at_ms: Option<u64>,
    /// When it ended; absent while in progress.
    pub ended_at_ms: Option<u64>,
    /// Why it ended (an [`crate::EndReason`] on the wire).
    pub end_reason: Option<String>,
    /// Who ended it; absent when the server did.
    pub ended_by: Option<String>,
    /// The candidate pair the caller's side reported (`local/remote protocol`, e.g.
    /// `relay/srflx udp`); absent until it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_path: Option<String>,
    /// The same, as the callee's side saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_path: Option<String>,
    /// From the answer to the first path report, ms (server clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
}

/// `POST /v1/invites` body (may be empty): how long the guest link stays usable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Seconds until the link expires (60 s – 7 days; default 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `POST /v1/invites` response: a one-use guest link, bound to the user who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The link's secret (32 random bytes, URL-safe base64); also what revokes it.
    pub token: String,
    /// Where the guest page is on this server: `/join/<token>` (the client puts its own
    /// server URL in front).
    pub path: String,
    /// When the link stops working, UNIX seconds.
    pub expires_at: u64,
}

/// `POST /v1/guest` body: the guest page redeems its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestRequest {
    /// The link's token.
    pub invite: String,
}

/// `POST /v1/guest` response: a temporary guest account that can call only `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSession {
    /// Bearer token, as for [`Session`].
    pub token: String,
    /// The guest's username (`guest-` and 8 hex digits).
    pub username: String,
    /// The one user this guest can call.
    pub host: String,
    /// When the token stops working, UNIX seconds.
    pub expires_at: u64,
}
