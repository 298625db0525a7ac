//! Call statistics: counters the call task bumps, turned once a second into a
//! [`StatsSnapshot`] whose field names follow W3C webrtc-stats (`inbound-rtp`, `outbound-rtp`,
//! `remote-inbound-rtp`, `candidate-pair`), plus what only we know (capture fps, target vs
//! actual bitrate, the estimator's state, glass-to-glass latency from the test pattern).
//! Sans-IO: time comes in.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::rtc::{PathInfo, TransportInfo};

/// Snapshots kept per call (4 h at 1 Hz); older ones are dropped first.
pub const MAX_HISTORY: usize = 4 * 3600;

/// `outbound-rtp` for one kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct OutboundRtp {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// Our SSRC.
    pub ssrc: u32,
    /// MIME type.
    pub codec: &'static str,
    /// Packets sent (retransmissions excluded).
    pub packets_sent: u64,
    /// Packets sent again because the other side asked (NACK).
    pub retransmitted_packets_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Actual send bitrate over the last second, bit/s.
    pub bitrate: f64,
    /// What the controller asked of the encoder, bit/s.
    pub target_bitrate: f64,
    /// Frames captured per second (ours).
    pub capture_frames_per_second: f64,
    /// Frames encoded per second.
    pub frames_per_second: f64,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Keyframes encoded.
    pub key_frames_encoded: u64,
    /// Frames the encoder's rate control skipped.
    pub frames_dropped_by_encoder: u64,
    /// Current encoded size.
    pub frame_width: u32,
    /// Current encoded size.
    pub frame_height: u32,
    /// Seconds spent encoding.
    pub total_encode_time: f64,
    /// Mean encode time per frame over the last second, ms.
    pub encode_time_per_frame_ms: f64,
    /// NACKed packets received.
    pub nack_count: u64,
    /// PLIs received.
    pub pli_count: u64,
    /// FIRs received.
    pub fir_count: u64,
    /// `bandwidth`, `cpu` or `none`.
    pub quality_limitation_reason: &'static str,
    /// Level of what we send, dBFS (audio).
    pub audio_level_dbfs: f64,
}

/// `inbound-rtp` for one kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct InboundRtp {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// MIME type.
    pub codec: &'static str,
    /// Packets received.
    pub packets_received: u64,
    /// Packets whose payload type is not the one negotiated for this kind's codec (never
    /// decoded; a call that gets only these ends `media_failed`).
    pub packets_unknown_payload_type: u64,
    /// Packets lost (expected − received, never negative).
    pub packets_lost: u64,
    /// Loss over the last second, %.
    pub loss_percent: f64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Receive bitrate over the last second, bit/s.
    pub bitrate: f64,
    /// Interarrival jitter (RFC 3550), seconds.
    pub jitter: f64,
    /// Frames assembled.
    pub frames_received: u64,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames dropped (lost packets, undecodable, waiting for a keyframe).
    pub frames_dropped: u64,
    /// Decoded per second.
    pub frames_per_second: f64,
    /// Decoded size.
    pub frame_width: u32,
    /// Decoded size.
    pub frame_height: u32,
    /// Seconds spent decoding.
    pub total_decode_time: f64,
    /// Mean decode time per frame over the last second, ms.
    pub decode_time_per_frame_ms: f64,
    /// Sum of (emitted − first packet arrival) over frames, seconds.
    pub jitter_buffer_delay: f64,
    /// Frames counted in `jitter_buffer_delay`.
    pub jitter_buffer_emitted_count: u64,
    /// Freezes (W3C definition: a gap > max(3 × mean frame interval, mean + 150 ms)).
    pub freeze_count: u64,
    /// Seconds frozen.
    pub total_freezes_duration: f64,
    /// Packets we asked for again (NACK).
    pub nack_count: u64,
    /// PLIs we sent.
    pub pli_count: u64,
    /// Audio: frames concealed + recovered by FEC.
    pub concealed_frames: u64,
    /// Audio: frames recovered by FEC.
    pub fec_recovered_frames: u64,
    /// Audio: the jitter buffer's target delay now, seconds (W3C `jitterBufferTargetDelay`,
    /// here the current value rather than a sum).
    pub jitter_buffer_target_delay: f64,
    /// Audio: samples played out (decoded, rebuilt or concealed; W3C `totalSamplesReceived`).
    pub total_samples_received: u64,
    /// Audio: samples concealed (lost or late packets, underruns, decelerations).
    pub concealed_samples: u64,
    /// Audio: concealments that started after a decoded frame.
    pub concealment_events: u64,
    /// Audio: samples played to let the jitter buffer grow.
    pub inserted_samples_for_deceleration: u64,
    /// Audio: samples dropped to let the jitter buffer shrink.
    pub removed_samples_for_acceleration: u64,
    /// Audio level, dBFS.
    pub audio_level_dbfs: f64,
    /// Test-pattern frame number of the last decoded frame.
    pub last_marker_frame: Option<u32>,
    /// Capture → decoded, median over the last second, ms (test pattern only; one clock).
    pub glass_to_glass_ms: Option<f64>,
}

/// `remote-inbound-rtp`: what the other side reports about our stream.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RemoteInboundRtp {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// Round-trip time from the last report (LSR/DLSR), seconds.
    pub round_trip_time: Option<f64>,
    /// Loss fraction from the last report, 0..1.
    pub fraction_lost: f64,
    /// Cumulative lost, as reported.
    pub packets_lost: u64,
    /// Jitter they see, seconds.
    pub jitter: f64,
}

/// The bandwidth estimator's view.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EstimateStats {
    /// Target, bit/s (W3C `availableOutgoingBitrate`).
    pub available_outgoing_bitrate: f64,
    /// Delay-based bound.
    pub delay_based: f64,
    /// Loss-based bound.
    pub loss_based: f64,
    /// What the far side acknowledged receiving.
    pub acknowledged: Option<f64>,
    /// `normal`, `overusing` or `underusing`.
    pub usage: &'static str,
}

/// Lip sync of the other side's audio and video ([`crate::sync`]).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AvSyncStats {
    /// Video delay − audio delay over the last second, ms: positive, the picture comes after
    /// its sound. `None` without both streams and their sender reports.
    pub offset_ms: Option<f64>,
    /// How much longer audio is held to meet the video, ms.
    pub audio_delay_ms: f64,
    /// How much longer video is held to meet the audio, ms.
    pub video_delay_ms: f64,
}

/// One second of a call.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Wall clock, ms since the Unix epoch.
    pub timestamp: u64,
    /// Seconds since the call connected.
    pub call_seconds: f64,
    /// Outbound video.
    pub outbound_video: OutboundRtp,
    /// Outbound audio.
    pub outbound_audio: OutboundRtp,
    /// Inbound video.
    pub inbound_video: InboundRtp,
    /// Inbound audio.
    pub inbound_audio: InboundRtp,
    /// Reports about our video.
    pub remote_inbound_video: RemoteInboundRtp,
    /// Reports about our audio.
    pub remote_inbound_audio: RemoteInboundRtp,
    /// The selected candidate pair.
    pub candidate_pair: Option<PathInfo>,
    /// DTLS-SRTP state and cipher.
    pub transport: Option<TransportInfo>,
    /// The bandwidth estimate.
    pub estimate: EstimateStats,
    /// Lip sync.
    pub av_sync: AvSyncStats,
    /// Events this second (`keyframe_request`, `resolution_change`, `ice_restart`, ...).
    pub events: Vec<String>,
}

/// RFC 3550 interarrival jitter.
#[derive(Debug, Default, Clone)]
pub struct JitterMeter {
    last: Option<(Instant, u32)>,
    jitter: f64,
}

impl JitterMeter {
    /// One packet: arrival time and RTP timestamp (clock `rate` Hz).
    pub fn on_packet(&mut self, arrival: Instant, ts: u32, rate: u32) {
        if let Some((la, lts)) = self.last {
            let arrival_delta = if arrival >= la {
                arrival.saturating_duration_since(la).as_secs_f64()
            } else {
                -la.saturating_duration_since(arrival).as_secs_f64()
            };
            let ts_delta = f64::from(ts.wrapping_sub(lts) as i32) / f64::from(rate.max(1));
            let d = (arrival_delta - ts_delta).abs();
            if d < 10.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last = Some((arrival, ts));
    }

    /// Seconds.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

/// Loss from sequence numbers: expected (highest − first + 1) − received.
#[derive(Debug, Default, Clone)]
pub struct LossMeter {
    first: Option<u64>,
    highest: u64,
    received: u64,
    last_expected: u64,
    last_received: u64,
    rr_expected: u64,
    rr_received: u64,
}

impl LossMeter {
    /// One packet (duplicates and retransmissions count as received; see `packets_lost`).
    pub fn on_packet(&mut self, seq: u16) {
        let unwrapped = match self.first {
            None => {
                self.first = Some(u64::from(seq) + 65_536);
                self.highest = u64::from(seq) + 65_536;
                self.highest
            }
            Some(_) => {
                let cycle = self.highest & !0xffff;
                let candidates =
                    [cycle.wrapping_sub(65_536), cycle, cycle + 65_536].map(|c| c | u64::from(seq));
                *candidates
                    .iter()
                    .min_by_key(|c| c.abs_diff(self.highest))
                    .unwrap_or(&self.highest)
            }
        };
        self.highest = self.highest.max(unwrapped);
        self.received += 1;
    }

    fn expected(&self) -> u64 {
        self.first
            .map_or(0, |f| self.highest + 1 - f.min(self.highest + 1))
    }

    /// Cumulative lost.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The RFC 3550 §6.4.1 figures for a report block, since the previous call: (fraction lost
    /// Q8, cumulative lost clamped to 24 bits, extended highest sequence number). `None` before
    /// the first packet.
    pub fn report(&mut self) -> Option<(u8, u32, u32)> {
        let first = self.first?;
        let expected = self.expected();
        let e = expected - self.rr_expected.min(expected);
        let r = self.received - self.rr_received.min(self.received);
        self.rr_expected = expected;
        self.rr_received = self.received;
        let fraction = if e == 0 || r >= e {
            0
        } else {
            ((e - r) * 256 / e).min(255) as u8
        };
        // The first packet was stored one cycle up (so that a reordered earlier one unwraps
        // below it); the extended sequence number counts cycles from the first packet's.
        let highest = self.highest.saturating_sub(first & !0xffff) as u32;
        Some((fraction, self.lost().min(0x7f_ffff) as u32, highest))
    }

    /// Loss % since the last call.
    pub fn interval_loss_percent(&mut self) -> f64 {
        let e = self.expected() - self.last_expected.min(self.expected());
        let r = self.received - self.last_received.min(self.received);
        self.last_expected = self.expected();
        self.last_received = self.received;
        if e == 0 {
            0.0
        } else {
            100.0 * e.saturating_sub(r) as f64 / e as f64
        }
    }
}

/// Freeze detection over decoded-frame times (W3C `freezeCount`).
#[derive(Debug, Default, Clone)]
pub struct FreezeMeter {
    last: Option<Instant>,
    mean_interval: Option<f64>,
    /// Freezes.
    pub count: u64,
    /// Seconds frozen.
    pub total: f64,
}

impl FreezeMeter {
    /// A frame was rendered/decoded at `at`.
    pub fn on_frame(&mut self, at: Instant) {
        if let Some(last) = self.last {
            let d = at.saturating_duration_since(last).as_secs_f64();
            if let Some(mean) = self.mean_interval {
                if d > (3.0 * mean).max(mean + 0.150) {
                    self.count += 1;
                    self.total += d;
                }
                self.mean_interval = Some(mean + (d.min(1.0) - mean) / 30.0);
            } else {
                self.mean_interval = Some(d.min(1.0));
            }
        }
        self.last = Some(at);
    }
}

/// Counter → per-second rate across resets: a counter that went down restarts from 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rate {
    last: Option<(Instant, u64)>,
}

impl Rate {
    /// The rate per second of `value` since the previous call.
    pub fn per_second(&mut self, now: Instant, value: u64) -> f64 {
        let r = match self.last {
            Some((t, v)) => {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                let dv = if value >= v { value - v } else { value };
                if dt > 0.0 {
                    dv as f64 / dt
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, value));
        r
    }
}

/// How much a counter grew between two readings, for a counter `bits` wide (64 for our own
/// counters, 24 for RTCP's cumulative lost, 32 for its extended sequence numbers).
///
/// A reading below the previous one is a wrap when the counter is narrower than 64 bits and the
/// fall is more than half its range (it went past the top and started again); otherwise the
/// counter was reset (a new encoder, a new SSRC) and counts from zero.
pub fn counter_delta(previous: u64, current: u64, bits: u32) -> u64 {
    if current >= previous {
        return current - previous;
    }
    if bits < 64 {
        let range = 1u64 << bits;
        let top = range - 1;
        if previous <= top && previous - current > range / 2 {
            return current + range - previous;
        }
    }
    current
}

/// Per-second rate of a counter between two readings `dt_secs` apart (0 when no time passed).
pub fn counter_rate(previous: u64, current: u64, bits: u32, dt_secs: f64) -> f64 {
    if dt_secs <= 0.0 {
        return 0.0;
    }
    counter_delta(previous, current, bits) as f64 / dt_secs
}

/// Median of a small sample set, ms.
pub fn median_ms(samples: &mut [Duration]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(samples[samples.len() / 2].as_secs_f64() * 1000.0)
}

/// The whole call's snapshots.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StatsHistory {
    /// Oldest first.
    pub snapshots: std::collections::VecDeque<StatsSnapshot>,
}

impl StatsHistory {
    /// Adds one (dropping the oldest beyond [`MAX_HISTORY`]).
    pub fn push(&mut self, s: StatsSnapshot) {
        if self.snapshots.len() >= MAX_HISTORY {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back(s);
    }

    /// JSON: `{"snapshots":[...]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"snapshots\":[]}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_gaps_across_wrap_and_ignores_order() {
        let mut l = LossMeter::default();
        for s in [65_530u16, 65_531, 65_533, 65_535, 0, 1, 3] {
            l.on_packet(s);
        }
        // 65530..=3 is 10 packets, 7 received.
        assert_eq!(l.lost(), 3);
        assert!((l.interval_loss_percent() - 30.0).abs() < 1e-9);
        l.on_packet(2); // late arrival fills a gap
        assert_eq!(l.lost(), 2);
        assert_eq!(l.interval_loss_percent(), 0.0);
    }

    #[test]
    fn rate_survives_counter_resets() {
        let t = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.per_second(t, 100), 0.0);
        assert_eq!(r.per_second(t + Duration::from_secs(1), 1100), 1000.0);
        // Reset (new encoder): counts from 0.
        assert_eq!(r.per_second(t + Duration::from_secs(2), 500), 500.0);
        assert_eq!(r.per_second(t + Duration::from_secs(2), 600), 0.0, "dt 0");
    }

    #[test]
    fn counter_deltas_cross_wraps_and_resets() {
        // Growth.
        assert_eq!(counter_delta(100, 250, 64), 150);
        assert_eq!(counter_delta(7, 7, 24), 0);
        // A 24-bit RTCP counter wrapping from near the top.
        assert_eq!(counter_delta(0xff_fff0, 0x10, 24), 0x20);
        // A 32-bit counter wrapping.
        assert_eq!(counter_delta(u64::from(u32::MAX) - 4, 5, 32), 10);
        // A small fall is a reset, not a wrap: count from zero.
        assert_eq!(counter_delta(0x1000, 0x20, 24), 0x20);
        // 64-bit counters never wrap in practice: a fall is always a reset.
        assert_eq!(counter_delta(u64::MAX - 1, 3, 64), 3);
        // A previous reading wider than the counter is a reset too (garbage in, no overflow).
        assert_eq!(counter_delta(u64::MAX, 3, 24), 3);
        // Rates.
        assert_eq!(counter_rate(1000, 3000, 64, 2.0), 1000.0);
        assert_eq!(counter_rate(0xff_ffff, 99, 24, 1.0), 100.0);
        assert_eq!(counter_rate(1, 2, 64, 0.0), 0.0);
    }

    #[test]
    fn freezes_are_counted_by_the_w3c_rule() {
        let t = Instant::now();
        let mut f = FreezeMeter::default();
        for i in 0..30 {
            f.on_frame(t + Duration::from_millis(33 * i));
        }
        assert_eq!(f.count, 0);
        f.on_frame(t + Duration::from_millis(33 * 29 + 500));
        assert_eq!(f.count, 1);
        assert!((f.total - 0.5).abs() < 1e-6);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_with_noise() {
        let t = Instant::now();
        let mut j = JitterMeter::default();
        for i in 0..100u32 {
            j.on_packet(
                t + Duration::from_millis(20 * u64::from(i)),
                i * 960,
                48_000,
            );
        }
        assert!(j.jitter() < 1e-9);
        for i in 100..200u32 {
            let wobble = if i % 2 == 0 { 10 } else { 0 };
            j.on_packet(
                t + Duration::from_millis(20 * u64::from(i) + wobble),
                i * 960,
                48_000,
            );
        }
        assert!(j.jitter() > 0.005, "{}", j.jitter());
    }
}
