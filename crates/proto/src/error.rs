//! Stable error codes, shared by HTTP error bodies and WebSocket `error` frames.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Clients branch on these, never on message text.
/// Codes are only ever added, never renamed (docs/protocol.md lists them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame or body is not valid JSON (or not a JSON object).
    MalformedJson,
    /// The message's `type` is missing or not one we know.
    UnknownType,
    /// A field is missing, has the wrong type, or a value is out of its allowed range.
    InvalidField,
    /// The frame, body or a field (SDP, candidate) is larger than its limit.
    TooLarge,
    /// Too many messages in a short time on this connection.
    RateLimited,
    /// No token, or the token is unknown or was logged out.
    Unauthorized,
    /// The token has expired: log in again.
    TokenExpired,
    /// Wrong username or password.
    WrongCredentials,
    /// The username is already registered.
    UsernameTaken,
    /// The username does not exist.
    UnknownUser,
    /// The user has too many connections open already.
    TooManyConnections,
    /// The call id is unknown, or names a call the sender is not part of.
    UnknownCall,
    /// The message is not valid in the call's current state (e.g. `answer` after the call ended).
    InvalidState,
    /// A call id that is already in use.
    DuplicateCall,
    /// The request cannot be made of oneself (calling or adding yourself).
    SelfReference,
    /// Something failed on the server; it is logged there with the same `ref`.
    Internal,
    /// No such HTTP route.
    NotFound,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request's head or body did not arrive in time.
    RequestTimeout,
    /// Not for this account: a guest (guest link) can only call its host.
    NotAllowed,
    /// The guest link has expired or was revoked.
    InviteExpired,
    /// The guest link was used already (each works once).
    InviteUsed,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::WrongCredentials => "wrong_credentials",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::UnknownCall => "unknown_call",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::DuplicateCall => "duplicate_call",
            ErrorCode::SelfReference => "self_reference",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::InviteExpired => "invite_expired",
            ErrorCode::InviteUsed => "invite_used",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error: a stable code, a message safe to show, and the `ref` of the request it
/// answers (when the request had one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct ProtoError {
    /// The stable code.
    pub code: ErrorCode,
    /// Human-readable text; never contains server internals.
    pub message: String,
    /// The client's `ref` of the message that caused it, echoed back.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ProtoError {
    /// An error without a `ref`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
        }
    }

    /// The same error answering the request with this `ref`.
    pub fn with_ref(mut self, reference: Option<String>) -> Self {
        self.reference = reference;
        self
    }
}
