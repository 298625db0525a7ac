//! The one error type of `dyad-call`.

use dyad_media::MediaError;

/// Everything that can go wrong in the call engine. [`CallError::code`] is stable.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// webrtc-rs refused an operation.
    #[error("webrtc: {what}: {detail}")]
    Rtc {
        /// Which operation.
        what: &'static str,
        /// webrtc-rs's message.
        detail: String,
    },
    /// The other side's SDP could not be applied.
    #[error("bad SDP from the other side: {detail}")]
    BadSdp {
        /// Why.
        detail: String,
    },
    /// The other side offered no codec we decode (VP8, Opus).
    #[error("no common codec: the other side offered neither VP8 nor Opus")]
    NoCommonCodec,
    /// The signalling server could not be reached.
    #[error("signalling server unreachable: {0}")]
    Unreachable(String),
    /// The signalling server answered with an error.
    #[error("server error {code}: {message}")]
    Server {
        /// The protocol's stable error code (`wrong_credentials`, `username_taken`, ...).
        code: String,
        /// Its message.
        message: String,
    },
    /// The server sent something that is not the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A URL we cannot use.
    #[error("bad server URL {0:?}: use http://host:port or https://host:port")]
    BadUrl(String),
    /// The media engine failed (camera, codec).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// A command that does not fit the call's state (accept with no incoming call, ...).
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// The engine task has stopped.
    #[error("the call engine has stopped")]
    Closed,
    /// An I/O error (export, sockets).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl CallError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            CallError::Rtc { .. } => "rtc_error",
            CallError::BadSdp { .. } => "bad_sdp",
            CallError::NoCommonCodec => "no_common_codec",
            CallError::Unreachable(_) => "server_unreachable",
            CallError::Server { code, .. } => code,
            CallError::Protocol(_) => "protocol_violation",
            CallError::BadUrl(_) => "bad_url",
            CallError::Media(e) => e.code(),
            CallError::InvalidState(_) => "invalid_state",
            CallError::Closed => "closed",
            CallError::Io(_) => "io_error",
        }
    }
}

/// `Result` with [`CallError`].
pub type Result<T, E = CallError> = std::result::Result<T, E>;
