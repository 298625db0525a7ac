//! The call state machine, sans-IO: one call's signalling life from dial (or incoming invite)
//! to its end, with time as an input.
//!
//! ```text
//!  dial ─▶ OutgoingRinging ──answer──▶ Connecting ──ICE connected──▶ Connected
//!  invite ─▶ IncomingRinging ──accept─▶ Connecting        │ ICE failed: restart (caller offers; callee after 2 s)
//!  any ──hang up / reject / cancel / call_ended / timeout──▶ Ended(reason)
//! ```
//!
//! The machine decides; the call task ([`crate::engine`]) carries out its [`Action`]s (send a
//! message, create an offer, apply an answer...) and feeds back what happened as [`Input`]s.

use std::time::{Duration, Instant};

use dyad_proto::{
    Candidate, ClientMessage, EndReason, HangupReason, SdpKind, ServerMessage, SessionDescription,
};

use crate::api::CallEvent;

/// Connecting (answer → ICE connected) may take this long before the call ends `ice_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After ICE fails, a restart has this long to reconnect before the call ends `ice_failed`.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// A callee whose path failed waits this long for the caller's restart offer before offering
/// one itself (the failure may be one-way, seen only here).
pub const CALLEE_RESTART_DELAY: Duration = Duration::from_secs(2);
/// Remote candidates kept while the callee's phone rings (before a peer connection exists).
pub const MAX_PENDING_CANDIDATES: usize = 64;

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We dialled.
    Outgoing,
    /// We were called.
    Incoming,
}

/// Where a call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Offer being made, invite not yet sent or not yet answered.
    OutgoingRinging,
    /// An invite is ringing here.
    IncomingRinging,
    /// Answer exchanged; ICE/DTLS under way.
    Connecting,
    /// Media flows.
    Connected,
    /// Over.
    Ended(EndReason),
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Input {
    /// Our offer is ready (outgoing call, or ICE restart).
    OfferReady {
        /// SDP.
        sdp: String,
        /// Whether it restarts ICE on a running call.
        restart: bool,
    },
    /// Our answer to the offer is ready (after accept).
    AnswerReady(String),
    /// Making an offer or answer failed.
    NegotiationFailed(EndReason),
    /// The user accepts the incoming call.
    Accept,
    /// The user declines the incoming call.
    Reject,
    /// The user hangs up (or cancels a call still ringing).
    Hangup,
    /// A callee device is ringing.
    RemoteRinging,
    /// The callee answered from `device`.
    RemoteAnswer {
        /// Device.
        device: String,
        /// SDP answer.
        sdp: String,
    },
    /// The other party trickled candidates.
    RemoteCandidates(Vec<Candidate>),
    /// Renegotiation from the other party.
    RemoteNegotiate(SessionDescription),
    /// The server ended the call.
    RemoteEnded(EndReason),
    /// A local candidate to trickle (`None`: gathering finished).
    LocalCandidate(Option<Candidate>),
    /// The peer connection is connected.
    IceConnected,
    /// The peer connection lost its path (may recover on its own).
    IceDisconnected,
    /// The peer connection failed.
    IceFailed,
    /// Nothing decodes although media arrives.
    MediaFailed,
    /// Time passed.
    Tick,
}

/// What the call task must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this to the server.
    Send(ClientMessage),
    /// Create the peer connection and an offer (optionally restarting ICE).
    CreateOffer {
        /// ICE restart on a running call.
        restart: bool,
    },
    /// Apply the remote offer and create an answer (the initial one or a renegotiation).
    CreateAnswer {
        /// SDP offer.
        sdp: String,
        /// Whether this answers a renegotiation (send it as `negotiate`).
        renegotiation: bool,
    },
    /// Apply the remote answer.
    ApplyAnswer(String),
    /// Add these remote candidates to the peer connection.
    AddCandidates(Vec<Candidate>),
    /// The call connected for the first time: start media.
    Connected,
    /// The call ended: close everything.
    End(EndReason),
}

/// One call's state.
#[derive(Debug)]
pub struct CallMachine {
    /// Call id.
    pub call_id: String,
    /// The other user.
    pub peer: String,
    /// Who called.
    pub direction: Direction,
    phase: Phase,
    offer: Option<String>,
    offer_sent: bool,
    answer_sent: bool,
    pending_local: Vec<Candidate>,
    pending_local_end: bool,
    pending_remote: Vec<Candidate>,
    deadline: Option<(Instant, EndReason)>,
    lifetime_ms: u64,
    was_connected: bool,
    restarting: bool,
    /// Our own restart offer is out, unanswered.
    offer_pending: bool,
    /// When the callee offers a restart itself if the caller has not.
    callee_offer_at: Option<Instant>,
}

impl CallMachine {
    /// A call we place; the first action creates the offer.
    pub fn outgoing(call_id: String, peer: String, lifetime_ms: u64) -> (Self, Vec<Action>) {
        let m = Self::new(call_id, peer, Direction::Outgoing, Phase::OutgoingRinging);
        let m = Self { lifetime_ms, ..m };
        (m, vec![Action::CreateOffer { restart: false }])
    }

    /// An invite that rings here. Send `ringing` at once.
    pub fn incoming(call_id: String, peer: String, offer: String) -> (Self, Vec<Action>) {
        let mut m = Self::new(call_id, peer, Direction::Incoming, Phase::IncomingRinging);
        m.offer = Some(offer);
        let ringing = Action::Send(ClientMessage::Ringing {
            call_id: m.call_id.clone(),
        });
        (m, vec![ringing])
    }

    fn new(call_id: String, peer: String, direction: Direction, phase: Phase) -> Self {
        Self {
            call_id,
            peer,
            direction,
            phase,
            offer: None,
            offer_sent: false,
            answer_sent: false,
            pending_local: Vec::new(),
            pending_local_end: false,
            pending_remote: Vec::new(),
            deadline: None,
            lifetime_ms: dyad_proto::limits::DEFAULT_INVITE_LIFETIME_MS,
            was_connected: false,
            restarting: false,
            offer_pending: false,
            callee_offer_at: None,
        }
    }

    /// Where the call is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether it is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    /// When [`Input::Tick`] must be fed next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = self.deadline.as_ref().map(|(t, _)| *t);
        match (d, self.callee_offer_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn end(&mut self, reason: EndReason, out: &mut Vec<Action>) {
        if !self.is_ended() {
            self.phase = Phase::Ended(reason);
            self.deadline = None;
            out.push(Action::End(reason));
        }
    }

    fn hangup(&mut self, why: HangupReason, reason: EndReason, out: &mut Vec<Action>) {
        out.push(Action::Send(ClientMessage::Hangup {
            call_id: self.call_id.clone(),
            reason: why,
        }));
        self.end(reason, out);
    }

    fn flush_local(&mut self, out: &mut Vec<Action>) {
        if self.pending_local.is_empty() && !self.pending_local_end {
            return;
        }
        for chunk in std::mem::take(&mut self.pending_local)
            .chunks(dyad_proto::limits::MAX_CANDIDATES_PER_MESSAGE)
        {
            out.push(Action::Send(ClientMessage::Candidates {
                call_id: self.call_id.clone(),
                candidates: chunk.to_vec(),
                end_of_candidates: false,
            }));
        }
        if std::mem::take(&mut self.pending_local_end) {
            out.push(Action::Send(ClientMessage::Candidates {
                call_id: self.call_id.clone(),
                candidates: Vec::new(),
                end_of_candidates: true,
            }));
        }
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_ended() {
            return out;
        }
        match input {
            Input::OfferReady { sdp, restart } => {
                if restart {
                    out.push(Action::Send(ClientMessage::Negotiate {
                        call_id: self.call_id.clone(),
                        description: SessionDescription {
                            kind: SdpKind::Offer,
                            sdp,
                        },
                    }));
                } else if self.phase == Phase::OutgoingRinging && !self.offer_sent {
                    self.offer_sent = true;
                    out.push(Action::Send(ClientMessage::Invite {
                        call_id: self.call_id.clone(),
                        to: self.peer.clone(),
                        sdp,
                        lifetime_ms: self.lifetime_ms,
                        relay_only: false,
                    }));
                }
                self.flush_local(&mut out);
            }
            Input::AnswerReady(sdp) => {
                // Past the first answer (ours, or the caller's invite), answers are renegotiation.
                if self.answer_sent || self.offer_sent {
                    out.push(Action::Send(ClientMessage::Negotiate {
                        call_id: self.call_id.clone(),
                        description: SessionDescription {
                            kind: SdpKind::Answer,
                            sdp,
                        },
                    }));
                } else {
                    self.answer_sent = true;
                    out.push(Action::Send(ClientMessage::Answer {
                        call_id: self.call_id.clone(),
                        sdp,
                    }));
                }
                self.flush_local(&mut out);
            }
            Input::NegotiationFailed(reason) => {
                let why = match reason {
                    EndReason::MediaFailed => HangupReason::MediaFailed,
                    _ => HangupReason::Unknown,
                };
                if self.phase == Phase::IncomingRinging {
                    out.push(Action::Send(ClientMessage::Reject {
                        call_id: self.call_id.clone(),
                    }));
                    self.end(reason, &mut out);
                } else if self.phase == Phase::OutgoingRinging && !self.offer_sent {
                    self.end(reason, &mut out);
                } else {
                    self.hangup(why, reason, &mut out);
                }
            }
            Input::Accept => {
                if self.phase == Phase::IncomingRinging {
                    self.phase = Phase::Connecting;
                    self.deadline = Some((now + CONNECT_TIMEOUT, EndReason::IceTimeout));
                    let sdp = self.offer.take().unwrap_or_default();
                    out.push(Action::CreateAnswer {
                        sdp,
                        renegotiation: false,
                    });
                    let pending = std::mem::take(&mut self.pending_remote);
                    if !pending.is_empty() {
                        out.push(Action::AddCandidates(pending));
                    }
                }
            }
            Input::Reject => {
                if self.phase == Phase::IncomingRinging {
                    out.push(Action::Send(ClientMessage::Reject {
                        call_id: self.call_id.clone(),
                    }));
                    self.end(EndReason::Rejected, &mut out);
                }
            }
            Input::Hangup => {
                if self.phase == Phase::OutgoingRinging {
                    if self.offer_sent {
                        out.push(Action::Send(ClientMessage::Cancel {
                            call_id: self.call_id.clone(),
                        }));
                    }
                    self.end(EndReason::Cancelled, &mut out);
                } else if self.phase == Phase::IncomingRinging {
                    out.push(Action::Send(ClientMessage::Reject {
                        call_id: self.call_id.clone(),
                    }));
                    self.end(EndReason::Rejected, &mut out);
                } else {
                    self.hangup(HangupReason::UserHangup, EndReason::UserHangup, &mut out);
                }
            }
            Input::RemoteRinging => {}
            Input::RemoteAnswer { device, sdp } => {
                if self.phase == Phase::OutgoingRinging && self.offer_sent {
                    self.phase = Phase::Connecting;
                    self.deadline = Some((now + CONNECT_TIMEOUT, EndReason::IceTimeout));
                    out.push(Action::Send(ClientMessage::SelectAnswer {
                        call_id: self.call_id.clone(),
                        device,
                    }));
                    out.push(Action::ApplyAnswer(sdp));
                }
            }
            Input::RemoteCandidates(c) => {
                if self.phase == Phase::IncomingRinging {
                    let room = MAX_PENDING_CANDIDATES.saturating_sub(self.pending_remote.len());
                    self.pending_remote.extend(c.into_iter().take(room));
                } else if !c.is_empty() {
                    out.push(Action::AddCandidates(c));
                }
            }
            Input::RemoteNegotiate(desc) => match desc.kind {
                // With our own restart offer out, the caller's wins: the caller ignores the
                // callee's; the callee (which could only roll back) ignores it too, and the
                // restart deadline settles a rare double failure.
                SdpKind::Offer if !self.offer_pending && (self.answer_sent || self.offer_sent) => {
                    self.callee_offer_at = None;
                    out.push(Action::CreateAnswer {
                        sdp: desc.sdp,
                        renegotiation: true,
                    })
                }
                SdpKind::Answer if self.offer_pending => {
                    self.offer_pending = false;
                    out.push(Action::ApplyAnswer(desc.sdp))
                }
                _ => {}
            },
            Input::RemoteEnded(reason) => self.end(reason, &mut out),
            Input::LocalCandidate(c) => {
                match c {
                    Some(c) => self.pending_local.push(c),
                    None => self.pending_local_end = true,
                }
                if self.offer_sent || self.answer_sent {
                    self.flush_local(&mut out);
                }
            }
            Input::IceConnected => {
                self.restarting = false;
                self.offer_pending = false;
                self.callee_offer_at = None;
                self.deadline = None;
                if matches!(self.phase, Phase::Connecting | Phase::Connected) {
                    self.phase = Phase::Connected;
                    if !self.was_connected {
                        self.was_connected = true;
                        out.push(Action::Connected);
                    }
                }
            }
            Input::IceDisconnected => {}
            Input::IceFailed => {
                if matches!(self.phase, Phase::Connecting | Phase::Connected) && !self.restarting {
                    self.restarting = true;
                    self.deadline = Some((now + RESTART_TIMEOUT, EndReason::IceFailed));
                    // The caller offers at once; the callee gives the caller a moment first,
                    // so both rarely offer at the same time.
                    if self.direction == Direction::Outgoing {
                        self.offer_pending = true;
                        out.push(Action::CreateOffer { restart: true });
                    } else {
                        self.callee_offer_at = Some(now + CALLEE_RESTART_DELAY);
                    }
                }
            }
            Input::MediaFailed => {
                self.hangup(HangupReason::MediaFailed, EndReason::MediaFailed, &mut out)
            }
            Input::Tick => {
                if self.callee_offer_at.is_some_and(|at| now >= at) {
                    self.callee_offer_at = None;
                    self.offer_pending = true;
                    out.push(Action::CreateOffer { restart: true });
                }
                if let Some((at, reason)) = self.deadline {
                    if now >= at {
                        let why = match reason {
                            EndReason::IceTimeout => HangupReason::IceTimeout,
                            _ => HangupReason::IceFailed,
                        };
                        self.hangup(why, reason, &mut out);
                    }
                }
            }
        }
        out
    }
}

/// What a server message means for this client, given its current call (id, phase, direction).
#[derive(Debug)]
pub enum Route {
    /// Nothing to do (a keep-alive, or a message about a call that is not ours any more).
    Ignore,
    /// Not about a call: tell the owner.
    Event(CallEvent),
    /// An invite while we are in a call: decline it as busy (the server already knows when the
    /// user is in a call on another device).
    Busy(String),
    /// An invite to ring here (`glare`: both called each other; this one replaces ours).
    Invite {
        /// Call id.
        call_id: String,
        /// Caller.
        from: String,
        /// Their offer.
        sdp: String,
        /// Glare: it replaces the call we placed, and is accepted at once.
        glare: bool,
        /// The caller is not a contact: relayed candidates only.
        relay_only: bool,
    },
    /// About our call: tell the owner and/or feed the machine.
    Call {
        /// For the owner.
        event: Option<CallEvent>,
        /// For the machine.
        input: Option<Input>,
    },
}

/// The `ref` of the `resume` a client sends for its call after reconnecting.
pub const RESUME_REF: &str = "resume";

/// Routes one server message (see [`Route`]). Pure: the driver carries the route out.
pub fn route(current: Option<(&str, &Phase, Direction)>, msg: ServerMessage) -> Route {
    let ours = |id: &str| current.is_some_and(|(c, _, _)| c == id);
    let input = |i: Input| Route::Call {
        event: None,
        input: Some(i),
    };
    match msg {
        ServerMessage::Contacts { contacts } => Route::Event(CallEvent::Contacts(contacts)),
        ServerMessage::Presence { username, presence } => {
            Route::Event(CallEvent::Presence { username, presence })
        }
        ServerMessage::Privacy { anyone_may_call } => {
            Route::Event(CallEvent::Privacy { anyone_may_call })
        }
        ServerMessage::Invite {
            call_id,
            from,
            sdp,
            glare,
            relay_only,
            ..
        } => {
            if current.is_some() && !glare {
                Route::Busy(call_id)
            } else {
                Route::Invite {
                    call_id,
                    from,
                    sdp,
                    glare,
                    relay_only,
                }
            }
        }
        ServerMessage::Ringing { call_id, .. } if ours(&call_id) => Route::Call {
            event: Some(CallEvent::RemoteRinging { call_id }),
            input: Some(Input::RemoteRinging),
        },
        ServerMessage::Answer {
            call_id,
            device,
            sdp,
        } if ours(&call_id) => input(Input::RemoteAnswer { device, sdp }),
        ServerMessage::Candidates {
            call_id,
            candidates,
            ..
        } if ours(&call_id) => input(Input::RemoteCandidates(candidates)),
        ServerMessage::Negotiate {
            call_id,
            description,
            ..
        } if ours(&call_id) => input(Input::RemoteNegotiate(description)),
        ServerMessage::CallEnded {
            call_id, reason, ..
        } if ours(&call_id) => input(Input::RemoteEnded(reason)),
        // The server no longer has the call we resumed after a reconnect (one that predates
        // restoring calls across restarts, or the call ended meanwhile): the media path is
        // ours, so the call goes on; its end comes from the peer or from media failure.
        ServerMessage::Error(e) if e.reference.as_deref() == Some(RESUME_REF) => Route::Ignore,
        ServerMessage::Error(e) => {
            // An error about our call's setup (unknown user, ...) ends it.
            let dialling = current.is_some_and(|(_, phase, dir)| {
                dir == Direction::Outgoing && phase == &Phase::OutgoingRinging
            });
            let ends_dial = dialling
                && matches!(
                    e.code,
                    dyad_proto::ErrorCode::UnknownUser
                        | dyad_proto::ErrorCode::SelfReference
                        | dyad_proto::ErrorCode::NotAllowed
                        | dyad_proto::ErrorCode::InvalidField
                        | dyad_proto::ErrorCode::DuplicateCall
                );
            Route::Call {
                event: Some(CallEvent::Error {
                    code: e.code.to_string(),
                    message: e.message,
                }),
                input: ends_dial.then_some(Input::RemoteEnded(EndReason::Unavailable)),
            }
        }
        // Keep-alives, and messages for calls that are not ours (stale, or a candidate for a
        // closed call).
        _ => Route::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(n: u32) -> Candidate {
        Candidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }
    }

    fn sent(actions: &[Action]) -> Vec<&ClientMessage> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn outgoing_call_sends_invite_then_trickles_and_connects() {
        let t0 = Instant::now();
        let (mut m, a) = CallMachine::outgoing("call-0001".into(), "bob".into(), 30_000);
        assert_eq!(a, vec![Action::CreateOffer { restart: false }]);
        // A candidate gathered before the invite went out waits for it.
        assert!(m
            .handle(t0, Input::LocalCandidate(Some(cand(1))))
            .is_empty());
        let a = m.handle(
            t0,
            Input::OfferReady {
                sdp: "v=0".into(),
                restart: false,
            },
        );
        let msgs = sent(&a);
        assert!(matches!(
            msgs[0],
            ClientMessage::Invite {
                lifetime_ms: 30_000,
                ..
            }
        ));
        assert!(
            matches!(msgs[1], ClientMessage::Candidates { candidates, .. } if candidates.len() == 1)
        );
        let a = m.handle(
            t0,
            Input::RemoteAnswer {
                device: "phone".into(),
                sdp: "v=0 answer".into(),
            },
        );
        assert!(
            matches!(a[0], Action::Send(ClientMessage::SelectAnswer { ref device, .. }) if device == "phone")
        );
        assert_eq!(a[1], Action::ApplyAnswer("v=0 answer".into()));
        assert_eq!(m.phase(), &Phase::Connecting);
        assert_eq!(m.handle(t0, Input::IceConnected), vec![Action::Connected]);
        // A second "connected" after a blip does not restart media.
        assert!(m.handle(t0, Input::IceConnected).is_empty());
        let a = m.handle(t0, Input::Hangup);
        assert!(matches!(
            sent(&a)[0],
            ClientMessage::Hangup {
                reason: HangupReason::UserHangup,
                ..
            }
        ));
        assert_eq!(m.phase(), &Phase::Ended(EndReason::UserHangup));
        assert!(
            m.handle(t0, Input::Hangup).is_empty(),
            "nothing after the end"
        );
    }

    #[test]
    fn incoming_call_buffers_candidates_until_accepted() {
        let t0 = Instant::now();
        let (mut m, a) = CallMachine::incoming("call-0002".into(), "alice".into(), "offer".into());
        assert!(matches!(sent(&a)[0], ClientMessage::Ringing { .. }));
        assert!(m
            .handle(t0, Input::RemoteCandidates(vec![cand(1), cand(2)]))
            .is_empty());
        let a = m.handle(t0, Input::Accept);
        assert_eq!(
            a,
            vec![
                Action::CreateAnswer {
                    sdp: "offer".into(),
                    renegotiation: false
                },
                Action::AddCandidates(vec![cand(1), cand(2)])
            ]
        );
        let a = m.handle(t0, Input::AnswerReady("answer".into()));
        assert!(matches!(sent(&a)[0], ClientMessage::Answer { .. }));
    }

    #[test]
    fn reject_cancel_and_remote_end_have_their_reasons() {
        let t0 = Instant::now();
        let (mut m, _) = CallMachine::incoming("call-0003".into(), "a".into(), "o".into());
        let a = m.handle(t0, Input::Reject);
        assert!(matches!(sent(&a)[0], ClientMessage::Reject { .. }));
        assert_eq!(m.phase(), &Phase::Ended(EndReason::Rejected));

        let (mut m, _) = CallMachine::outgoing("call-0004".into(), "b".into(), 60_000);
        m.handle(
            t0,
            Input::OfferReady {
                sdp: "o".into(),
                restart: false,
            },
        );
        let a = m.handle(t0, Input::Hangup);
        assert!(matches!(sent(&a)[0], ClientMessage::Cancel { .. }));
        assert_eq!(m.phase(), &Phase::Ended(EndReason::Cancelled));

        let (mut m, _) = CallMachine::outgoing("call-0005".into(), "b".into(), 60_000);
        m.handle(
            t0,
            Input::OfferReady {
                sdp: "o".into(),
                restart: false,
            },
        );
        let a = m.handle(t0, Input::RemoteEnded(EndReason::Busy));
        assert_eq!(a, vec![Action::End(EndReason::Busy)]);
    }

    #[test]
    fn ice_failure_restarts_from_the_caller_and_times_out() {
        let t0 = Instant::now();
        let (mut m, _) = CallMachine::outgoing("call-0006".into(), "b".into(), 60_000);
        m.handle(
            t0,
            Input::OfferReady {
                sdp: "o".into(),
                restart: false,
            },
        );
        m.handle(
            t0,
            Input::RemoteAnswer {
                device: "d".into(),
                sdp: "a".into(),
            },
        );
        m.handle(t0, Input::IceConnected);
        assert_eq!(
            m.handle(t0, Input::IceFailed),
            vec![Action::CreateOffer { restart: true }]
        );
        let a = m.handle(
            t0,
            Input::OfferReady {
                sdp: "o2".into(),
                restart: true,
            },
        );
        assert!(
            matches!(sent(&a)[0], ClientMessage::Negotiate { description, .. } if description.kind == SdpKind::Offer)
        );
        assert_eq!(
            m.handle(
                t0,
                Input::RemoteNegotiate(SessionDescription {
                    kind: SdpKind::Answer,
                    sdp: "a2".into()
                })
            ),
            vec![Action::ApplyAnswer("a2".into())]
        );
        assert!(m.handle(t0 + RESTART_TIMEOUT / 2, Input::Tick).is_empty());
        let a = m.handle(t0 + RESTART_TIMEOUT, Input::Tick);
        assert!(matches!(
            sent(&a)[0],
            ClientMessage::Hangup {
                reason: HangupReason::IceFailed,
                ..
            }
        ));
        assert_eq!(m.phase(), &Phase::Ended(EndReason::IceFailed));
    }

    #[test]
    fn connecting_too_long_ends_with_ice_timeout_and_the_callee_answers_restarts() {
        let t0 = Instant::now();
        let (mut m, _) = CallMachine::incoming("call-0007".into(), "a".into(), "o".into());
        m.handle(t0, Input::Accept);
        m.handle(t0, Input::AnswerReady("a".into()));
        assert_eq!(
            m.handle(
                t0,
                Input::RemoteNegotiate(SessionDescription {
                    kind: SdpKind::Offer,
                    sdp: "o2".into()
                })
            ),
            vec![Action::CreateAnswer {
                sdp: "o2".into(),
                renegotiation: true
            }]
        );
        assert!(m
            .handle(
                t0 + CONNECT_TIMEOUT
                    .checked_sub(Duration::from_millis(1))
                    .unwrap(),
                Input::Tick
            )
            .is_empty());
        m.handle(t0 + CONNECT_TIMEOUT, Input::Tick);
        assert_eq!(m.phase(), &Phase::Ended(EndReason::IceTimeout));
    }

    #[test]
    fn pending_candidates_are_bounded() {
        let t0 = Instant::now();
        let (mut m, _) = CallMachine::incoming("call-0008".into(), "a".into(), "o".into());
        for i in 0..1000 {
            m.handle(t0, Input::RemoteCandidates(vec![cand(i)]));
        }
        let a = m.handle(t0, Input::Accept);
        assert!(matches!(&a[1], Action::AddCandidates(c) if c.len() == MAX_PENDING_CANDIDATES));
    }
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    fn connected_callee(t0: Instant) -> CallMachine {
        let (mut m, _) = CallMachine::incoming("call-0101".into(), "a".into(), "o".into());
        m.handle(t0, Input::Accept);
        m.handle(t0, Input::AnswerReady("a".into()));
        m.handle(t0, Input::IceConnected);
        m
    }

    #[test]
    fn a_callee_whose_path_failed_offers_a_restart_if_the_caller_does_not() {
        let t0 = Instant::now();
        let mut m = connected_callee(t0);
        assert!(m.handle(t0, Input::IceFailed).is_empty());
        assert_eq!(m.next_deadline(), Some(t0 + CALLEE_RESTART_DELAY));
        assert!(m
            .handle(t0 + Duration::from_millis(1999), Input::Tick)
            .is_empty());
        assert_eq!(
            m.handle(t0 + CALLEE_RESTART_DELAY, Input::Tick),
            vec![Action::CreateOffer { restart: true }]
        );
        // The caller's answer to it is applied; the connection comes back.
        let answer = SessionDescription {
            kind: SdpKind::Answer,
            sdp: "a2".into(),
        };
        assert_eq!(
            m.handle(t0, Input::RemoteNegotiate(answer)),
            vec![Action::ApplyAnswer("a2".into())]
        );
        m.handle(t0, Input::IceConnected);
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.phase(), &Phase::Connected);
    }

    #[test]
    fn the_callers_restart_offer_wins_and_cancels_the_callees() {
        let t0 = Instant::now();
        let mut m = connected_callee(t0);
        m.handle(t0, Input::IceFailed);
        let offer = SessionDescription {
            kind: SdpKind::Offer,
            sdp: "o2".into(),
        };
        assert_eq!(
            m.handle(t0, Input::RemoteNegotiate(offer)),
            vec![Action::CreateAnswer {
                sdp: "o2".into(),
                renegotiation: true
            }]
        );
        assert!(
            m.handle(t0 + CALLEE_RESTART_DELAY, Input::Tick).is_empty(),
            "no second offer"
        );
        // A caller with its own restart offer out ignores the callee's.
        let (mut c, _) = CallMachine::outgoing("call-0102".into(), "b".into(), 60_000);
        c.handle(
            t0,
            Input::OfferReady {
                sdp: "o".into(),
                restart: false,
            },
        );
        c.handle(
            t0,
            Input::RemoteAnswer {
                device: "d".into(),
                sdp: "a".into(),
            },
        );
        c.handle(t0, Input::IceConnected);
        assert_eq!(
            c.handle(t0, Input::IceFailed),
            vec![Action::CreateOffer { restart: true }]
        );
        let theirs = SessionDescription {
            kind: SdpKind::Offer,
            sdp: "x".into(),
        };
        assert!(c
            .handle(t0, Input::RemoteNegotiate(theirs.clone()))
            .is_empty());
        // Without its own offer out, the caller answers the callee's with `negotiate`.
        let (mut c, _) = CallMachine::outgoing("call-0103".into(), "b".into(), 60_000);
        c.handle(
            t0,
            Input::OfferReady {
                sdp: "o".into(),
                restart: false,
            },
        );
        c.handle(
            t0,
            Input::RemoteAnswer {
                device: "d".into(),
                sdp: "a".into(),
            },
        );
        c.handle(t0, Input::IceConnected);
        assert!(matches!(
            c.handle(t0, Input::RemoteNegotiate(theirs))[..],
            [Action::CreateAnswer {
                renegotiation: true,
                ..
            }]
        ));
        let a = c.handle(t0, Input::AnswerReady("a2".into()));
        assert!(
            matches!(&a[0], Action::Send(ClientMessage::Negotiate { description, .. }) if description.kind == SdpKind::Answer),
            "{a:?}"
        );
    }
}
