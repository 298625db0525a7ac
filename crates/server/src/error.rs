//! The one error type of `dyad-server`.

/// What can go wrong inside the server. Clients never see these texts: handlers log them and
/// send a [`dyad_proto::ProtoError`] with a stable code instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The database failed (I/O, corruption, constraint we did not expect).
    #[error("store: {0}")]
    Store(String),
    /// The TURN server or credentials failed.
    #[error("turn: {0}")]
    Turn(String),
    /// A setting is invalid.
    #[error("config: {0}")]
    Config(String),
    /// Binding or serving a socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A protocol-level refusal to pass on to the client as it is.
    #[error(transparent)]
    Proto(#[from] dyad_proto::ProtoError),
}

/// Result with [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

impl ServerError {
    /// What the client may see: protocol refusals as they are; anything internal as a bare
    /// `internal` (the details are logged here, never sent).
    pub fn to_proto(&self) -> dyad_proto::ProtoError {
        match self {
            ServerError::Proto(e) => e.clone(),
            other => {
                tracing::error!("internal error: {other}");
                dyad_proto::ProtoError::new(
                    dyad_proto::ErrorCode::Internal,
                    "internal server error",
                )
            }
        }
    }
}
