//! Audio sources and sinks: synthetic signals, an in-memory recorder, and real devices over cpal.
//!
//! Every source yields 20 ms frames of 48 kHz i16 PCM ([`AudioFrame`]). The synthetic sources
//! ([`Silence`], [`Tone`], [`SpeechLike`]) read their [`SharedClock`] once, at construction, and
//! stamp frame `n` with `start_us + n × 20 ms`; they never sleep (hold them to real time with
//! [`crate::Pacer`]). [`Microphone`] and [`Speaker`] are the I/O edge: the cpal callback thread and
//! the caller meet in a bounded ring, so a slow consumer loses the oldest audio instead of growing
//! a queue (latency beats smoothness), and a missing or failing device is a [`MediaError`], never a
//! panic or a hang.

use std::collections::VecDeque;
use std::f64::consts::TAU;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::clock::SharedClock;
use crate::error::{MediaError, Result};
use crate::frame::{check_channels, AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};
use crate::resample::{Fixed, RateConverter};
use crate::source::{AudioSink, AudioSource};

/// Microseconds in one 20 ms frame.
const FRAME_US: u64 = 20_000;

/// Checks that a frame's sample count matches its channel count (its fields are public).
pub(crate) fn check_frame(frame: &AudioFrame) -> Result<()> {
    check_channels(frame.channels)?;
    let want = AUDIO_FRAME_SAMPLES * usize::from(frame.channels);
    if frame.samples.len() != want {
        return Err(MediaError::Truncated(format!(
            "20 ms of {}-channel audio is {want} samples, got {}",
            frame.channels,
            frame.samples.len()
        )));
    }
    Ok(())
}

/// Frame timestamps of a synthetic source: `start_us + n × 20 ms`.
#[derive(Debug, Clone, Copy)]
struct FrameStamps {
    start_us: u64,
    index: u64,
}

impl FrameStamps {
    fn new(clock: &SharedClock) -> Self {
        Self {
            start_us: clock.now_us(),
            index: 0,
        }
    }

    fn next(&mut self) -> u64 {
        let us = self
            .start_us
            .saturating_add(self.index.saturating_mul(FRAME_US));
        self.index += 1;
        us
    }
}

/// Writes one mono sample value to every channel of an interleaved buffer.
fn push_all_channels(out: &mut Vec<i16>, value: i16, channels: u16) {
    for _ in 0..channels {
        out.push(value);
    }
}

/// Converts a sample in [−1, 1] to i16, saturating.
fn to_i16(x: f64) -> i16 {
    // The clamp keeps the value inside i16's range, so the cast only drops the fraction.
    (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

// ---------------------------------------------------------------------------------------------
// Synthetic sources

/// Digital silence.
#[derive(Debug)]
pub struct Silence {
    channels: u16,
    stamps: FrameStamps,
}

impl Silence {
    /// A silent source with `channels` (1 or 2) channels, timed from `clock`'s current reading.
    pub fn new(channels: u16, clock: SharedClock) -> Result<Self> {
        check_channels(channels)?;
        Ok(Self {
            channels,
            stamps: FrameStamps::new(&clock),
        })
    }
}

impl AudioSource for Silence {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn next_frame(&mut self) -> Result<AudioFrame> {
        AudioFrame::silence(self.channels, self.stamps.next())
    }
}

/// A pure sine tone, phase-continuous across frames, the same on every channel.
#[derive(Debug)]
pub struct Tone {
    channels: u16,
    stamps: FrameStamps,
    /// Phase step per sample, radians.
    step: f64,
    /// Peak amplitude in [0, 1].
    amplitude: f64,
    /// Current phase, radians in [0, 2π).
    phase: f64,
}

impl Tone {
    /// A tone of `freq_hz` (above 0, below 24 kHz) at `level_dbfs` (−100 to −3).
    ///
    /// The level is RMS relative to full scale as [`crate::frame::rms_dbfs`] measures it, so a
    /// frame of this tone reports `level_dbfs()` ≈ `level_dbfs` (a full-scale sine is −3 dBFS).
    pub fn new(channels: u16, clock: SharedClock, freq_hz: f64, level_dbfs: f64) -> Result<Self> {
        check_channels(channels)?;
        let nyquist = f64::from(AUDIO_SAMPLE_RATE) / 2.0;
        if !(freq_hz > 0.0 && freq_hz < nyquist) {
            return Err(MediaError::Config(format!(
                "tone of {freq_hz} Hz: must be above 0 and below {nyquist} Hz"
            )));
        }
        if !(-100.0..=-3.0).contains(&level_dbfs) {
            return Err(MediaError::Config(format!(
                "tone level {level_dbfs} dBFS: must be between -100 and -3"
            )));
        }
        Ok(Self {
            channels,
            stamps: FrameStamps::new(&clock),
            step: TAU * freq_hz / f64::from(AUDIO_SAMPLE_RATE),
            amplitude: 10f64.powf(level_dbfs / 20.0) * std::f64::consts::SQRT_2,
            phase: 0.0,
        })
    }
}

impl AudioSource for Tone {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn next_frame(&mut self) -> Result<AudioFrame> {
        let mut samples = Vec::with_capacity(AUDIO_FRAME_SAMPLES * usize::from(self.channels));
        for _ in 0..AUDIO_FRAME_SAMPLES {
            push_all_channels(
                &mut samples,
                to_i16(self.amplitude * self.phase.sin()),
                self.channels,
            );
            self.phase = (self.phase + self.step) % TAU;
        }
        AudioFrame::new(self.channels, samples, self.stamps.next())
    }
}

/// xorshift64*: a small, deterministic pseudo-random generator (not for cryptography).
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // The all-zero state is a fixed point of xorshift; any other constant will do.
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Number of harmonics of the pitch in a [`SpeechLike`] syllable.
const SPEECH_HARMONICS: usize = 6;

/// What a [`SpeechLike`] source is producing right now.
#[derive(Debug, Clone)]
enum Segment {
    /// A voiced "syllable": harmonics of a gliding pitch under a smooth envelope.
    Syllable {
        pos: u32,
        len: u32,
        f0_start: f64,
        f0_end: f64,
        gain: f64,
        weights: [f64; SPEECH_HARMONICS],
    },
    /// Near-silence (faint noise, around −75 dBFS).
    Pause { pos: u32, len: u32 },
}

/// A deterministic speech-like signal, for tests of DTX, levels and loss.
///
/// Syllables of 150–400 ms (a few harmonics of a pitch gliding within 100–250 Hz, under a smooth
/// envelope, peaking around −10 dBFS) alternate with pauses of 100–300 ms of faint noise (about
/// −75 dBFS). Everything is drawn from a PRNG seeded by `seed`: two sources with the same seed
/// yield the same samples.
#[derive(Debug)]
pub struct SpeechLike {
    channels: u16,
    stamps: FrameStamps,
    rng: XorShift,
    segment: Segment,
    /// Pitch phase, radians in [0, 2π).
    phase: f64,
    /// The next segment is a syllable (they alternate).
    next_is_syllable: bool,
}

impl SpeechLike {
    /// A speech-like source; the same `seed` always gives the same signal.
    pub fn new(channels: u16, clock: SharedClock, seed: u64) -> Result<Self> {
        check_channels(channels)?;
        let mut source = Self {
            channels,
            stamps: FrameStamps::new(&clock),
            rng: XorShift::new(seed),
            segment: Segment::Pause { pos: 0, len: 0 },
            phase: 0.0,
            next_is_syllable: true,
        };
        source.start_segment();
        Ok(source)
    }

    fn ms_to_samples(ms: f64) -> u32 {
        // At most 400 ms × 48 samples: far inside u32.
        (ms * f64::from(AUDIO_SAMPLE_RATE) / 1000.0) as u32
    }

    fn start_segment(&mut self) {
        self.segment = if self.next_is_syllable {
            let mut weights = [0.0; SPEECH_HARMONICS];
            for (k, w) in weights.iter_mut().enumerate() {
                // Roughly 1/k, varied per syllable like a changing vowel.
                *w = self.rng.range(0.5, 1.0) / (k as f64 + 1.0);
            }
            Segment::Syllable {
                pos: 0,
                len: Self::ms_to_samples(self.rng.range(150.0, 400.0)),
                f0_start: self.rng.range(100.0, 250.0),
                f0_end: self.rng.range(100.0, 250.0),
                gain: self.rng.range(0.6, 1.0),
                weights,
            }
        } else {
            Segment::Pause {
                pos: 0,
                len: Self::ms_to_samples(self.rng.range(100.0, 300.0)),
            }
        };
        self.next_is_syllable = !self.next_is_syllable;
    }

    fn next_sample(&mut self) -> f64 {
        let value = match &mut self.segment {
            Segment::Syllable {
                pos,
                len,
                f0_start,
                f0_end,
                gain,
                weights,
            } => {
                let t = f64::from(*pos) / f64::from(*len);
                let f0 = *f0_start + (*f0_end - *f0_start) * t;
                self.phase = (self.phase + TAU * f0 / f64::from(AUDIO_SAMPLE_RATE)) % TAU;
                let envelope = (std::f64::consts::PI * t).sin();
                let voiced: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * ((k as f64 + 1.0) * self.phase).sin())
                    .sum();
                *pos += 1;
                // Harmonic weights sum to at most 2.45, so the peak stays below 0.8 of full scale.
                0.32 * *gain * envelope * voiced
            }
            Segment::Pause { pos, .. } => {
                *pos += 1;
                self.rng.range(-0.0003, 0.0003)
            }
        };
        let done = match &self.segment {
            Segment::Syllable { pos, len, .. } | Segment::Pause { pos, len } => pos >= len,
        };
        if done {
            self.start_segment();
        }
        value
    }
}

impl AudioSource for SpeechLike {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn next_frame(&mut self) -> Result<AudioFrame> {
        let mut samples = Vec::with_capacity(AUDIO_FRAME_SAMPLES * usize::from(self.channels));
        for _ in 0..AUDIO_FRAME_SAMPLES {
            let value = to_i16(self.next_sample());
            push_all_channels(&mut samples, value, self.channels);
        }
        AudioFrame::new(self.channels, samples, self.stamps.next())
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory sink

/// Records played frames in memory, keeping the most recent `max_frames` and counting the rest.
#[derive(Debug)]
pub struct MemorySink {
    frames: VecDeque<AudioFrame>,
    max_frames: usize,
    dropped: u64,
}

impl MemorySink {
    /// A sink that keeps at most `max_frames` (≥ 1) frames.
    pub fn new(max_frames: usize) -> Result<Self> {
        if max_frames == 0 {
            return Err(MediaError::Config(
                "memory sink must keep at least one frame".into(),
            ));
        }
        Ok(Self {
            frames: VecDeque::with_capacity(max_frames.min(1024)),
            max_frames,
            dropped: 0,
        })
    }

    /// The frames kept, oldest first.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &AudioFrame> {
        self.frames.iter()
    }

    /// How many frames are kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing has been kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How many of the oldest frames were discarded because the sink was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// All kept samples, oldest first, interleaved as played.
    pub fn samples(&self) -> Vec<i16> {
        self.frames
            .iter()
            .flat_map(|f| f.samples.iter().copied())
            .collect()
    }

    /// Removes and returns the kept frames, oldest first.
    pub fn take(&mut self) -> Vec<AudioFrame> {
        self.frames.drain(..).collect()
    }
}

impl AudioSink for MemorySink {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        check_frame(frame)?;
        if self.frames.len() == self.max_frames {
            self.frames.pop_front();
            self.dropped += 1;
        }
        self.frames.push_back(frame.clone());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Real devices (cpal)

/// How long [`Microphone::next_frame`] waits for the device before giving up.
pub const MIC_TIMEOUT: Duration = Duration::from_secs(1);
/// Audio the microphone ring holds before it drops the oldest: 500 ms.
const MIC_RING_MS: usize = 500;
/// Audio the speaker queue may hold before it drops the oldest: 200 ms.
pub const SPEAKER_MAX_QUEUE_MS: usize = 200;
/// How long cpal's worker may wait on the device in one poll before reporting an error.
const CPAL_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// One audio device as cpal sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDeviceInfo {
    /// Stable id to pass to [`Microphone::open`] / [`Speaker::open`] (`host:device`, e.g.
    /// `alsa:hw:CARD=0,DEV=0`).
    pub id: String,
    /// Name for people.
    pub name: String,
    /// The device can capture.
    pub is_input: bool,
    /// The device can play.
    pub is_output: bool,
    /// The host's default capture device.
    pub is_default_input: bool,
    /// The host's default playback device.
    pub is_default_output: bool,
}

/// Maps a cpal failure to our error; `context` says what we were doing.
pub(crate) fn media_error_from_cpal(context: &str, err: &cpal::Error) -> MediaError {
    use cpal::ErrorKind as K;
    let text = format!("{context}: {err}");
    match err.kind() {
        K::DeviceNotAvailable | K::HostUnavailable => MediaError::NoDevice(text),
        K::DeviceBusy => MediaError::DeviceBusy(text),
        K::UnsupportedConfig | K::UnsupportedOperation => MediaError::Unsupported(text),
        K::InvalidInput => MediaError::Config(text),
        K::PermissionDenied
        | K::DeviceChanged
        | K::RealtimeDenied
        | K::ResourceExhausted
        | K::StreamInvalidated
        | K::Xrun
        | K::BackendError
        | K::Other => MediaError::Device(text),
        _ => MediaError::Device(text),
    }
}

/// Stream errors after which audio keeps flowing (a glitch, a reroute, no real-time priority).
fn is_transient(err: &cpal::Error) -> bool {
    matches!(
        err.kind(),
        cpal::ErrorKind::Xrun | cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied
    )
}

/// The usable audio hosts, the platform default first. `cpal::default_host()` panics when its
/// last-resort host cannot start; this does not.
fn hosts() -> Vec<cpal::Host> {
    cpal::available_hosts()
        .into_iter()
        .filter_map(|id| cpal::host_from_id(id).ok())
        .collect()
}

fn device_id_string(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.to_string())
}

/// Every audio device of every usable host; the defaults are those of the first (platform default)
/// host.
pub fn list_audio_devices() -> Result<Vec<AudioDeviceInfo>> {
    let hosts = hosts();
    if hosts.is_empty() {
        return Err(MediaError::NoDevice("no audio host is available".into()));
    }
    let mut out = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let (default_in, default_out) = if i == 0 {
            (
                host.default_input_device()
                    .as_ref()
                    .and_then(device_id_string),
                host.default_output_device()
                    .as_ref()
                    .and_then(device_id_string),
            )
        } else {
            (None, None)
        };
        let devices = host
            .devices()
            .map_err(|e| media_error_from_cpal("listing audio devices", &e))?;
        for device in devices {
            let Some(id) = device_id_string(&device) else {
                continue;
            };
            let name = device
                .description()
                .map(|d| d.name().to_owned())
                .unwrap_or_else(|_| id.clone());
            out.push(AudioDeviceInfo {
                is_input: device.supports_input(),
                is_output: device.supports_output(),
                is_default_input: default_in.as_deref() == Some(id.as_str()),
                is_default_output: default_out.as_deref() == Some(id.as_str()),
                id,
                name,
            });
        }
    }
    Ok(out)
}

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

/// Finds the device with `id` (a string from [`list_audio_devices`]), or the default one.
fn find_device(id: Option<&str>, direction: Direction) -> Result<cpal::Device> {
    let noun = direction.noun();
    match id {
        Some(id) => {
            let parsed: cpal::DeviceId = id
                .parse()
                .map_err(|_| MediaError::NoDevice(format!("no {noun} with id {id:?}")))?;
            let host = cpal::host_from_id(parsed.host())
                .map_err(|e| media_error_from_cpal(&format!("audio host of {id:?}"), &e))?;
            host.device_by_id(&parsed)
                .ok_or_else(|| MediaError::NoDevice(format!("no {noun} with id {id:?}")))
        }
        None => {
            let host = hosts()
                .into_iter()
                .next()
                .ok_or_else(|| MediaError::NoDevice("no audio host is available".into()))?;
            let device = match direction {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            };
            device.ok_or_else(|| MediaError::NoDevice(format!("no default {noun}")))
        }
    }
}

/// Sample formats we convert from/to, best first.
const FORMATS: [cpal::SampleFormat; 3] = [
    cpal::SampleFormat::F32,
    cpal::SampleFormat::I16,
    cpal::SampleFormat::I32,
];

/// Picks a configuration: 48 kHz when any range offers it, else the rate nearest to it (the
/// stream is then resampled, [`crate::resample`]); within that, the wanted channel count if
/// offered, else the fewest channels above it, else mono; float before i16 before i32. Returns
/// the range and the rate.
fn pick_config(
    ranges: &[cpal::SupportedStreamConfigRange],
    channels: u16,
) -> Option<(cpal::SupportedStreamConfigRange, u32)> {
    let rate_of = |r: &cpal::SupportedStreamConfigRange| {
        AUDIO_SAMPLE_RATE.clamp(r.min_sample_rate(), r.max_sample_rate())
    };
    ranges
        .iter()
        .filter(|r| r.channels() > 0 && r.min_sample_rate() <= r.max_sample_rate())
        .filter_map(|r| {
            let format_rank = FORMATS.iter().position(|f| *f == r.sample_format())?;
            let channel_rank = if r.channels() == channels {
                0
            } else if r.channels() > channels {
                usize::from(r.channels())
            } else {
                usize::from(u16::MAX)
            };
            let rate = rate_of(r);
            Some((
                (rate.abs_diff(AUDIO_SAMPLE_RATE), channel_rank, format_rank),
                r,
            ))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, r)| (*r, rate_of(r)))
}

fn choose_config(
    device: &cpal::Device,
    direction: Direction,
    channels: u16,
) -> Result<(cpal::StreamConfig, cpal::SampleFormat)> {
    let noun = direction.noun();
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => device
            .supported_input_configs()
            .map(|r| r.collect())
            .map_err(|e| media_error_from_cpal(&format!("opening {noun}"), &e))?,
        Direction::Output => device
            .supported_output_configs()
            .map(|r| r.collect())
            .map_err(|e| media_error_from_cpal(&format!("opening {noun}"), &e))?,
    };
    let Some((range, rate)) = pick_config(&ranges, channels) else {
        return Err(MediaError::Unsupported(format!(
            "{noun} offers no f32/i16/i32 configuration"
        )));
    };
    let config = cpal::StreamConfig {
        channels: range.channels(),
        sample_rate: rate,
        buffer_size: cpal::BufferSize::Default,
    };
    Ok((config, range.sample_format()))
}

/// Samples a ring holds for `ms` of `channels`-channel audio at `rate`.
fn ring_capacity(rate: u32, channels: u16, ms: usize) -> usize {
    // Whole frames: trimming the oldest must never split a stereo frame.
    rate as usize * ms / 1000 * usize::from(channels)
}

/// The ring shared by a cpal callback and the caller.
#[derive(Debug)]
struct Ring {
    /// Interleaved samples in the caller's channel layout.
    samples: VecDeque<i16>,
    /// Most samples kept; beyond that the oldest go.
    capacity: usize,
    /// Samples discarded because the ring was full.
    dropped: u64,
    /// Samples the device took (speaker) — with `dropped` and what is queued, every sample
    /// pushed is accounted for.
    played: u64,
    /// A stream error after which no more audio will come.
    fatal: Option<cpal::Error>,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
            played: 0,
            fatal: None,
        }
    }

    /// Appends, then drops the oldest samples beyond capacity. Capacity and every push are whole
    /// multiples of the channel count, so only whole sample frames go.
    fn push(&mut self, samples: impl IntoIterator<Item = i16>) {
        self.samples.extend(samples);
        let excess = self.samples.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.samples.drain(..excess);
            self.dropped += excess as u64;
        }
    }
}

#[derive(Debug)]
struct Shared {
    ring: Mutex<Ring>,
    ready: Condvar,
}

impl Shared {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            ring: Mutex::new(Ring::new(capacity)),
            ready: Condvar::new(),
        })
    }

    /// Locks the ring. A panic elsewhere while holding the lock leaves a ring that is still
    /// consistent (plain samples), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error_callback(self: &Arc<Self>) -> impl FnMut(cpal::Error) + Send + 'static {
        let shared = Arc::clone(self);
        move |err| {
            if !is_transient(&err) {
                shared.lock().fatal = Some(err);
                shared.ready.notify_all();
            }
        }
    }
}

/// Maps one device frame (`device_channels` samples) to `channels` (1 or 2) samples.
fn map_input_frame(frame: &[i16], channels: u16, out: &mut Vec<i16>) {
    match (channels, frame) {
        (_, []) => {}
        (1, _) => {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            // The mean of i16 values is an i16.
            out.push((sum / frame.len() as i32) as i16);
        }
        (_, [only]) => out.extend([*only, *only]),
        (_, [left, right, ..]) => out.extend([*left, *right]),
    }
}

/// Writes one of our frames (`channels` samples) into one device frame.
fn map_output_frame(ours: &[i16], device_frame: &mut [i16]) {
    match ours {
        [mono] => device_frame.fill(*mono),
        [left, right] => match device_frame {
            [only] => *only = ((i32::from(*left) + i32::from(*right)) / 2) as i16,
            [l, r, rest @ ..] => {
                *l = *left;
                *r = *right;
                rest.fill(0);
            }
            [] => {}
        },
        _ => device_frame.fill(0),
    }
}

fn build_input<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: u16,
    shared: &Arc<Shared>,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample,
    i16: cpal::FromSample<T>,
{
    let device_channels = usize::from(config.channels);
    let cb_shared = Arc::clone(shared);
    let mut frame = Vec::with_capacity(device_channels);
    let mut mapped = Vec::new();
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            mapped.clear();
            for chunk in data.chunks_exact(device_channels) {
                frame.clear();
                frame.extend(chunk.iter().map(|s| s.to_sample::<i16>()));
                map_input_frame(&frame, channels, &mut mapped);
            }
            cb_shared.lock().push(mapped.iter().copied());
            cb_shared.ready.notify_all();
        },
        shared.error_callback(),
        Some(CPAL_POLL_TIMEOUT),
    )
}

fn build_output<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: u16,
    shared: &Arc<Shared>,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample + cpal::FromSample<i16>,
{
    let device_channels = usize::from(config.channels);
    let ours = usize::from(channels);
    let cb_shared = Arc::clone(shared);
    let mut ours_frame = vec![0i16; ours];
    let mut device_frame = vec![0i16; device_channels];
    device.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            let mut ring = cb_shared.lock();
            for out in data.chunks_exact_mut(device_channels) {
                for s in ours_frame.iter_mut() {
                    // An empty queue plays silence (an underrun, not an error).
                    *s = match ring.samples.pop_front() {
                        Some(v) => {
                            ring.played += 1;
                            v
                        }
                        None => 0,
                    };
                }
                map_output_frame(&ours_frame, &mut device_frame);
                for (o, s) in out.iter_mut().zip(&device_frame) {
                    *o = T::from_sample(*s);
                }
            }
        },
        shared.error_callback(),
        Some(CPAL_POLL_TIMEOUT),
    )
}

/// Opens a stream on `id` (or the default device) and starts it.
fn open_stream(
    id: Option<&str>,
    channels: u16,
    direction: Direction,
    shared: &Arc<Shared>,
) -> Result<(cpal::Stream, u32)> {
    let noun = direction.noun();
    let device = find_device(id, direction)?;
    let (config, format) = choose_config(&device, direction, channels)?;
    let built = match (direction, format) {
        (Direction::Input, cpal::SampleFormat::F32) => {
            build_input::<f32>(&device, config, channels, shared)
        }
        (Direction::Input, cpal::SampleFormat::I16) => {
            build_input::<i16>(&device, config, channels, shared)
        }
        (Direction::Input, cpal::SampleFormat::I32) => {
            build_input::<i32>(&device, config, channels, shared)
        }
        (Direction::Output, cpal::SampleFormat::F32) => {
            build_output::<f32>(&device, config, channels, shared)
        }
        (Direction::Output, cpal::SampleFormat::I16) => {
            build_output::<i16>(&device, config, channels, shared)
        }
        (Direction::Output, cpal::SampleFormat::I32) => {
            build_output::<i32>(&device, config, channels, shared)
        }
        (_, other) => {
            return Err(MediaError::Unsupported(format!(
                "{noun} sample format {other}"
            )))
        }
    };
    let stream = built.map_err(|e| media_error_from_cpal(&format!("opening {noun}"), &e))?;
    stream
        .play()
        .map_err(|e| media_error_from_cpal(&format!("starting {noun}"), &e))?;
    Ok((stream, config.sample_rate))
}

/// A real microphone: 48 kHz (a device that does not offer it is resampled from its nearest
/// rate), mixed down (or up) to the channel count asked for.
///
/// The cpal callback appends to a ring of at most 500 ms; a caller that falls behind loses the
/// oldest audio. Frames are stamped with the clock's reading when they are handed out, minus their
/// length and the audio still queued behind them (accurate to about one device period).
pub struct Microphone {
    channels: u16,
    clock: SharedClock,
    shared: Arc<Shared>,
    /// The device's rate, and the conversion to 48 kHz when it is another.
    rate: u32,
    resampler: Option<RateConverter>,
    _stream: cpal::Stream,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Microphone {
    /// Opens the capture device `id` (from [`list_audio_devices`]), or the default one, at 48 kHz
    /// or, when it offers no 48 kHz, at its nearest rate, resampled.
    ///
    /// Fails with `NoDevice` when there is no such device or no default, `DeviceBusy` when another
    /// program holds it, `Unsupported` when it offers no format we read (f32, i16, i32), and
    /// `Device` for anything else.
    pub fn open(id: Option<&str>, channels: u16, clock: SharedClock) -> Result<Self> {
        check_channels(channels)?;
        let shared = Shared::new(ring_capacity(AUDIO_SAMPLE_RATE, channels, MIC_RING_MS));
        let (stream, rate) = open_stream(id, channels, Direction::Input, &shared)?;
        let resampler = (rate != AUDIO_SAMPLE_RATE)
            .then(|| RateConverter::new(rate, AUDIO_SAMPLE_RATE, channels, Fixed::Output))
            .transpose()?;
        shared.lock().capacity = ring_capacity(rate, channels, MIC_RING_MS);
        Ok(Self {
            channels,
            clock,
            shared,
            rate,
            resampler,
            _stream: stream,
        })
    }

    /// Samples discarded so far because the caller did not keep up.
    pub fn dropped_samples(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl AudioSource for Microphone {
    fn channels(&self) -> u16 {
        self.channels
    }

    /// The next 20 ms; waits up to [`MIC_TIMEOUT`] for the device, then fails with `Timeout`.
    fn next_frame(&mut self) -> Result<AudioFrame> {
        let device_frames = self
            .resampler
            .as_ref()
            .map_or(AUDIO_FRAME_SAMPLES, RateConverter::input_frames_next);
        let want = device_frames * usize::from(self.channels);
        let deadline = Instant::now() + MIC_TIMEOUT;
        let mut ring = self.shared.lock();
        loop {
            if let Some(err) = &ring.fatal {
                return Err(media_error_from_cpal("microphone stream", err));
            }
            if ring.samples.len() >= want {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MediaError::Timeout(format!(
                    "microphone delivered no 20 ms frame within {} ms",
                    MIC_TIMEOUT.as_millis()
                )));
            }
            ring = self
                .shared
                .ready
                .wait_timeout(ring, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut samples: Vec<i16> = ring.samples.drain(..want).collect();
        let behind = ring.samples.len() / usize::from(self.channels);
        drop(ring);
        if let Some(r) = &mut self.resampler {
            let device = std::mem::take(&mut samples);
            r.process(&device, &mut samples)?;
        }
        let behind_us = (device_frames + behind) as u64 * 1_000_000 / u64::from(self.rate);
        let capture_us = self.clock.now_us().saturating_sub(behind_us);
        AudioFrame::new(self.channels, samples, capture_us)
    }
}

/// A real speaker: plays 20 ms frames at 48 kHz (resampled to the device's nearest rate when it
/// offers no 48 kHz).
///
/// `play` queues the frame for the cpal callback; when more than 200 ms are queued the oldest audio
/// is dropped (latency beats smoothness); when the queue runs dry the device plays silence.
pub struct Speaker {
    channels: u16,
    shared: Arc<Shared>,
    /// The device's rate, and the conversion from 48 kHz when it is another.
    rate: u32,
    resampler: Option<RateConverter>,
    converted: Vec<i16>,
    _stream: cpal::Stream,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Speaker {
    /// Opens the playback device `id` (from [`list_audio_devices`]), or the default one, at 48 kHz.
    ///
    /// Errors as for [`Microphone::open`].
    pub fn open(id: Option<&str>, channels: u16) -> Result<Self> {
        check_channels(channels)?;
        let shared = Shared::new(ring_capacity(
            AUDIO_SAMPLE_RATE,
            channels,
            SPEAKER_MAX_QUEUE_MS,
        ));
        let (stream, rate) = open_stream(id, channels, Direction::Output, &shared)?;
        let resampler = (rate != AUDIO_SAMPLE_RATE)
            .then(|| RateConverter::new(AUDIO_SAMPLE_RATE, rate, channels, Fixed::Input))
            .transpose()?;
        shared.lock().capacity = ring_capacity(rate, channels, SPEAKER_MAX_QUEUE_MS);
        Ok(Self {
            channels,
            shared,
            rate,
            resampler,
            converted: Vec::new(),
            _stream: stream,
        })
    }

    /// Samples discarded so far because the queue was more than 200 ms ahead.
    pub fn dropped_samples(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Samples the device has taken so far (silence it played on an empty queue not counted).
    pub fn played_samples(&self) -> u64 {
        self.shared.lock().played
    }

    /// Samples waiting to be played (at most 200 ms' worth).
    pub fn queued_samples(&self) -> usize {
        self.shared.lock().samples.len()
    }
}

impl AudioSink for Speaker {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        check_frame(frame)?;
        if frame.channels != self.channels {
            return Err(MediaError::Config(format!(
                "speaker opened with {} channels, frame has {}",
                self.channels, frame.channels
            )));
        }
        let samples: &[i16] = match &mut self.resampler {
            Some(r) => {
                self.converted.clear();
                r.process(&frame.samples, &mut self.converted)?;
                &self.converted
            }
            None => &frame.samples,
        };
        let mut ring = self.shared.lock();
        if let Some(err) = &ring.fatal {
            return Err(media_error_from_cpal("speaker stream", err));
        }
        ring.push(samples.iter().copied());
        Ok(())
    }

    fn queued(&self) -> Duration {
        let per_channel = self.queued_samples() / usize::from(self.channels.max(1));
        Duration::from_micros(per_channel as u64 * 1_000_000 / u64::from(self.rate.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::{Error, ErrorKind};

    #[test]
    fn the_config_is_48_khz_when_offered_else_the_nearest_rate() {
        use cpal::{SampleFormat as F, SupportedBufferSize as B, SupportedStreamConfigRange as R};
        let any = B::Unknown;
        // A card that takes 8–192 kHz: 48 kHz, mono i16 before stereo f32.
        let wide = [
            R::new(2, 8_000, 192_000, any, F::F32),
            R::new(1, 8_000, 192_000, any, F::I16),
        ];
        let (r, rate) = pick_config(&wide, 1).expect("a config");
        assert_eq!((rate, r.channels(), r.sample_format()), (48_000, 1, F::I16));
        // A USB headset at 44.1 kHz only, and a Bluetooth one at 16 kHz: their own rate.
        let usb = [R::new(2, 44_100, 44_100, any, F::I16)];
        assert_eq!(pick_config(&usb, 1).map(|(_, rate)| rate), Some(44_100));
        let bt = [
            R::new(1, 8_000, 8_000, any, F::I16),
            R::new(1, 16_000, 16_000, any, F::I16),
        ];
        assert_eq!(pick_config(&bt, 1).map(|(_, rate)| rate), Some(16_000));
        // 48 kHz wins over the wanted channel count.
        let split = [
            R::new(1, 44_100, 44_100, any, F::F32),
            R::new(2, 48_000, 48_000, any, F::F32),
        ];
        assert_eq!(
            pick_config(&split, 1).map(|(r, rate)| (r.channels(), rate)),
            Some((2, 48_000))
        );
        // Nothing we read (u8 only), or nothing at all: no config.
        assert!(pick_config(&[R::new(1, 48_000, 48_000, any, F::U8)], 1).is_none());
        assert!(pick_config(&[], 1).is_none());
    }

    #[test]
    fn cpal_errors_map_to_stable_codes() {
        let cases = [
            (ErrorKind::DeviceNotAvailable, "no_device"),
            (ErrorKind::HostUnavailable, "no_device"),
            (ErrorKind::DeviceBusy, "device_busy"),
            (ErrorKind::UnsupportedConfig, "unsupported_format"),
            (ErrorKind::UnsupportedOperation, "unsupported_format"),
            (ErrorKind::InvalidInput, "invalid_config"),
            (ErrorKind::PermissionDenied, "device_error"),
            (ErrorKind::BackendError, "device_error"),
            (ErrorKind::StreamInvalidated, "device_error"),
            (ErrorKind::Other, "device_error"),
        ];
        for (kind, code) in cases {
            let err = media_error_from_cpal("opening microphone", &Error::new(kind));
            assert_eq!(err.code(), code, "{kind:?}");
            assert!(err.to_string().contains("opening microphone"));
        }
        let with_message = Error::with_message(ErrorKind::DeviceBusy, "hw:0 in use");
        let err = media_error_from_cpal("opening speaker", &with_message);
        assert!(err.to_string().contains("hw:0 in use"), "{err}");
    }

    #[test]
    fn only_glitches_are_transient() {
        assert!(is_transient(&Error::new(ErrorKind::Xrun)));
        assert!(is_transient(&Error::new(ErrorKind::DeviceChanged)));
        assert!(!is_transient(&Error::new(ErrorKind::DeviceNotAvailable)));
        assert!(!is_transient(&Error::new(ErrorKind::BackendError)));
    }

    #[test]
    fn channels_are_mixed_down_and_up() {
        let mut out = Vec::new();
        map_input_frame(&[100, 300, -100, 100], 1, &mut out);
        map_input_frame(&[7], 2, &mut out);
        map_input_frame(&[1, 2, 3, 4], 2, &mut out);
        assert_eq!(out, [100, 7, 7, 1, 2]);

        let mut dev = [9i16; 4];
        map_output_frame(&[5], &mut dev);
        assert_eq!(dev, [5; 4]);
        map_output_frame(&[4, 8], &mut dev);
        assert_eq!(dev, [4, 8, 0, 0]);
        let mut mono = [0i16; 1];
        map_output_frame(&[4, 8], &mut mono);
        assert_eq!(mono, [6]);
    }

    #[test]
    fn ring_keeps_the_newest_audio() {
        let mut ring = Ring::new(4);
        ring.push([1, 2, 3]);
        ring.push([4, 5, 6]);
        assert_eq!(
            ring.samples.iter().copied().collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        assert_eq!(ring.dropped, 2);
    }

    #[test]
    fn xorshift_is_deterministic_and_in_range() {
        let mut a = XorShift::new(7);
        let mut b = XorShift::new(7);
        for _ in 0..1000 {
            let x = a.unit();
            assert_eq!(x, b.unit());
            assert!((0.0..1.0).contains(&x));
        }
        assert_ne!(XorShift::new(0).next_u64(), 0);
    }
}
