//! What the fuzz targets share: splitting one input into a sequence of packets, and a call
//! session set up as a connected call has it.

use std::time::{Duration, Instant};

use dyad_call::rtp::Kind;
use dyad_call::session::{CallSession, ClockAnchor, Input, Output, SessionConfig};

/// Splits an input into packets: each is a big-endian `u16` length and that many bytes; the
/// last one takes what is left when the input ends early.
#[derive(Debug)]
pub struct Packets<'a>(pub &'a [u8]);

impl<'a> Iterator for Packets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self.0 {
            [] => None,
            [_] => {
                let rest = self.0;
                self.0 = &[];
                Some(rest)
            }
            [hi, lo, rest @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
                let (packet, tail) = rest.split_at(n);
                self.0 = tail;
                Some(packet)
            }
        }
    }
}

/// A session whose streams are negotiated (ours 1 / 2, theirs 11 / 12, VP8 as 96 and Opus as
/// 111) and that has connected at `t0`.
pub fn connected_session(t0: Instant) -> CallSession {
    let mut s = CallSession::new(
        SessionConfig {
            start_bps: 300_000,
            format: dyad_media::VideoFormat {
                width: 640,
                height: 480,
                fps: 30,
            },
            corrupt_every: None,
            clock: ClockAnchor {
                at: t0,
                unix_us: 1_700_000_000_000_000,
            },
        },
        t0,
    );
    s.handle_input(t0, Input::LocalSsrcs { video: 1, audio: 2 });
    for (kind, ssrc, pt) in [(Kind::Video, 11, 96), (Kind::Audio, 12, 111)] {
        s.handle_input(
            t0,
            Input::RemoteTrack {
                kind,
                ssrc,
                payload_types: vec![pt],
            },
        );
    }
    s.handle_input(t0, Input::Answered);
    s.handle_input(t0, Input::Connected);
    drain(&mut s, t0);
    s
}

/// Takes everything the session wants done until nothing is due at `now`, feeding it the
/// timeouts that fall due on the way. Panics when it never settles (a loop on hostile input).
pub fn drain(s: &mut CallSession, now: Instant) {
    for _ in 0..100_000 {
        match s.poll_output() {
            Output::Timeout(at) if at <= now => s.handle_input(now, Input::Timeout),
            Output::Timeout(_) => return,
            _ => {}
        }
    }
    panic!("the session still has output after 100 000 polls");
}

/// Moves time on by `ms` milliseconds and drains.
pub fn advance(s: &mut CallSession, now: &mut Instant, ms: u64) {
    *now += Duration::from_millis(ms);
    s.handle_input(*now, Input::Timeout);
    drain(s, *now);
}
