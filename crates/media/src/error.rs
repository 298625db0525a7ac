//! The one error type of `dyad-media`.

/// Everything that can go wrong in the media engine.
///
/// Each variant has a stable [`MediaError::code`] that callers (the call engine, the UI) may branch
/// on; the `Display` text is for people and may change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// No capture or playback device exists (or none with the given id).
    #[error("no device: {0}")]
    NoDevice(String),
    /// The device exists but another program holds it.
    #[error("device busy: {0}")]
    DeviceBusy(String),
    /// The device or input uses a format we cannot handle.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The device failed while open (unplugged, driver error, permission).
    #[error("device error: {0}")]
    Device(String),
    /// A device produced nothing within the allowed time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Width/height (or sample count) that the operation cannot take: zero, odd, or too large.
    #[error("invalid size: {0}")]
    InvalidSize(String),
    /// Input shorter or longer than its declared format requires.
    #[error("truncated or oversized input: {0}")]
    Truncated(String),
    /// Input that is not what it claims to be (corrupt JPEG, bad Y4M header, undecodable frame).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A codec library refused an operation.
    #[error("codec error: {0}")]
    Codec(String),
    /// An invalid setting (bitrate out of range, zero fps...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl MediaError {
    /// A stable machine-readable code for this error (never changes once released).
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::NoDevice(_) => "no_device",
            MediaError::DeviceBusy(_) => "device_busy",
            MediaError::Unsupported(_) => "unsupported_format",
            MediaError::Device(_) => "device_error",
            MediaError::Timeout(_) => "timeout",
            MediaError::InvalidSize(_) => "invalid_size",
            MediaError::Truncated(_) => "truncated",
            MediaError::Malformed(_) => "malformed",
            MediaError::Codec(_) => "codec_error",
            MediaError::Config(_) => "invalid_config",
            MediaError::Io(_) => "io_error",
        }
    }
}

/// Result with [`MediaError`].
pub type Result<T, E = MediaError> = std::result::Result<T, E>;
