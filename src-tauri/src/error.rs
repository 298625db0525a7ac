//! The app's one error type, and how it crosses IPC (`{kind, message}`).

use dyad_call::CallError;

use crate::ipc::{ErrorKind, IpcError};

/// What can go wrong in the app's glue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// From the call engine (signalling, media, peer connection).
    #[error(transparent)]
    Call(#[from] CallError),
    /// From the embedded server.
    #[error("embedded server: {0}")]
    Server(#[from] dyad_server::ServerError),
    /// An argument the UI sent is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Not possible now.
    #[error("{0}")]
    State(&'static str),
    /// Nobody is signed in.
    #[error("sign in first")]
    NotSignedIn,
    /// Settings or token files.
    #[error("{what}: {source}")]
    Io {
        /// Which file or step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The app's result.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    /// The UI's view of this error.
    pub fn to_ipc(&self) -> IpcError {
        let (kind, message) = match self {
            AppError::Call(CallError::Server { code, message }) => {
                let kind = match code.as_str() {
                    "wrong_credentials" => ErrorKind::WrongCredentials,
                    "username_taken" => ErrorKind::UsernameTaken,
                    "unauthorized" | "token_expired" => ErrorKind::SessionExpired,
                    "invalid_field" | "unknown_user" | "self_reference" | "too_large" => {
                        ErrorKind::InvalidInput
                    }
                    _ => ErrorKind::Internal,
                };
                let text = match kind {
                    ErrorKind::WrongCredentials => "Wrong username or password.".to_string(),
                    ErrorKind::UsernameTaken => "That username is taken; pick another.".into(),
                    ErrorKind::SessionExpired => {
                        "Your sign-in has expired. Sign in again.".to_string()
                    }
                    _ => message.clone(),
                };
                (kind, text)
            }
            AppError::Call(CallError::Unreachable(detail)) => (
                ErrorKind::Unreachable,
                format!("Can't reach the signalling server ({detail}). Check the address in Settings and your network."),
            ),
            AppError::Call(CallError::BadUrl(u)) => (
                ErrorKind::InvalidInput,
                format!("\"{u}\" is not a server address; use https://host:port (or http:// on a trusted network)."),
            ),
            AppError::Call(CallError::Media(e)) => (ErrorKind::Device, e.to_string()),
            AppError::Call(CallError::InvalidState(s)) | AppError::State(s) => {
                (ErrorKind::InvalidState, (*s).to_string())
            }
            AppError::Call(e) => (ErrorKind::Internal, e.to_string()),
            AppError::Server(e) => (ErrorKind::Internal, e.to_string()),
            AppError::Invalid(m) => (ErrorKind::InvalidInput, m.clone()),
            AppError::NotSignedIn => (ErrorKind::NotSignedIn, "Sign in first.".into()),
            AppError::Io { .. } => (ErrorKind::Internal, self.to_string()),
        };
        IpcError { kind, message }
    }
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_ipc().serialize(s)
    }
}
