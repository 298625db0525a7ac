//! `dyad-call`: the call engine — signalling client, call state machine, the WebRTC peer
//! connection (webrtc-rs `=0.17.2` behind one internal module, [`rtc`]), media pipelines between
//! `dyad-media` and RTP, the bandwidth estimator and call statistics.
//!
//! Entry point: [`engine::start`] signs in and returns a [`ClientHandle`] (dial, accept,
//! reject, hang up, mute, switch source) and one stream of [`CallEvent`]s.
//!
//! The shape (str0m's): the decisions are sans-IO — the call's state machine ([`machine`]) and
//! its media session ([`session`]: packetizer, estimator, frame assembly, NACK/PLI, reports,
//! statistics) take inputs with the time they happened and return what to do; [`engine`] is the
//! one task that owns sockets, channels and timers and feeds them; [`sim`] runs two sessions
//! over a simulated network in simulated time.
//!
//! It must never know about Tauri or the UI (everything here runs and is tested headless), read
//! the clock inside logic (only the engine task and the media threads read it), or panic on
//! anything the network delivers.

pub mod api;
pub mod bwe;
pub mod doctor;
pub mod echo;
pub mod engine;
pub mod error;
pub mod export;
pub mod jitter;
pub mod machine;
pub mod media;
pub mod playout;
pub mod quality;
pub mod rtc;
pub mod rtp;
pub mod sas;
pub mod session;
pub mod signal;
pub mod sim;
pub mod stats;
pub mod sync;
pub mod turn_shim;

pub use api::{CallEvent, ClientConfig, ClientHandle};
pub use engine::start;
pub use error::{CallError, Result};
pub use media::{AudioInput, MediaConfig, VideoInput};
