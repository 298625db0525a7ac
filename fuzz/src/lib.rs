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

/// Whether rtp 0.17.2's `Header::unmarshal` panics on `raw` (upstream bug, not fixed in this
/// project: the fix is a patched webrtc-rs crate, see docs/security.md): a header-extension
/// element longer than the extension block. The RTP target skips such inputs so that fuzzing goes
/// on past them into our own code.
pub fn upstream_rtp_panics(raw: &[u8]) -> bool {
    // rtp 0.17.2 does not check the version: neither does this.
    if raw.len() < 12 || raw[0] & 0x10 == 0 {
        return false;
    }
    let start = 12 + 4 * usize::from(raw[0] & 0x0f);
    let Some(head) = raw.get(start..start + 4) else {
        return false;
    };
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let block = 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
    let Some(ext) = raw.get(start + 4..start + 4 + block) else {
        return false;
    };
    let mut i = 0;
    if profile == 0xBEDE {
        while i < ext.len() {
            // As rtp reads it: only a zero byte is padding (id 0 with a length is an element).
            if ext[i] == 0 {
                i += 1;
                continue;
            }
            let (id, len) = (ext[i] >> 4, usize::from(ext[i] & 0x0f) + 1);
            if id == 15 {
                break;
            }
            if i + 1 + len > ext.len() {
                return true;
            }
            i += 1 + len;
        }
    } else if profile == 0x1000 {
        while i < ext.len() {
            if ext[i] == 0 {
                i += 1;
                continue;
            }
            let Some(&len) = ext.get(i + 1) else {
                return true;
            };
            if i + 2 + usize::from(len) > ext.len() {
                return true;
            }
            i += 2 + usize::from(len);
        }
    }
    false
}

/// Whether rtcp 0.17.2's `unmarshal` panics on one of the packets in compound `raw` (upstream
/// bugs, see [`upstream_rtp_panics`]): a REMB counting more SSRCs than it holds, a transport-
/// layer NACK, FIR or SLI too short for its two SSRCs, or a FIR with a cut-short last entry.
pub fn upstream_rtcp_panics(raw: &[u8]) -> bool {
    let mut rest = raw;
    while rest.len() >= 4 {
        let (fmt, pt) = (rest[0] & 0x1f, rest[1]);
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let Some(p) = rest.get(..len) else {
            return false;
        };
        let feedback = (pt == 205 && fmt == 1) || (pt == 206 && matches!(fmt, 2 | 4));
        if feedback && p.len() < 12 {
            return true;
        }
        if pt == 206 && fmt == 4 && (p.len() - 12) % 8 != 0 {
            return true;
        }
        if pt == 206 && fmt == 15 && p.len() >= 20 && &p[12..16] == b"REMB" {
            let count = usize::from(p[16]);
            if 20 + 4 * count > p.len() {
                return true;
            }
        }
        rest = &rest[len..];
    }
    false
}
