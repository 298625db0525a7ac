//! RTP and RTCP as the call session sees them: plain data, no I/O, no webrtc-rs types.
//!
//! [`crate::session::CallSession`] takes [`RtpIn`] and [`Feedback`] in and puts [`RtpOut`] and
//! [`RtcpOut`] out; [`crate::rtc`] turns them into packets on the wire through webrtc-rs (and
//! back), and [`crate::sim`] carries them between two sessions over a simulated network.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bwe::PacketResult;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// One RTP packet received.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Audio or video.
    pub kind: Kind,
    /// The stream's SSRC.
    pub ssrc: u32,
    /// RTP payload type (the session decodes only the ones negotiated for its codec).
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// The transport-wide sequence number from its header extension, if it carried one.
    pub transport_seq: Option<u16>,
    /// When it reached us.
    pub arrival: Instant,
}

/// One RTP packet to send (payload type and SSRC come from the negotiated track).
#[derive(Debug, Clone, PartialEq)]
pub struct RtpOut {
    /// Audio or video.
    pub kind: Kind,
    /// Sequence number (per stream).
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Last packet of a frame.
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// Transport-wide sequence number (shared by audio and video; retransmissions get a new one).
    pub transport_seq: u16,
}

/// RTP header (12) + the transport-cc extension (8): what a packet adds to its payload on the
/// wire before SRTP.
pub const RTP_OVERHEAD: usize = 20;

/// One RFC 3550 report block: what we received of one remote stream, or what the remote
/// received of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The stream reported on.
    pub ssrc: u32,
    /// Loss since the previous report, Q8.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits on the wire).
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last sender report from that stream (0: none).
    pub last_sender_report: u32,
    /// Delay since that sender report, 1/65536 s.
    pub delay: u32,
}

/// The sender-info part of an RFC 3550 sender report, for one of our streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Our stream.
    pub ssrc: u32,
    /// NTP time of the report (64-bit fixed point).
    pub ntp_time: u64,
    /// The RTP timestamp that corresponds to `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// RTCP we send.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcpOut {
    /// Picture loss: ask for a keyframe of stream `media_ssrc`.
    Pli {
        /// Their video stream.
        media_ssrc: u32,
    },
    /// Generic NACK (RFC 4585): resend these packets of `media_ssrc`.
    Nack {
        /// Their video stream.
        media_ssrc: u32,
        /// Sequence numbers missing.
        seqs: Vec<u16>,
    },
    /// Transport-wide congestion control feedback: arrival times of the packets we received
    /// since the last one (µs on our clock; only differences matter).
    TransportFeedback {
        /// A stream of theirs (any: the sequence is transport-wide).
        media_ssrc: u32,
        /// (transport-wide sequence number, arrival µs), in arrival order.
        packets: Vec<(u16, i64)>,
    },
    /// Sender reports for our streams (the first carries the report blocks) or, when we send
    /// nothing, a receiver report with the blocks.
    Reports {
        /// Ours that have sent something.
        senders: Vec<SenderInfo>,
        /// About theirs.
        blocks: Vec<ReportBlock>,
        /// The SSRC a receiver report goes out under when `senders` is empty.
        reporter_ssrc: u32,
    },
}

/// RTCP we act on, decoded from the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Feedback {
    /// Picture loss: the remote wants a keyframe of our video.
    Pli,
    /// Full intra request: same as PLI for us.
    Fir,
    /// Negative acks: the remote asks for these packets of `media_ssrc` again.
    Nack {
        /// Which of our streams.
        media_ssrc: u32,
        /// The sequence numbers.
        seqs: Vec<u16>,
    },
    /// A report block about one of our streams.
    ReceiverReport(ReportBlock),
    /// A sender report from the remote about its stream.
    SenderReport {
        /// Their stream.
        ssrc: u32,
        /// NTP time of the report.
        ntp_time: u64,
        /// RTP timestamp at that time.
        rtp_time: u32,
        /// Packets they sent.
        packets: u32,
        /// Payload octets they sent.
        octets: u32,
    },
    /// Transport-wide congestion control feedback.
    Transport(Vec<PacketResult>),
    /// REMB (draft-alvestrand-rmcat-remb): the most the remote says it can receive, bit/s.
    Remb(u64),
}

/// What the other side decodes of `out` when it crosses a perfect wire: the simulated
/// network's receive path. `rtc.rs` checks that webrtc-rs's marshal and our decoding give the
/// same (TWCC arrival times come back in 250 µs steps, as the format carries them).
pub fn as_received(out: &RtcpOut) -> Vec<Feedback> {
    match out {
        RtcpOut::Pli { .. } => vec![Feedback::Pli],
        RtcpOut::Nack { media_ssrc, seqs } => vec![Feedback::Nack {
            media_ssrc: *media_ssrc,
            seqs: seqs.clone(),
        }],
        RtcpOut::TransportFeedback { packets, .. } => {
            if packets.len() < 2 {
                // webrtc-rs's recorder keeps a lone arrival for the next feedback; so do we not
                // claim it arrived: the next feedback reports from there on.
                return Vec::new();
            }
            let mut sorted: Vec<(u64, i64)> = Vec::with_capacity(packets.len());
            let mut last = None;
            for &(seq, at) in packets {
                let u = crate::bwe::unwrap_seq(last, seq);
                last = Some(last.map_or(u, |l: u64| l.max(u)));
                sorted.push((u, at));
            }
            sorted.sort_by_key(|p| p.0);
            sorted.dedup_by_key(|p| p.0);
            let (first, end) = (sorted[0].0, sorted[sorted.len() - 1].0);
            // As the format carries them: a reference time in 64 ms steps, then each packet's
            // delta from the one before in 250 µs steps (truncated one by one, so the error
            // adds up along a feedback, exactly as webrtc-rs's recorder does).
            let mut true_last = sorted[0].1 / 64_000 * 64_000;
            let mut decoded = true_last;
            let mut results = Vec::with_capacity((end - first + 1) as usize);
            let mut it = sorted.iter().peekable();
            for u in first..=end {
                let arrival_us = match it.peek() {
                    Some(&&(s, at)) if s == u => {
                        it.next();
                        decoded += (at - true_last) / 250 * 250;
                        true_last = at;
                        Some(decoded)
                    }
                    _ => None,
                };
                results.push(PacketResult {
                    seq: u as u16,
                    arrival_us,
                });
            }
            vec![Feedback::Transport(results)]
        }
        RtcpOut::Reports {
            senders, blocks, ..
        } => {
            let mut v: Vec<Feedback> = blocks
                .iter()
                .map(|b| Feedback::ReceiverReport(*b))
                .collect();
            v.extend(senders.iter().map(|s| Feedback::SenderReport {
                ssrc: s.ssrc,
                ntp_time: s.ntp_time,
                rtp_time: s.rtp_time,
                packets: s.packets,
                octets: s.octets,
            }));
            v
        }
    }
}

/// A wall-clock reading as NTP's 64-bit fixed point (RFC 3550 §4), from µs since the Unix epoch.
pub fn ntp_from_unix_us(unix_us: u64) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = (unix_us / 1_000_000).wrapping_add(NTP_UNIX_OFFSET);
    let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP time (what LSR and RTT arithmetic use).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// RTT from a report block: now − LSR − DLSR, all in 1/65536 s. `None` without a sender report
/// yet, or when the result is absurd (over 60 s: a stale report or clock trouble).
pub fn rtt_from_report(now_ntp_middle: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = now_ntp_middle.wrapping_sub(lsr).wrapping_sub(dlsr);
    if rtt > 60 * 65_536 {
        return None;
    }
    Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
}

/// A duration in 1/65536 s (DLSR), saturating.
pub fn to_q16(d: Duration) -> u32 {
    (d.as_micros() * 65_536 / 1_000_000).min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_times_and_round_trips() {
        // 1 s and a half after the Unix epoch.
        let ntp = ntp_from_unix_us(1_500_000);
        assert_eq!(ntp >> 32, 2_208_988_801);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        let sent = ntp_middle(ntp_from_unix_us(10_000_000));
        let now = ntp_middle(ntp_from_unix_us(10_250_000));
        // 250 ms later, of which the far side held the report 200 ms: RTT 50 ms.
        let rtt = rtt_from_report(now, sent, to_q16(Duration::from_millis(200))).unwrap();
        assert!((rtt.as_secs_f64() - 0.050).abs() < 0.001, "{rtt:?}");
        assert_eq!(rtt_from_report(now, 0, 0), None, "no sender report yet");
        assert_eq!(
            rtt_from_report(now, now.wrapping_add(65_536), 0),
            None,
            "a report from the future is not a 18-hour RTT"
        );
    }
}
