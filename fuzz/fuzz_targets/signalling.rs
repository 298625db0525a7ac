//! Signalling messages, both ways: a WebSocket text frame from a client as the server's
//! connection task parses and validates it (`dyad_proto::parse_client_message`), and a frame
//! from the server as the client's `Connection::recv` reads it (`ServerMessage` from JSON).
#![no_main]

use dyad_proto::{parse_client_message, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(envelope) = parse_client_message(frame) {
        // What parsed is valid (parse_client_message validates): checking again agrees.
        assert!(envelope.message.validate().is_ok(), "{envelope:?}");
    }
    if let Ok(text) = std::str::from_utf8(frame) {
        if let Ok(msg) = serde_json::from_str::<ServerMessage>(text) {
            let _ = msg.to_json();
        }
    }
});
