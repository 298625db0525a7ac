//! What every video and audio source and sink looks like, and pacing for the synthetic ones.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::frame::{AudioFrame, VideoFrame};

/// Size and rate of a video source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second (≥ 1).
    pub fps: u32,
}

impl VideoFormat {
    /// Time between two frames.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.fps.max(1)))
    }
}

/// Anything that yields I420 frames: a camera, the test pattern, a Y4M file.
///
/// `next_frame` returns the next frame as soon as the source has one. A camera blocks until the
/// device delivers (bounded by a timeout); synthetic sources return at once, and [`Pacer`] holds
/// them to real time when a real-time stream is wanted.
pub trait VideoSource: Send {
    /// The format of the frames this source yields.
    fn format(&self) -> VideoFormat;
    /// The next frame, stamped with its capture time.
    fn next_frame(&mut self) -> Result<VideoFrame>;
}

/// Anything that yields 20 ms audio frames at 48 kHz: a microphone or a synthetic signal.
pub trait AudioSource: Send {
    /// 1 (mono) or 2 (stereo).
    fn channels(&self) -> u16;
    /// The next 20 ms of audio.
    fn next_frame(&mut self) -> Result<AudioFrame>;
}

/// Anything that consumes 20 ms audio frames: a speaker or a recorder.
pub trait AudioSink: Send {
    /// Plays (or stores) one frame.
    fn play(&mut self, frame: &AudioFrame) -> Result<()>;

    /// How much audio is queued and not yet played: the time a frame given to [`Self::play`]
    /// now waits before it is heard (the echo canceller's playout delay). Zero for sinks that
    /// play nothing aloud.
    fn queued(&self) -> Duration {
        Duration::ZERO
    }
}

/// Holds a synthetic stream to real time: `wait()` returns at start + n × interval.
///
/// This is the I/O edge (it sleeps); the sources themselves never read the clock or sleep. When the
/// caller falls behind by more than one interval the schedule restarts from now instead of
/// bursting to catch up (latency beats smoothness).
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer that ticks every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    /// Sleeps until the next tick (the first tick is immediate).
    pub fn wait(&mut self) {
        let now = Instant::now();
        let due = *self.next.get_or_insert(now);
        if due > now {
            std::thread::sleep(due - now);
            self.next = Some(due + self.interval);
        } else if now.saturating_duration_since(due) > self.interval {
            self.next = Some(now + self.interval);
        } else {
            self.next = Some(due + self.interval);
        }
    }
}
