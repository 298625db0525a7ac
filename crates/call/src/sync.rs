//! Lip sync: audio and video of the other side played within ±45 ms of each other.
//!
//! Each stream's RTP timestamps run on their own clock from their own origin; the other side's
//! RTCP sender reports tie each to its wall clock (NTP time ↔ RTP time, both sides of a report
//! taken from the capture clock: `session::reports`). With one report per stream, any RTP
//! timestamp maps to the sender's capture time, and so every frame we play has an end-to-end
//! delay: our clock when it is played (audio: when the jitter buffer hands it to the decoder;
//! video: when the decoder has shown it) minus its capture time on theirs. The two clocks'
//! offset is the same for both streams, so the difference of the two delays — the lip-sync
//! offset — is exact even though neither delay is.
//!
//! Offset = video delay − audio delay: positive, the picture comes later than its sound (audio
//! ahead), and audio is held back by that much more (the jitter buffer's extra delay);
//! negative, video is held (frames wait before decoding). Once a second the median of the
//! second's samples moves the delays, by at most 80 ms a step (the jitter buffer reaches a step
//! of the audio delay a stretched frame at a time; the session moves each video frame's hold
//! ≤ 5 ms from the one before, so neither stops the media). ITU-R BT.1359 puts
//! detectability at +45 ms (sound first) / −125 ms (sound late); we keep the offset within
//! ±25 ms and hold no more than that takes: every millisecond held is latency, and an offset
//! already inside the band costs nothing (video on loopback arrives ≈ 30 ms before its sound:
//! left alone). A hold no longer needed is given back as far as the band allows. Without a
//! stream (camera off), the added delay drains away.
//!
//! Sans-IO: times are inputs (µs on our Unix-time scale).

use std::time::Duration;

use crate::rtp::Kind;
use crate::stats::AvSyncStats;

/// The most either stream is held back (beyond this the sender's clocks disagree, not its
/// pipelines, and waiting would only add delay).
pub const MAX_EXTRA: Duration = Duration::from_millis(400);
/// The most one update moves a delay.
const MAX_STEP_US: i64 = 80_000;
/// The offset is kept within ±this.
pub const TOLERANCE_US: i64 = 25_000;
/// Changes smaller than this are not made.
const DEAD_BAND_US: i64 = 5_000;
/// Samples further apart than this are not one call's two pipelines (a restarted sender, a
/// report from another clock): ignored.
const PLAUSIBLE_US: i64 = 2_000_000;
/// An audio sample older than this is not paired with a video frame.
const AUDIO_FRESH_US: u64 = 200_000;
/// Updates without a video/audio pair before the added delays drain (3 s).
const IDLE_UPDATES: u32 = 3;
/// Samples kept per update (a second of frames at 60 fps).
const MAX_SAMPLES: usize = 64;

/// One remote stream's last sender report: (capture time on their clock µs, RTP timestamp).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    unix_us: i64,
    rtp: u32,
    rate: i64,
}

impl Anchor {
    fn capture_us(&self, rtp: u32) -> i64 {
        let ticks = i64::from(rtp.wrapping_sub(self.rtp) as i32);
        self.unix_us + ticks * 1_000_000 / self.rate
    }
}

/// The lip-sync controller of one call (see the module docs).
#[derive(Debug)]
pub struct AvSync {
    enabled: bool,
    video: Option<Anchor>,
    audio: Option<Anchor>,
    /// The last audio played: (our µs, its delay µs).
    last_audio: Option<(u64, i64)>,
    samples: Vec<i64>,
    idle: u32,
    audio_extra_us: i64,
    video_extra_us: i64,
    offset_us: Option<i64>,
}

impl AvSync {
    /// A controller; `enabled: false` measures only (the offset is still shown).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            video: None,
            audio: None,
            last_audio: None,
            samples: Vec::new(),
            idle: 0,
            audio_extra_us: 0,
            video_extra_us: 0,
            offset_us: None,
        }
    }

    /// A sender report of the remote `kind` stream: NTP time (64-bit) and its RTP time.
    pub fn on_sender_report(&mut self, kind: Kind, ntp: u64, rtp: u32) {
        let anchor = Anchor {
            unix_us: unix_us_from_ntp(ntp),
            rtp,
            rate: match kind {
                Kind::Video => 90_000,
                Kind::Audio => 48_000,
            },
        };
        match kind {
            Kind::Video => self.video = Some(anchor),
            Kind::Audio => self.audio = Some(anchor),
        }
    }

    /// Audio with RTP timestamp `rtp` starts playing at `now_us`.
    pub fn on_audio_played(&mut self, now_us: u64, rtp: u32) {
        if let Some(a) = self.audio {
            self.last_audio = Some((now_us, now_us as i64 - a.capture_us(rtp)));
        }
    }

    /// The video frame with RTP timestamp `rtp` was shown at `now_us`.
    pub fn on_video_shown(&mut self, now_us: u64, rtp: u32) {
        let (Some(v), Some((at, audio_delay))) = (self.video, self.last_audio) else {
            return;
        };
        if now_us.saturating_sub(at) > AUDIO_FRESH_US {
            return;
        }
        let offset = now_us as i64 - v.capture_us(rtp) - audio_delay;
        if offset.abs() < PLAUSIBLE_US && self.samples.len() < MAX_SAMPLES {
            self.samples.push(offset);
        }
    }

    /// Once a second: measures the offset and moves the delays. Returns whether they changed.
    pub fn update(&mut self) -> bool {
        let before = (self.audio_extra_us, self.video_extra_us);
        if self.samples.is_empty() {
            self.offset_us = None;
            self.idle = self.idle.saturating_add(1);
            if self.idle >= IDLE_UPDATES {
                // Nothing to keep in step with: give the latency back, a step at a time.
                self.audio_extra_us = (self.audio_extra_us - MAX_STEP_US).max(0);
                self.video_extra_us = (self.video_extra_us - MAX_STEP_US).max(0);
            }
            return before != (self.audio_extra_us, self.video_extra_us);
        }
        self.idle = 0;
        self.samples.sort_unstable();
        let offset = self.samples[self.samples.len() / 2];
        self.samples.clear();
        self.offset_us = Some(offset);
        if !self.enabled {
            return false;
        }
        // A positive step lowers the offset (audio ahead: undo a video hold first, then hold
        // audio); a negative one raises it. Outside the band: back to its edge. Inside: give
        // back a hold as far as the band allows.
        let wanted = if offset > TOLERANCE_US {
            offset - TOLERANCE_US
        } else if offset < -TOLERANCE_US {
            offset + TOLERANCE_US
        } else if self.video_extra_us > 0 {
            (offset + TOLERANCE_US).min(self.video_extra_us)
        } else {
            -(TOLERANCE_US - offset).min(self.audio_extra_us)
        };
        if wanted.abs() < DEAD_BAND_US {
            return false;
        }
        let mut step = wanted.clamp(-MAX_STEP_US, MAX_STEP_US);
        let max = MAX_EXTRA.as_micros() as i64;
        if step > 0 {
            let undo = step.min(self.video_extra_us);
            self.video_extra_us -= undo;
            step -= undo;
            self.audio_extra_us = (self.audio_extra_us + step).min(max);
        } else {
            let undo = (-step).min(self.audio_extra_us);
            self.audio_extra_us -= undo;
            step += undo;
            self.video_extra_us = (self.video_extra_us - step).min(max);
        }
        before != (self.audio_extra_us, self.video_extra_us)
    }

    /// How much longer audio waits in the jitter buffer.
    pub fn audio_extra(&self) -> Duration {
        Duration::from_micros(self.audio_extra_us.max(0) as u64)
    }

    /// How long a complete video frame waits before it is decoded.
    pub fn video_extra(&self) -> Duration {
        Duration::from_micros(self.video_extra_us.max(0) as u64)
    }

    /// For the statistics.
    pub fn stats(&self) -> AvSyncStats {
        AvSyncStats {
            offset_ms: self.offset_us.map(|o| o as f64 / 1000.0),
            audio_delay_ms: self.audio_extra_us as f64 / 1000.0,
            video_delay_ms: self.video_extra_us as f64 / 1000.0,
        }
    }
}

/// Unix µs of a 64-bit NTP time (the inverse of [`crate::rtp::ntp_from_unix_us`]).
pub fn unix_us_from_ntp(ntp: u64) -> i64 {
    const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET;
    let frac = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::ntp_from_unix_us;

    const T0: u64 = 1_800_000_000_000_000;

    /// A sender whose clock is `skew_us` off ours; its video is captured `camera_us` before
    /// the frame is sent, its audio `mic_us`. The network takes 30 ms both ways; we play audio
    /// `audio_base_us` + the extra after arrival and show video `video_base_us` + the extra
    /// after. Runs `seconds` of 30 fps video and 50 packets/s audio through the controller and
    /// returns the true offset (video delay − audio delay, ms) of the last second.
    fn plant(
        sync: &mut AvSync,
        skew_us: i64,
        audio_late_us: i64,
        video_late_us: i64,
        seconds: u64,
    ) -> f64 {
        let their = |ours: u64| (ours as i64 + skew_us) as u64;
        // Their RTP origins are random: video 1234, audio 99.
        let v_rtp = |cap: u64| 1234u32.wrapping_add((cap * 9 / 100) as u32);
        let a_rtp = |cap: u64| 99u32.wrapping_add((cap * 48 / 1000) as u32);
        sync.on_sender_report(Kind::Video, ntp_from_unix_us(their(T0)), v_rtp(T0));
        sync.on_sender_report(Kind::Audio, ntp_from_unix_us(their(T0)), a_rtp(T0));
        let mut truth = 0.0;
        for s in 0..seconds {
            let start = T0 + s * 1_000_000;
            let audio_extra = sync.audio_extra().as_micros() as i64;
            let video_extra = sync.video_extra().as_micros() as i64;
            let audio_delay = audio_late_us + audio_extra;
            let video_delay = video_late_us + video_extra;
            truth = (video_delay - audio_delay) as f64 / 1000.0;
            // Events in time order: audio every 20 ms, video every 33 ms.
            let mut events: Vec<(u64, bool, u64)> = Vec::new();
            for k in 0..50 {
                let cap = start + k * 20_000;
                events.push((cap + audio_delay as u64, true, cap));
            }
            for k in 0..30 {
                let cap = start + k * 33_333;
                events.push((cap + video_delay as u64, false, cap));
            }
            events.sort();
            for (at, audio, cap) in events {
                if audio {
                    sync.on_audio_played(at, a_rtp(their(cap)));
                } else {
                    sync.on_video_shown(at, v_rtp(their(cap)));
                }
            }
            sync.update();
        }
        truth
    }

    #[test]
    fn ntp_and_unix_time_convert_both_ways() {
        for us in [0u64, 1_500_000, T0, T0 + 999_999] {
            let back = unix_us_from_ntp(ntp_from_unix_us(us));
            assert!((back - us as i64).abs() <= 1, "{us} → {back}");
        }
    }

    #[test]
    fn audio_ahead_of_a_slow_camera_is_held_back_until_they_meet() {
        // The camera's pipeline takes 150 ms more than the microphone's; their clock is 3 s off.
        let mut sync = AvSync::new(true);
        let truth = plant(&mut sync, 3_000_000, 40_000, 190_000, 6);
        // Brought to the band's edge, and no further: what more it held would be latency.
        assert!((truth - 25.0).abs() <= 5.0, "offset {truth} ms");
        let s = sync.stats();
        assert!((s.audio_delay_ms - 125.0).abs() <= 5.0, "{s:?}");
        assert_eq!(s.video_delay_ms, 0.0);
        // The measured offset is the truth, whatever the clocks' skew.
        assert!(
            s.offset_ms.is_some_and(|o| (o - truth).abs() <= 1.0),
            "{s:?}"
        );
    }

    #[test]
    fn video_ahead_of_a_slow_microphone_waits_for_it() {
        let mut sync = AvSync::new(true);
        let truth = plant(&mut sync, -500_000, 200_000, 60_000, 6);
        assert!((truth + 25.0).abs() <= 5.0, "offset {truth} ms");
        let s = sync.stats();
        assert!((s.video_delay_ms - 115.0).abs() <= 5.0, "{s:?}");
        assert_eq!(s.audio_delay_ms, 0.0);
    }

    #[test]
    fn a_step_is_at_most_80_ms_and_an_offset_inside_the_band_is_left_alone() {
        let mut sync = AvSync::new(true);
        plant(&mut sync, 0, 40_000, 340_000, 1);
        assert_eq!(sync.stats().audio_delay_ms, 80.0);
        // Video 20 ms ahead (as on loopback, where audio waits in its buffer): nothing held.
        let mut calm = AvSync::new(true);
        plant(&mut calm, 0, 40_000, 20_000, 5);
        assert_eq!(calm.stats().video_delay_ms, 0.0);
        assert!(calm
            .stats()
            .offset_ms
            .is_some_and(|o| (o + 20.0).abs() < 1.0));
    }

    #[test]
    fn a_hold_no_longer_needed_is_given_back_as_far_as_the_band_allows() {
        // The microphone was 150 ms slow (a headset), then the user unplugged it: the video
        // hold comes down until the offset reaches the band's other edge, or to nothing.
        let slow_mic = || {
            let mut sync = AvSync::new(true);
            plant(&mut sync, 0, 200_000, 50_000, 6);
            assert!((sync.stats().video_delay_ms - 125.0).abs() <= 5.0);
            sync
        };
        // Its replacement is 60 ms slower than the camera: of the 125 ms held, 35 stay.
        let mut sync = slow_mic();
        let truth = plant(&mut sync, 0, 90_000, 30_000, 6);
        assert!((truth + 25.0).abs() <= 5.0, "offset {truth} ms");
        assert!(
            (sync.stats().video_delay_ms - 35.0).abs() <= 5.0,
            "{:?}",
            sync.stats()
        );
        // One as fast as the camera: nothing stays held.
        let mut sync = slow_mic();
        let truth = plant(&mut sync, 0, 40_000, 50_000, 6);
        assert!((truth - 10.0).abs() <= 1.0, "offset {truth} ms");
        assert_eq!(sync.stats().video_delay_ms, 0.0);
    }

    #[test]
    fn switched_off_it_measures_but_holds_nothing() {
        let mut sync = AvSync::new(false);
        let truth = plant(&mut sync, 0, 40_000, 190_000, 4);
        assert_eq!(truth, 150.0);
        let s = sync.stats();
        assert!(
            s.offset_ms.is_some_and(|o| (o - 150.0).abs() < 1.0),
            "{s:?}"
        );
        assert_eq!((s.audio_delay_ms, s.video_delay_ms), (0.0, 0.0));
    }

    #[test]
    fn without_video_the_added_delay_drains_and_nothing_is_measured_without_reports() {
        let mut sync = AvSync::new(true);
        plant(&mut sync, 0, 40_000, 190_000, 6);
        assert!(sync.stats().audio_delay_ms > 100.0);
        for _ in 0..5 {
            sync.update();
        }
        assert_eq!(sync.stats().audio_delay_ms, 0.0);
        assert_eq!(sync.stats().offset_ms, None);
        // No sender report yet: nothing to pair.
        let mut fresh = AvSync::new(true);
        fresh.on_audio_played(T0, 1);
        fresh.on_video_shown(T0, 1);
        fresh.update();
        assert_eq!(fresh.stats().offset_ms, None);
    }
}
