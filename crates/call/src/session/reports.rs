//! The RTCP the session produces on a schedule: transport-wide congestion control feedback
//! (every 100 ms while packets arrive) and RFC 3550 sender/receiver reports (every second), with
//! what they need: packet and octet counts of our streams, the time of the last sender report
//! of theirs (LSR/DLSR, so the other side can measure the round trip). The intervals are the ones
//! webrtc-rs's interceptors used before the session took this over.

use std::time::{Duration, Instant};

use crate::rtp::{ntp_from_unix_us, ntp_middle, to_q16, Kind, ReportBlock, RtcpOut, SenderInfo};
use crate::stats::{JitterMeter, LossMeter};

/// TWCC feedback interval.
pub const TWCC_INTERVAL: Duration = Duration::from_millis(100);
/// Sender / receiver report interval.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Arrivals kept for one feedback at most (a flood is cut, not buffered).
const MAX_TWCC_PACKETS: usize = 4096;

#[derive(Debug, Default, Clone, Copy)]
struct SendStream {
    packets: u32,
    octets: u32,
    /// RTP timestamp of the last packet and when what it carries was captured (Unix µs).
    last: Option<(u32, u64)>,
}

impl SendStream {
    /// The RTP time at `now_us`, extrapolated from the last packet's capture time at the
    /// stream's clock `rate`: the report ties RTP time to the capture clock, so that the far
    /// side can line our audio and video up (lip sync), whatever each waited in its encoder.
    fn rtp_time(&self, now_us: u64, rate: u64) -> Option<u32> {
        let (ts, captured_us) = self.last?;
        let ticks = i128::from(now_us) - i128::from(captured_us);
        Some(ts.wrapping_add((ticks * i128::from(rate) / 1_000_000) as i64 as u32))
    }
}

#[derive(Debug)]
pub(super) struct Reports {
    epoch: Instant,
    twcc: Vec<(u16, i64)>,
    next_twcc: Option<Instant>,
    video: SendStream,
    audio: SendStream,
    /// (their SSRC, LSR, when it arrived), one per remote stream.
    last_sr: Vec<(u32, u32, Instant)>,
    next_report: Instant,
}

impl Reports {
    pub(super) fn new(now: Instant) -> Self {
        Reports {
            epoch: now,
            twcc: Vec::new(),
            next_twcc: None,
            video: SendStream::default(),
            audio: SendStream::default(),
            last_sr: Vec::new(),
            next_report: now + REPORT_INTERVAL,
        }
    }

    /// The zero of the arrival times in TWCC feedback.
    pub(super) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// When something is due (reports only once media runs).
    pub(super) fn next_due(&self, connected: bool) -> Option<Instant> {
        let report = connected.then_some(self.next_report);
        match (self.next_twcc, report) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A packet of `kind` left; what it carries was captured at `capture_us` (Unix µs).
    pub(super) fn on_sent(&mut self, kind: Kind, rtp_ts: u32, capture_us: u64, payload: usize) {
        let s = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(payload as u32);
        s.last = Some((rtp_ts, capture_us));
    }

    pub(super) fn on_transport_arrival(&mut self, seq: u16, arrival_us: i64, now: Instant) {
        if self.twcc.len() < MAX_TWCC_PACKETS {
            self.twcc.push((seq, arrival_us));
        }
        self.next_twcc.get_or_insert(now + TWCC_INTERVAL);
    }

    pub(super) fn on_sender_report(&mut self, ssrc: u32, ntp_time: u64, now: Instant) {
        let lsr = ntp_middle(ntp_time);
        match self.last_sr.iter_mut().find(|(s, _, _)| *s == ssrc) {
            Some(e) => *e = (ssrc, lsr, now),
            // Two remote streams; a third SSRC replaces the oldest entry (a restarted sender).
            None => {
                if self.last_sr.len() >= 2 {
                    self.last_sr.remove(0);
                }
                self.last_sr.push((ssrc, lsr, now));
            }
        }
    }

    pub(super) fn poll_twcc(
        &mut self,
        now: Instant,
        remote: (Option<u32>, Option<u32>),
    ) -> Option<RtcpOut> {
        if self.next_twcc.is_none_or(|t| now < t) {
            return None;
        }
        if self.twcc.len() < 2 {
            // A feedback needs two arrivals to say anything (webrtc-rs would hold a lone one
            // back too): wait for the next.
            self.next_twcc = self.twcc.first().map(|_| now + TWCC_INTERVAL);
            return None;
        }
        self.next_twcc = None;
        let packets = std::mem::take(&mut self.twcc);
        Some(RtcpOut::TransportFeedback {
            media_ssrc: remote.0.or(remote.1).unwrap_or(0),
            packets,
        })
    }

    /// The second's sender and receiver reports, when due.
    pub(super) fn poll_reports(
        &mut self,
        now: Instant,
        now_us: u64,
        local: (u32, u32),
        remote: (Option<u32>, Option<u32>),
        loss: (&mut LossMeter, &mut LossMeter),
        jitter: (&JitterMeter, &JitterMeter),
    ) -> Option<RtcpOut> {
        if now < self.next_report {
            return None;
        }
        self.next_report = now + REPORT_INTERVAL;
        let mut senders = Vec::new();
        for (ssrc, s, rate) in [
            (local.0, &self.video, 90_000),
            (local.1, &self.audio, 48_000),
        ] {
            if ssrc == 0 || s.packets == 0 {
                continue;
            }
            if let Some(rtp_time) = s.rtp_time(now_us, rate) {
                senders.push(SenderInfo {
                    ssrc,
                    ntp_time: ntp_from_unix_us(now_us),
                    rtp_time,
                    packets: s.packets,
                    octets: s.octets,
                });
            }
        }
        let mut blocks = Vec::new();
        for (ssrc, loss, jitter, rate) in [
            (remote.0, loss.0, jitter.0, 90_000.0),
            (remote.1, loss.1, jitter.1, 48_000.0),
        ] {
            let (Some(ssrc), Some((fraction_lost, total_lost, highest_seq))) =
                (ssrc, loss.report())
            else {
                continue;
            };
            let (lsr, delay) = self
                .last_sr
                .iter()
                .find(|(s, _, _)| *s == ssrc)
                .map_or((0, 0), |&(_, lsr, at)| {
                    (lsr, to_q16(now.saturating_duration_since(at)))
                });
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost,
                total_lost,
                highest_seq,
                jitter: (jitter.jitter() * rate).min(f64::from(u32::MAX)) as u32,
                last_sender_report: lsr,
                delay,
            });
        }
        if senders.is_empty() && blocks.is_empty() {
            return None;
        }
        Some(RtcpOut::Reports {
            senders,
            blocks,
            reporter_ssrc: if local.0 != 0 { local.0 } else { local.1 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twcc_feedback_goes_out_100_ms_after_the_first_arrival_and_empties() {
        let t = Instant::now();
        let mut r = Reports::new(t);
        assert_eq!(r.next_due(false), None, "nothing to say yet");
        r.on_transport_arrival(1, 10, t);
        r.on_transport_arrival(2, 20, t + Duration::from_millis(5));
        assert_eq!(r.next_due(false), Some(t + TWCC_INTERVAL));
        assert!(r
            .poll_twcc(t + Duration::from_millis(99), (Some(7), None))
            .is_none());
        let fb = r.poll_twcc(t + TWCC_INTERVAL, (Some(7), None));
        assert_eq!(
            fb,
            Some(RtcpOut::TransportFeedback {
                media_ssrc: 7,
                packets: vec![(1, 10), (2, 20)]
            })
        );
        assert!(r
            .poll_twcc(t + 2 * TWCC_INTERVAL, (Some(7), None))
            .is_none());
        assert_eq!(r.next_due(false), None);
    }

    #[test]
    fn receiver_reports_carry_loss_and_the_delay_since_their_sender_report() {
        let t = Instant::now();
        let mut r = Reports::new(t);
        let mut vl = LossMeter::default();
        let mut al = LossMeter::default();
        for s in [10u16, 11, 13, 14] {
            vl.on_packet(s); // 12 lost: 1 of 5
        }
        let vj = JitterMeter::default();
        let aj = JitterMeter::default();
        let sr_ntp = crate::rtp::ntp_from_unix_us(5_000_000);
        r.on_sender_report(0xabc, sr_ntp, t + Duration::from_millis(500));
        // Captured at 7.000 s (Unix), sent later; the report at 7.150 s.
        r.on_sent(Kind::Video, 1000, 7_000_000, 1100);
        let at = t + REPORT_INTERVAL;
        let now_us = 7_150_000;
        let out = r
            .poll_reports(
                at,
                now_us,
                (1, 2),
                (Some(0xabc), None),
                (&mut vl, &mut al),
                (&vj, &aj),
            )
            .expect("due");
        let RtcpOut::Reports {
            senders,
            blocks,
            reporter_ssrc,
        } = out
        else {
            panic!("reports")
        };
        assert_eq!(reporter_ssrc, 1);
        assert_eq!(senders.len(), 1, "only video has sent");
        // The report's RTP time is the capture clock's at its NTP time: 150 ms after the last
        // packet's capture, at 90 kHz, however long that packet waited to be sent.
        assert_eq!(senders[0].ntp_time, crate::rtp::ntp_from_unix_us(now_us));
        assert_eq!(senders[0].rtp_time, 1000 + 13_500);
        assert_eq!((senders[0].packets, senders[0].octets), (1, 1100));
        assert_eq!(blocks.len(), 1);
        let b = blocks[0];
        assert_eq!((b.ssrc, b.fraction_lost, b.total_lost), (0xabc, 51, 1));
        assert_eq!(b.highest_seq, 14);
        assert_eq!(b.last_sender_report, ntp_middle(sr_ntp));
        assert_eq!(b.delay, to_q16(Duration::from_millis(500)));
        // Not due again for a second.
        assert!(r
            .poll_reports(
                at,
                now_us,
                (1, 2),
                (Some(0xabc), None),
                (&mut vl, &mut al),
                (&vj, &aj)
            )
            .is_none());
    }
}
