//! Raw media as it flows between sources, codecs and sinks.

use crate::error::{MediaError, Result};

/// Largest frame side we accept anywhere (8K). Bounds every allocation made from outside input.
pub const MAX_DIMENSION: u32 = 8192;

/// The RTP clock rate of video (RFC 3551): 90 kHz.
pub const VIDEO_RTP_CLOCK_HZ: u64 = 90_000;

/// A planar YUV 4:2:0 (I420) picture with its timestamps.
///
/// Width and height are even (every camera format and VP8 stream we produce is), so the chroma
/// planes are exactly `width/2 × height/2`. Planes are tightly packed (stride = width).
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    /// Y plane, then U, then V: `width*height*3/2` bytes.
    data: Vec<u8>,
    /// Capture time, microseconds on the media clock (see [`crate::clock`]).
    pub capture_us: u64,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("capture_us", &self.capture_us)
            .finish_non_exhaustive()
    }
}

/// Checks that `width × height` is a size a [`VideoFrame`] can have.
pub fn check_dimensions(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(MediaError::InvalidSize(format!(
            "{width}x{height}: zero side"
        )));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(MediaError::InvalidSize(format!(
            "{width}x{height}: I420 needs even width and height"
        )));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(MediaError::InvalidSize(format!(
            "{width}x{height}: larger than {MAX_DIMENSION}"
        )));
    }
    Ok(())
}

/// Bytes of an I420 picture of this size (after [`check_dimensions`]).
pub fn i420_len(width: u32, height: u32) -> usize {
    let luma = width as usize * height as usize;
    luma + luma / 2
}

impl VideoFrame {
    /// A black frame.
    pub fn black(width: u32, height: u32, capture_us: u64) -> Result<Self> {
        check_dimensions(width, height)?;
        let luma = width as usize * height as usize;
        let mut data = vec![16u8; luma];
        data.resize(luma + luma / 2, 128);
        Ok(Self {
            width,
            height,
            data,
            capture_us,
        })
    }

    /// Wraps tightly packed I420 bytes; fails unless `data` has exactly the right length.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>, capture_us: u64) -> Result<Self> {
        check_dimensions(width, height)?;
        let want = i420_len(width, height);
        if data.len() != want {
            return Err(MediaError::Truncated(format!(
                "I420 {width}x{height} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
            capture_us,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// All three planes, Y then U then V.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The frame's bytes, consuming it.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }
    /// The U (Cb) plane.
    pub fn u(&self) -> &[u8] {
        let l = self.luma_len();
        &self.data[l..l + l / 4]
    }
    /// The V (Cr) plane.
    pub fn v(&self) -> &[u8] {
        let l = self.luma_len();
        &self.data[l + l / 4..]
    }
    /// Mutable access to the three planes (Y, U, V).
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let l = self.luma_len();
        let (y, uv) = self.data.split_at_mut(l);
        let (u, v) = uv.split_at_mut(l / 4);
        (y, u, v)
    }
    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// The capture time as an RTP timestamp on the 90 kHz video clock (wrapping, as RTP does).
    pub fn rtp_timestamp(&self) -> u32 {
        // In u128 the product cannot overflow; truncating to u32 is the point (RTP wraps at 2^32).
        (u128::from(self.capture_us) * u128::from(VIDEO_RTP_CLOCK_HZ) / 1_000_000) as u32
    }
}

/// Peak signal-to-noise ratio of the luma planes of two frames of the same size, in dB
/// (`f64::INFINITY` when identical). Used to judge codec round trips.
pub fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> Result<f64> {
    if a.width != b.width || a.height != b.height {
        return Err(MediaError::InvalidSize(format!(
            "psnr of {}x{} against {}x{}",
            a.width, a.height, b.width, b.height
        )));
    }
    let sse: u64 = a
        .y()
        .iter()
        .zip(b.y())
        .map(|(&p, &q)| {
            let d = u64::from(p.abs_diff(q));
            d * d
        })
        .sum();
    if sse == 0 {
        return Ok(f64::INFINITY);
    }
    let mse = sse as f64 / a.y().len() as f64;
    Ok(10.0 * (255.0 * 255.0 / mse).log10())
}

/// Audio sample rate used everywhere in Dyad (Opus's native rate).
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// Audio frame length: 20 ms.
pub const AUDIO_FRAME_MS: u32 = 20;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const AUDIO_FRAME_SAMPLES: usize = (AUDIO_SAMPLE_RATE / 1000 * AUDIO_FRAME_MS) as usize;

/// 20 ms of 48 kHz signed 16-bit PCM, interleaved when stereo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// `AUDIO_FRAME_SAMPLES * channels` samples.
    pub samples: Vec<i16>,
    /// Capture time of the first sample, microseconds on the media clock.
    pub capture_us: u64,
}

impl AudioFrame {
    /// A frame of silence.
    pub fn silence(channels: u16, capture_us: u64) -> Result<Self> {
        check_channels(channels)?;
        Ok(Self {
            channels,
            samples: vec![0; AUDIO_FRAME_SAMPLES * usize::from(channels)],
            capture_us,
        })
    }

    /// Wraps samples; fails unless there are exactly 20 ms of them.
    pub fn new(channels: u16, samples: Vec<i16>, capture_us: u64) -> Result<Self> {
        check_channels(channels)?;
        let want = AUDIO_FRAME_SAMPLES * usize::from(channels);
        if samples.len() != want {
            return Err(MediaError::Truncated(format!(
                "20 ms of {channels}-channel audio is {want} samples, got {}",
                samples.len()
            )));
        }
        Ok(Self {
            channels,
            samples,
            capture_us,
        })
    }

    /// Root-mean-square level of the frame in dBFS (−inf for digital silence).
    pub fn level_dbfs(&self) -> f64 {
        rms_dbfs(&self.samples)
    }
}

/// RMS level of `samples` in dBFS (full scale sine = −3 dBFS).
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    20.0 * (rms / 32768.0).log10()
}

/// Checks an audio channel count (1 or 2).
pub fn check_channels(channels: u16) -> Result<()> {
    match channels {
        1 | 2 => Ok(()),
        n => Err(MediaError::Config(format!(
            "{n} audio channels: only 1 or 2"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(
            check_dimensions(0, 480).map_err(|e| e.code()),
            Err("invalid_size")
        );
        assert_eq!(
            check_dimensions(641, 480).map_err(|e| e.code()),
            Err("invalid_size")
        );
        assert_eq!(
            check_dimensions(640, 9000).map_err(|e| e.code()),
            Err("invalid_size")
        );
        assert!(check_dimensions(640, 480).is_ok());
        let short = VideoFrame::from_i420(4, 4, vec![0; 23], 0);
        assert_eq!(short.map_err(|e| e.code()).err(), Some("truncated"));
    }

    #[test]
    fn planes_split_where_i420_says() {
        let mut f = VideoFrame::black(4, 2, 0).expect("valid size");
        assert_eq!((f.y().len(), f.u().len(), f.v().len()), (8, 2, 2));
        let (_, u, v) = f.planes_mut();
        u[0] = 1;
        v[1] = 2;
        assert_eq!(f.data()[8..], [1, 128, 128, 2]);
    }

    #[test]
    fn rtp_timestamp_is_90khz_and_wraps() {
        let mut f = VideoFrame::black(2, 2, 1_000_000).expect("valid size");
        assert_eq!(f.rtp_timestamp(), 90_000);
        f.capture_us += 50_000; // 50 ms = 4500 ticks
        assert_eq!(f.rtp_timestamp(), 94_500);
        // 2^32 ticks of 90 kHz later the timestamp is where it was.
        f.capture_us = 1_000_000 + (1u64 << 32) * 1_000_000 / 90_000;
        assert!(f.rtp_timestamp().abs_diff(90_000) <= 1);
    }

    #[test]
    fn psnr_of_identical_is_infinite_and_of_offset_is_finite() {
        let a = VideoFrame::black(16, 16, 0).expect("valid size");
        let mut b = a.clone();
        assert_eq!(psnr_y(&a, &b).ok(), Some(f64::INFINITY));
        b.planes_mut().0[0] = 26; // one pixel off by 10
        let p = psnr_y(&a, &b).expect("same size");
        assert!((p - 10.0 * (255.0f64 * 255.0 * 256.0 / 100.0).log10()).abs() < 1e-9);
    }

    #[test]
    fn audio_frames_have_exactly_20ms() {
        assert!(AudioFrame::new(1, vec![0; 960], 0).is_ok());
        assert_eq!(
            AudioFrame::new(2, vec![0; 960], 0)
                .map_err(|e| e.code())
                .err(),
            Some("truncated")
        );
        assert_eq!(
            AudioFrame::silence(3, 0).map_err(|e| e.code()).err(),
            Some("invalid_config")
        );
        assert_eq!(
            AudioFrame::silence(1, 0).map(|f| f.level_dbfs()).ok(),
            Some(f64::NEG_INFINITY)
        );
    }
}
