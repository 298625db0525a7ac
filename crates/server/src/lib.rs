//! `dyad-server`: the Dyad signalling server as a library (`dyad serve` and the desktop app embed
//! it). Accounts and tokens, contacts and presence, call routing with the call state machine
//! enforced, TURN REST credentials and an embedded STUN/TURN server.
//!
//! It must never depend on `dyad-call`, `dyad-media` or Tauri, read the clock inside logic (the
//! router and credential code take `now`), or panic on anything a client sends.

pub mod error;
pub mod router;

pub use error::{Result, ServerError};
