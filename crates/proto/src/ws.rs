//! WebSocket messages: JSON text frames, one message each, `{"type": ..., ...}`.
//!
//! Call semantics follow Matrix VoIP v1 (invite / answer / select_answer / reject / candidates /
//! negotiate / hangup with reasons, glare resolution by call id), with the server as the party
//! that routes them and enforces the call state machine.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, ProtoError};
use crate::limits::{
    check_call_id, check_device_id, check_lifetime, check_sdp, check_username,
    MAX_CANDIDATES_PER_MESSAGE, MAX_CANDIDATE_BYTES, MAX_MESSAGE_BYTES, MAX_REF_LEN,
};

/// One trickled ICE candidate, as in WebRTC's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The `candidate:` attribute line.
    pub candidate: String,
    /// Media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// Offer or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
}

/// An SDP with its kind, as in WebRTC's `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// Offer or answer.
    #[serde(rename = "type")]
    pub kind: SdpKind,
    /// The SDP text.
    pub sdp: String,
}

/// An ICE candidate's type (RFC 8445 §5.1.1), as in a call's `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// An address of the device itself.
    Host,
    /// Its address outside a NAT, learned from a STUN server.
    Srflx,
    /// An address learned from the peer's connectivity checks.
    Prflx,
    /// An address on a TURN relay.
    Relay,
}

/// The transport a call's selected candidate pair runs on: UDP, or TCP / TLS to a TURN relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathProtocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

/// Why a client hangs up (Matrix VoIP v1 reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupReason {
    /// The user pressed hang up.
    UserHangup,
    /// The invite was not answered in time (client-side timer).
    InviteTimeout,
    /// ICE failed to connect.
    IceFailed,
    /// ICE disconnected and did not come back.
    IceTimeout,
    /// Media could not be set up or decoded.
    MediaFailed,
    /// The user is busy.
    Busy,
    /// Anything else.
    Unknown,
}

/// Why a call ended, as both parties and the call history see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Hung up by a user.
    UserHangup,
    /// Rang for the whole invite lifetime with no answer.
    InviteTimeout,
    /// ICE failed.
    IceFailed,
    /// ICE timed out.
    IceTimeout,
    /// Media failed.
    MediaFailed,
    /// The callee was already in a call (or said busy).
    Busy,
    /// Other.
    Unknown,
    /// The callee declined.
    Rejected,
    /// The caller withdrew the invite before it was answered.
    Cancelled,
    /// Another of the callee's devices answered (sent to the devices that did not).
    AnsweredElsewhere,
    /// Another of the callee's devices declined (sent to the other devices).
    RejectedElsewhere,
    /// The callee has no device online.
    Unavailable,
    /// Both users called each other at once; this call was folded into the other one.
    Replaced,
    /// The other party's connection dropped and did not come back in time.
    PeerDisconnected,
    /// The server restarted while the call was still ringing (history only: nobody was there
    /// to be told).
    ServerRestart,
}

impl From<HangupReason> for EndReason {
    fn from(r: HangupReason) -> Self {
        match r {
            HangupReason::UserHangup => EndReason::UserHangup,
            HangupReason::InviteTimeout => EndReason::InviteTimeout,
            HangupReason::IceFailed => EndReason::IceFailed,
            HangupReason::IceTimeout => EndReason::IceTimeout,
            HangupReason::MediaFailed => EndReason::MediaFailed,
            HangupReason::Busy => EndReason::Busy,
            HangupReason::Unknown => EndReason::Unknown,
        }
    }
}

impl EndReason {
    /// The reason as it appears on the wire and in the call history.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::UserHangup => "user_hangup",
            EndReason::InviteTimeout => "invite_timeout",
            EndReason::IceFailed => "ice_failed",
            EndReason::IceTimeout => "ice_timeout",
            EndReason::MediaFailed => "media_failed",
            EndReason::Busy => "busy",
            EndReason::Unknown => "unknown",
            EndReason::Rejected => "rejected",
            EndReason::Cancelled => "cancelled",
            EndReason::AnsweredElsewhere => "answered_elsewhere",
            EndReason::RejectedElsewhere => "rejected_elsewhere",
            EndReason::Unavailable => "unavailable",
            EndReason::Replaced => "replaced",
            EndReason::PeerDisconnected => "peer_disconnected",
            EndReason::ServerRestart => "server_restart",
        }
    }
}

/// Whether a contact can be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// At least one device connected, not in a call.
    Online,
    /// In a call (ringing, connecting or connected).
    InCall,
    /// No device connected.
    Offline,
}

/// Where a contact stands: presence and calls need both people to have added each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    /// Both added each other: presence is shared and either may call the other.
    #[default]
    Accepted,
    /// You asked; they have not accepted (their presence is not shown: `offline`).
    Requested,
    /// They asked you: `contact_add` accepts, `contact_remove` declines.
    Incoming,
}

/// A contact and their presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact's username.
    pub username: String,
    /// Their presence now (`offline` unless the contact is accepted).
    pub presence: Presence,
    /// Accepted, or a request one way or the other.
    #[serde(default)]
    pub state: ContactState,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Keepalive; the server answers `pong`. Send one every `ping_interval_ms`.
    Ping,
    /// Ask someone to be a contact, or accept their request (by username); the server answers
    /// with `contacts`, and the other person's devices get theirs.
    ContactAdd {
        /// Who to add.
        username: String,
    },
    /// Remove a contact, withdraw a request or decline one (both directions go); the server
    /// answers with `contacts`.
    ContactRemove {
        /// Who to remove.
        username: String,
    },
    /// Ask for the contact list; the server answers with `contacts`.
    ContactList,
    /// Whether people who are not your contacts may call you (off when an account is made).
    /// Such calls go through the relay only, so the caller never learns your IP address. The
    /// server answers with `privacy` to every device of yours.
    SetPrivacy {
        /// Anyone with an account may ring you.
        anyone_may_call: bool,
    },
    /// Start a call: ring every device of `to` with this offer. Only an accepted contact may be
    /// called, unless the callee lets anyone call (`not_allowed` otherwise).
    Invite {
        /// New call id chosen by the caller.
        call_id: String,
        /// The callee's username.
        to: String,
        /// The SDP offer.
        sdp: String,
        /// How long the callee rings, ms (default 60000).
        #[serde(default = "default_lifetime")]
        lifetime_ms: u64,
        /// A stranger's call: both sides use relayed candidates only. Set by the server alone
        /// (on calls between people who are not contacts; it then drops every other candidate of
        /// the call); what a client sends is ignored.
        #[serde(default, skip_serializing_if = "is_false")]
        relay_only: bool,
    },
    /// Callee device: the invite arrived and is ringing here.
    Ringing {
        /// The call.
        call_id: String,
    },
    /// Callee device: accept with this SDP answer.
    Answer {
        /// The call.
        call_id: String,
        /// The SDP answer.
        sdp: String,
    },
    /// Caller: of the answers received, use this device's (the others stop ringing).
    SelectAnswer {
        /// The call.
        call_id: String,
        /// The answering device chosen.
        device: String,
    },
    /// Callee device: decline.
    Reject {
        /// The call.
        call_id: String,
    },
    /// Caller: withdraw the invite before it is answered.
    Cancel {
        /// The call.
        call_id: String,
    },
    /// Either party: end the call.
    Hangup {
        /// The call.
        call_id: String,
        /// Why.
        reason: HangupReason,
    },
    /// Either party: trickled ICE candidates.
    Candidates {
        /// The call.
        call_id: String,
        /// The candidates (may be empty when only signalling the end).
        #[serde(default)]
        candidates: Vec<Candidate>,
        /// No more candidates will follow (until an ICE restart).
        #[serde(default)]
        end_of_candidates: bool,
    },
    /// Either party: renegotiation or ICE restart offer/answer on an established call.
    Negotiate {
        /// The call.
        call_id: String,
        /// The new offer or the answer to one.
        description: SessionDescription,
    },
    /// Either party of a connected call, after reconnecting: I am still in this call. A call the
    /// server brought back after a restart ends unless both parties say so within the reconnect
    /// grace; `unknown_call` means the server no longer has it.
    Resume {
        /// The call.
        call_id: String,
    },
    /// Either party of a connected call: the candidate pair its ICE agent selected, as it
    /// sees it (sent when media starts and whenever the pair changes). The server keeps it in
    /// the call's history row, with the time from the answer to the first report, so an
    /// operator sees how many calls need the relay and how long calls take to connect.
    Path {
        /// The call.
        call_id: String,
        /// This side's candidate type.
        local: CandidateKind,
        /// The other side's candidate type, as learned here.
        remote: CandidateKind,
        /// The transport of the pair.
        protocol: PathProtocol,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_lifetime() -> u64 {
    crate::limits::DEFAULT_INVITE_LIFETIME_MS
}

/// The names of [`ClientMessage`]'s variants on the wire.
pub const CLIENT_MESSAGE_TYPES: [&str; 16] = [
    "ping",
    "contact_add",
    "contact_remove",
    "contact_list",
    "set_privacy",
    "invite",
    "ringing",
    "answer",
    "select_answer",
    "reject",
    "cancel",
    "hangup",
    "candidates",
    "negotiate",
    "resume",
    "path",
];

/// A client message with the client's optional `ref`, echoed in the `ack` or `error` it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEnvelope {
    /// The client's reference for this message.
    pub reference: Option<String>,
    /// The message.
    pub message: ClientMessage,
}

impl ClientMessage {
    /// The call this message is about, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            ClientMessage::Invite { call_id, .. }
            | ClientMessage::Ringing { call_id }
            | ClientMessage::Answer { call_id, .. }
            | ClientMessage::SelectAnswer { call_id, .. }
            | ClientMessage::Reject { call_id }
            | ClientMessage::Cancel { call_id }
            | ClientMessage::Hangup { call_id, .. }
            | ClientMessage::Candidates { call_id, .. }
            | ClientMessage::Negotiate { call_id, .. }
            | ClientMessage::Resume { call_id }
            | ClientMessage::Path { call_id, .. } => Some(call_id),
            ClientMessage::Ping
            | ClientMessage::ContactAdd { .. }
            | ClientMessage::ContactRemove { .. }
            | ClientMessage::ContactList
            | ClientMessage::SetPrivacy { .. } => None,
        }
    }

    /// Checks every field against [`crate::limits`].
    pub fn validate(&self) -> Result<(), ProtoError> {
        if let Some(call_id) = self.call_id() {
            check_call_id(call_id)?;
        }
        match self {
            ClientMessage::ContactAdd { username } | ClientMessage::ContactRemove { username } => {
                check_username(username)
            }
            ClientMessage::Invite {
                to,
                sdp,
                lifetime_ms,
                ..
            } => {
                check_username(to)?;
                check_sdp(sdp)?;
                check_lifetime(*lifetime_ms)
            }
            ClientMessage::Answer { sdp, .. } => check_sdp(sdp),
            ClientMessage::SelectAnswer { device, .. } => check_device_id(device),
            ClientMessage::Candidates { candidates, .. } => {
                if candidates.len() > MAX_CANDIDATES_PER_MESSAGE {
                    return Err(ProtoError::new(
                        ErrorCode::TooLarge,
                        format!("candidates: at most {MAX_CANDIDATES_PER_MESSAGE} per message"),
                    ));
                }
                for c in candidates {
                    let mid = c.sdp_mid.as_deref().map_or(0, str::len);
                    if c.candidate.len() > MAX_CANDIDATE_BYTES || mid > MAX_CANDIDATE_BYTES {
                        return Err(ProtoError::new(
                            ErrorCode::TooLarge,
                            format!("candidate: at most {MAX_CANDIDATE_BYTES} bytes"),
                        ));
                    }
                }
                Ok(())
            }
            ClientMessage::Negotiate { description, .. } => check_sdp(&description.sdp),
            ClientMessage::Ping
            | ClientMessage::Resume { .. }
            | ClientMessage::Path { .. }
            | ClientMessage::ContactList
            | ClientMessage::SetPrivacy { .. }
            | ClientMessage::Ringing { .. }
            | ClientMessage::Reject { .. }
            | ClientMessage::Cancel { .. }
            | ClientMessage::Hangup { .. } => Ok(()),
        }
    }
}

/// Parses and validates one client frame. Every failure is a [`ProtoError`] with a stable code
/// (`too_large`, `malformed_json`, `unknown_type`, `invalid_field`) and, when the frame had a
/// readable `ref`, that `ref`. Never panics, whatever the input.
pub fn parse_client_message(frame: &[u8]) -> Result<ClientEnvelope, ProtoError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(ProtoError::new(
            ErrorCode::TooLarge,
            format!(
                "message of {} bytes, limit {MAX_MESSAGE_BYTES}",
                frame.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(frame)
        .map_err(|e| ProtoError::new(ErrorCode::MalformedJson, format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ProtoError::new(
            ErrorCode::MalformedJson,
            "a message is a JSON object",
        ));
    };
    let reference = match object.remove("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= MAX_REF_LEN => Some(r),
        Some(_) => {
            return Err(ProtoError::new(
                ErrorCode::InvalidField,
                format!("ref: a string of at most {MAX_REF_LEN} characters"),
            ))
        }
    };
    let fail =
        |code, message: String| Err(ProtoError::new(code, message).with_ref(reference.clone()));
    match object.get("type") {
        Some(Value::String(t)) if CLIENT_MESSAGE_TYPES.contains(&t.as_str()) => {}
        Some(Value::String(t)) => {
            let shown: String = t.chars().take(32).collect();
            return fail(
                ErrorCode::UnknownType,
                format!("unknown message type {shown:?}"),
            );
        }
        _ => {
            return fail(
                ErrorCode::UnknownType,
                "missing string field \"type\"".into(),
            )
        }
    }
    let message: ClientMessage = match serde_json::from_value(Value::Object(object)) {
        Ok(m) => m,
        Err(e) => return fail(ErrorCode::InvalidField, e.to_string()),
    };
    message
        .validate()
        .map_err(|e| e.with_ref(reference.clone()))?;
    Ok(ClientEnvelope { reference, message })
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on a new connection.
    Welcome {
        /// [`crate::PROTOCOL_VERSION`].
        protocol_version: u32,
        /// Who this connection is signed in as.
        username: String,
        /// This connection's device id (Matrix party id).
        device: String,
        /// Send `ping` at least this often.
        ping_interval_ms: u64,
        /// A connection silent for this long is closed and its device counted offline.
        idle_timeout_ms: u64,
        /// Whether people who are not contacts may call this user (see
        /// [`ClientMessage::SetPrivacy`]; later changes come as `privacy`).
        #[serde(default)]
        anyone_may_call: bool,
    },
    /// Answer to `ping`.
    Pong,
    /// The request with this `ref` was applied.
    Ack {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: String,
    },
    /// Whether anyone may call you, after `set_privacy` on any of your devices (the value at
    /// connect time is in `welcome`).
    Privacy {
        /// See [`ClientMessage::SetPrivacy`].
        anyone_may_call: bool,
    },
    /// The whole contact list with presence.
    Contacts {
        /// Contacts, sorted by username.
        contacts: Vec<Contact>,
    },
    /// A contact's presence changed.
    Presence {
        /// Whose.
        username: String,
        /// Now.
        presence: Presence,
    },
    /// Incoming call (sent to every device of the callee).
    Invite {
        /// The call.
        call_id: String,
        /// Caller's username.
        from: String,
        /// Caller's device.
        device: String,
        /// The SDP offer.
        sdp: String,
        /// How long it rings, ms.
        lifetime_ms: u64,
        /// True when this call won a glare: the callee had dialled the caller at the same moment
        /// and its own call was folded into this one, so the client should accept at once.
        #[serde(default)]
        glare: bool,
        /// The caller is not a contact: answer with relayed candidates only (the server passes
        /// no other), so neither side learns the other's address.
        #[serde(default, skip_serializing_if = "is_false")]
        relay_only: bool,
    },
    /// A callee device is ringing.
    Ringing {
        /// The call.
        call_id: String,
        /// Which callee device.
        device: String,
    },
    /// A callee device answered.
    Answer {
        /// The call.
        call_id: String,
        /// The answering device.
        device: String,
        /// The SDP answer.
        sdp: String,
    },
    /// To the callee device whose answer the caller selected: the call is yours.
    SelectAnswer {
        /// The call.
        call_id: String,
        /// The selected device (the recipient).
        device: String,
    },
    /// The other party's ICE candidates.
    Candidates {
        /// The call.
        call_id: String,
        /// The sending device.
        device: String,
        /// Candidates.
        candidates: Vec<Candidate>,
        /// No more will follow (until an ICE restart).
        end_of_candidates: bool,
    },
    /// Renegotiation / ICE restart from the other party.
    Negotiate {
        /// The call.
        call_id: String,
        /// The sending device.
        device: String,
        /// Offer or answer.
        description: SessionDescription,
    },
    /// The call is over for this device.
    CallEnded {
        /// The call.
        call_id: String,
        /// Why.
        reason: EndReason,
        /// Username of whoever ended it (absent when the server did, e.g. on timeout).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A request failed.
    Error(ProtoError),
}

impl ServerMessage {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs and enums cannot fail: no maps with non-string keys,
        // no custom serialisers.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from("{\"type\":\"error\",\"code\":\"internal\",\"message\":\"serialisation\"}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(frame: &str) -> ErrorCode {
        match parse_client_message(frame.as_bytes()) {
            Ok(m) => panic!("{frame} parsed as {m:?}"),
            Err(e) => e.code,
        }
    }

    #[test]
    fn parses_an_invite_with_ref_and_default_lifetime() {
        let env = parse_client_message(
            br#"{"type":"invite","ref":"r1","call_id":"call-0001","to":"bob","sdp":"v=0\r\n"}"#,
        )
        .expect("valid");
        assert_eq!(env.reference.as_deref(), Some("r1"));
        assert_eq!(
            env.message,
            ClientMessage::Invite {
                call_id: "call-0001".into(),
                to: "bob".into(),
                sdp: "v=0\r\n".into(),
                lifetime_ms: 60_000,
                relay_only: false,
            }
        );
    }

    #[test]
    fn every_kind_of_bad_frame_has_its_code() {
        assert_eq!(code("{"), ErrorCode::MalformedJson);
        assert_eq!(code("[1,2]"), ErrorCode::MalformedJson);
        assert_eq!(code(r#"{"call_id":"x"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"teleport"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"answer","call_id":"call-0001"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"reject","call_id":12345678}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"reject","call_id":"bad id!!"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"ping","ref":{"a":1}}"#),
            ErrorCode::InvalidField
        );
        let big = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&big), ErrorCode::TooLarge);
        let many: Vec<String> = (0..40)
            .map(|_| r#"{"candidate":"c"}"#.to_string())
            .collect();
        let frame = format!(
            r#"{{"type":"candidates","call_id":"call-0001","candidates":[{}]}}"#,
            many.join(",")
        );
        assert_eq!(code(&frame), ErrorCode::TooLarge);
    }

    #[test]
    fn errors_keep_the_ref() {
        let e = parse_client_message(br#"{"type":"nope","ref":"abc"}"#).expect_err("unknown");
        assert_eq!(e.reference.as_deref(), Some("abc"));
        let json = ServerMessage::Error(e).to_json();
        assert!(
            json.contains(r#""type":"error""#) && json.contains(r#""ref":"abc""#),
            "{json}"
        );
        assert!(json.contains(r#""code":"unknown_type""#), "{json}");
    }

    #[test]
    fn server_messages_round_trip() {
        let msgs = vec![
            ServerMessage::Pong,
            ServerMessage::Ack {
                reference: "r".into(),
            },
            ServerMessage::CallEnded {
                call_id: "call-0001".into(),
                reason: EndReason::AnsweredElsewhere,
                by: Some("bob".into()),
            },
            ServerMessage::Negotiate {
                call_id: "call-0001".into(),
                device: "d".into(),
                description: SessionDescription {
                    kind: SdpKind::Offer,
                    sdp: "v=0".into(),
                },
            },
        ];
        for m in msgs {
            let back: ServerMessage = serde_json::from_str(&m.to_json()).expect("round trip");
            assert_eq!(back, m);
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_on_bytes(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_client_message(&frame);
        }

        #[test]
        fn parsing_never_panics_on_json_shaped_input(
            t in "(ping|invite|answer|candidates|hangup|negotiate|select_answer|x)",
            call in "[a-z0-9 -]{0,70}",
            sdp in ".{0,40}",
            n in proptest::num::i64::ANY,
        ) {
            let frame = format!(
                r#"{{"type":"{t}","call_id":"{call}","sdp":{sdp:?},"to":"{call}","lifetime_ms":{n},"reason":"{call}","candidates":[{{"candidate":{sdp:?}}}],"description":{{"type":"offer","sdp":{sdp:?}}},"device":"{call}"}}"#
            );
            let _ = parse_client_message(frame.as_bytes());
        }
    }
}
