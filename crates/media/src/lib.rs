//! `dyad-media`: Dyad's media engine.
//!
//! Turns a camera (nokhwa), a microphone (cpal) or a synthetic source into I420 video and 48 kHz
//! PCM frames, encodes them as VP8 (our own safe wrapper over libvpx) and Opus, and back.
//!
//! It must never: know about the network, RTP, signalling or Tauri; read the clock inside logic
//! (sources are given a [`clock::Clock`]); panic or hang on a missing device or bad input — every
//! failure is a [`MediaError`] with a stable [`MediaError::code`].

pub mod audio;
pub mod camera;
pub mod clock;
pub mod convert;
pub mod error;
pub mod frame;
pub mod opus;
pub mod processing;
pub mod resample;
pub mod room;
pub mod source;
pub mod testpattern;
pub mod vp8;
pub mod y4m;

pub use audio::{
    list_audio_devices, AudioDeviceInfo, MemorySink, Microphone, Silence, Speaker, SpeechLike, Tone,
};
pub use camera::{choose_mode, list_cameras, Camera, CameraInfo, CameraMode};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use convert::{i420_to_rgba, to_i420, PixelFormat};
pub use error::{MediaError, Result};
pub use frame::{AudioFrame, VideoFrame};
pub use opus::{EncodedAudio, OpusConfig, OpusDecoder, OpusEncoder};
pub use processing::{AudioProcessor, ProcessingConfig, ProcessingStats};
pub use source::{AudioSink, AudioSource, Pacer, VideoFormat, VideoSource};
pub use testpattern::{read_marker, Marker, TestPattern};
pub use vp8::{EncodedFrame, Vp8Config, Vp8Decoder, Vp8Encoder};
pub use y4m::{Y4mFile, Y4mHeader, Y4mWriter};
