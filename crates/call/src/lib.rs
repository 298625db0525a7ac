//! `dyad-call`: the call engine — signalling client, call state machine, the WebRTC peer
//! connection (webrtc-rs `=0.17.2` behind one internal module), media pipelines between
//! `dyad-media` and RTP, the bandwidth estimator and call statistics.
//!
//! This crate is laid out by DESIGN.md and filled by the call-engine issue; it has no code yet,
//! and the CLI and app do not depend on it until it does.
//!
//! It must never know about Tauri or the UI (everything here runs and is tested headless), read
//! the clock inside logic (time is an input), or panic on anything the network delivers.
