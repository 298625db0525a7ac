//! Sample-rate conversion for devices that do not run at 48 kHz (a 44.1 kHz USB headset, a
//! 16 kHz Bluetooth one): rubato's asynchronous polynomial resampler, the one its authors name
//! for voice calls (cheap, and the aliasing it allows is far below what Opus keeps at 32 kbit/s).
//!
//! [`RateConverter`] works on our interleaved i16 samples. For a microphone it gives exactly one
//! 20 ms frame at 48 kHz per call and says how many device frames it needs for it
//! ([`RateConverter::input_frames_next`]); for a speaker it takes one 20 ms frame and gives what
//! the device rate makes of it.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler};

use crate::error::{MediaError, Result};
use crate::frame::AUDIO_FRAME_SAMPLES;

/// Which side of the conversion is one 20 ms frame at 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// Device rate in, 960 frames at 48 kHz out (a microphone).
    Output,
    /// 960 frames at 48 kHz in, device rate out (a speaker).
    Input,
}

/// Converts a stream of interleaved i16 between two rates, one chunk per call.
pub struct RateConverter {
    inner: Async<f32>,
    channels: usize,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for RateConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateConverter")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl RateConverter {
    /// `channels` interleaved channels from `from_hz` to `to_hz`; the `fixed` side is one
    /// 20 ms frame at 48 kHz.
    pub fn new(from_hz: u32, to_hz: u32, channels: u16, fixed: Fixed) -> Result<Self> {
        if from_hz == 0 || to_hz == 0 || channels == 0 {
            return Err(MediaError::Config(format!(
                "resampling {from_hz} Hz to {to_hz} Hz, {channels} channels"
            )));
        }
        let ratio = f64::from(to_hz) / f64::from(from_hz);
        let side = match fixed {
            Fixed::Output => FixedAsync::Output,
            Fixed::Input => FixedAsync::Input,
        };
        let inner = Async::<f32>::new_poly(
            ratio,
            1.0,
            PolynomialDegree::Cubic,
            AUDIO_FRAME_SAMPLES,
            usize::from(channels),
            side,
        )
        .map_err(|e| MediaError::Config(format!("resampler {from_hz} → {to_hz} Hz: {e}")))?;
        let channels = usize::from(channels);
        Ok(Self {
            input: vec![0.0; inner.input_frames_max() * channels],
            output: vec![0.0; inner.output_frames_max() * channels],
            inner,
            channels,
        })
    }

    /// Frames (per channel) the next [`Self::process`] takes.
    pub fn input_frames_next(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// Converts exactly [`Self::input_frames_next`] interleaved frames from `input` and appends
    /// the result to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<()> {
        let frames = self.inner.input_frames_next();
        if input.len() != frames * self.channels {
            return Err(MediaError::Truncated(format!(
                "the resampler takes {frames} frames of {} channels, got {} samples",
                self.channels,
                input.len()
            )));
        }
        for (d, s) in self.input.iter_mut().zip(input) {
            *d = f32::from(*s) / 32768.0;
        }
        let err = |e: &dyn std::fmt::Display| MediaError::Codec(format!("resampling: {e}"));
        let capacity = self.output.len() / self.channels;
        let src = InterleavedSlice::new(&self.input[..input.len()], self.channels, frames)
            .map_err(|e| err(&e))?;
        let mut dst = InterleavedSlice::new_mut(&mut self.output, self.channels, capacity)
            .map_err(|e| err(&e))?;
        let (_, written) = self
            .inner
            .process_into_buffer(&src, &mut dst, None)
            .map_err(|e| err(&e))?;
        out.extend(
            self.output[..written * self.channels]
                .iter()
                .map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, frames: usize, start: usize) -> Vec<i16> {
        (start..start + frames)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.25 * 32767.0 * (std::f64::consts::TAU * hz * t).sin()) as i16
            })
            .collect()
    }

    /// (frequency by zero crossings, RMS dBFS) of mono samples at `rate`.
    fn measure(s: &[i16], rate: u32) -> (f64, f64) {
        let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let hz = crossings as f64 / 2.0 / (s.len() as f64 / f64::from(rate));
        let rms = (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
        (hz, 20.0 * (rms / 32768.0).log10())
    }

    #[test]
    fn a_44_1_khz_microphone_gives_20_ms_frames_at_48_khz_with_its_tone_kept() {
        let mut r = RateConverter::new(44_100, 48_000, 1, Fixed::Output).expect("resampler");
        let (mut consumed, mut out) = (0, Vec::new());
        for _ in 0..100 {
            let n = r.input_frames_next();
            let before = out.len();
            r.process(&tone(44_100, 1000.0, n, consumed), &mut out)
                .expect("process");
            assert_eq!(
                out.len() - before,
                AUDIO_FRAME_SAMPLES,
                "one 20 ms frame per call"
            );
            consumed += n;
        }
        // 2 s out took 2 s in (give or take the resampler's delay).
        assert!(
            (consumed as i64 - 88_200).abs() < 200,
            "{consumed} frames in"
        );
        let (hz, db) = measure(&out[9_600..], 48_000);
        assert!((hz - 1000.0).abs() < 2.0, "{hz} Hz");
        assert!((db - (-15.05)).abs() < 0.5, "{db} dBFS");
    }

    #[test]
    fn a_16_khz_stereo_speaker_gets_its_share_of_each_frame() {
        let mut r = RateConverter::new(48_000, 16_000, 2, Fixed::Input).expect("resampler");
        let mut out = Vec::new();
        for k in 0..50 {
            let mono = tone(48_000, 440.0, AUDIO_FRAME_SAMPLES, k * AUDIO_FRAME_SAMPLES);
            let stereo: Vec<i16> = mono.iter().flat_map(|&v| [v, v]).collect();
            r.process(&stereo, &mut out).expect("process");
        }
        // 1 s in: about 16 000 frames out, the tone still at 440 Hz on both channels.
        let frames = out.len() / 2;
        assert!((frames as i64 - 16_000).abs() < 400, "{frames} frames");
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let (hz, _) = measure(&left[1_600..], 16_000);
        assert!((hz - 440.0).abs() < 2.0, "{hz} Hz");
    }

    #[test]
    fn wrong_sizes_and_rates_are_errors_not_panics() {
        assert_eq!(
            RateConverter::new(0, 48_000, 1, Fixed::Output)
                .expect_err("zero rate")
                .code(),
            "invalid_config"
        );
        let mut r = RateConverter::new(44_100, 48_000, 1, Fixed::Output).expect("resampler");
        let mut out = Vec::new();
        assert_eq!(
            r.process(&[0; 7], &mut out).expect_err("short").code(),
            "truncated"
        );
        assert!(out.is_empty());
    }
}
