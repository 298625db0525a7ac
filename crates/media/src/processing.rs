//! Near-end audio processing: echo cancellation, noise suppression, automatic gain control and a
//! high-pass filter on the captured audio, before it is encoded.
//!
//! The algorithms are WebRTC's AudioProcessing module (AEC3, its noise suppressor, AGC2), the
//! one Chrome, Meet and Jitsi run, through `sonora`, a Rust port of it (docs/architecture.md,
//! "Audio processing", says why not the C++ library). [`AudioProcessor`] takes our 20 ms frames
//! and feeds the module the 10 ms halves it works on. The echo canceller needs the far end's
//! audio as it is played out ([`AudioProcessor::analyze_render`]); it finds the delay between
//! that and the echo in the microphone itself, helped by the playout and capture buffering the
//! caller reports ([`AudioProcessor::set_stream_delay`]).
//!
//! The processor is sans-IO: frames in, frames out, no clock and no thread of its own. The call
//! engine runs it on its audio threads, never on an async task.

use std::time::Duration;

use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
    NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::audio::check_frame;
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Samples in the 10 ms blocks the module works on.
const BLOCK: usize = AUDIO_FRAME_SAMPLES / 2;

/// Which parts of the processing run. Each can be switched off on its own (a musician wants
/// everything off: the signal then passes through untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessingConfig {
    /// Acoustic echo cancellation (AEC3): removes the far end's voice that the microphone picks
    /// up from the loudspeaker.
    pub echo_cancellation: bool,
    /// Stationary noise suppression (fans, hum, hiss), at the module's "high" level.
    pub noise_suppression: bool,
    /// Automatic gain control (AGC2's adaptive digital gain and limiter): a quiet or distant
    /// talker is brought up, a loud one held below clipping.
    pub auto_gain: bool,
    /// A high-pass filter that removes rumble and DC below ≈ 80 Hz. AEC3 runs one of its own
    /// while it is on, whatever this says.
    pub high_pass: bool,
}

impl ProcessingConfig {
    /// Everything on: what a call on a laptop's speakers and microphone needs.
    pub const ALL: Self = Self {
        echo_cancellation: true,
        noise_suppression: true,
        auto_gain: true,
        high_pass: true,
    };
    /// Everything off: the microphone's signal passes through untouched.
    pub const OFF: Self = Self {
        echo_cancellation: false,
        noise_suppression: false,
        auto_gain: false,
        high_pass: false,
    };

    /// Whether anything runs at all.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.auto_gain || self.high_pass
    }

    fn module_config(&self) -> Config {
        Config {
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                // "High" (≈ 18 dB): "moderate" left 12 dB of a fan's noise in the simulated
                // room against 18 (docs/benchmarks.md), at the same cost to the voice (< 0.3 dB).
                level: NoiseSuppressionLevel::High,
                ..NoiseSuppression::default()
            }),
            gain_controller2: self.auto_gain.then(|| GainController2 {
                // We set no analog microphone volume: the digital stage does all the work.
                input_volume_controller: false,
                // Gentler than the module's defaults (start at +15 dB, up to +50): those raised
                // the canceller's rare residual echo bursts as they raise a quiet voice, and
                // doubled the time to recover from an echo delay jump in the simulated room.
                adaptive_digital: Some(AdaptiveDigital {
                    initial_gain_db: 6.0,
                    max_gain_db: 30.0,
                    ..AdaptiveDigital::default()
                }),
                ..GainController2::default()
            }),
            high_pass_filter: self.high_pass.then(HighPassFilter::default),
            ..Config::default()
        }
    }
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self::ALL
    }
}

/// What the echo canceller reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessingStats {
    /// Echo return loss enhancement the canceller estimates, dB (`None` while it is off or has
    /// not converged).
    pub erle_db: Option<f64>,
    /// Echo return loss (loudspeaker to microphone) it estimates, dB.
    pub erl_db: Option<f64>,
    /// The echo path delay it estimates, ms.
    pub delay_ms: Option<i32>,
    /// Far-end frames analysed so far.
    pub render_frames: u64,
    /// Captured frames processed so far.
    pub capture_frames: u64,
}

/// The processing of one microphone, with the far end's played-out audio as its echo reference.
pub struct AudioProcessor {
    apm: AudioProcessing,
    config: ProcessingConfig,
    out: Vec<i16>,
    render_frames: u64,
    capture_frames: u64,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("config", &self.config)
            .field("render_frames", &self.render_frames)
            .field("capture_frames", &self.capture_frames)
            .finish_non_exhaustive()
    }
}

impl AudioProcessor {
    /// Mono processing at 48 kHz with `config`.
    pub fn new(config: ProcessingConfig) -> Self {
        let stream = StreamConfig::new(AUDIO_SAMPLE_RATE, 1);
        let apm = AudioProcessing::builder()
            .config(config.module_config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            config,
            out: vec![0; BLOCK],
            render_frames: 0,
            capture_frames: 0,
        }
    }

    /// What runs now.
    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// Switches parts on or off mid-call. A part switched on starts from scratch (the echo
    /// canceller needs about a second to converge again); parts left as they were keep their
    /// state.
    pub fn set_config(&mut self, config: ProcessingConfig) {
        if config != self.config {
            self.config = config;
            self.apm.apply_config(config.module_config());
        }
    }

    /// The buffering between a far-end frame given to [`Self::analyze_render`] and its sound
    /// reaching the microphone's samples given to [`Self::process_capture`] (playout queue, both
    /// devices' buffers). A hint: the canceller finds the acoustic delay itself. Clamped to
    /// 0–500 ms.
    pub fn set_stream_delay(&mut self, delay: Duration) {
        let ms = i32::try_from(delay.as_millis())
            .unwrap_or(i32::MAX)
            .min(500);
        // Clamping is reported as an error and the value is used anyway: nothing to do.
        let _ = self.apm.set_stream_delay_ms(ms);
    }

    /// Gives the echo canceller a frame of the far end's audio, as it is handed to the speaker.
    /// A no-op while echo cancellation is off.
    pub fn analyze_render(&mut self, frame: &AudioFrame) -> Result<()> {
        check_mono(frame)?;
        if !self.config.echo_cancellation {
            return Ok(());
        }
        for block in frame.samples.chunks_exact(BLOCK) {
            self.apm
                .process_render_i16(block, &mut self.out)
                .map_err(|e| MediaError::Codec(format!("audio processing (render): {e:?}")))?;
        }
        self.render_frames += 1;
        Ok(())
    }

    /// Processes a captured frame in place. With everything off the frame is left untouched.
    pub fn process_capture(&mut self, frame: &mut AudioFrame) -> Result<()> {
        check_mono(frame)?;
        if !self.config.any() {
            return Ok(());
        }
        for block in frame.samples.chunks_exact_mut(BLOCK) {
            self.apm
                .process_capture_i16(block, &mut self.out)
                .map_err(|e| MediaError::Codec(format!("audio processing (capture): {e:?}")))?;
            block.copy_from_slice(&self.out);
        }
        self.capture_frames += 1;
        Ok(())
    }

    /// The echo canceller's own view of how it is doing.
    pub fn stats(&self) -> ProcessingStats {
        let s = self.apm.statistics();
        ProcessingStats {
            erle_db: s.echo_return_loss_enhancement,
            erl_db: s.echo_return_loss,
            delay_ms: s.delay_ms,
            render_frames: self.render_frames,
            capture_frames: self.capture_frames,
        }
    }
}

fn check_mono(frame: &AudioFrame) -> Result<()> {
    check_frame(frame)?;
    if frame.channels != 1 {
        return Err(MediaError::Unsupported(format!(
            "audio processing takes mono frames, got {} channels",
            frame.channels
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> AudioFrame {
        AudioFrame::new(1, vec![value; AUDIO_FRAME_SAMPLES], 0).expect("a 20 ms frame")
    }

    #[test]
    fn everything_off_passes_the_signal_through_bit_for_bit() {
        let mut p = AudioProcessor::new(ProcessingConfig::OFF);
        let mut f = frame(1234);
        f.samples[7] = -32768;
        let before = f.clone();
        p.process_capture(&mut f).expect("processed");
        assert_eq!(f, before);
    }

    #[test]
    fn the_high_pass_filter_removes_dc() {
        let mut p = AudioProcessor::new(ProcessingConfig {
            high_pass: true,
            ..ProcessingConfig::OFF
        });
        let mut last = frame(0);
        for _ in 0..50 {
            last = frame(8000);
            p.process_capture(&mut last).expect("processed");
        }
        let mean = last.samples.iter().map(|&s| f64::from(s)).sum::<f64>() / BLOCK as f64 / 2.0;
        assert!(mean.abs() < 200.0, "DC left after 1 s: {mean}");
    }

    #[test]
    fn stereo_and_short_frames_are_refused_with_a_code() {
        let mut p = AudioProcessor::new(ProcessingConfig::ALL);
        let mut stereo = AudioFrame::silence(2, 0).expect("stereo");
        let err = p.process_capture(&mut stereo).expect_err("stereo refused");
        assert_eq!(err.code(), "unsupported_format");
        let mut short = frame(0);
        short.samples.truncate(100);
        assert_eq!(
            p.analyze_render(&short).expect_err("short refused").code(),
            "truncated"
        );
        assert_eq!(p.stats().capture_frames, 0);
    }
}
