//! `dyad-proto`: the signalling protocol between Dyad clients and the Dyad server.
//!
//! HTTP bodies ([`http`]), WebSocket messages ([`ws`]), the limits every field is held to
//! ([`limits`]) and the stable error codes ([`ErrorCode`]). docs/protocol.md describes each message
//! with a JSON example; this crate is the source of truth for their shape.
//!
//! It must never do I/O, read the clock or depend on another Dyad crate: the client, the server and
//! the fuzz/property tests all use it as plain data and pure functions.

pub mod error;
pub mod http;
pub mod limits;
pub mod turn;
pub mod ws;

pub use error::{ErrorCode, ProtoError};
pub use ws::{
    parse_client_message, Candidate, CandidateKind, ClientEnvelope, ClientMessage, Contact,
    ContactState, EndReason, HangupReason, PathProtocol, Presence, SdpKind, ServerMessage,
    SessionDescription,
};

/// The protocol version this crate speaks. The server announces it in `welcome`; a client that
/// speaks another major version must not continue. HTTP paths carry it as `/v1/...`.
pub const PROTOCOL_VERSION: u32 = 1;
