//! A simulated room, to measure the audio processing ([`crate::processing`]) without a speaker
//! or a microphone: the far end's voice comes out of a loudspeaker, travels an echo path (a
//! delay, an attenuation, a short reverberant tail of early reflections) and reaches the
//! microphone together with the near-end talker and the room's own noise.
//!
//! Everything is computed, seeded and deterministic, and the room knows the parts of what the
//! microphone hears (echo, near-end speech, noise) separately, which a real recording does not:
//! that is what makes echo return loss enhancement and near-end preservation measurable. The
//! scenarios ([`Scenario`]) are the ones `crates/media/tests/room.rs` asserts on and
//! `dyad bench room` reports (docs/benchmarks.md, "Audio processing").

use crate::audio::XorShift;
use crate::error::Result;
use crate::frame::{AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};
use crate::processing::{AudioProcessor, ProcessingConfig};
use crate::source::AudioSource;
use crate::{ManualClock, SpeechLike};

/// Longest echo the room keeps history for (delay plus tail), ms.
const MAX_ECHO_MS: f64 = 600.0;
/// Measurement windows, ms.
pub const WINDOW_MS: u32 = 250;
/// The room noise of the scenarios without noise, dBFS.
const QUIET_DBFS: f64 = -85.0;
/// A window counts as "far end talking" when the echo in it is above this, dBFS: 40 dB above
/// the room, so that a window's ERLE is the canceller's and not the noise floor's.
const ACTIVE_DBFS: f64 = -45.0;
/// A 20 ms frame of the near-end talker is a pause below this, dBFS.
const PAUSE_DBFS: f64 = -60.0;

/// The path from the loudspeaker to the microphone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoPath {
    /// Delay of the direct sound (playout and capture buffering plus the air), ms.
    pub delay_ms: f64,
    /// Gain of the direct sound, dB (negative: the loudspeaker is quieter at the microphone).
    pub direct_gain_db: f64,
    /// Early reflections after the direct sound.
    pub reflections: usize,
    /// Their amplitude decays by 1/e every this many ms (RT60 ≈ 6.9 ×).
    pub decay_ms: f64,
    /// Reflections arrive within this many ms of the direct sound.
    pub spread_ms: f64,
}

impl Default for EchoPath {
    /// A laptop on a desk: the echo at the microphone about 10 dB below the far end's level
    /// (direct sound and reflections together), RT60 ≈ 170 ms.
    fn default() -> Self {
        Self {
            delay_ms: 120.0,
            direct_gain_db: -14.0,
            reflections: 48,
            decay_ms: 25.0,
            spread_ms: 80.0,
        }
    }
}

/// The parts of one 20 ms frame at the microphone.
#[derive(Debug, Clone)]
pub struct Capture {
    /// What the microphone records: echo + near end + noise, clipped to 16 bits.
    pub mic: AudioFrame,
    /// The echo alone.
    pub echo: Vec<f64>,
    /// The room noise alone.
    pub noise: Vec<f64>,
}

/// The room: a loudspeaker playing the far end, an echo path, a noise, a microphone.
#[derive(Debug)]
pub struct Room {
    path: EchoPath,
    /// (delay in samples after the direct sound, linear gain), the first one the direct sound.
    taps: Vec<(usize, f64)>,
    delay_samples: usize,
    /// Far-end samples as played, newest at `head - 1`.
    history: Vec<f64>,
    head: usize,
    noise_rms: f64,
    noise_state: f64,
    rng: XorShift,
}

fn samples_of_ms(ms: f64) -> usize {
    (ms.max(0.0) * f64::from(AUDIO_SAMPLE_RATE) / 1000.0) as usize
}

fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// 10 log10 of a power ratio, with a floor so that silence is a number.
fn ratio_db(num: f64, den: f64) -> f64 {
    10.0 * ((num + 1e-12) / (den + 1e-12)).log10()
}

fn power(x: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = x.fold((0.0, 0usize), |(s, n), v| (s + v * v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Power of full-scale-normalised i16 samples.
fn power_i16(x: &[i16]) -> f64 {
    power(x.iter().map(|&s| f64::from(s) / 32768.0))
}

impl Room {
    /// A room with `path`, stationary noise at `noise_dbfs` (RMS; `None`: a silent room) and a
    /// `seed` for the reflections and the noise.
    pub fn new(path: EchoPath, noise_dbfs: Option<f64>, seed: u64) -> Self {
        let mut rng = XorShift::new(seed);
        let mut taps = vec![(0, db_to_gain(path.direct_gain_db))];
        for _ in 0..path.reflections {
            let t_ms = rng.range(1.0, path.spread_ms.max(1.0));
            let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
            let gain = db_to_gain(path.direct_gain_db)
                * 0.7
                * (-t_ms / path.decay_ms.max(1.0)).exp()
                * rng.range(0.5, 1.0)
                * sign;
            taps.push((samples_of_ms(t_ms), gain));
        }
        Self {
            path,
            taps,
            delay_samples: samples_of_ms(path.delay_ms),
            history: vec![0.0; samples_of_ms(MAX_ECHO_MS)],
            head: 0,
            noise_rms: noise_dbfs.map_or(0.0, db_to_gain),
            noise_state: 0.0,
            rng,
        }
    }

    /// The path as it is now.
    pub fn path(&self) -> EchoPath {
        self.path
    }

    /// Moves the echo: the same reflections, `delay_ms` after the sound leaves the loudspeaker
    /// (a jump in the playout buffering, a Bluetooth speaker reconnecting). At most 600 ms minus
    /// the reflections' spread.
    pub fn set_delay_ms(&mut self, delay_ms: f64) {
        self.path.delay_ms = delay_ms;
        self.delay_samples = samples_of_ms(delay_ms);
    }

    fn noise_sample(&mut self) -> f64 {
        if self.noise_rms == 0.0 {
            return 0.0;
        }
        // White noise through a one-pole low-pass (a fan's rumble-heavy hiss), scaled to RMS
        // `noise_rms`: uniform in [−1, 1) has RMS 1/√3, and y = 0.9·y + 0.1·x passes
        // 0.1/√(1 − 0.9²) of it.
        let white = self.rng.range(-1.0, 1.0);
        self.noise_state = 0.9 * self.noise_state + 0.1 * white;
        self.noise_state * self.noise_rms / (0.1 / (1.0f64 - 0.81).sqrt() / 3f64.sqrt())
    }

    /// One 20 ms frame: `far` is what the loudspeaker plays now, `near` what the near-end talker
    /// says now (both mono).
    pub fn step(&mut self, far: &AudioFrame, near: &AudioFrame) -> Result<Capture> {
        crate::audio::check_frame(far)?;
        crate::audio::check_frame(near)?;
        let len = self.history.len();
        let mut echo = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        let mut noise = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        let mut mic = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        for i in 0..AUDIO_FRAME_SAMPLES {
            let x = f64::from(far.samples[i * usize::from(far.channels)]) / 32768.0;
            self.history[self.head] = x;
            self.head = (self.head + 1) % len;
            let mut e = 0.0;
            for &(offset, gain) in &self.taps {
                let back = self.delay_samples + offset + 1;
                if back <= len {
                    e += gain * self.history[(self.head + len - back) % len];
                }
            }
            let n = self.noise_sample();
            let s = f64::from(near.samples[i * usize::from(near.channels)]) / 32768.0;
            echo.push(e);
            noise.push(n);
            mic.push(((e + n + s) * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
        }
        Ok(Capture {
            mic: AudioFrame::new(1, mic, near.capture_us)?,
            echo,
            noise,
        })
    }
}

/// A talker: [`SpeechLike`]'s voiced syllables with breath and consonant noise under them, at
/// the voice's own envelope.
///
/// Voiced harmonics alone are too periodic: the canceller's delay estimator can lock onto a
/// pitch period's worth of lag and leak echo for a moment (on 8 seeds, windows below 25 dB
/// ERLE in single talk: 0–2 per run with harmonics alone, none with this).
#[derive(Debug)]
pub struct Talker {
    voice: SpeechLike,
    envelope: f64,
    rng: XorShift,
}

impl Talker {
    /// A talker; the same `seed` always says the same thing.
    pub fn new(clock: crate::clock::SharedClock, seed: u64) -> Result<Self> {
        Ok(Self {
            voice: SpeechLike::new(1, clock, seed)?,
            envelope: 0.0,
            rng: XorShift::new(seed ^ 0x5EED_B2EA_7B00),
        })
    }
}

impl AudioSource for Talker {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> Result<AudioFrame> {
        let mut frame = self.voice.next_frame()?;
        for v in frame.samples.iter_mut() {
            let x = f64::from(*v);
            // A 4 ms follower of the voice's magnitude; the noise rides on it (uniform in
            // ±1.7 has about the voice's own RMS per unit of mean magnitude).
            self.envelope = 0.995 * self.envelope + 0.005 * x.abs();
            let noisy = x + self.envelope * self.rng.range(-1.7, 1.7);
            *v = noisy.round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(frame)
    }
}

/// Frames a [`LoopSpeaker`] holds before it drops the oldest (200 ms, as [`crate::Speaker`]).
const LOOP_QUEUE_FRAMES: usize = 10;

#[derive(Debug)]
struct LoopState {
    room: Room,
    /// Frames given to the loudspeaker, not yet sounded.
    queue: std::collections::VecDeque<AudioFrame>,
}

/// The loudspeaker of an [`acoustic_loop`]: what it is given to play sounds into the room.
#[derive(Debug, Clone)]
pub struct LoopSpeaker(std::sync::Arc<std::sync::Mutex<LoopState>>);

/// The microphone of an [`acoustic_loop`]: each frame it yields is the room while the
/// loudspeaker's oldest queued frame sounds (silence when none is queued), with nobody talking
/// near it.
#[derive(Debug, Clone)]
pub struct LoopMicrophone(std::sync::Arc<std::sync::Mutex<LoopState>>);

/// A loudspeaker and a microphone in the same room: a call's played-out audio comes back into
/// its microphone through `path`, the way a laptop's does. The microphone sets the pace (one
/// frame sounds per frame captured), so it must be read in real time, as the call's capture
/// thread does.
pub fn acoustic_loop(
    path: EchoPath,
    noise_dbfs: Option<f64>,
    seed: u64,
) -> (LoopSpeaker, LoopMicrophone) {
    let state = std::sync::Arc::new(std::sync::Mutex::new(LoopState {
        room: Room::new(path, noise_dbfs, seed),
        queue: std::collections::VecDeque::new(),
    }));
    (LoopSpeaker(state.clone()), LoopMicrophone(state))
}

fn lock(state: &std::sync::Mutex<LoopState>) -> std::sync::MutexGuard<'_, LoopState> {
    // A panic elsewhere cannot leave the queue or the room half-written.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl crate::source::AudioSink for LoopSpeaker {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        crate::audio::check_frame(frame)?;
        let mut s = lock(&self.0);
        if s.queue.len() >= LOOP_QUEUE_FRAMES {
            s.queue.pop_front();
        }
        s.queue.push_back(frame.clone());
        Ok(())
    }

    fn queued(&self) -> std::time::Duration {
        std::time::Duration::from_millis(20 * lock(&self.0).queue.len() as u64)
    }
}

impl AudioSource for LoopMicrophone {
    fn channels(&self) -> u16 {
        1
    }

    fn next_frame(&mut self) -> Result<AudioFrame> {
        let mut s = lock(&self.0);
        let far = match s.queue.pop_front() {
            Some(f) if f.channels == 1 => f,
            _ => AudioFrame::silence(1, 0)?,
        };
        let quiet = AudioFrame::silence(1, far.capture_us)?;
        Ok(s.room.step(&far, &quiet)?.mic)
    }
}

/// The measured situations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The far end talks, the near end is silent, 10 s: echo return loss enhancement and how
    /// fast the canceller converges.
    SingleTalk,
    /// Single talk whose echo delay jumps by 50 ms at 6 s, 12 s: how fast it recovers.
    DelayJump,
    /// The far end talks all along, the near end too from 4 s on, 12 s: how much of the near
    /// end's voice survives.
    DoubleTalk,
    /// The near end talks in a room with stationary noise at −45 dBFS, no far end, 10 s: how
    /// much of the noise is removed in the talker's pauses, and what it costs the voice.
    Noise,
}

impl Scenario {
    /// All of them, in the order the benchmark prints them.
    pub const ALL: [Scenario; 4] = [
        Scenario::SingleTalk,
        Scenario::DelayJump,
        Scenario::DoubleTalk,
        Scenario::Noise,
    ];

    /// Length, seconds.
    pub fn seconds(self) -> u32 {
        match self {
            Scenario::SingleTalk | Scenario::Noise => 10,
            Scenario::DelayJump | Scenario::DoubleTalk => 12,
        }
    }

    /// When the echo delay jumps (DelayJump), s.
    pub const JUMP_AT_S: f64 = 6.0;
    /// How far it jumps, ms.
    pub const JUMP_MS: f64 = 50.0;
    /// When the near end starts talking (DoubleTalk), s.
    pub const NEAR_FROM_S: f64 = 4.0;
    /// The room noise of the Noise scenario, dBFS.
    pub const NOISE_DBFS: f64 = -45.0;

    /// Its name in the benchmark's table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SingleTalk => "single talk",
            Scenario::DelayJump => "echo delay +50 ms at 6 s",
            Scenario::DoubleTalk => "double talk from 4 s",
            Scenario::Noise => "stationary noise −45 dBFS",
        }
    }
}

/// One measurement window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start, s.
    pub start_s: f64,
    /// Echo power at the microphone, dBFS.
    pub echo_dbfs: f64,
    /// Processed output power, dBFS.
    pub out_dbfs: f64,
    /// Echo at the microphone over the output, dB: the echo return loss enhancement while the
    /// near end is silent.
    pub erle_db: f64,
}

/// What one run of a scenario measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The processing it ran with.
    pub config: ProcessingConfig,
    /// Every window, in order.
    pub windows: Vec<Window>,
    /// Median ERLE over the windows with the far end talking and the near end silent, after
    /// the first 2 s and (DelayJump) outside the second after the jump, dB.
    pub erle_db: Option<f64>,
    /// Far-end windows judged for `erle_db`, and how many of them fell below [`GOAL_ERLE_DB`]
    /// (a moment of audible echo).
    pub judged_windows: usize,
    /// See `judged_windows`.
    pub leak_windows: usize,
    /// From when on every far-end window reaches [`GOAL_ERLE_DB`] (until the delay jump), s.
    pub converged_s: Option<f64>,
    /// After the jump, how long until every far-end window reaches `goal_db` again, s.
    pub recovered_s: Option<f64>,
    /// Near-end level in the output over its level at the microphone, in double talk, dB
    /// (0: untouched; residual echo counts in it, so it can come out above 0).
    pub near_change_db: Option<f64>,
    /// Noise in the output over noise at the microphone, in the talker's pauses, dB (Noise).
    pub noise_change_db: Option<f64>,
    /// Output over the microphone while the talker talks (Noise): what the voice keeps, dB.
    pub speech_change_db: Option<f64>,
}

impl RoomReport {
    /// The figures on one line, without the windows.
    pub fn summary(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
        format!(
            "{} {:?}: ERLE {} dB ({} of {} windows < {GOAL_ERLE_DB} dB), converged {} s, \
             recovered {} s, near end {} dB, noise {} dB, voice {} dB",
            self.scenario.name(),
            self.config,
            f(self.erle_db),
            self.leak_windows,
            self.judged_windows,
            f(self.converged_s),
            f(self.recovered_s),
            f(self.near_change_db),
            f(self.noise_change_db),
            f(self.speech_change_db),
        )
    }
}

/// The ERLE every far-end window must reach for `converged_s` / `recovered_s`.
pub const GOAL_ERLE_DB: f64 = 25.0;

/// Runs `scenario` with `config` and `seed` (the talkers' speech and the room).
pub fn run(scenario: Scenario, config: ProcessingConfig, seed: u64) -> Result<RoomReport> {
    let clock = std::sync::Arc::new(ManualClock::new(0));
    let mut far_src = Talker::new(clock.clone(), seed.wrapping_mul(2).wrapping_add(1))?;
    let mut near_src = Talker::new(clock, seed.wrapping_mul(2).wrapping_add(2))?;
    let noise = (scenario == Scenario::Noise).then_some(Scenario::NOISE_DBFS);
    // A quiet room otherwise (−85 dBFS, a good microphone's own noise): never digital silence,
    // and far enough below the echo that what the output keeps of it can be measured.
    let mut room = Room::new(EchoPath::default(), noise.or(Some(QUIET_DBFS)), seed);
    let mut processor = AudioProcessor::new(config);
    // What the engine reports: the playout queue and the devices' buffers, not the air.
    processor.set_stream_delay(std::time::Duration::from_millis(100));

    let frames = scenario.seconds() * 1000 / 20;
    let per_window = (WINDOW_MS / 20) as usize;
    let mut acc = (0.0, 0.0, 0usize); // echo power sum, out power sum, frames
    let mut windows = Vec::new();
    let mut dt = (0.0, 0.0); // double talk: out, near
                             // Noise scenario, per frame after the first 2 s: near end's power, output's, noise's, mic's.
    let mut noise_frames: Vec<[f64; 4]> = Vec::new();
    for f in 0..frames {
        let t = f64::from(f) * 0.02;
        if scenario == Scenario::DelayJump && (t - Scenario::JUMP_AT_S).abs() < 1e-9 {
            room.set_delay_ms(room.path().delay_ms + Scenario::JUMP_MS);
        }
        let far_frame = far_src.next_frame()?;
        let far = if scenario == Scenario::Noise {
            AudioFrame::silence(1, far_frame.capture_us)?
        } else {
            far_frame
        };
        let near_frame = near_src.next_frame()?;
        let near_talks = match scenario {
            Scenario::DoubleTalk => t >= Scenario::NEAR_FROM_S,
            Scenario::Noise => true,
            Scenario::SingleTalk | Scenario::DelayJump => false,
        };
        let near = if near_talks {
            near_frame
        } else {
            AudioFrame::silence(1, near_frame.capture_us)?
        };
        let capture = room.step(&far, &near)?;
        processor.analyze_render(&far)?;
        let mut out = capture.mic.clone();
        processor.process_capture(&mut out)?;

        let p_out = power_i16(&out.samples);
        let p_near = power_i16(&near.samples);
        acc.0 += power(capture.echo.iter().copied());
        acc.1 += p_out;
        acc.2 += 1;
        if scenario == Scenario::DoubleTalk && t >= Scenario::NEAR_FROM_S + 1.0 {
            dt.0 += p_out;
            dt.1 += p_near;
        }
        if scenario == Scenario::Noise && t >= 2.0 {
            noise_frames.push([
                p_near,
                p_out,
                power(capture.noise.iter().copied()),
                power_i16(&capture.mic.samples),
            ]);
        }
        if acc.2 == per_window {
            let n = acc.2 as f64;
            windows.push(Window {
                start_s: f64::from(f + 1 - per_window as u32) * 0.02,
                echo_dbfs: ratio_db(acc.0 / n, 1.0),
                out_dbfs: ratio_db(acc.1 / n, 1.0),
                erle_db: ratio_db(acc.0, acc.1),
            });
            acc = (0.0, 0.0, 0);
        }
    }

    let single = |w: &Window| {
        w.echo_dbfs > ACTIVE_DBFS
            && !(scenario == Scenario::DoubleTalk && w.start_s >= Scenario::NEAR_FROM_S)
            && scenario != Scenario::Noise
    };
    let end_first = if scenario == Scenario::DelayJump {
        Scenario::JUMP_AT_S
    } else {
        f64::INFINITY
    };
    let mut erles: Vec<f64> = windows
        .iter()
        .filter(|w| single(w) && w.start_s >= 2.0)
        .filter(|w| {
            scenario != Scenario::DelayJump
                || !(Scenario::JUMP_AT_S..Scenario::JUMP_AT_S + 1.0).contains(&w.start_s)
        })
        .map(|w| w.erle_db)
        .collect();
    let judged_windows = erles.len();
    let leak_windows = erles.iter().filter(|&&e| e < GOAL_ERLE_DB).count();
    erles.sort_by(f64::total_cmp);
    let erle_db = (!erles.is_empty()).then(|| erles[erles.len() / 2]);
    let settled_from = |from: f64, to: f64| -> Option<f64> {
        let active: Vec<&Window> = windows
            .iter()
            .filter(|w| single(w) && w.start_s >= from && w.start_s < to)
            .collect();
        // The start of the first window after which no far-end window misses the goal.
        let last_miss = active.iter().rposition(|w| w.erle_db < GOAL_ERLE_DB);
        match last_miss {
            None => active.first().map(|_| 0.0),
            Some(i) if i + 1 < active.len() => Some(active[i + 1].start_s - from),
            Some(_) => None,
        }
    };
    let (converged_s, recovered_s) = match scenario {
        Scenario::SingleTalk | Scenario::DelayJump => (
            settled_from(0.0, end_first),
            (scenario == Scenario::DelayJump)
                .then(|| settled_from(Scenario::JUMP_AT_S, f64::INFINITY))
                .flatten(),
        ),
        Scenario::DoubleTalk => (settled_from(0.0, Scenario::NEAR_FROM_S), None),
        Scenario::Noise => (None, None),
    };
    // A pause frame is one with 40 ms of silence on either side: the processing's own delay and
    // the voice's decay must not count as noise left in.
    let silent = |i: usize| ratio_db(noise_frames[i][0], 1.0) < PAUSE_DBFS;
    let (mut pauses, mut talk) = ((0.0, 0.0), (0.0, 0.0));
    for (i, f) in noise_frames.iter().enumerate() {
        if i >= 2 && i + 2 < noise_frames.len() && (i - 2..=i + 2).all(silent) {
            pauses.0 += f[1];
            pauses.1 += f[2];
        } else if !silent(i) {
            talk.0 += f[1];
            talk.1 += f[3];
        }
    }
    Ok(RoomReport {
        scenario,
        config,
        windows,
        erle_db,
        judged_windows,
        leak_windows,
        converged_s,
        recovered_s,
        near_change_db: (scenario == Scenario::DoubleTalk).then(|| ratio_db(dt.0, dt.1)),
        noise_change_db: (scenario == Scenario::Noise).then(|| ratio_db(pauses.0, pauses.1)),
        speech_change_db: (scenario == Scenario::Noise).then(|| ratio_db(talk.0, talk.1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_is_the_far_end_delayed_and_attenuated() {
        let path = EchoPath {
            reflections: 0,
            delay_ms: 30.0,
            direct_gain_db: -6.0,
            ..EchoPath::default()
        };
        let mut room = Room::new(path, None, 1);
        let mut impulse = AudioFrame::silence(1, 0).expect("frame");
        impulse.samples[0] = 16384;
        let silence = AudioFrame::silence(1, 0).expect("frame");
        let first = room.step(&impulse, &silence).expect("step");
        assert!(first.echo.iter().all(|&e| e == 0.0));
        let second = room.step(&silence, &silence).expect("step");
        // 30 ms = 1440 samples: sample 480 of the second frame.
        let (at, value) = second
            .echo
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .expect("samples");
        assert_eq!(at, 1440 - AUDIO_FRAME_SAMPLES);
        assert!((value - 0.5 * db_to_gain(-6.0)).abs() < 1e-9, "{value}");
    }

    #[test]
    fn the_noise_has_the_level_asked_for() {
        let mut room = Room::new(EchoPath::default(), Some(-45.0), 3);
        let silence = AudioFrame::silence(1, 0).expect("frame");
        let mut p = 0.0;
        for _ in 0..200 {
            p += power(
                room.step(&silence, &silence)
                    .expect("step")
                    .noise
                    .into_iter(),
            );
        }
        let db = ratio_db(p / 200.0, 1.0);
        assert!((db - -45.0).abs() < 1.0, "{db}");
    }
}
