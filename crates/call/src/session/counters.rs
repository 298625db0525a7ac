//! The session's statistics: named counters the session bumps as things happen, turned once a
//! second into a [`StatsSnapshot`] and scored into a [`StatsPoint`]. Sans-IO: `now` comes in.

use std::time::{Duration, Instant};

use crate::bwe::{BandwidthEstimator, BandwidthUsage};
use crate::media::OPUS_BPS;
use crate::quality::{Context, Nominal, QualityTracker, Rates, StatsPoint};
use crate::rtc::{PathInfo, TransportInfo};
use crate::rtp::Kind;
use crate::stats::{
    median_ms, EstimateStats, FreezeMeter, InboundRtp, JitterMeter, LossMeter, OutboundRtp, Rate,
    RemoteInboundRtp, StatsSnapshot,
};

/// Capture → decoded samples kept per second (the median is reported).
const MAX_LATENCY_SAMPLES: usize = 1000;

/// One per-second rate for each figure the snapshot reports as "per second".
#[derive(Debug, Default)]
struct Rates1s {
    video_bytes_sent: Rate,
    video_frames_encoded: Rate,
    video_frames_captured: Rate,
    audio_bytes_sent: Rate,
    video_bytes_received: Rate,
    video_frames_decoded: Rate,
    audio_bytes_received: Rate,
    audio_frames_decoded: Rate,
}

impl Rates1s {
    fn start(&mut self, now: Instant) {
        *self = Rates1s::default();
        for r in [
            &mut self.video_bytes_sent,
            &mut self.video_frames_encoded,
            &mut self.video_frames_captured,
            &mut self.audio_bytes_sent,
            &mut self.video_bytes_received,
            &mut self.video_frames_decoded,
            &mut self.audio_bytes_received,
            &mut self.audio_frames_decoded,
        ] {
            r.per_second(now, 0);
        }
    }
}

/// What the audio decode thread has done so far (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AudioDecodeCounts {
    /// Frames decoded from packets.
    pub decoded: u64,
    /// Frames rebuilt from FEC.
    pub recovered: u64,
    /// Frames concealed (PLC).
    pub concealed: u64,
    /// Packets that failed to decode.
    pub undecodable: u64,
    /// Level of the last decoded frame, dBFS.
    pub level_dbfs: f64,
}

/// Everything the session counts for its statistics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Outbound video (counters only; rates are filled in at snapshot time).
    pub video_out: OutboundRtp,
    /// Outbound audio.
    pub audio_out: OutboundRtp,
    /// Inbound video.
    pub video_in: InboundRtp,
    /// Inbound audio.
    pub audio_in: InboundRtp,
    /// What the remote reports about our video.
    pub remote_video: RemoteInboundRtp,
    /// What the remote reports about our audio.
    pub remote_audio: RemoteInboundRtp,
    /// Frames the camera (or source) delivered.
    pub frames_captured: u64,
    /// Seconds spent encoding video.
    pub encode_seconds: f64,
    /// Seconds spent decoding video.
    pub decode_seconds: f64,
    /// Loss of the remote's video, from sequence numbers.
    pub video_loss: LossMeter,
    /// Loss of the remote's audio.
    pub audio_loss: LossMeter,
    /// RFC 3550 jitter of the remote's video.
    pub video_jitter: JitterMeter,
    /// RFC 3550 jitter of the remote's audio.
    pub audio_jitter: JitterMeter,
    /// Freezes of the decoded video.
    pub freezes: FreezeMeter,
    /// The audio decode thread's counts.
    pub audio_decode: AudioDecodeCounts,
    /// The audio jitter buffer's counters.
    pub playout: crate::playout::PlayoutStats,
    /// Lip sync.
    pub av_sync: crate::stats::AvSyncStats,
    /// Capture → decoded samples this second.
    latencies: Vec<Duration>,
    /// Events this second (`keyframe_request_sent`, `resolution_change 640x480`, ...).
    events: Vec<String>,
    /// Size of the last encoded frame (a change is an event).
    last_encoded_size: (u32, u32),
    /// (frames, seconds) at the previous snapshot, for per-frame times.
    encode_at_last: (u64, f64),
    decode_at_last: (u64, f64),
    rates: Rates1s,
}

impl Counters {
    /// Starts the per-second rates at `now` (the call connected).
    pub fn start(&mut self, now: Instant) {
        self.rates.start(now);
    }

    /// Something happened this second that the statistics screen marks.
    pub fn event(&mut self, e: impl Into<String>) {
        // Bounded: a second with thousands of events is garbage in, not history.
        if self.events.len() < 64 {
            self.events.push(e.into());
        }
    }

    /// A video frame of this size was encoded.
    pub fn encoded(&mut self, keyframe: bool, encode_time: Duration, size: (u32, u32)) {
        let o = &mut self.video_out;
        o.frames_encoded += 1;
        o.key_frames_encoded += u64::from(keyframe);
        o.frame_width = size.0;
        o.frame_height = size.1;
        self.encode_seconds += encode_time.as_secs_f64();
        if size != self.last_encoded_size {
            if self.last_encoded_size != (0, 0) {
                self.event(format!("resolution_change {}x{}", size.0, size.1));
            }
            self.last_encoded_size = size;
        }
    }

    /// An RTP packet of `kind` arrived (loss from its sequence number, RFC 3550 jitter from its
    /// timestamp and arrival).
    pub fn received(&mut self, kind: Kind, seq: u16, ts: u32, arrival: Instant, payload: usize) {
        let (stats, loss, jitter, rate) = match kind {
            Kind::Video => (
                &mut self.video_in,
                &mut self.video_loss,
                &mut self.video_jitter,
                90_000,
            ),
            Kind::Audio => (
                &mut self.audio_in,
                &mut self.audio_loss,
                &mut self.audio_jitter,
                48_000,
            ),
        };
        stats.packets_received += 1;
        stats.bytes_received += payload as u64;
        loss.on_packet(seq);
        jitter.on_packet(arrival, ts, rate);
    }

    /// A video frame decoded at `now`.
    pub fn decoded(&mut self, now: Instant, d: &super::VideoDecoded) {
        let i = &mut self.video_in;
        i.frames_decoded += 1;
        i.frame_width = d.width;
        i.frame_height = d.height;
        i.last_marker_frame = d.marker_frame.or(i.last_marker_frame);
        self.decode_seconds += d.decode_time.as_secs_f64();
        self.freezes.on_frame(now);
        if let Some(l) = d.latency {
            if self.latencies.len() < MAX_LATENCY_SAMPLES {
                self.latencies.push(l);
            }
        }
    }

    /// This second's snapshot. `call_seconds` since connected; `unix_ms` for its timestamp.
    #[allow(clippy::too_many_arguments)]
    pub fn snapshot(
        &mut self,
        now: Instant,
        call_seconds: f64,
        unix_ms: u64,
        nominal: Nominal,
        ssrcs: (u32, u32),
        bwe: &BandwidthEstimator,
        path: Option<PathInfo>,
        transport: Option<TransportInfo>,
    ) -> StatsSnapshot {
        let video_target = bwe.target_bps().saturating_sub(u64::from(OPUS_BPS));
        let r = &mut self.rates;

        let mut vo = self.video_out.clone();
        vo.kind = "video";
        vo.codec = "video/VP8";
        vo.ssrc = ssrcs.0;
        vo.bitrate = r.video_bytes_sent.per_second(now, vo.bytes_sent) * 8.0;
        vo.frames_per_second = r.video_frames_encoded.per_second(now, vo.frames_encoded);
        vo.capture_frames_per_second = r
            .video_frames_captured
            .per_second(now, self.frames_captured);
        vo.target_bitrate = video_target as f64;
        vo.total_encode_time = self.encode_seconds;
        vo.encode_time_per_frame_ms = per_frame_ms(
            &mut self.encode_at_last,
            vo.frames_encoded,
            self.encode_seconds,
        );
        vo.quality_limitation_reason = limitation(&vo, nominal);

        let mut ao = self.audio_out.clone();
        ao.kind = "audio";
        ao.codec = "audio/opus";
        ao.ssrc = ssrcs.1;
        ao.bitrate = r.audio_bytes_sent.per_second(now, ao.bytes_sent) * 8.0;
        ao.target_bitrate = f64::from(OPUS_BPS);
        ao.quality_limitation_reason = "none";

        let mut vi = self.video_in.clone();
        vi.kind = "video";
        vi.codec = "video/VP8";
        vi.bitrate = r.video_bytes_received.per_second(now, vi.bytes_received) * 8.0;
        vi.frames_per_second = r.video_frames_decoded.per_second(now, vi.frames_decoded);
        vi.packets_lost = self.video_loss.lost();
        vi.loss_percent = self.video_loss.interval_loss_percent();
        vi.jitter = self.video_jitter.jitter();
        vi.total_decode_time = self.decode_seconds;
        vi.decode_time_per_frame_ms = per_frame_ms(
            &mut self.decode_at_last,
            vi.frames_decoded,
            self.decode_seconds,
        );
        vi.freeze_count = self.freezes.count;
        vi.total_freezes_duration = self.freezes.total;
        vi.glass_to_glass_ms = median_ms(&mut self.latencies);
        self.latencies.clear();

        let mut ai = self.audio_in.clone();
        ai.kind = "audio";
        ai.codec = "audio/opus";
        ai.bitrate = r.audio_bytes_received.per_second(now, ai.bytes_received) * 8.0;
        ai.packets_lost = self.audio_loss.lost();
        ai.loss_percent = self.audio_loss.interval_loss_percent();
        ai.jitter = self.audio_jitter.jitter();
        let a = self.audio_decode;
        ai.frames_decoded = a.decoded;
        ai.frames_per_second = r.audio_frames_decoded.per_second(now, a.decoded);
        let j = self.playout;
        ai.concealed_frames = (j.concealed_samples + j.fec_samples) / crate::playout::FRAME_SAMPLES;
        ai.fec_recovered_frames = j.fec_samples / crate::playout::FRAME_SAMPLES;
        ai.audio_level_dbfs = a.level_dbfs;
        ai.jitter_buffer_delay = j.jitter_buffer_delay;
        ai.jitter_buffer_emitted_count = j.jitter_buffer_emitted_count;
        ai.jitter_buffer_target_delay = j.jitter_buffer_target_delay;
        ai.concealed_samples = j.concealed_samples;
        ai.concealment_events = j.concealment_events;
        ai.inserted_samples_for_deceleration = j.inserted_samples_for_deceleration;
        ai.removed_samples_for_acceleration = j.removed_samples_for_acceleration;
        ai.total_samples_received = j.pulls * crate::playout::FRAME_SAMPLES;

        let mut rv = self.remote_video.clone();
        rv.kind = "video";
        let mut ra = self.remote_audio.clone();
        ra.kind = "audio";
        StatsSnapshot {
            timestamp: unix_ms,
            call_seconds,
            outbound_video: vo,
            outbound_audio: ao,
            inbound_video: vi,
            inbound_audio: ai,
            remote_inbound_video: rv,
            remote_inbound_audio: ra,
            candidate_pair: path,
            transport,
            estimate: EstimateStats {
                available_outgoing_bitrate: bwe.target_bps() as f64,
                delay_based: bwe.delay_based_bps() as f64,
                loss_based: bwe.loss_based_bps() as f64,
                acknowledged: bwe.acknowledged_bps().map(|b| b as f64),
                usage: match bwe.usage() {
                    BandwidthUsage::Normal => "normal",
                    BandwidthUsage::Overusing => "overusing",
                    BandwidthUsage::Underusing => "underusing",
                },
            },
            av_sync: self.av_sync,
            events: std::mem::take(&mut self.events),
        }
    }
}

/// Mean time per frame since the previous reading, ms; updates the reading.
fn per_frame_ms(last: &mut (u64, f64), frames: u64, seconds: f64) -> f64 {
    let n = frames - last.0.min(frames);
    let ms = if n > 0 {
        (seconds - last.1) * 1000.0 / n as f64
    } else {
        0.0
    };
    *last = (frames, seconds);
    ms
}

/// W3C `qualityLimitationReason`: the encoder can't keep up with the frame rate (`cpu`), or the
/// picture is smaller than asked, or frames are skipped, for want of bits (`bandwidth`).
fn limitation(vo: &OutboundRtp, nominal: Nominal) -> &'static str {
    let frame_budget_ms = 1000.0 / nominal.fps.max(1.0);
    if vo.encode_time_per_frame_ms > 0.8 * frame_budget_ms {
        "cpu"
    } else if vo.frame_width < nominal.width
        || vo.frames_dropped_by_encoder > 0
            && vo.frames_per_second < vo.capture_frames_per_second * 0.9
    {
        "bandwidth"
    } else {
        "none"
    }
}

/// Scores the snapshots of one call and keeps the previous one for the rates.
#[derive(Debug)]
pub struct Scorer {
    tracker: QualityTracker,
    previous: Option<StatsSnapshot>,
}

impl Scorer {
    /// For a call aiming at `nominal`.
    pub fn new(nominal: Nominal) -> Self {
        Scorer {
            tracker: QualityTracker::new(nominal),
            previous: None,
        }
    }

    /// The point for `snapshot`.
    pub fn point(&mut self, snapshot: StatsSnapshot, ctx: Context) -> StatsPoint {
        let score = self.tracker.update(&snapshot, ctx);
        let rates = self
            .previous
            .as_ref()
            .map(|p| Rates::between(p, &snapshot))
            .unwrap_or_default();
        self.previous = Some(snapshot.clone());
        StatsPoint::new(snapshot, score, rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limitation_names_cpu_then_bandwidth() {
        let nominal = Nominal {
            width: 640,
            height: 480,
            fps: 30.0,
        };
        let mut vo = OutboundRtp {
            frame_width: 640,
            frames_per_second: 30.0,
            capture_frames_per_second: 30.0,
            ..Default::default()
        };
        assert_eq!(limitation(&vo, nominal), "none");
        vo.encode_time_per_frame_ms = 30.0;
        assert_eq!(limitation(&vo, nominal), "cpu");
        vo.encode_time_per_frame_ms = 5.0;
        vo.frame_width = 320;
        assert_eq!(limitation(&vo, nominal), "bandwidth");
        vo.frame_width = 640;
        vo.frames_dropped_by_encoder = 10;
        vo.frames_per_second = 20.0;
        assert_eq!(limitation(&vo, nominal), "bandwidth");
        // A 720p call judged at 720p: 640 wide is a step down.
        let hd = Nominal {
            width: 1280,
            height: 720,
            fps: 30.0,
        };
        vo.frames_dropped_by_encoder = 0;
        assert_eq!(limitation(&vo, hd), "bandwidth");
    }

    #[test]
    fn per_frame_times_are_over_the_last_interval() {
        let mut last = (0, 0.0);
        assert_eq!(per_frame_ms(&mut last, 0, 0.0), 0.0);
        assert!((per_frame_ms(&mut last, 10, 0.05) - 5.0).abs() < 1e-9);
        assert!((per_frame_ms(&mut last, 20, 0.07) - 2.0).abs() < 1e-9);
        // A counter reset (new encoder) reads as no frames, not a huge or negative time.
        assert_eq!(per_frame_ms(&mut last, 5, 0.01), 0.0);
    }
}
