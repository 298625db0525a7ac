//! `dyad-call`: the call engine — signalling client, call state machine, the WebRTC peer
//! connection (webrtc-rs `=0.17.2` behind one internal module, [`rtc`]), media pipelines between
//! `dyad-media` and RTP, the bandwidth estimator and call statistics.
//!
//! Entry point: [`engine::start`] signs in and returns a [`engine::ClientHandle`] (dial, accept,
//! reject, hang up, mute, switch source) and one stream of [`engine::CallEvent`]s.
//!
//! It must never know about Tauri or the UI (everything here runs and is tested headless), read
//! the clock inside logic (the state machine, estimator, frame assembler and stats meters take
//! time as an input; only the engine task and the media threads read it), or panic on anything
//! the network delivers.

pub mod bwe;
pub mod engine;
pub mod error;
pub mod export;
pub mod jitter;
pub mod machine;
pub mod media;
pub mod quality;
pub mod rtc;
pub mod signal;
pub mod stats;

pub use engine::{start, CallEvent, ClientConfig, ClientHandle};
pub use error::{CallError, Result};
pub use media::{AudioInput, MediaConfig, VideoInput};
