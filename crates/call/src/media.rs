//! Media pipelines between `dyad-media` and RTP: the capture → encode threads and the decode
//! threads (VP8, and Opus with the speaker). They are threads (codecs are CPU work that must not
//! stall the call task) that talk to the call task over channels; the call session
//! ([`crate::session`]) does all RTP and all decisions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dyad_media::{
    clock::system_clock, read_marker, AudioFrame, AudioProcessor, AudioSource, Camera, Microphone,
    OpusConfig, OpusDecoder, OpusEncoder, Pacer, ProcessingConfig, SpeechLike, TestPattern, Tone,
    VideoFormat, VideoFrame, VideoSource, Vp8Config, Vp8Decoder, Vp8Encoder, Y4mFile,
};
use tokio::sync::{mpsc, watch};

use crate::error::Result;
use crate::playout::PlayoutAction;

/// Capture → decoded times above this come from a marker written on another clock (see the
/// decode thread) and are not latencies.
pub const MAX_MARKER_AGE: Duration = Duration::from_secs(10);

/// Where our video comes from.
#[derive(Debug, Clone)]
pub enum VideoInput {
    /// The synthetic test pattern (frame numbers and capture times readable on the far side).
    TestPattern,
    /// The test pattern with camera-like noise in its lower half: content that costs bits like
    /// a real camera does (the plain pattern compresses far below the target).
    NoisyPattern,
    /// A camera by index (nokhwa).
    Camera(u32),
    /// A Y4M file, looped.
    Y4m(PathBuf),
    /// The other side's decoded video, sent back (the echo bot).
    Echo,
}

/// Where our audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioInput {
    /// A 440 Hz tone.
    Tone,
    /// Speech-like synthetic audio (bursts and pauses).
    Speech,
    /// The other side's decoded audio, sent back (the echo bot).
    Echo,
    /// The system's default microphone (cpal).
    Microphone,
}

/// Capture settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Video source.
    pub video: VideoInput,
    /// Capture size and rate.
    pub format: VideoFormat,
    /// Audio source.
    pub audio: AudioInput,
    /// Echo cancellation, noise suppression, gain control and high-pass filter on the
    /// microphone (the synthetic sources are sent as they are: there is no room to clean up).
    pub processing: ProcessingConfig,
    /// What [`AudioInput::Microphone`] reads instead of the system's microphone: a simulated
    /// room in tests (`dyad_media::room::acoustic_loop`). `None` (always, in normal use): cpal.
    pub microphone: Option<SharedMicrophone>,
    /// Which microphone [`AudioInput::Microphone`] opens (`dyad_media::list_audio_devices`
    /// ids); `None`: the system default.
    pub microphone_id: Option<String>,
}

/// A stand-in microphone shared with whoever drives it (see [`MediaConfig::microphone`]).
#[derive(Clone)]
pub struct SharedMicrophone(pub Arc<Mutex<Box<dyn AudioSource>>>);

impl SharedMicrophone {
    /// Wraps `source`.
    pub fn new(source: impl AudioSource + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(source))))
    }
}

impl std::fmt::Debug for SharedMicrophone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedMicrophone")
    }
}

impl AudioSource for SharedMicrophone {
    fn channels(&self) -> u16 {
        self.0.lock().map_or(1, |s| s.channels())
    }

    fn next_frame(&mut self) -> dyad_media::Result<AudioFrame> {
        match self.0.lock() {
            Ok(mut s) => s.next_frame(),
            Err(_) => Err(dyad_media::MediaError::Device(
                "the stand-in microphone's owner panicked".into(),
            )),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            video: VideoInput::TestPattern,
            format: VideoFormat {
                width: 640,
                height: 480,
                fps: 30,
            },
            audio: AudioInput::Speech,
            processing: ProcessingConfig::ALL,
            microphone: None,
            microphone_id: None,
        }
    }
}

impl AudioInput {
    /// Whether this source is a real room (a microphone near a loudspeaker): only then does
    /// its audio go through [`AudioProcessor`], and only then is there echo to cancel.
    pub fn is_room(self) -> bool {
        self == AudioInput::Microphone
    }
}

/// The call's audio processing, shared by the capture thread (which processes the microphone)
/// and the playout thread (which gives it the far end's audio as its echo reference).
pub type SharedProcessor = Arc<Mutex<AudioProcessor>>;

/// One 20 ms audio frame, µs.
const FRAME_US: u64 = 20_000;

/// Microphone buffering added to the playout queue for the echo canceller's delay hint (one
/// capture period; the canceller finds the rest itself).
const CAPTURE_BUFFER: Duration = Duration::from_millis(20);

/// Opus bitrate (issue #4: 32 kbit/s with FEC).
pub const OPUS_BPS: u32 = 32_000;

/// Shared between the call task and the send threads: what the controller decided.
#[derive(Debug, Default)]
pub struct SendControl {
    /// Video target, bit/s (set by the bandwidth estimator).
    pub video_bps: AtomicU64,
    /// Force a keyframe (PLI/FIR arrived).
    pub keyframe: AtomicBool,
    /// Camera off: send black at a low rate.
    pub video_muted: AtomicBool,
    /// Microphone off: send silence.
    pub audio_muted: AtomicBool,
    /// Stop the threads.
    pub stop: AtomicBool,
    /// A new video source to switch to.
    pub switch_video: Mutex<Option<VideoInput>>,
    /// A new audio source to switch to (and the microphone's device id, `None`: the default).
    pub switch_audio: Mutex<Option<(AudioInput, Option<String>)>>,
    /// The capture thread is processing a microphone: the playout thread feeds the echo
    /// canceller its reference (with a synthetic source nobody would read it).
    pub mic_processing: AtomicBool,
    /// Where each captured frame is also published for the self-view (latest frame wins;
    /// `None` while the camera is off).
    pub self_view: Option<watch::Sender<Option<Arc<VideoFrame>>>>,
}

/// One encoded video frame on its way to RTP.
#[derive(Debug)]
pub struct EncodedVideo {
    /// VP8 bitstream.
    pub data: Bytes,
    /// Keyframe.
    pub keyframe: bool,
    /// 90 kHz RTP timestamp from the capture time.
    pub rtp_timestamp: u32,
    /// The capture time, Unix µs (sender reports map RTP time to it).
    pub capture_us: u64,
    /// Time spent in the encoder.
    pub encode_time: Duration,
    /// Encoded size.
    pub width: u32,
    /// Encoded size.
    pub height: u32,
}

/// One encoded audio packet on its way to RTP.
#[derive(Debug)]
pub struct EncodedAudio {
    /// Opus packet.
    pub data: Bytes,
    /// 48 kHz RTP timestamp.
    pub rtp_timestamp: u32,
    /// When its first sample was captured, Unix µs (sender reports map RTP time to it).
    pub capture_us: u64,
    /// Level of the frame, dBFS.
    pub level_dbfs: f64,
}

/// What the send threads report.
#[derive(Debug)]
pub enum SendEvent {
    /// A frame was captured (counts toward captured fps).
    Captured,
    /// The encoder skipped a frame (rate control).
    EncoderDropped,
    /// Encoded video.
    Video(EncodedVideo),
    /// Encoded audio.
    Audio(EncodedAudio),
    /// The video source failed (camera unplugged, no device); video stops until switched.
    SourceFailed(String),
    /// The microphone failed (unplugged, no device) and something else replaced it: the
    /// system default, or silence when there is none. For the user.
    MicrophoneReplaced(String),
}

/// A decoded remote frame.
#[derive(Debug)]
pub struct DecodedVideo {
    /// Pixels.
    pub frame: VideoFrame,
    /// RTP timestamp it carried.
    pub rtp_timestamp: u32,
    /// When decoding finished.
    pub decoded_at: Instant,
    /// The picture is the sender's camera-off black ([`is_camera_off_picture`]).
    pub camera_off: bool,
}

/// What the decode threads report.
#[derive(Debug)]
pub enum DecodeEvent {
    /// A video frame decoded.
    Decoded(crate::session::VideoDecoded),
    /// The decoder rejected a frame: a keyframe is needed.
    Undecodable,
    /// The audio decoder's counts so far (after each packet).
    Audio(crate::session::counters::AudioDecodeCounts),
    /// The speaker failed (unplugged) and the system default replaced it, or nothing could:
    /// for the user.
    SpeakerReplaced(String),
}

/// True for the sender's camera-off picture (black, luma ≤ 20 everywhere we look). A real
/// camera in the dark still has sensor noise and texture above that on a 16×16 grid.
pub fn is_camera_off_picture(f: &VideoFrame) -> bool {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let y = f.y();
    (0..16).all(|gy| {
        (0..16).all(|gx| {
            let (px, py) = (gx * w / 16 + w / 32, gy * h / 16 + h / 32);
            y.get(py * w + px).is_none_or(|v| *v <= 20)
        })
    })
}

/// A frame for the decode thread.
#[derive(Debug)]
pub struct FrameToDecode {
    /// VP8 bitstream.
    pub data: Vec<u8>,
    /// Its RTP timestamp.
    pub rtp_timestamp: u32,
    /// When the last packet arrived.
    pub complete_at: Instant,
}

/// Resolution for a target bitrate, with hysteresis: steps are source, ½ and ¼ of its size.
/// Returns the divisor (1, 2 or 4).
pub fn ladder_step(source: (u32, u32), target_bps: u64, current: u32) -> u32 {
    // Below ≈ 0.65 bit per pixel per second the full size looks worse than half the size
    // sharp: 640x480 halves under 200 kbit/s and quarters under 100; 720p under 600 / 300.
    let pixels = u64::from(source.0) * u64::from(source.1);
    let down_half = pixels * 13 / 20; // under this, halve the size
    let down_quarter = down_half / 2; // under this, quarter it
    let up = |threshold: u64| threshold * 13 / 10;
    match current {
        1 if target_bps < down_half => 2,
        2 if target_bps < down_quarter => 4,
        2 if target_bps > up(down_half) => 1,
        4 if target_bps > up(down_quarter) => 2,
        c @ (1 | 2 | 4) => c,
        _ => 1,
    }
}

/// The per-resolution bitrate cap.
pub fn max_bps_for(width: u32, height: u32) -> u64 {
    match u64::from(width) * u64::from(height) {
        p if p >= 1280 * 720 => 2_500_000,
        p if p >= 640 * 480 => 1_500_000,
        _ => 600_000,
    }
}

/// Halves a frame's size (2×2 box filter), rounding to even dimensions.
pub fn downscale(frame: &VideoFrame, divisor: u32) -> Result<VideoFrame> {
    if divisor <= 1 {
        return Ok(frame.clone());
    }
    let w = (frame.width() / divisor) & !1;
    let h = (frame.height() / divisor) & !1;
    let mut out = VideoFrame::black(w.max(2), h.max(2), frame.capture_us)?;
    let (w, h) = (out.width() as usize, out.height() as usize);
    let d = divisor as usize;
    let sw = frame.width() as usize;
    let (oy, ou, ov) = out.planes_mut();
    let avg = |src: &[u8], stride: usize, x: usize, y: usize| -> u8 {
        let mut sum = 0u32;
        for dy in 0..d {
            let row = (y * d + dy) * stride;
            for dx in 0..d {
                sum += u32::from(src.get(row + x * d + dx).copied().unwrap_or(0));
            }
        }
        (sum / (d * d) as u32) as u8
    };
    for y in 0..h {
        for x in 0..w {
            oy[y * w + x] = avg(frame.y(), sw, x, y);
        }
    }
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            ou[y * (w / 2) + x] = avg(frame.u(), sw / 2, x, y);
            ov[y * (w / 2) + x] = avg(frame.v(), sw / 2, x, y);
        }
    }
    Ok(out)
}

/// Opens a video source as a "next frame" function (paced at the format's rate; `echo` feeds the
/// echo bot).
pub fn open_video(
    input: &VideoInput,
    format: VideoFormat,
    echo: &Option<Arc<Mutex<std_mpsc::Receiver<Arc<DecodedVideo>>>>>,
) -> Result<Box<dyn FnMut() -> Result<Option<VideoFrame>> + Send>> {
    Ok(match input {
        VideoInput::TestPattern => {
            let mut src = TestPattern::new(format, system_clock())?;
            let mut pacer = Pacer::new(format.frame_interval());
            Box::new(move || {
                pacer.wait();
                src.next_frame().map(Some).map_err(Into::into)
            })
        }
        VideoInput::NoisyPattern => {
            let mut src = TestPattern::new(format, system_clock())?;
            let mut pacer = Pacer::new(format.frame_interval());
            let mut x: u32 = 0x9e37_79b9;
            Box::new(move || {
                pacer.wait();
                let mut f = src.next_frame()?;
                let half = f.y().len() / 2;
                let (y, _, _) = f.planes_mut();
                for px in &mut y[half..] {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *px = px.saturating_add((x & 15) as u8).saturating_sub(8);
                }
                Ok(Some(f))
            })
        }
        VideoInput::Camera(index) => {
            let mut cam = Camera::open(*index, format, system_clock())?;
            Box::new(move || cam.next_frame().map(Some).map_err(Into::into))
        }
        VideoInput::Y4m(path) => {
            let mut file = Y4mFile::open(path, system_clock())?;
            let mut pacer = Pacer::new(file.format().frame_interval());
            Box::new(move || {
                pacer.wait();
                file.next_frame().map(Some).map_err(Into::into)
            })
        }
        VideoInput::Echo => {
            let rx = echo.clone();
            Box::new(move || {
                let Some(rx) = &rx else {
                    std::thread::sleep(Duration::from_millis(50));
                    return Ok(None);
                };
                let got = match rx.lock() {
                    Ok(rx) => rx.recv_timeout(Duration::from_millis(100)),
                    Err(_) => return Ok(None),
                };
                match got {
                    Ok(d) => {
                        let mut f = d.frame.clone();
                        // Re-stamp: the marker in the pixels still carries the original time.
                        f.capture_us = system_clock().now_us();
                        Ok(Some(f))
                    }
                    Err(_) => Ok(None),
                }
            })
        }
    })
}

/// Starts the capture → VP8 thread.
pub fn spawn_video_sender(
    config: &MediaConfig,
    ctl: Arc<SendControl>,
    tx: mpsc::UnboundedSender<SendEvent>,
    echo: Option<Arc<Mutex<std_mpsc::Receiver<Arc<DecodedVideo>>>>>,
) -> Result<std::thread::JoinHandle<()>> {
    let format = config.format;
    let mut next = open_video(&config.video, format, &echo)?;
    let start_bps = ctl.video_bps.load(Ordering::Relaxed).max(50_000);
    let mut encoder = Vp8Encoder::new(Vp8Config::realtime(
        format.width,
        format.height,
        format.fps,
        (start_bps / 1000) as u32,
    ))?;
    let handle = std::thread::Builder::new()
        .name("dyad-video-send".into())
        .spawn(move || {
            let mut step = 1;
            let mut bps = start_bps;
            let mut black_pacer = Pacer::new(Duration::from_millis(200));
            let mut size = (format.width, format.height);
            while !ctl.stop.load(Ordering::Relaxed) {
                let switch = ctl.switch_video.lock().ok().and_then(|mut s| s.take());
                if let Some(input) = switch {
                    match open_video(&input, format, &echo) {
                        Ok(n) => next = n,
                        Err(e) => {
                            let _ = tx.send(SendEvent::SourceFailed(e.to_string()));
                        }
                    }
                }
                let muted = ctl.video_muted.load(Ordering::Relaxed);
                if muted {
                    if let Some(v) = &ctl.self_view {
                        v.send_if_modified(|f| f.take().is_some());
                    }
                }
                let frame = if muted {
                    // Camera off: a black picture at 5 fps, so the far side sees "off", not a
                    // frozen last frame, for a few hundred bits per second.
                    black_pacer.wait();
                    VideoFrame::black(size.0, size.1, system_clock().now_us()).ok()
                } else {
                    match next() {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = tx.send(SendEvent::SourceFailed(e.to_string()));
                            // Wait for a switch instead of spinning on a dead camera.
                            std::thread::sleep(Duration::from_millis(200));
                            None
                        }
                    }
                };
                let Some(frame) = frame else { continue };
                let frame = Arc::new(frame);
                if let (Some(v), false) = (&ctl.self_view, muted) {
                    v.send_replace(Some(Arc::clone(&frame)));
                }
                size = (frame.width(), frame.height());
                let _ = tx.send(SendEvent::Captured);
                let target = ctl.video_bps.load(Ordering::Relaxed).max(30_000);
                step = ladder_step(size, target, step);
                let Ok(mut scaled) = downscale(&frame, step) else {
                    continue;
                };
                if step > 1 {
                    // The test pattern's frame number and capture time travel in the pixels;
                    // redraw them at the new size so the far side can still read them.
                    if let Ok(m) = read_marker(&frame) {
                        let _ = dyad_media::testpattern::write_marker(&mut scaled, m);
                    }
                }
                let want = (scaled.width(), scaled.height());
                let cfg = encoder.config();
                if (cfg.width, cfg.height) != want {
                    if let Err(e) = encoder.set_resolution(want.0, want.1) {
                        tracing::warn!(error = %e, "resolution change refused");
                        continue;
                    }
                }
                if target.abs_diff(bps) * 20 > bps || (cfg.width, cfg.height) != want {
                    bps = target;
                    let _ = encoder.set_bitrate((bps / 1000) as u32);
                }
                if ctl.keyframe.swap(false, Ordering::Relaxed) {
                    encoder.request_keyframe();
                }
                let t0 = Instant::now();
                match encoder.encode(&scaled) {
                    Ok(Some(enc)) => {
                        let rtp_timestamp = enc.rtp_timestamp();
                        let _ = tx.send(SendEvent::Video(EncodedVideo {
                            data: Bytes::from(enc.data),
                            keyframe: enc.keyframe,
                            rtp_timestamp,
                            capture_us: scaled.capture_us,
                            encode_time: t0.elapsed(),
                            width: want.0,
                            height: want.1,
                        }));
                    }
                    Ok(None) => {
                        let _ = tx.send(SendEvent::EncoderDropped);
                    }
                    Err(e) => tracing::warn!(error = %e, "encode failed"),
                }
            }
        })?;
    Ok(handle)
}

/// Opens an audio source; `None` for the echo bot (it sends what it receives).
pub fn open_audio(input: AudioInput) -> Result<Option<Box<dyn AudioSource>>> {
    open_audio_with(input, None, None)
}

/// [`open_audio`] with the microphone `microphone_id` (`None`: the default), or `stand_in`
/// in its place (see [`MediaConfig::microphone`]).
pub fn open_audio_with(
    input: AudioInput,
    microphone_id: Option<&str>,
    stand_in: Option<&SharedMicrophone>,
) -> Result<Option<Box<dyn AudioSource>>> {
    Ok(match (input, stand_in) {
        (AudioInput::Tone, _) => Some(Box::new(Tone::new(1, system_clock(), 440.0, -20.0)?)),
        (AudioInput::Speech, _) => Some(Box::new(SpeechLike::new(1, system_clock(), 7)?)),
        (AudioInput::Microphone, Some(m)) => Some(Box::new(m.clone())),
        (AudioInput::Microphone, None) => Some(Box::new(Microphone::open(
            microphone_id,
            1,
            system_clock(),
        )?)),
        (AudioInput::Echo, _) => None,
    })
}

/// The microphone failed: the system default instead (unless it was the default that failed),
/// else silence, and the words for the user.
/// Returns the replacement, the words, and whether it is silence (then the capture thread
/// keeps trying the microphone again).
fn replace_microphone(
    failed_id: Option<&str>,
    error: &dyad_media::MediaError,
) -> (Box<dyn AudioSource>, String, bool) {
    if failed_id.is_some() {
        if let Ok(m) = Microphone::open(None, 1, system_clock()) {
            return (
                Box::new(m),
                format!("The microphone stopped ({error}): using the system default."),
                false,
            );
        }
    }
    let silence = dyad_media::Silence::new(1, system_clock());
    let message = format!(
        "The microphone stopped ({error}) and no other answers: sending silence until it does."
    );
    match silence {
        Ok(s) => (Box::new(s), message, true),
        // Mono silence cannot fail; keep the types honest anyway.
        Err(e) => (Box::new(FailedSource(e.to_string())), message, true),
    }
}

/// Read timeouts in a row after which a microphone counts as gone (a single one is a stall: a
/// Bluetooth profile switch, a busy machine).
const MIC_TIMEOUTS_TO_FAIL: u32 = 3;
/// While silence stands in for a failed microphone, it is tried again this often (frames: 5 s).
const MIC_RETRY_FRAMES: u64 = 250;

/// A speaker that plays nothing (after the real one and the default both failed).
struct NullSink;

impl dyad_media::AudioSink for NullSink {
    fn play(&mut self, _: &AudioFrame) -> dyad_media::Result<()> {
        Ok(())
    }
}

/// A source that only fails (the last resort of [`replace_microphone`]).
struct FailedSource(String);

impl AudioSource for FailedSource {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> dyad_media::Result<AudioFrame> {
        Err(dyad_media::MediaError::Device(self.0.clone()))
    }
}

/// Starts the audio capture → Opus thread.
pub fn spawn_audio_sender(
    config: &MediaConfig,
    ctl: Arc<SendControl>,
    tx: mpsc::UnboundedSender<SendEvent>,
    echo: Option<std_mpsc::Receiver<AudioFrame>>,
    processor: SharedProcessor,
) -> Result<std::thread::JoinHandle<()>> {
    let input = config.audio;
    let stand_in = config.microphone.clone();
    let mut microphone_id = config.microphone_id.clone();
    let mut source = open_audio_with(input, microphone_id.as_deref(), stand_in.as_ref())?;
    let mut current = input;
    ctl.mic_processing.store(input.is_room(), Ordering::Relaxed);
    let mut encoder = OpusEncoder::new(OpusConfig {
        bitrate_bps: OPUS_BPS,
        // 5, not 9: 2–4 CPU-s per minute of call less (docs/benchmarks.md); on speech at
        // 32 kbit/s the difference is smaller than what loss and FEC do.
        complexity: 5,
        ..OpusConfig::default()
    })?;
    let handle = std::thread::Builder::new()
        .name("dyad-audio-send".into())
        .spawn(move || {
            let mut pacer = Pacer::new(Duration::from_millis(20));
            let mut samples: u32 = 0;
            let mut last_capture_us: u64 = 0;
            let mut frame_no: u64 = 0;
            let mut mic_timeouts: u32 = 0;
            // The microphone (its id) that silence stands in for, and whether the source now
            // is a retry of it not yet proven.
            let mut silenced: Option<Option<String>> = None;
            let mut retried = false;
            while !ctl.stop.load(Ordering::Relaxed) {
                let switch = ctl.switch_audio.lock().ok().and_then(|mut s| s.take());
                if let Some((input, id)) = switch {
                    match open_audio_with(input, id.as_deref(), stand_in.as_ref()) {
                        Ok(s) => {
                            source = s;
                            current = input;
                            microphone_id = id;
                            silenced = None;
                            retried = false;
                            mic_timeouts = 0;
                            ctl.mic_processing.store(input.is_room(), Ordering::Relaxed);
                        }
                        Err(e) => {
                            let _ = tx.send(SendEvent::SourceFailed(e.to_string()));
                        }
                    }
                }
                let frame = match (&mut source, &echo) {
                    (Some(src), _) => {
                        pacer.wait();
                        frame_no += 1;
                        if let Some(wanted) = silenced.as_ref() {
                            if frame_no % MIC_RETRY_FRAMES == 0 {
                                if let Ok(Some(m)) = open_audio_with(
                                    AudioInput::Microphone,
                                    wanted.as_deref(),
                                    stand_in.as_ref(),
                                ) {
                                    *src = m;
                                    microphone_id = wanted.clone();
                                    silenced = None;
                                    retried = true;
                                }
                            }
                        }
                        match src.next_frame() {
                            Ok(f) => {
                                mic_timeouts = 0;
                                if std::mem::take(&mut retried) {
                                    let _ = tx.send(SendEvent::MicrophoneReplaced(
                                        "The microphone works again.".into(),
                                    ));
                                }
                                Some(f)
                            }
                            Err(dyad_media::MediaError::Timeout(_))
                                if current == AudioInput::Microphone
                                    && mic_timeouts + 1 < MIC_TIMEOUTS_TO_FAIL =>
                            {
                                mic_timeouts += 1;
                                None
                            }
                            // A microphone that stops (unplugged) is replaced at once, and the
                            // user told: the call must not go on sending nothing, unsaid.
                            Err(e) if current == AudioInput::Microphone => {
                                mic_timeouts = 0;
                                let wanted = microphone_id.clone();
                                let (replacement, message, silent) =
                                    replace_microphone(microphone_id.as_deref(), &e);
                                *src = replacement;
                                microphone_id = None;
                                if silent {
                                    silenced = Some(wanted);
                                }
                                // A retried microphone that fails again goes back to silence
                                // without saying it twice.
                                if !std::mem::take(&mut retried) {
                                    let _ = tx.send(SendEvent::MicrophoneReplaced(message));
                                }
                                None
                            }
                            Err(_) => None,
                        }
                    }
                    (None, Some(rx)) => rx.recv_timeout(Duration::from_millis(100)).ok(),
                    (None, None) => {
                        std::thread::sleep(Duration::from_millis(100));
                        None
                    }
                };
                let Some(mut frame) = frame else { continue };
                if frame.channels != 1 {
                    continue;
                }
                if current.is_room() {
                    // On this thread, never on the call task: ≈ 0.45 ms of CPU per 20 ms frame.
                    if let Ok(mut p) = processor.lock() {
                        if let Err(e) = p.process_capture(&mut frame) {
                            tracing::warn!(error = %e, "audio processing failed");
                        }
                    }
                }
                if ctl.audio_muted.load(Ordering::Relaxed) {
                    frame.samples.iter_mut().for_each(|s| *s = 0);
                }
                let level_dbfs = frame.level_dbfs();
                let n = frame.samples.len() as u32;
                // RTP time follows the capture clock across a gap in the source (a microphone
                // being replaced, a stall): the receiver's jitter estimate must not read a
                // pause as a packet delayed by that long.
                if frame.capture_us > 0 && last_capture_us > 0 {
                    let gap_us = frame.capture_us.saturating_sub(last_capture_us);
                    if gap_us > 3 * FRAME_US {
                        let extra = (gap_us - FRAME_US)
                            * u64::from(dyad_media::frame::AUDIO_SAMPLE_RATE)
                            / 1_000_000;
                        samples = samples.wrapping_add(extra as u32);
                    }
                }
                last_capture_us = frame.capture_us;
                match encoder.encode(&frame) {
                    Ok(Some(pkt)) => {
                        let _ = tx.send(SendEvent::Audio(EncodedAudio {
                            data: Bytes::from(pkt.data),
                            rtp_timestamp: samples,
                            capture_us: pkt.capture_us,
                            level_dbfs,
                        }));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "opus encode failed"),
                }
                samples = samples.wrapping_add(n);
            }
        })?;
    Ok(handle)
}

/// Starts the VP8 decode thread. Decoded frames go to `out` (latest frame wins) and, for the
/// echo bot, to `echo` (dropped when the encoder is busy).
///
/// Once `ctl.stop` is set (the call is over) it publishes nothing more: a frame still queued must
/// not reach the screen after the call ended (it showed at the start of the next call).
pub fn spawn_video_decoder(
    rx: std_mpsc::Receiver<FrameToDecode>,
    out: watch::Sender<Option<Arc<DecodedVideo>>>,
    events: mpsc::UnboundedSender<DecodeEvent>,
    echo: Option<std_mpsc::SyncSender<Arc<DecodedVideo>>>,
    ctl: Arc<SendControl>,
) -> Result<std::thread::JoinHandle<()>> {
    // One thread: two cost 5 % more CPU in `dyad bench call` for the same latency at 480p.
    let mut decoder = Vp8Decoder::new(1)?;
    let handle = std::thread::Builder::new()
        .name("dyad-video-decode".into())
        .spawn(move || {
            let clock = system_clock();
            while let Ok(f) = rx.recv() {
                if ctl.stop.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                match decoder.decode(&f.data, 0) {
                    Ok(Some(frame)) => {
                        let decode_time = t0.elapsed();
                        let now_us = clock.now_us();
                        let (marker_frame, latency) = match read_marker(&frame) {
                            // A capture time from another clock (a .y4m made earlier, a browser
                            // playing our pattern from a file) is no latency: above
                            // MAX_MARKER_AGE it is not counted.
                            Ok(m) => (
                                Some(m.frame),
                                Some(Duration::from_micros(m.age_us(now_us)))
                                    .filter(|age| *age <= MAX_MARKER_AGE),
                            ),
                            Err(_) => (None, None),
                        };
                        let (width, height) = (frame.width(), frame.height());
                        let camera_off = is_camera_off_picture(&frame);
                        let decoded = Arc::new(DecodedVideo {
                            frame,
                            rtp_timestamp: f.rtp_timestamp,
                            decoded_at: Instant::now(),
                            camera_off,
                        });
                        if ctl.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(echo) = &echo {
                            let _ = echo.try_send(Arc::clone(&decoded));
                        }
                        out.send_replace(Some(decoded));
                        let _ = events.send(DecodeEvent::Decoded(crate::session::VideoDecoded {
                            decode_time,
                            width,
                            height,
                            marker_frame,
                            latency,
                            black: camera_off,
                            rtp_timestamp: f.rtp_timestamp,
                        }));
                    }
                    Ok(None) => {}
                    Err(_) => {
                        let _ = events.send(DecodeEvent::Undecodable);
                    }
                }
            }
        })?;
    Ok(handle)
}

/// Receive side of audio: carries out the jitter buffer's decisions ([`PlayoutAction`]) with
/// one Opus decoder, in playout order.
#[derive(Debug)]
pub struct AudioReceiver {
    decoder: OpusDecoder,
    /// Frames decoded from packets.
    pub decoded: u64,
    /// Frames recovered from FEC.
    pub recovered: u64,
    /// Frames concealed (PLC).
    pub concealed: u64,
    /// Packets that failed to decode.
    pub undecodable: u64,
    /// Last level, dBFS.
    pub level_dbfs: f64,
}

impl AudioReceiver {
    /// A mono receiver.
    pub fn new() -> Result<Self> {
        Ok(Self {
            decoder: OpusDecoder::new(1)?,
            decoded: 0,
            recovered: 0,
            concealed: 0,
            undecodable: 0,
            level_dbfs: -100.0,
        })
    }

    /// The 20 ms to play for `action` (`None`: the packet did not decode; nothing is played
    /// for it, and the next decision conceals if need be).
    pub fn play(&mut self, action: &PlayoutAction) -> Option<AudioFrame> {
        match action {
            PlayoutAction::Decode { payload, .. } => match self.decoder.decode(payload) {
                Ok(f) => {
                    self.decoded += 1;
                    self.level_dbfs = f.level_dbfs();
                    Some(f)
                }
                Err(_) => {
                    self.undecodable += 1;
                    self.conceal()
                }
            },
            PlayoutAction::Fec { payload } => match self.decoder.decode_fec(payload) {
                Ok(f) => {
                    self.recovered += 1;
                    Some(f)
                }
                Err(_) => self.conceal(),
            },
            PlayoutAction::Conceal => self.conceal(),
        }
    }

    fn conceal(&mut self) -> Option<AudioFrame> {
        let f = self.decoder.conceal().ok()?;
        self.concealed += 1;
        Some(f)
    }

    /// The counts so far.
    pub fn counts(&self) -> crate::session::counters::AudioDecodeCounts {
        crate::session::counters::AudioDecodeCounts {
            decoded: self.decoded,
            recovered: self.recovered,
            concealed: self.concealed,
            undecodable: self.undecodable,
            level_dbfs: self.level_dbfs,
        }
    }
}

/// Where decoded audio is played: set and swapped by the owner at any time (`None`: nowhere).
pub type SharedSink = Arc<Mutex<Option<Box<dyn dyad_media::AudioSink>>>>;

/// A sink's identity while it is installed (its address).
fn sink_id(s: &dyn dyad_media::AudioSink) -> usize {
    s as *const dyn dyad_media::AudioSink as *const () as usize
}

/// Starts the Opus decode thread: the jitter buffer's decisions in playout order in, frames to
/// the sink (and, for the echo bot, to `echo`), counts back on `events` after every frame.
pub fn spawn_audio_decoder(
    rx: std_mpsc::Receiver<PlayoutAction>,
    sink: SharedSink,
    echo: Option<std_mpsc::SyncSender<AudioFrame>>,
    events: mpsc::UnboundedSender<DecodeEvent>,
    processor: SharedProcessor,
    ctl: Arc<SendControl>,
) -> Result<std::thread::JoinHandle<()>> {
    let mut receiver = AudioReceiver::new()?;
    let handle = std::thread::Builder::new()
        .name("dyad-audio-decode".into())
        .spawn(move || {
            let mut speaker_replaced = false;
            while let Ok(action) = rx.recv() {
                let frames: Vec<AudioFrame> = receiver.play(&action).into_iter().collect();
                // The sink that failed (its address, to tell whether the owner replaced it
                // meanwhile) and why.
                let mut failed: Option<(usize, dyad_media::MediaError)> = None;
                {
                    let mut sink = sink.lock().ok();
                    if let Some(Some(s)) = sink.as_deref_mut() {
                        // What the loudspeaker plays is what the microphone will hear again:
                        // the echo canceller's reference, handed over as it is queued, with the
                        // queue's length as the delay until it sounds.
                        let reference = ctl.mic_processing.load(Ordering::Relaxed);
                        for f in &frames {
                            if let Err(e) = s.play(f) {
                                // Only a device that is gone counts (not a bad frame).
                                if matches!(
                                    e,
                                    dyad_media::MediaError::Device(_)
                                        | dyad_media::MediaError::NoDevice(_)
                                ) {
                                    failed = Some((sink_id(s.as_ref()), e));
                                    break;
                                }
                                continue;
                            }
                            if reference {
                                if let Ok(mut p) = processor.lock() {
                                    p.set_stream_delay(s.queued() + CAPTURE_BUFFER);
                                    let _ = p.analyze_render(f);
                                }
                            }
                        }
                    }
                }
                if let Some((gone, e)) = failed {
                    // Unplugged: the system default takes over, once; after that, or with no
                    // default, the call is silent here, and says so. The default is opened
                    // with the sink unlocked (opening a device takes a while, and the owner
                    // may set a sink meanwhile: then theirs stays).
                    let first = !speaker_replaced;
                    speaker_replaced = true;
                    let default = if first {
                        dyad_media::Speaker::open(None, 1).ok()
                    } else {
                        None
                    };
                    let (next, message): (Box<dyn dyad_media::AudioSink>, String) = match default {
                        Some(d) => (
                            Box::new(d),
                            format!("The speaker stopped ({e}): playing on the system default."),
                        ),
                        None => (
                            Box::new(NullSink),
                            format!("The speaker stopped ({e}) and no other answers: the call is silent here."),
                        ),
                    };
                    if let Ok(mut sink) = sink.lock() {
                        if let Some(s) = sink.as_mut().filter(|s| sink_id(s.as_ref()) == gone) {
                            *s = next;
                            let _ = events.send(DecodeEvent::SpeakerReplaced(message));
                        }
                    }
                }
                if let Some(e) = &echo {
                    for f in frames {
                        let _ = e.try_send(f);
                    }
                }
                if events.send(DecodeEvent::Audio(receiver.counts())).is_err() {
                    break;
                }
            }
        })?;
    Ok(handle)
}

/// The media threads of one connected call, and the channels into them. Dropping it stops them.
#[derive(Debug)]
pub struct MediaRuntime {
    /// What the session decided, for the send threads.
    pub ctl: Arc<SendControl>,
    /// Frames for the VP8 decode thread.
    pub decode_video: std_mpsc::Sender<FrameToDecode>,
    /// Playout decisions for the Opus decode thread.
    pub decode_audio: std_mpsc::Sender<PlayoutAction>,
    /// The microphone's processing (switches change it mid-call).
    pub processor: SharedProcessor,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
        // Threads notice `stop` within one frame (the decoders when their channel closes); they
        // are detached rather than joined so a camera stuck in a driver call can never hang the
        // call task.
        self.threads.clear();
    }
}

/// Where the threads of a call get their input and put their output.
pub struct MediaWiring {
    /// Encoded media and capture counts go here.
    pub send_events: mpsc::UnboundedSender<SendEvent>,
    /// Decode results go here.
    pub decode_events: mpsc::UnboundedSender<DecodeEvent>,
    /// The latest decoded remote frame.
    pub remote_video: watch::Sender<Option<Arc<DecodedVideo>>>,
    /// The latest captured frame (self-view).
    pub self_view: watch::Sender<Option<Arc<VideoFrame>>>,
    /// Where received audio is played.
    pub speaker: SharedSink,
}

impl std::fmt::Debug for MediaWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWiring").finish_non_exhaustive()
    }
}

/// Starts capture → encode, and decode → display/speaker, for one call. `video_bps` is the
/// encoder's first target; `muted` is (microphone off, camera off).
pub fn start_media(
    config: &MediaConfig,
    video_bps: u64,
    muted: (bool, bool),
    wiring: MediaWiring,
) -> Result<MediaRuntime> {
    let ctl = Arc::new(SendControl {
        self_view: Some(wiring.self_view),
        ..SendControl::default()
    });
    ctl.video_bps.store(video_bps, Ordering::Relaxed);
    ctl.audio_muted.store(muted.0, Ordering::Relaxed);
    ctl.video_muted.store(muted.1, Ordering::Relaxed);
    // The echo bot sends back what it decodes.
    let (video_echo_tx, video_echo_rx) = if matches!(config.video, VideoInput::Echo) {
        let (tx, rx) = std_mpsc::sync_channel(1);
        (Some(tx), Some(Arc::new(Mutex::new(rx))))
    } else {
        (None, None)
    };
    let (audio_echo_tx, audio_echo_rx) = if config.audio == AudioInput::Echo {
        let (tx, rx) = std_mpsc::sync_channel(8);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (decode_video, video_rx) = std_mpsc::channel();
    let (decode_audio, audio_rx) = std_mpsc::channel();
    let processor = Arc::new(Mutex::new(AudioProcessor::new(config.processing)));
    let threads = vec![
        spawn_video_decoder(
            video_rx,
            wiring.remote_video,
            wiring.decode_events.clone(),
            video_echo_tx,
            Arc::clone(&ctl),
        )?,
        spawn_audio_decoder(
            audio_rx,
            wiring.speaker,
            audio_echo_tx,
            wiring.decode_events,
            Arc::clone(&processor),
            Arc::clone(&ctl),
        )?,
        spawn_video_sender(
            config,
            Arc::clone(&ctl),
            wiring.send_events.clone(),
            video_echo_rx,
        )?,
        spawn_audio_sender(
            config,
            Arc::clone(&ctl),
            wiring.send_events,
            audio_echo_rx,
            Arc::clone(&processor),
        )?,
    ];
    Ok(MediaRuntime {
        ctl,
        decode_video,
        decode_audio,
        processor,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_is_camera_off_and_the_pattern_is_not() {
        let black = VideoFrame::black(640, 480, 0).expect("valid size");
        assert!(is_camera_off_picture(&black));
        let pattern = dyad_media::testpattern::render(640, 480, 3, 0).expect("valid size");
        assert!(!is_camera_off_picture(&pattern));
    }

    #[test]
    fn ladder_steps_down_and_up_with_hysteresis() {
        let src = (640, 480);
        assert_eq!(ladder_step(src, 300_000, 1), 1);
        assert_eq!(ladder_step(src, 190_000, 1), 2);
        // Just above the down threshold is not enough to go back up.
        assert_eq!(ladder_step(src, 210_000, 2), 2);
        assert_eq!(ladder_step(src, 260_000, 2), 1);
        assert_eq!(ladder_step(src, 90_000, 2), 4);
        assert_eq!(ladder_step(src, 110_000, 4), 4);
        assert_eq!(ladder_step(src, 130_000, 4), 2);
        assert_eq!(ladder_step((1280, 720), 500_000, 1), 2);
    }

    #[test]
    fn downscale_keeps_the_picture() {
        let f = dyad_media::testpattern::render(640, 480, 7, 1234).unwrap();
        let h = downscale(&f, 2).unwrap();
        assert_eq!((h.width(), h.height()), (320, 240));
        // The mean luma stays (box filter).
        let mean = |p: &[u8]| p.iter().map(|&v| u64::from(v)).sum::<u64>() / p.len() as u64;
        assert!(mean(f.y()).abs_diff(mean(h.y())) <= 1);
        let q = downscale(&f, 4).unwrap();
        assert_eq!((q.width(), q.height()), (160, 120));
    }

    #[test]
    fn audio_receiver_carries_out_decode_fec_and_conceal_and_survives_garbage() {
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        let mut tone =
            Tone::new(1, Arc::new(dyad_media::ManualClock::new(0)), 440.0, -20.0).unwrap();
        let pkts: Vec<Bytes> = (0..4)
            .map(|_| {
                Bytes::from(
                    enc.encode(&tone.next_frame().unwrap())
                        .unwrap()
                        .unwrap()
                        .data,
                )
            })
            .collect();
        let mut rx = AudioReceiver::new().unwrap();
        let decode = |seq: u16, payload: &Bytes| PlayoutAction::Decode {
            seq,
            rtp_timestamp: u32::from(seq) * 960,
            payload: payload.clone(),
        };
        assert!(rx.play(&decode(0, &pkts[0])).is_some());
        assert!(rx
            .play(&PlayoutAction::Fec {
                payload: pkts[2].clone()
            })
            .is_some());
        assert!(rx.play(&PlayoutAction::Conceal).is_some());
        assert!(rx.play(&decode(3, &pkts[3])).is_some());
        assert_eq!((rx.decoded, rx.recovered, rx.concealed), (2, 1, 1));
        // Garbage never panics: it is concealed.
        assert!(rx
            .play(&decode(4, &Bytes::from_static(&[0xff; 3])))
            .is_some());
        let _ = rx.play(&decode(5, &Bytes::new()));
        assert!(rx.undecodable >= 1);
    }
}
