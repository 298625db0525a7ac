//! The call router without sockets: every call path, the refusals, timers, presence, glare, and
//! a property test over random message sequences.

use std::collections::HashMap;

use dyad_proto::{
    Candidate, ClientMessage as C, EndReason, ErrorCode, HangupReason, Presence, SdpKind,
    ServerMessage as S, SessionDescription,
};
use dyad_server::router::{HistoryEvent, Input, Output, Party, Router, RouterConfig};

const SDP: &str = "v=0\r\n";

struct World {
    r: Router,
    now: u64,
}

impl World {
    fn new() -> Self {
        Self {
            r: Router::new(RouterConfig {
                reconnect_grace_ms: 10_000,
            }),
            now: 1_000,
        }
    }
    fn connect(&mut self, p: &Party) -> Vec<Output> {
        self.r
            .handle(self.now, Input::Connected(p.clone()))
            .expect("connect")
    }
    fn send(&mut self, p: &Party, m: C) -> Result<Vec<Output>, ErrorCode> {
        self.r
            .handle(self.now, Input::Message(p.clone(), m))
            .map_err(|e| e.code)
    }
    fn ok(&mut self, p: &Party, m: C) -> Vec<Output> {
        self.send(p, m.clone())
            .unwrap_or_else(|e| panic!("{m:?} from {p:?}: {e}"))
    }
    fn tick(&mut self, advance: u64) -> Vec<Output> {
        self.now += advance;
        self.r.handle(self.now, Input::Tick).expect("tick")
    }
}

fn p(user: &str, device: &str) -> Party {
    Party::new(user, device)
}

fn sends(out: &[Output]) -> Vec<(Party, S)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p, m) => Some((p.clone(), m.clone())),
            _ => None,
        })
        .collect()
}

fn history(out: &[Output]) -> Vec<HistoryEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::History(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

fn end(call: &str, reason: EndReason, by: Option<&str>) -> S {
    S::CallEnded {
        call_id: call.into(),
        reason,
        by: by.map(Into::into),
    }
}

fn invite(call: &str, to: &str) -> C {
    C::Invite {
        call_id: call.into(),
        to: to.into(),
        sdp: SDP.into(),
        lifetime_ms: 30_000,
        relay_only: false,
    }
}

/// alice (laptop) and bob on two devices (phone, desk), all online.
fn alice_and_bob() -> (World, Party, Party, Party) {
    let mut w = World::new();
    let (a, b1, b2) = (p("alice", "laptop"), p("bob", "desk"), p("bob", "phone"));
    for x in [&a, &b1, &b2] {
        w.connect(x);
    }
    (w, a, b1, b2)
}

#[test]
fn a_relay_only_call_passes_relayed_candidates_only_both_ways() {
    let (mut w, a, b1, b2) = alice_and_bob();
    let host = "candidate:1 1 udp 2130706431 192.0.2.10 5000 typ host";
    let srflx =
        "candidate:2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 192.0.2.10 rport 5000";
    let relay =
        "candidate:3 1 udp 16777215 198.51.100.1 7000 typ relay raddr 203.0.113.7 rport 6000";
    let sdp = format!("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:{}\r\na=candidate:{}\r\na=candidate:{}\r\na=end-of-candidates\r\n", &host[10..], &srflx[10..], &relay[10..]);
    let out = w.ok(
        &a,
        C::Invite {
            call_id: "call-rely".into(),
            to: "bob".into(),
            sdp: sdp.clone(),
            lifetime_ms: 30_000,
            relay_only: true,
        },
    );
    let rung = sends(&out);
    assert_eq!(rung.len(), 2);
    for (_, m) in &rung {
        let S::Invite {
            sdp, relay_only, ..
        } = m
        else {
            panic!("{m:?}")
        };
        assert!(*relay_only, "the callee is told to use the relay only");
        assert!(
            sdp.contains("typ relay") && !sdp.contains("typ host") && !sdp.contains("typ srflx"),
            "{sdp}"
        );
        assert!(
            sdp.contains("a=end-of-candidates"),
            "other lines stay: {sdp}"
        );
    }
    let cands = |list: &[&str]| -> Vec<Candidate> {
        list.iter()
            .map(|c| Candidate {
                candidate: c.to_string(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            })
            .collect()
    };
    // The callee's host and server-reflexive candidates never reach the caller.
    let out = w.ok(
        &b1,
        C::Candidates {
            call_id: "call-rely".into(),
            candidates: cands(&[host, srflx, relay]),
            end_of_candidates: false,
        },
    );
    let got = sends(&out);
    assert!(
        matches!(&got[..], [(p, S::Candidates { candidates, .. })] if *p == a && candidates.len() == 1 && candidates[0].candidate == relay),
        "{got:?}"
    );
    let out = w.ok(
        &b1,
        C::Answer {
            call_id: "call-rely".into(),
            sdp: sdp.clone(),
        },
    );
    let got = sends(&out);
    assert!(
        matches!(&got[..], [(_, S::Answer { sdp, .. })] if sdp.contains("typ relay") && !sdp.contains("typ host")),
        "{got:?}"
    );
    // And the caller's go the same way.
    let out = w.ok(
        &a,
        C::Candidates {
            call_id: "call-rely".into(),
            candidates: cands(&[host, relay]),
            end_of_candidates: true,
        },
    );
    for (_, m) in sends(&out) {
        assert!(
            matches!(&m, S::Candidates { candidates, .. } if candidates.len() == 1),
            "{m:?}"
        );
    }
    // Lines dressed up as relayed, or spaced and cased to slip past a prefix match, do not pass.
    let dressed = "candidate:9 1 udp 2130706431 192.0.2.10 5001 x host typ relay";
    let out = w.ok(
        &b1,
        C::Candidates {
            call_id: "call-rely".into(),
            candidates: cands(&[
                dressed,
                "CANDIDATE:8 1 udp 1 192.0.2.10 5002 typ host",
                relay,
            ]),
            end_of_candidates: false,
        },
    );
    assert!(
        matches!(&sends(&out)[..], [(_, S::Candidates { candidates, .. })] if candidates.len() == 1 && candidates[0].candidate == relay),
        "{out:?}"
    );
    let sneaky = format!(
        "v=0\r\na= candidate:{}\r\n\ra=candidate:{}\r\na=Candidate:{}\r\na=candidate:{}\r\n",
        &host[10..],
        &host[10..],
        &dressed[10..],
        &relay[10..]
    );
    w.ok(
        &a,
        C::Cancel {
            call_id: "call-rely".into(),
        },
    );
    let out = w.ok(
        &a,
        C::Invite {
            call_id: "call-rel2".into(),
            to: "bob".into(),
            sdp: sneaky,
            lifetime_ms: 30_000,
            relay_only: true,
        },
    );
    for (_, m) in sends(&out) {
        let S::Invite { sdp, .. } = &m else {
            panic!("{m:?}")
        };
        assert_eq!(
            sdp.matches("andidate").count(),
            1,
            "only the relayed line: {sdp:?}"
        );
        assert!(!sdp.contains("192.0.2.10 500"), "{sdp:?}");
    }
    // An ordinary call between the same two carries everything.
    w.ok(
        &a,
        C::Cancel {
            call_id: "call-rel2".into(),
        },
    );
    let out = w.ok(&a, invite("call-open", "bob"));
    assert!(sends(&out).iter().all(|(_, m)| matches!(
        m,
        S::Invite {
            relay_only: false,
            ..
        }
    )));
    let out = w.ok(
        &b2,
        C::Candidates {
            call_id: "call-open".into(),
            candidates: cands(&[host, relay]),
            end_of_candidates: false,
        },
    );
    assert!(
        matches!(&sends(&out)[..], [(_, S::Candidates { candidates, .. })] if candidates.len() == 2)
    );
}

#[test]
fn full_call_with_two_callee_devices() {
    let (mut w, a, b1, b2) = alice_and_bob();
    let out = w.ok(&a, invite("call-0001", "bob"));
    let rung: Vec<Party> = sends(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        rung,
        vec![b1.clone(), b2.clone()],
        "every device of bob rings"
    );
    assert!(
        matches!(&history(&out)[..], [HistoryEvent::Started { caller, callee, .. }] if caller == "alice" && callee == "bob")
    );

    let out = w.ok(
        &b2,
        C::Ringing {
            call_id: "call-0001".into(),
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            a.clone(),
            S::Ringing {
                call_id: "call-0001".into(),
                device: "phone".into()
            }
        )]
    );

    // Caller's candidates go to every ringing device before an answer is chosen.
    let cand = vec![Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }];
    let out = w.ok(
        &a,
        C::Candidates {
            call_id: "call-0001".into(),
            candidates: cand.clone(),
            end_of_candidates: false,
        },
    );
    assert_eq!(sends(&out).len(), 2);

    let out = w.ok(
        &b2,
        C::Answer {
            call_id: "call-0001".into(),
            sdp: SDP.into(),
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            a.clone(),
            S::Answer {
                call_id: "call-0001".into(),
                device: "phone".into(),
                sdp: SDP.into()
            }
        )]
    );
    assert_eq!(
        w.send(
            &b2,
            C::Answer {
                call_id: "call-0001".into(),
                sdp: SDP.into()
            }
        ),
        Err(ErrorCode::InvalidState),
        "one answer per device"
    );

    let out = w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0001".into(),
            device: "phone".into(),
        },
    );
    assert_eq!(
        sends(&out),
        vec![
            (
                b2.clone(),
                S::SelectAnswer {
                    call_id: "call-0001".into(),
                    device: "phone".into()
                }
            ),
            (
                b1.clone(),
                end("call-0001", EndReason::AnsweredElsewhere, Some("bob"))
            ),
        ]
    );
    assert!(matches!(
        &history(&out)[..],
        [HistoryEvent::Answered { .. }]
    ));

    // Now only the selected device talks to the caller.
    let out = w.ok(
        &a,
        C::Candidates {
            call_id: "call-0001".into(),
            candidates: cand.clone(),
            end_of_candidates: true,
        },
    );
    assert_eq!(
        sends(&out).into_iter().map(|(p, _)| p).collect::<Vec<_>>(),
        vec![b2.clone()]
    );
    assert_eq!(
        w.send(
            &b1,
            C::Candidates {
                call_id: "call-0001".into(),
                candidates: cand,
                end_of_candidates: false
            }
        ),
        Err(ErrorCode::UnknownCall)
    );
    let offer = SessionDescription {
        kind: SdpKind::Offer,
        sdp: SDP.into(),
    };
    let out = w.ok(
        &b2,
        C::Negotiate {
            call_id: "call-0001".into(),
            description: offer,
        },
    );
    assert_eq!(
        sends(&out).into_iter().map(|(p, _)| p).collect::<Vec<_>>(),
        vec![a.clone()]
    );

    let out = w.ok(
        &b2,
        C::Hangup {
            call_id: "call-0001".into(),
            reason: HangupReason::UserHangup,
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            a.clone(),
            end("call-0001", EndReason::UserHangup, Some("bob"))
        )]
    );
    assert!(
        matches!(&history(&out)[..], [HistoryEvent::Ended { reason: EndReason::UserHangup, by: Some(by), .. }] if by == "bob")
    );
    assert_eq!(
        w.send(
            &a,
            C::Hangup {
                call_id: "call-0001".into(),
                reason: HangupReason::UserHangup
            }
        ),
        Err(ErrorCode::UnknownCall),
        "ended calls are gone"
    );
    assert_eq!(w.r.active_calls(), 0);
}

#[test]
fn reject_from_one_device_ends_the_call_everywhere() {
    let (mut w, a, b1, b2) = alice_and_bob();
    w.ok(&a, invite("call-0002", "bob"));
    let out = w.ok(
        &b1,
        C::Reject {
            call_id: "call-0002".into(),
        },
    );
    let mut got = sends(&out);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            (
                a.clone(),
                end("call-0002", EndReason::Rejected, Some("bob"))
            ),
            (
                b2.clone(),
                end("call-0002", EndReason::RejectedElsewhere, Some("bob"))
            ),
        ]
    );
    assert!(matches!(
        &history(&out)[..],
        [HistoryEvent::Ended {
            reason: EndReason::Rejected,
            ..
        }]
    ));
}

#[test]
fn caller_cancels_and_every_device_stops_ringing() {
    let (mut w, a, b1, b2) = alice_and_bob();
    w.ok(&a, invite("call-0003", "bob"));
    let out = w.ok(
        &a,
        C::Cancel {
            call_id: "call-0003".into(),
        },
    );
    assert_eq!(
        sends(&out),
        vec![
            (b1, end("call-0003", EndReason::Cancelled, Some("alice"))),
            (b2, end("call-0003", EndReason::Cancelled, Some("alice")))
        ]
    );
    assert_eq!(
        w.send(
            &a,
            C::Cancel {
                call_id: "call-0003".into()
            }
        ),
        Err(ErrorCode::UnknownCall)
    );
}

#[test]
fn busy_and_unavailable_end_at_once_with_a_history_row() {
    let (mut w, a, b1, _) = alice_and_bob();
    let carol = p("carol", "c");
    w.connect(&carol);
    w.ok(&a, invite("call-0004", "bob"));
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-0004".into(),
            sdp: SDP.into(),
        },
    );
    w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0004".into(),
            device: "desk".into(),
        },
    );
    let out = w.ok(&carol, invite("call-0005", "bob"));
    assert_eq!(
        sends(&out),
        vec![(carol.clone(), end("call-0005", EndReason::Busy, None))]
    );
    assert!(matches!(
        &history(&out)[..],
        [
            HistoryEvent::Started { .. },
            HistoryEvent::Ended {
                reason: EndReason::Busy,
                ..
            }
        ]
    ));
    let out = w.ok(&carol, invite("call-0006", "dave"));
    assert_eq!(
        sends(&out),
        vec![(carol, end("call-0006", EndReason::Unavailable, None))]
    );
}

#[test]
fn unanswered_invite_times_out_at_its_lifetime() {
    let (mut w, a, b1, b2) = alice_and_bob();
    w.ok(&a, invite("call-0007", "bob"));
    assert_eq!(w.r.next_deadline(), Some(w.now + 30_000));
    assert!(sends(&w.tick(29_999)).is_empty());
    let out = w.tick(1);
    assert_eq!(
        sends(&out),
        vec![
            (a, end("call-0007", EndReason::InviteTimeout, None)),
            (b1, end("call-0007", EndReason::InviteTimeout, None)),
            (b2, end("call-0007", EndReason::InviteTimeout, None)),
        ]
    );
    assert_eq!(w.r.next_deadline(), None);
}

#[test]
fn glare_keeps_the_lower_call_id_either_way_round() {
    // alice's call has the lower id: bob's crossing invite is folded into it.
    let (mut w, a, b1, _) = alice_and_bob();
    w.ok(&a, invite("call-aaaa", "bob"));
    let out = w.ok(&b1, invite("call-bbbb", "alice"));
    let got = sends(&out);
    assert_eq!(
        got[0],
        (b1.clone(), end("call-bbbb", EndReason::Replaced, None))
    );
    assert!(
        matches!(&got[1], (p, S::Invite { call_id, glare: true, .. }) if *p == b1 && call_id == "call-aaaa")
    );
    assert_eq!(w.r.active_calls(), 1);
    // And it carries on normally.
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-aaaa".into(),
            sdp: SDP.into(),
        },
    );

    // bob's call has the lower id: alice's ringing call ends `replaced`, bob's rings alice.
    let (mut w, a, b1, b2) = alice_and_bob();
    w.ok(&a, invite("call-zzzz", "bob"));
    let out = w.ok(&b1, invite("call-aaaa", "alice"));
    let got = sends(&out);
    assert!(got.contains(&(a.clone(), end("call-zzzz", EndReason::Replaced, None))));
    assert!(got.contains(&(b2.clone(), end("call-zzzz", EndReason::Replaced, None))));
    assert!(got.iter().any(|(p, m)| *p == a
        && matches!(m, S::Invite { call_id, glare: true, .. } if call_id == "call-aaaa")));
    assert_eq!(w.r.active_calls(), 1);
}

#[test]
fn refusals_change_nothing() {
    let (mut w, a, b1, _) = alice_and_bob();
    let mallory = p("mallory", "m");
    w.connect(&mallory);
    assert_eq!(
        w.send(&a, invite("call-0010", "alice")),
        Err(ErrorCode::SelfReference)
    );
    w.ok(&a, invite("call-0010", "bob"));
    assert_eq!(
        w.send(&a, invite("call-0010", "carol")),
        Err(ErrorCode::DuplicateCall)
    );
    assert_eq!(
        w.send(
            &mallory,
            C::Hangup {
                call_id: "call-0010".into(),
                reason: HangupReason::UserHangup
            }
        ),
        Err(ErrorCode::UnknownCall)
    );
    assert_eq!(
        w.send(
            &mallory,
            C::Answer {
                call_id: "call-0010".into(),
                sdp: SDP.into()
            }
        ),
        Err(ErrorCode::UnknownCall)
    );
    assert_eq!(
        w.send(
            &b1,
            C::SelectAnswer {
                call_id: "call-0010".into(),
                device: "desk".into()
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        w.send(
            &a,
            C::SelectAnswer {
                call_id: "call-0010".into(),
                device: "desk".into()
            }
        ),
        Err(ErrorCode::InvalidState),
        "desk has not answered"
    );
    let offer = SessionDescription {
        kind: SdpKind::Offer,
        sdp: SDP.into(),
    };
    assert_eq!(
        w.send(
            &a,
            C::Negotiate {
                call_id: "call-0010".into(),
                description: offer
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        w.send(
            &a,
            C::Ringing {
                call_id: "call-0010".into()
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        w.send(
            &a,
            C::Reject {
                call_id: "call-0010".into()
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        w.send(&a, invite("call-0011", "mallory")),
        Err(ErrorCode::InvalidState),
        "already in a call"
    );
    // None of that disturbed the call: it still connects.
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-0010".into(),
            sdp: SDP.into(),
        },
    );
    w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0010".into(),
            device: "desk".into(),
        },
    );
    assert_eq!(
        w.send(
            &a,
            C::Cancel {
                call_id: "call-0010".into()
            }
        ),
        Err(ErrorCode::InvalidState),
        "cancel after answer"
    );
}

#[test]
fn a_dropped_party_may_come_back_within_the_grace_but_not_after() {
    let (mut w, a, b1, _) = alice_and_bob();
    w.ok(&a, invite("call-0020", "bob"));
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-0020".into(),
            sdp: SDP.into(),
        },
    );
    w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0020".into(),
            device: "desk".into(),
        },
    );
    w.r.handle(w.now, Input::Disconnected(a.clone()))
        .expect("drop");
    assert!(sends(&w.tick(9_000)).is_empty());
    w.connect(&a);
    assert!(
        sends(&w.tick(5_000)).is_empty(),
        "back in time: the call survives"
    );
    w.ok(
        &a,
        C::Hangup {
            call_id: "call-0020".into(),
            reason: HangupReason::IceFailed,
        },
    );

    w.ok(&a, invite("call-0021", "bob"));
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-0021".into(),
            sdp: SDP.into(),
        },
    );
    w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0021".into(),
            device: "desk".into(),
        },
    );
    w.r.handle(w.now, Input::Disconnected(b1.clone()))
        .expect("drop");
    let out = w.tick(10_000);
    assert_eq!(
        sends(&out),
        vec![(a, end("call-0021", EndReason::PeerDisconnected, None))]
    );
    assert!(matches!(
        &history(&out)[..],
        [HistoryEvent::Ended {
            reason: EndReason::PeerDisconnected,
            by: None,
            ..
        }]
    ));
}

#[test]
fn a_device_coming_online_while_ringing_rings_too() {
    let mut w = World::new();
    let (a, b1, b2) = (p("alice", "laptop"), p("bob", "desk"), p("bob", "phone"));
    w.connect(&a);
    w.connect(&b1);
    w.ok(&a, invite("call-0030", "bob"));
    let out = w.connect(&b2);
    assert!(
        sends(&out)
            .iter()
            .any(|(p, m)| *p == b2
                && matches!(m, S::Invite { call_id, .. } if call_id == "call-0030"))
    );
}

#[test]
fn presence_follows_connections_and_calls() {
    let mut w = World::new();
    let (a, b) = (p("alice", "laptop"), p("bob", "desk"));
    let presences = |out: &[Output]| -> Vec<(String, Presence)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Presence(u, p) => Some((u.clone(), *p)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        presences(&w.connect(&a)),
        vec![("alice".into(), Presence::Online)]
    );
    assert_eq!(
        presences(&w.connect(&p("alice", "phone"))),
        vec![],
        "second device: no change"
    );
    w.connect(&b);
    let out = w.ok(&a, invite("call-0040", "bob"));
    assert_eq!(
        presences(&out),
        vec![
            ("alice".into(), Presence::InCall),
            ("bob".into(), Presence::InCall)
        ]
    );
    let out = w.ok(
        &a,
        C::Cancel {
            call_id: "call-0040".into(),
        },
    );
    assert_eq!(
        presences(&out),
        vec![
            ("alice".into(), Presence::Online),
            ("bob".into(), Presence::Online)
        ]
    );
    let out =
        w.r.handle(w.now, Input::Disconnected(b.clone()))
            .expect("drop");
    assert_eq!(presences(&out), vec![("bob".into(), Presence::Offline)]);
    assert_eq!(w.r.presence("bob"), Presence::Offline);
}

proptest::proptest! {
    // 2000 sequences by default; PROPTEST_CASES=N runs more (the issue note gives such a run).
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    ))]

    /// Random inputs from three users on four devices never panic, every call ends at most once,
    /// and nothing is ever sent to a party that is not connected... except `call_ended` and
    /// invites, which the driver drops for offline devices anyway; we check the stronger
    /// invariant that messages only go to users who are part of the call they name.
    #[test]
    fn random_sequences_keep_the_invariants(steps in proptest::collection::vec((0u8..14, 0usize..4, 0usize..4, 0u64..40_000), 1..60)) {
        let parties = [p("alice", "a1"), p("bob", "b1"), p("bob", "b2"), p("carol", "c1")];
        let calls = ["call-0001", "call-0002", "call-0003"];
        let mut r = Router::new(RouterConfig { reconnect_grace_ms: 5_000 });
        let mut now = 0u64;
        // Live calls by (caller, id): ids are each caller's own, two callers may use one id.
        let mut members: HashMap<(String, String), String> = HashMap::new();
        for (kind, who, other, dt) in steps {
            now += dt / 10;
            let from = parties[who].clone();
            let call = calls[other % 3].to_string();
            let target = &parties[other];
            let input = match kind {
                0 => Input::Connected(from),
                1 => Input::Disconnected(from),
                2 => Input::Tick,
                3 => Input::Message(from, C::Invite { call_id: call, to: target.user.clone(), sdp: SDP.into(), lifetime_ms: 10_000, relay_only: false }),
                4 => Input::Message(from, C::Ringing { call_id: call }),
                5 => Input::Message(from, C::Answer { call_id: call, sdp: SDP.into() }),
                6 => Input::Message(from, C::SelectAnswer { call_id: call, device: target.device.clone() }),
                7 => Input::Message(from, C::Reject { call_id: call }),
                8 => Input::Message(from, C::Cancel { call_id: call }),
                9 => Input::Message(from, C::Hangup { call_id: call, reason: HangupReason::UserHangup }),
                10 => Input::Message(from, C::Candidates { call_id: call, candidates: vec![], end_of_candidates: true }),
                11 => Input::Message(from, C::Negotiate { call_id: call, description: SessionDescription { kind: SdpKind::Offer, sdp: SDP.into() } }),
                _ => Input::Tick,
            };
            // The call a message names, resolved as the router must: the sender's own call with
            // that id, else the one with that id they are the callee of.
            let named = match &input {
                Input::Message(from, m) if !matches!(m, C::Invite { .. }) => m.call_id().and_then(|id| {
                    let own = (from.user.clone(), id.to_string());
                    if members.contains_key(&own) {
                        let callee = members[&own].clone();
                        Some((own.0, callee))
                    } else {
                        members
                            .iter()
                            .find(|((_, i), callee)| i == id && **callee == from.user)
                            .map(|((caller, _), callee)| (caller.clone(), callee.clone()))
                    }
                }),
                _ => None,
            };
            let Ok(out) = r.handle(now, input) else { continue };
            for o in out {
                match o {
                    Output::History(HistoryEvent::Started { call_id, caller, callee, .. }) => {
                        members.insert((caller, call_id), callee);
                    }
                    Output::History(HistoryEvent::Ended { call_id, caller, .. }) => {
                        // Ends once (a call id may be reused after it ended).
                        proptest::prop_assert!(members.remove(&(caller.clone(), call_id.clone())).is_some(), "{caller}/{call_id} ended twice or never started");
                    }
                    Output::Send(to, msg) => {
                        let id = match &msg {
                            S::Invite { call_id, .. } | S::Ringing { call_id, .. } | S::Answer { call_id, .. }
                            | S::SelectAnswer { call_id, .. } | S::Candidates { call_id, .. }
                            | S::Negotiate { call_id, .. } | S::CallEnded { call_id, .. } => call_id.clone(),
                            _ => continue,
                        };
                        // What is relayed for a named call goes to that call's parties only (two
                        // callers' calls may share an id).
                        let relayed = matches!(&msg, S::Ringing { .. } | S::Answer { .. } | S::SelectAnswer { .. } | S::Candidates { .. } | S::Negotiate { .. });
                        if let (true, Some((caller, callee))) = (relayed, &named) {
                            proptest::prop_assert!(to.user == *caller || to.user == *callee, "{msg:?} of {caller}'s call sent to {to:?}");
                        }
                        let live: Vec<_> = members.iter().filter(|((_, i), _)| *i == id).collect();
                        if !live.is_empty() {
                            proptest::prop_assert!(live.iter().any(|((caller, _), callee)| to.user == *caller || to.user == **callee), "{msg:?} sent to outsider {to:?}");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn a_restored_call_needs_both_parties_to_resume_within_the_grace() {
    let resume = |id: &str| C::Resume { call_id: id.into() };
    let (a, b, x) = (p("alice", "laptop"), p("bob", "desk"), p("eve", "pc"));
    // Both come back and resume: the call lives past the grace, and only its parties may resume.
    let mut w = World::new();
    w.r.restore(w.now, "call-0040".into(), a.clone(), b.clone(), false);
    assert_eq!(w.r.active_calls(), 1);
    for q in [&a, &b, &x] {
        w.connect(q);
    }
    assert_eq!(w.r.presence("alice"), Presence::InCall);
    assert_eq!(w.send(&x, resume("call-0040")), Err(ErrorCode::UnknownCall));
    w.ok(&a, resume("call-0040"));
    w.ok(&b, resume("call-0040"));
    assert!(w.tick(20_000).is_empty());
    assert_eq!(w.r.active_calls(), 1);
    // Connected again but never resumed: over at the grace, like a party that never came back.
    let mut w = World::new();
    w.r.restore(w.now, "call-0041".into(), a.clone(), b.clone(), false);
    w.connect(&a);
    w.connect(&b);
    w.ok(&a, resume("call-0041"));
    assert_eq!(w.r.next_deadline(), Some(w.now + 10_000));
    let out = w.tick(10_000);
    assert_eq!(
        sends(&out),
        vec![(
            a.clone(),
            end("call-0041", EndReason::PeerDisconnected, None)
        )]
    );
    assert_eq!(w.r.active_calls(), 0);
    // `resume` is for connected calls only.
    let mut w = World::new();
    w.connect(&a);
    w.connect(&b);
    w.ok(&a, invite("call-0042", "bob"));
    assert_eq!(
        w.send(&a, resume("call-0042")),
        Err(ErrorCode::InvalidState)
    );
}

#[test]
fn call_ids_are_the_callers_own_so_nobody_can_probe_anothers() {
    let (mut w, a, b1, _b2) = alice_and_bob();
    let (m, c) = (p("mallory", "evil"), p("carol", "tablet"));
    w.connect(&m);
    w.connect(&c);
    w.ok(&a, invite("call-0001", "bob"));
    // mallory uses the id of alice's live call: an ordinary new call of hers, carol rings.
    let out = w.ok(&m, invite("call-0001", "carol"));
    assert!(
        matches!(&sends(&out)[..], [(p, S::Invite { call_id, from, .. })] if *p == c && call_id == "call-0001" && from == "mallory"),
        "{out:?}"
    );
    // Naming alice's call gets mallory nothing: her own call is the one she hangs up.
    let out = w.ok(
        &m,
        C::Hangup {
            call_id: "call-0001".into(),
            reason: HangupReason::UserHangup,
        },
    );
    assert!(
        sends(&out).iter().all(|(p, _)| *p == c),
        "only carol hears of it: {out:?}"
    );
    // Both calls kept apart in the history too.
    assert!(history(&out)
        .iter()
        .all(|h| matches!(h, HistoryEvent::Ended { caller, .. } if caller == "mallory")));
    // alice's call still rings bob; reusing her own live id is refused.
    let out = w.ok(
        &b1,
        C::Ringing {
            call_id: "call-0001".into(),
        },
    );
    assert!(matches!(&sends(&out)[..], [(p, S::Ringing { .. })] if *p == a));
    assert_eq!(
        w.send(&a, invite("call-0001", "carol")),
        Err(ErrorCode::DuplicateCall)
    );
}

#[test]
fn glare_with_equal_call_ids_leaves_one_call() {
    let mut w = World::new();
    let (a, b) = (p("alice", "laptop"), p("bob", "desk"));
    w.connect(&a);
    w.connect(&b);
    w.ok(&a, invite("call-same", "bob"));
    let out = w.ok(&b, invite("call-same", "alice"));
    // alice's call survives ("alice" < "bob"): bob's own ends replaced, alice's rings him as glare.
    let got = sends(&out);
    assert!(
        matches!(&got[..], [(p1, S::CallEnded { reason: EndReason::Replaced, .. }), (p2, S::Invite { from, glare: true, .. })] if *p1 == b && *p2 == b && from == "alice"),
        "{got:?}"
    );
    assert_eq!(w.r.active_calls(), 1);
    let out = w.ok(
        &b,
        C::Answer {
            call_id: "call-same".into(),
            sdp: SDP.into(),
        },
    );
    assert!(matches!(&sends(&out)[..], [(p, S::Answer { .. })] if *p == a));
}

#[test]
fn a_strangers_call_to_a_busy_or_offline_user_says_unavailable_and_leaves_no_row() {
    let (mut w, a, _b1, _b2) = alice_and_bob();
    let m = p("mallory", "evil");
    w.connect(&m);
    w.ok(&a, invite("call-0001", "bob"));
    let stranger = |id: &str, to: &str| C::Invite {
        call_id: id.into(),
        to: to.into(),
        sdp: SDP.into(),
        lifetime_ms: 30_000,
        relay_only: true,
    };
    for (id, to) in [("call-busy", "bob"), ("call-away", "nobody")] {
        let out = w.ok(&m, stranger(id, to));
        assert_eq!(
            sends(&out),
            vec![(m.clone(), end(id, EndReason::Unavailable, None))],
            "{to}"
        );
        assert!(history(&out).is_empty(), "no row: {out:?}");
    }
    // A contact (not relay-only) hears busy, and it is recorded.
    let c = p("carol", "tablet");
    w.connect(&c);
    let out = w.ok(&c, invite("call-cb", "bob"));
    assert_eq!(
        sends(&out),
        vec![(c.clone(), end("call-cb", EndReason::Busy, None))]
    );
    assert_eq!(history(&out).len(), 2);
}

#[test]
fn one_caller_places_at_most_ten_calls_a_minute() {
    let mut w = World::new();
    let (m, v) = (p("mallory", "evil"), p("victim", "phone"));
    w.connect(&m);
    // The victim is offline: each invite ends at once, so only the budget stops them.
    for i in 0..10 {
        assert!(
            w.send(&m, invite(&format!("call-{i:04}"), "victim"))
                .is_ok(),
            "{i}"
        );
    }
    assert_eq!(
        w.send(&m, invite("call-0010", "victim")),
        Err(ErrorCode::RateLimited)
    );
    w.tick(6_000);
    assert!(
        w.send(&m, invite("call-0011", "victim")).is_ok(),
        "one more after 6 s"
    );
    assert_eq!(
        w.send(&m, invite("call-0012", "victim")),
        Err(ErrorCode::RateLimited)
    );
    // Others are not affected.
    w.connect(&v);
    assert!(w.send(&v, invite("call-v001", "mallory")).is_ok());
}

#[test]
fn a_strangers_call_brought_back_after_a_restart_stays_relay_only() {
    let (a, b) = (p("alice", "laptop"), p("bob", "desk"));
    let mut w = World::new();
    w.r.restore(w.now, "call-0042".into(), a.clone(), b.clone(), true);
    w.connect(&a);
    w.connect(&b);
    let out = w.ok(
        &b,
        C::Candidates {
            call_id: "call-0042".into(),
            candidates: vec![
                Candidate {
                    candidate: "candidate:1 1 udp 2130706431 192.0.2.10 5000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                },
                Candidate {
                    candidate: "candidate:3 1 udp 16777215 198.51.100.1 7000 typ relay raddr 0.0.0.0 rport 0".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                },
            ],
            end_of_candidates: false,
        },
    );
    assert!(
        matches!(&sends(&out)[..], [(to, S::Candidates { candidates, .. })] if *to == a && candidates.len() == 1 && candidates[0].candidate.contains("typ relay")),
        "{out:?}"
    );
}

#[test]
fn a_connected_calls_parties_report_their_path_for_the_history_and_nobody_else_may() {
    use dyad_proto::{CandidateKind as K, PathProtocol};
    let (mut w, a, b1, b2) = alice_and_bob();
    let path = |local, remote, protocol| C::Path {
        call_id: "call-0009".into(),
        local,
        remote,
        protocol,
    };
    w.ok(&a, invite("call-0009", "bob"));
    w.ok(
        &b1,
        C::Answer {
            call_id: "call-0009".into(),
            sdp: SDP.into(),
        },
    );
    // Not connected yet: nothing to report.
    assert_eq!(
        w.send(&a, path(K::Host, K::Host, PathProtocol::Udp)),
        Err(ErrorCode::InvalidState)
    );
    w.ok(
        &a,
        C::SelectAnswer {
            call_id: "call-0009".into(),
            device: "desk".into(),
        },
    );
    // The device that did not answer, and someone outside the call, have no say.
    assert_eq!(
        w.send(&b2, path(K::Relay, K::Relay, PathProtocol::Tls)),
        Err(ErrorCode::UnknownCall)
    );
    let mallory = p("mallory", "x");
    w.connect(&mallory);
    assert_eq!(
        w.send(&mallory, path(K::Relay, K::Relay, PathProtocol::Tls)),
        Err(ErrorCode::UnknownCall)
    );
    // Each party's report goes to the history only, marked with its side.
    let out = w.ok(&a, path(K::Relay, K::Srflx, PathProtocol::Tcp));
    assert!(sends(&out).is_empty(), "a path is not relayed: {out:?}");
    assert_eq!(
        history(&out),
        vec![HistoryEvent::Path {
            call_id: "call-0009".into(),
            caller: "alice".into(),
            by_caller: true,
            path: "relay/srflx tcp".into(),
            at_ms: w.now,
        }]
    );
    let out = w.ok(&b1, path(K::Prflx, K::Relay, PathProtocol::Udp));
    assert!(matches!(
        &history(&out)[..],
        [HistoryEvent::Path { by_caller: false, path, .. }] if path == "prflx/relay udp"
    ));
}
