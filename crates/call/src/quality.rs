//! How good a call is, as one score with a band (good / fair / poor) and the reason in words.
//!
//! Four terms on one 0–100 scale, and the call scores as the worst of them:
//! - audio each way: the ITU-T G.107 E-model rating R from one-way delay and packet loss
//!   (what you hear, and what the other side hears of you);
//! - video each way: 100 scaled down by frame rate, resolution, freezes and loss against what
//!   the call aims for.
//!
//! The reason is the dominant impairment of the worst term, said in words a non-engineer reads
//! ("your upload is limited to 400 kbit/s"). The formula and its constants are in
//! docs/quality.md. Sans-IO: snapshots in, scores out.

use std::collections::VecDeque;

use serde::Serialize;

use crate::stats::{counter_delta, StatsSnapshot};

/// Score at or above which a call is good (R 70 ≈ MOS 3.6: few users dissatisfied).
pub const GOOD_FROM: f64 = 70.0;
/// Score at or above which a call is fair (R 50 ≈ MOS 2.6: nearly all dissatisfied below).
pub const FAIR_FROM: f64 = 50.0;
/// G.107's default rating with no impairment (R0 − Is with all default parameters).
pub const R_DEFAULT: f64 = 93.2;
/// Packet-loss robustness Bpl: G.113's value for G.711 with packet loss concealment. Opus has
/// its own concealment and in-band FEC, so this is on the cautious side.
pub const BPL: f64 = 25.1;
/// Equipment impairment Ie of the codec with no loss (Opus at our 32 kbit/s: taken as 0).
pub const IE: f64 = 0.0;
/// Delay the ends add to the network's: a 20 ms Opus frame, 6.5 ms look-ahead and ≈13.5 ms of
/// capture and playout buffering.
pub const END_DELAY_MS: f64 = 40.0;
/// Snapshots kept for the windows (freezes over 10 s, loss over 5 s).
const WINDOW: usize = 10;
/// Loss window, seconds.
const LOSS_WINDOW: usize = 5;
/// Loss (%, either kind, one way) from which a video symptom on that way is blamed on it.
const LOSS_CAUSE: f64 = 3.0;
/// The first seconds ramp up (estimator start, first keyframe): video is not judged yet.
const SETTLE_SECS: f64 = 3.0;

/// The band the score falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// ≥ 70.
    Good,
    /// 50–70.
    Fair,
    /// < 50.
    Poor,
}

impl Band {
    /// The band of a 0–100 score.
    pub fn of(score: f64) -> Self {
        if score >= GOOD_FROM {
            Band::Good
        } else if score >= FAIR_FROM {
            Band::Fair
        } else {
            Band::Poor
        }
    }
}

/// Why the score is what it is (stable codes for the UI and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nothing worth saying.
    None,
    /// Packets from the other side are lost on the way to us.
    InboundLoss,
    /// Our packets are lost on the way to the other side (they report it).
    OutboundLoss,
    /// Long round trip.
    Delay,
    /// Packets arrive unevenly.
    Jitter,
    /// The estimator holds our sending rate down.
    UploadLimited,
    /// Our encoder can't keep up.
    Cpu,
    /// We send fewer frames than we capture, for no reason we know.
    LowSendRate,
    /// The other side's video arrives at a low frame rate.
    LowReceiveFps,
    /// The other side's video arrives small.
    LowReceiveResolution,
    /// The other side's video froze.
    Freezes,
    /// Our echo cancellation is off and our microphone is in a room: the other side hears
    /// their own voice come back.
    Echo,
}

/// What the call aims for (the media config): the reference for the video terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nominal {
    /// Width sent when nothing limits it.
    pub width: u32,
    /// Height sent when nothing limits it.
    pub height: u32,
    /// Frames per second sent when nothing limits it.
    pub fps: f64,
}

impl Default for Nominal {
    fn default() -> Self {
        Nominal {
            width: 640,
            height: 480,
            fps: 30.0,
        }
    }
}

/// What the snapshot can't say: whether either camera is off on purpose (then its video is not
/// judged: a black 5 fps stream is what was asked for), and whether our echo goes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Our camera is off.
    pub local_camera_off: bool,
    /// The other side's camera is off.
    pub remote_camera_off: bool,
    /// Our microphone is a real one in a room, unmuted, with echo cancellation switched off:
    /// what the other side hears carries their own voice back (G.107's talker echo).
    pub echo_uncancelled: bool,
}

/// One second's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// 0–100: the worst of the four terms.
    pub score: f64,
    /// Its band.
    pub band: Band,
    /// Why (the dominant impairment of the worst term); `none` when good.
    pub reason: Reason,
    /// The reason in words ("" when good).
    pub reason_text: String,
    /// E-model rating R of what we hear.
    pub audio_in: f64,
    /// E-model rating R of what the other side hears.
    pub audio_out: f64,
    /// Video term of what we see (100 when not judged).
    pub video_in: f64,
    /// Video term of what the other side sees (100 when not judged).
    pub video_out: f64,
    /// Mean opinion score (1–4.5) of the worse audio direction.
    pub mos: f64,
    /// One-way mouth-to-ear delay used, ms.
    pub one_way_delay_ms: f64,
}

/// Talker echo loudness rating with our echo cancellation off, dB: G.107's SLR + RLR defaults
/// (8 + 2) and ≈ 15 dB from a laptop's loudspeaker to its microphone. A headset has far more
/// and is scored too harshly by it; with cancellation on the echo counts for nothing (G.107's
/// default TELR 65 dB costs < 3 points below 150 ms).
pub const TELR_UNCANCELLED_DB: f64 = 25.0;
/// G.107's Roe for its default noise floor (No = −61.18 dBm0p): −1.5 (No − 2).
const ROE: f64 = 94.77;

/// G.107 talker echo impairment Idte for a talker echo loudness rating `telr_db` and a mean
/// one-way echo path delay `t_ms`.
pub fn talker_echo_impairment(telr_db: f64, t_ms: f64) -> f64 {
    if t_ms.is_nan() || telr_db.is_nan() {
        return 0.0;
    }
    let t = t_ms.max(0.0);
    let terv = telr_db - 40.0 * ((1.0 + t / 10.0) / (1.0 + t / 150.0)).log10()
        + 6.0 * (-0.3 * t * t).exp();
    let re = 80.0 + 2.5 * (terv - 14.0);
    let d = ROE - re;
    ((d / 2.0 + (d * d / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-t).exp())).max(0.0)
}

/// G.107 delay impairment Idd for a one-way delay `ta_ms` (talker echo is counted apart, by
/// [`talker_echo_impairment`], only when it is not cancelled).
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms.is_nan() || ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
        + 2.0)
}

/// G.107 effective equipment impairment Ie,eff for random loss of `loss_percent` %.
pub fn loss_impairment(loss_percent: f64) -> f64 {
    let p = loss_percent.clamp(0.0, 100.0);
    IE + (95.0 - IE) * p / (p + BPL)
}

/// The E-model rating R (0–100) for a one-way delay and a loss.
pub fn r_factor(one_way_delay_ms: f64, loss_percent: f64) -> f64 {
    (R_DEFAULT - delay_impairment(one_way_delay_ms) - loss_impairment(loss_percent))
        .clamp(0.0, 100.0)
}

/// G.107 Annex B: R → MOS.
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// The factors of one video term, each 0–1 (1 = as aimed for).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoFactors {
    /// Frame rate: ln(1 + fps) / ln(1 + nominal).
    pub fps: f64,
    /// Resolution: 1 + 0.15 · log2(pixels / nominal pixels), floor 0.4.
    pub resolution: f64,
    /// Freezes: 1 − 2 × the share of the last 10 s spent frozen.
    pub freezes: f64,
    /// Loss: 1 − loss % / 25.
    pub loss: f64,
}

impl VideoFactors {
    /// Computes the factors.
    pub fn new(
        fps: f64,
        nominal_fps: f64,
        pixels: f64,
        nominal_pixels: f64,
        frozen_share: f64,
        loss_percent: f64,
    ) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
        VideoFactors {
            fps: ratio((1.0 + fps.max(0.0)).ln(), (1.0 + nominal_fps.max(0.0)).ln())
                .clamp(0.0, 1.0),
            resolution: if pixels > 0.0 && nominal_pixels > 0.0 {
                (1.0 + 0.15 * (pixels / nominal_pixels).log2()).clamp(0.4, 1.0)
            } else {
                1.0
            },
            freezes: (1.0 - 2.0 * frozen_share).clamp(0.0, 1.0),
            loss: (1.0 - loss_percent / 25.0).clamp(0.0, 1.0),
        }
    }

    /// The term, 0–100.
    pub fn term(&self) -> f64 {
        100.0 * self.fps * self.resolution * self.freezes * self.loss
    }

    /// The factor that costs the most.
    fn worst(&self) -> VideoFactor {
        let all = [
            (VideoFactor::Loss, self.loss),
            (VideoFactor::Freezes, self.freezes),
            (VideoFactor::Fps, self.fps),
            (VideoFactor::Resolution, self.resolution),
        ];
        all.into_iter()
            .fold((VideoFactor::Loss, f64::INFINITY), |best, f| {
                if f.1 < best.1 {
                    f
                } else {
                    best
                }
            })
            .0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoFactor {
    Fps,
    Resolution,
    Freezes,
    Loss,
}

/// Turns a call's snapshots into scores; keeps the short windows it needs.
#[derive(Debug, Clone)]
pub struct QualityTracker {
    nominal: Nominal,
    /// (call seconds, total freeze seconds, inbound video loss %, inbound audio loss %,
    /// outbound video loss %, outbound audio loss %), newest last.
    recent: VecDeque<Recent>,
}

#[derive(Debug, Clone, Copy)]
struct Recent {
    at: f64,
    frozen_total: f64,
    loss_in_video: f64,
    loss_in_audio: f64,
    loss_out_video: f64,
    loss_out_audio: f64,
}

impl QualityTracker {
    /// A tracker for a call aiming at `nominal`.
    pub fn new(nominal: Nominal) -> Self {
        QualityTracker {
            nominal,
            recent: VecDeque::with_capacity(WINDOW + 1),
        }
    }

    /// Scores one snapshot (call once per snapshot, in order).
    pub fn update(&mut self, s: &StatsSnapshot, ctx: Context) -> Score {
        let vi = &s.inbound_video;
        let vo = &s.outbound_video;
        self.recent.push_back(Recent {
            at: s.call_seconds,
            frozen_total: vi.total_freezes_duration,
            loss_in_video: vi.loss_percent,
            loss_in_audio: s.inbound_audio.loss_percent,
            loss_out_video: s.remote_inbound_video.fraction_lost * 100.0,
            loss_out_audio: s.remote_inbound_audio.fraction_lost * 100.0,
        });
        while self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
        let mean = |f: fn(&Recent) -> f64| {
            let n = self.recent.len().clamp(1, LOSS_WINDOW);
            self.recent.iter().rev().take(n).map(f).sum::<f64>() / n as f64
        };
        let loss_in_video = mean(|r| r.loss_in_video);
        let loss_in_audio = mean(|r| r.loss_in_audio);
        let loss_out_video = mean(|r| r.loss_out_video);
        let loss_out_audio = mean(|r| r.loss_out_audio);
        let frozen_share = match (self.recent.front(), self.recent.back()) {
            (Some(a), Some(b)) if b.at > a.at => {
                ((b.frozen_total - a.frozen_total).max(0.0) / (b.at - a.at).max(1.0)).min(1.0)
            }
            _ => 0.0,
        };

        // Audio: one delay for both ways (half the round trip, each side's jitter buffer, the
        // ends), loss per way.
        let rtt_ms = s
            .remote_inbound_audio
            .round_trip_time
            .or(s.remote_inbound_video.round_trip_time)
            .or(s
                .candidate_pair
                .as_ref()
                .map(|p| p.current_round_trip_time)
                .filter(|r| *r > 0.0))
            .map_or(0.0, |r| r * 1000.0);
        let jitter_ms = 1000.0 * s.inbound_audio.jitter.max(s.remote_inbound_audio.jitter);
        let one_way = rtt_ms / 2.0 + 2.0 * jitter_ms + END_DELAY_MS;
        let audio_in = r_factor(one_way, loss_in_audio);
        let echo_cost = if ctx.echo_uncancelled {
            talker_echo_impairment(TELR_UNCANCELLED_DB, one_way)
        } else {
            0.0
        };
        let audio_out = (r_factor(one_way, loss_out_audio) - echo_cost).max(0.0);

        // Video: judged once settled and while the camera is on.
        let settled = s.call_seconds >= SETTLE_SECS;
        let nominal_pixels = f64::from(self.nominal.width) * f64::from(self.nominal.height);
        let judge_in = settled && !ctx.remote_camera_off && vi.frames_decoded > 0;
        let judge_out = settled && !ctx.local_camera_off && vo.frames_encoded > 0;
        let f_in = VideoFactors::new(
            vi.frames_per_second,
            self.nominal.fps,
            f64::from(vi.frame_width) * f64::from(vi.frame_height),
            nominal_pixels,
            frozen_share,
            loss_in_video,
        );
        // What we send is judged against what we capture (a 15 fps camera is not a fault).
        let capture_fps = if vo.capture_frames_per_second > 0.0 {
            vo.capture_frames_per_second.min(self.nominal.fps)
        } else {
            self.nominal.fps
        };
        let f_out = VideoFactors::new(
            vo.frames_per_second,
            capture_fps,
            f64::from(vo.frame_width) * f64::from(vo.frame_height),
            nominal_pixels,
            0.0,
            loss_out_video,
        );
        let video_in = if judge_in { f_in.term() } else { 100.0 };
        let video_out = if judge_out { f_out.term() } else { 100.0 };

        let score = audio_in.min(audio_out).min(video_in).min(video_out);
        let band = Band::of(score);
        let worst_r = audio_in.min(audio_out);
        let (reason, reason_text) = if band == Band::Good {
            (Reason::None, String::new())
        } else {
            let audio_reason = |loss: f64, inbound: bool| {
                let loss_cost = loss_impairment(loss);
                let delay_cost = delay_impairment(one_way);
                if loss_cost >= delay_cost {
                    loss_reason(loss, inbound)
                } else if 2.0 * jitter_ms > rtt_ms / 2.0 {
                    (
                        Reason::Jitter,
                        format!("packets arrive unevenly (jitter {jitter_ms:.0} ms)"),
                    )
                } else {
                    (
                        Reason::Delay,
                        format!("the delay is long ({rtt_ms:.0} ms round trip)"),
                    )
                }
            };
            // The worst term, first of equals in this order.
            let terms = [audio_in, audio_out, video_in, video_out];
            let worst = (0..4).fold(0, |w, i| if terms[i] < terms[w] { i } else { w });
            match worst {
                0 => audio_reason(loss_in_audio, true),
                1 if echo_cost >= loss_impairment(loss_out_audio)
                    && echo_cost >= delay_impairment(one_way) =>
                {
                    (
                        Reason::Echo,
                        "echo cancellation is off: the other person hears their own voice"
                            .to_string(),
                    )
                }
                1 => audio_reason(loss_out_audio, false),
                // Frame rate, freezes and a small picture are symptoms; loss on the same way is
                // their cause when there is enough of it, and the reason names the cause.
                2 if loss_in_video.max(loss_in_audio) >= LOSS_CAUSE => {
                    loss_reason(loss_in_video.max(loss_in_audio), true)
                }
                3 if loss_out_video.max(loss_out_audio) >= LOSS_CAUSE
                    && vo.quality_limitation_reason != "cpu" =>
                {
                    loss_reason(loss_out_video.max(loss_out_audio), false)
                }
                2 => match f_in.worst() {
                    VideoFactor::Loss => loss_reason(loss_in_video, true),
                    VideoFactor::Freezes => (
                        Reason::Freezes,
                        format!(
                            "the other side's video froze for {:.0} s of the last {:.0} s",
                            frozen_share * self.window_secs(),
                            self.window_secs()
                        ),
                    ),
                    VideoFactor::Fps => (
                        Reason::LowReceiveFps,
                        format!(
                            "the other side's video arrives at {:.0} fps",
                            vi.frames_per_second
                        ),
                    ),
                    VideoFactor::Resolution => (
                        Reason::LowReceiveResolution,
                        format!(
                            "the other side's video arrives at only {}×{}",
                            vi.frame_width, vi.frame_height
                        ),
                    ),
                },
                _ => match f_out.worst() {
                    VideoFactor::Loss | VideoFactor::Freezes => loss_reason(loss_out_video, false),
                    VideoFactor::Fps | VideoFactor::Resolution => {
                        match vo.quality_limitation_reason {
                            "cpu" => (
                                Reason::Cpu,
                                format!(
                                    "your CPU can't keep up at {}p",
                                    if vo.frame_height > 0 {
                                        vo.frame_height
                                    } else {
                                        self.nominal.height
                                    }
                                ),
                            ),
                            "bandwidth" => (
                                Reason::UploadLimited,
                                format!(
                                    "your upload is limited to {:.0} kbit/s",
                                    s.estimate.available_outgoing_bitrate / 1000.0
                                ),
                            ),
                            _ => (
                                Reason::LowSendRate,
                                format!(
                                    "your video goes out at {:.0} fps, {}×{}",
                                    vo.frames_per_second, vo.frame_width, vo.frame_height
                                ),
                            ),
                        }
                    }
                },
            }
        };
        Score {
            score,
            band,
            reason,
            reason_text,
            audio_in,
            audio_out,
            video_in,
            video_out,
            mos: mos(worst_r),
            one_way_delay_ms: one_way,
        }
    }

    fn window_secs(&self) -> f64 {
        match (self.recent.front(), self.recent.back()) {
            (Some(a), Some(b)) => (b.at - a.at).max(1.0),
            _ => 1.0,
        }
    }
}

fn loss_reason(loss: f64, inbound: bool) -> (Reason, String) {
    if inbound {
        (
            Reason::InboundLoss,
            format!("the network is losing {loss:.0} % of the packets the other side sends you"),
        )
    } else {
        (
            Reason::OutboundLoss,
            format!("the network is losing {loss:.0} % of the packets you send"),
        )
    }
}

/// One second of a call as the UI and the exports see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StatsPoint {
    /// What the engine measured.
    pub snapshot: StatsSnapshot,
    /// Its score.
    pub score: Score,
    /// Rates from its counters.
    pub rates: Rates,
    /// The connection path in words ("" before one is selected).
    pub path: String,
}

impl StatsPoint {
    /// Bundles a snapshot with its score and rates.
    pub fn new(snapshot: StatsSnapshot, score: Score, rates: Rates) -> Self {
        let path = snapshot
            .candidate_pair
            .as_ref()
            .map(crate::rtc::PathInfo::describe)
            .unwrap_or_default();
        StatsPoint {
            snapshot,
            score,
            rates,
            path,
        }
    }
}

/// Per-second figures the snapshot holds only as counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Video packets we sent per second.
    pub video_packets_sent: f64,
    /// Video packets we received per second.
    pub video_packets_received: f64,
    /// NACKs the other side sent us per second.
    pub nacks_received: f64,
    /// NACKs we sent per second.
    pub nacks_sent: f64,
    /// PLIs the other side sent us per second.
    pub plis_received: f64,
    /// PLIs we sent per second.
    pub plis_sent: f64,
    /// Of the audio frames played this second, the share concealed or rebuilt by FEC, %.
    pub concealment_percent: f64,
    /// Video packets the other side reports lost per second (RTCP's 24-bit cumulative count).
    pub remote_video_lost: f64,
}

impl Rates {
    /// The rates between two consecutive snapshots.
    pub fn between(prev: &StatsSnapshot, cur: &StatsSnapshot) -> Self {
        let dt = cur.call_seconds - prev.call_seconds;
        let rate = |a: u64, b: u64, bits: u32| crate::stats::counter_rate(a, b, bits, dt);
        let (po, co) = (&prev.outbound_video, &cur.outbound_video);
        let (pi, ci) = (&prev.inbound_video, &cur.inbound_video);
        let (pa, ca) = (&prev.inbound_audio, &cur.inbound_audio);
        let decoded = counter_delta(pa.frames_decoded, ca.frames_decoded, 64);
        let concealed = counter_delta(pa.concealed_frames, ca.concealed_frames, 64);
        Rates {
            video_packets_sent: rate(po.packets_sent, co.packets_sent, 64),
            video_packets_received: rate(pi.packets_received, ci.packets_received, 64),
            nacks_received: rate(po.nack_count, co.nack_count, 64),
            nacks_sent: rate(pi.nack_count, ci.nack_count, 64),
            plis_received: rate(po.pli_count, co.pli_count, 64),
            plis_sent: rate(pi.pli_count, ci.pli_count, 64),
            concealment_percent: if decoded > 0 {
                (100.0 * concealed as f64 / decoded as f64).min(100.0)
            } else {
                0.0
            },
            remote_video_lost: rate(
                prev.remote_inbound_video.packets_lost,
                cur.remote_inbound_video.packets_lost,
                24,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled() -> StatsSnapshot {
        let mut s = StatsSnapshot {
            call_seconds: 10.0,
            ..Default::default()
        };
        s.inbound_video.frames_per_second = 30.0;
        s.inbound_video.frames_decoded = 300;
        s.inbound_video.frame_width = 640;
        s.inbound_video.frame_height = 480;
        s.outbound_video.frames_per_second = 30.0;
        s.outbound_video.capture_frames_per_second = 30.0;
        s.outbound_video.frames_encoded = 300;
        s.outbound_video.frame_width = 640;
        s.outbound_video.frame_height = 480;
        s.remote_inbound_audio.round_trip_time = Some(0.02);
        s
    }

    fn score(s: &StatsSnapshot) -> Score {
        QualityTracker::new(Nominal::default()).update(s, Context::default())
    }

    #[test]
    fn talker_echo_costs_little_cancelled_and_makes_a_call_poor_uncancelled() {
        // G.107's default TELR (65 dB, echo cancelled): under 3 points up to 150 ms.
        for t in [0.0, 50.0, 100.0, 150.0] {
            let idte = talker_echo_impairment(65.0, t);
            assert!((0.0..3.0).contains(&idte), "{t} ms: {idte}");
        }
        // Uncancelled, it grows with the delay and dominates everything else.
        let near = talker_echo_impairment(TELR_UNCANCELLED_DB, 40.0);
        let far = talker_echo_impairment(TELR_UNCANCELLED_DB, 150.0);
        assert!(near > 30.0 && far > near, "{near} {far}");
        assert!(talker_echo_impairment(f64::NAN, 10.0) == 0.0);
    }

    #[test]
    fn echo_going_back_uncancelled_scores_what_the_other_side_hears() {
        let s = settled();
        let mut t = QualityTracker::new(Nominal::default());
        let clean = t.update(&s, Context::default());
        assert_eq!(clean.band, Band::Good);
        let ctx = Context {
            echo_uncancelled: true,
            ..Context::default()
        };
        let echo = QualityTracker::new(Nominal::default()).update(&s, ctx);
        assert_eq!(echo.band, Band::Poor, "{echo:?}");
        assert_eq!(echo.reason, Reason::Echo);
        assert!(echo.reason_text.contains("echo cancellation is off"));
        // What we hear is not touched by our own echo.
        assert_eq!(echo.audio_in, clean.audio_in);
        assert!(echo.audio_out < clean.audio_out - 30.0);
    }

    #[test]
    fn e_model_matches_g107_reference_points() {
        // No impairment: the default rating, MOS 4.41.
        assert!((r_factor(0.0, 0.0) - 93.2).abs() < 1e-9);
        assert!((mos(93.2) - 4.41).abs() < 0.01, "{}", mos(93.2));
        // Idd is 0 up to 100 ms, ≈3 at 200 ms, ≈24 at 400 ms (G.107 Figure/formula 7-27).
        assert_eq!(delay_impairment(100.0), 0.0);
        assert!((delay_impairment(200.0) - 3.05).abs() < 0.05);
        assert!((delay_impairment(400.0) - 24.1).abs() < 0.2);
        // Ie,eff with Bpl 25.1: 5 % → 15.8, 10 % → 27.1.
        assert!((loss_impairment(5.0) - 15.78).abs() < 0.01);
        assert!((loss_impairment(10.0) - 27.07).abs() < 0.01);
        // MOS at the band edges.
        assert!((mos(70.0) - 3.60).abs() < 0.01);
        assert!((mos(50.0) - 2.58).abs() < 0.01);
        assert_eq!(mos(-5.0), 1.0);
        assert_eq!(mos(120.0), 4.5);
        // Garbage in: no NaN out.
        assert_eq!(delay_impairment(f64::NAN), 0.0);
        assert!(r_factor(f64::NAN, 0.0).is_finite());
    }

    #[test]
    fn score_table_gives_the_expected_band() {
        // (what is wrong, setup, expected band)
        type Setup = fn(&mut StatsSnapshot);
        let cases: [(&str, Setup, Band); 12] = [
            ("clean", |_| {}, Band::Good),
            (
                "2 % audio loss in",
                |s| s.inbound_audio.loss_percent = 2.0,
                Band::Good,
            ),
            (
                "10 % audio loss in",
                |s| s.inbound_audio.loss_percent = 10.0,
                Band::Fair,
            ),
            (
                "30 % audio loss out",
                |s| s.remote_inbound_audio.fraction_lost = 0.3,
                Band::Poor,
            ),
            (
                "150 ms RTT",
                |s| s.remote_inbound_audio.round_trip_time = Some(0.15),
                Band::Good,
            ),
            (
                "800 ms RTT",
                |s| s.remote_inbound_audio.round_trip_time = Some(0.8),
                Band::Fair,
            ),
            (
                "2.5 s RTT",
                |s| s.remote_inbound_audio.round_trip_time = Some(2.5),
                Band::Poor,
            ),
            (
                "15 fps in",
                |s| s.inbound_video.frames_per_second = 15.0,
                Band::Good,
            ),
            (
                "5 fps in",
                |s| s.inbound_video.frames_per_second = 5.0,
                Band::Fair,
            ),
            (
                "1 fps in",
                |s| s.inbound_video.frames_per_second = 1.0,
                Band::Poor,
            ),
            (
                "8 % video loss in",
                |s| s.inbound_video.loss_percent = 8.0,
                Band::Fair,
            ),
            (
                "320×240 at 15 fps out, bandwidth",
                |s| {
                    let o = &mut s.outbound_video;
                    o.frame_width = 320;
                    o.frame_height = 240;
                    o.frames_per_second = 15.0;
                    o.quality_limitation_reason = "bandwidth";
                },
                Band::Fair,
            ),
        ];
        for (what, setup, want) in cases {
            let mut s = settled();
            setup(&mut s);
            let got = score(&s);
            assert_eq!(got.band, want, "{what}: {got:?}");
            assert!((0.0..=100.0).contains(&got.score), "{what}");
        }
    }

    #[test]
    fn reason_names_the_dominant_impairment() {
        let mut s = settled();
        assert_eq!(score(&s).reason, Reason::None);
        assert_eq!(score(&s).reason_text, "");

        s.outbound_video.frame_width = 320;
        s.outbound_video.frame_height = 240;
        s.outbound_video.frames_per_second = 8.0;
        s.outbound_video.quality_limitation_reason = "bandwidth";
        s.estimate.available_outgoing_bitrate = 400_000.0;
        let q = score(&s);
        assert_eq!(q.reason, Reason::UploadLimited);
        assert_eq!(q.reason_text, "your upload is limited to 400 kbit/s");

        s.outbound_video.quality_limitation_reason = "cpu";
        s.outbound_video.frame_height = 720;
        s.outbound_video.frame_width = 1280;
        let q = score(&s);
        assert_eq!(q.reason, Reason::Cpu, "{q:?}");
        assert_eq!(q.reason_text, "your CPU can't keep up at 720p");

        // Loss on what we receive outweighs a mildly low frame rate.
        let mut s = settled();
        s.inbound_video.frames_per_second = 20.0;
        s.inbound_video.loss_percent = 8.0;
        let q = score(&s);
        assert_eq!(q.reason, Reason::InboundLoss);
        assert_eq!(
            q.reason_text,
            "the network is losing 8 % of the packets the other side sends you"
        );

        // Freezes with loss on the same way: the loss is the cause.
        let mut t = QualityTracker::new(Nominal::default());
        let mut s = settled();
        s.inbound_video.loss_percent = 4.0;
        t.update(&s, Context::default());
        s.call_seconds = 14.0;
        s.inbound_video.total_freezes_duration = 2.0;
        let q = t.update(&s, Context::default());
        assert_eq!(q.reason, Reason::InboundLoss, "{q:?}");
        // The sender cut by the estimator while the other side reports loss: loss again.
        let mut s = settled();
        s.outbound_video.frame_width = 320;
        s.outbound_video.frame_height = 240;
        s.outbound_video.frames_per_second = 8.0;
        s.outbound_video.quality_limitation_reason = "bandwidth";
        s.remote_inbound_video.fraction_lost = 0.05;
        assert_eq!(score(&s).reason, Reason::OutboundLoss);

        // What the other side reports about our audio.
        let mut s = settled();
        s.remote_inbound_audio.fraction_lost = 0.25;
        let q = score(&s);
        assert_eq!(q.reason, Reason::OutboundLoss);
        assert!(q.reason_text.contains("25 %"), "{}", q.reason_text);

        // A long round trip vs uneven arrival.
        let mut s = settled();
        s.remote_inbound_audio.round_trip_time = Some(0.8);
        let q = score(&s);
        assert_eq!(q.reason, Reason::Delay);
        assert_eq!(q.reason_text, "the delay is long (800 ms round trip)");
        s.remote_inbound_audio.round_trip_time = Some(0.05);
        s.inbound_audio.jitter = 0.2;
        assert_eq!(score(&s).reason, Reason::Jitter);

        // Low frame rate and small picture from the other side.
        let mut s = settled();
        s.inbound_video.frames_per_second = 4.0;
        let q = score(&s);
        assert_eq!(q.reason, Reason::LowReceiveFps);
        assert_eq!(q.reason_text, "the other side's video arrives at 4 fps");
        let mut s = settled();
        s.inbound_video.frame_width = 160;
        s.inbound_video.frame_height = 120;
        s.inbound_video.frames_per_second = 30.0;
        let q = score(&s);
        assert_eq!(q.reason, Reason::LowReceiveResolution, "{q:?}");
    }

    #[test]
    fn freezes_count_over_the_window_and_loss_is_smoothed() {
        let mut t = QualityTracker::new(Nominal::default());
        let mut s = settled();
        for i in 0..10 {
            s.call_seconds = 10.0 + f64::from(i);
            assert_eq!(t.update(&s, Context::default()).band, Band::Good);
        }
        // 4 s frozen within the last 10 s.
        s.call_seconds = 20.0;
        s.inbound_video.freeze_count = 2;
        s.inbound_video.total_freezes_duration = 4.0;
        let q = t.update(&s, Context::default());
        assert_eq!(q.reason, Reason::Freezes, "{q:?}");
        assert!(q.reason_text.contains("froze for 4 s"), "{}", q.reason_text);
        // Ten calm seconds later the freeze has left the window.
        for i in 21..31 {
            s.call_seconds = f64::from(i);
            t.update(&s, Context::default());
        }
        assert_eq!(t.update(&s, Context::default()).band, Band::Good);

        // One lossy second among five calm ones is averaged down, not a verdict.
        s.inbound_audio.loss_percent = 20.0;
        s.call_seconds = 32.0;
        let q = t.update(&s, Context::default());
        assert_eq!(q.band, Band::Good, "{q:?}");
    }

    #[test]
    fn cameras_off_and_the_first_seconds_are_not_judged() {
        let mut s = settled();
        s.inbound_video.frames_per_second = 5.0;
        s.outbound_video.frames_per_second = 5.0;
        s.outbound_video.capture_frames_per_second = 5.0;
        let mut t = QualityTracker::new(Nominal::default());
        let off = Context {
            local_camera_off: true,
            remote_camera_off: true,
            ..Context::default()
        };
        assert_eq!(t.update(&s, off).band, Band::Good);
        // Sending every captured frame is full rate even when the camera gives 5.
        let ctx = Context {
            local_camera_off: false,
            remote_camera_off: true,
            ..Context::default()
        };
        assert_eq!(t.update(&s, ctx).video_out, 100.0);
        s.call_seconds = 1.0;
        assert_eq!(score(&s).video_in, 100.0);
    }

    #[test]
    fn rates_come_from_counters_across_resets_and_wraps() {
        let mut a = settled();
        let mut b = settled();
        a.call_seconds = 10.0;
        b.call_seconds = 12.0;
        a.outbound_video.packets_sent = 1000;
        b.outbound_video.packets_sent = 1400;
        a.outbound_video.nack_count = 5;
        b.outbound_video.nack_count = 9;
        // The inbound stream restarted (new SSRC): counters from 0.
        a.inbound_video.packets_received = 5000;
        b.inbound_video.packets_received = 120;
        // RTCP's 24-bit cumulative loss wrapped.
        a.remote_inbound_video.packets_lost = 0xff_fffe;
        b.remote_inbound_video.packets_lost = 2;
        a.inbound_audio.frames_decoded = 500;
        b.inbound_audio.frames_decoded = 600;
        a.inbound_audio.concealed_frames = 10;
        b.inbound_audio.concealed_frames = 15;
        let r = Rates::between(&a, &b);
        assert_eq!(r.video_packets_sent, 200.0);
        assert_eq!(r.nacks_received, 2.0);
        assert_eq!(r.video_packets_received, 60.0);
        assert_eq!(r.remote_video_lost, 2.0);
        assert_eq!(r.concealment_percent, 5.0);
        // Same timestamp twice: no division by zero.
        assert_eq!(Rates::between(&b, &b).video_packets_sent, 0.0);
    }
}
