//! Cameras, microphones and speakers for the pickers, the synthetic sources beside them, and the
//! pre-join preview (self-view + microphone level) that runs before a call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dyad_call::media::{open_audio_with, open_video};
use dyad_call::{AudioInput, VideoInput};
use dyad_media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};
use dyad_media::{AudioSink, Pacer, Speaker, VideoFormat, VideoFrame};

use crate::error::{AppError, Result};
use crate::ipc::{DeviceChoice, DeviceList, DeviceOption};

/// The preview's capture size (the call's too).
pub const FORMAT: VideoFormat = VideoFormat {
    width: 640,
    height: 480,
    fps: 30,
};

fn opt(id: &str, label: &str) -> DeviceOption {
    DeviceOption {
        id: id.into(),
        label: label.into(),
    }
}

/// What can be picked now. Real devices first; the synthetic sources are always there so a
/// machine without a camera or microphone can still make a (test) call.
pub fn list() -> DeviceList {
    let mut notes = Vec::new();
    let mut cameras = Vec::new();
    match dyad_media::list_cameras() {
        Ok(list) if !list.is_empty() => {
            for c in list {
                cameras.push(opt(&format!("camera:{}", c.index), &c.name));
            }
        }
        Ok(_) => notes.push("No camera found: calls send the test pattern.".to_string()),
        Err(e) => notes.push(format!(
            "Cameras unavailable ({e}): calls send the test pattern."
        )),
    }
    cameras.push(opt("pattern", "Test pattern"));
    cameras.push(opt("noisy-pattern", "Test pattern with camera noise"));
    // Every device cpal sees, by its id, after the system defaults. ALSA's "null" device is
    // left out: it opens, and records and plays nothing.
    let devices = match dyad_media::list_audio_devices() {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("Sound devices unavailable ({e})."));
            Vec::new()
        }
    };
    let real = |d: &&dyad_media::AudioDeviceInfo| !d.id.ends_with(":null");
    let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    let (mic_ok, speaker_ok) = defaults_work(&ids);
    let mut microphones = Vec::new();
    if mic_ok {
        microphones.push(opt("mic:default", "System default microphone"));
    } else {
        notes.push("No microphone found: calls send synthetic speech.".into());
    }
    for d in devices.iter().filter(real).filter(|d| d.is_input) {
        microphones.push(opt(&format!("mic:{}", d.id), &d.name));
    }
    microphones.push(opt("speech", "Synthetic speech"));
    microphones.push(opt("tone", "Test tone (440 Hz)"));
    let mut speakers = Vec::new();
    if speaker_ok {
        speakers.push(opt("speaker:default", "System default speaker"));
    } else {
        notes.push("No speaker found: the other side is not played.".into());
    }
    for d in devices.iter().filter(real).filter(|d| d.is_output) {
        speakers.push(opt(&format!("speaker:{}", d.id), &d.name));
    }
    speakers.push(opt("speaker:none", "No sound"));
    DeviceList {
        cameras,
        microphones,
        speakers,
        notes,
    }
}

/// Whether the default microphone and speaker open, probed again only when the device list
/// changed: the page lists devices every 3 s, and opening them that often would make an
/// exclusive device flicker in the pickers and flip a Bluetooth headset between its profiles.
fn defaults_work(ids: &[String]) -> (bool, bool) {
    static PROBE: std::sync::Mutex<Option<(Vec<String>, bool, bool)>> = std::sync::Mutex::new(None);
    let mut probe = PROBE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((known, mic, speaker)) = probe.as_ref() {
        if known.as_slice() == ids {
            return (*mic, *speaker);
        }
    }
    let found = (microphone_works(), speaker_works());
    *probe = Some((ids.to_vec(), found.0, found.1));
    found
}

/// A default microphone that opens (ALSA lists plugin devices even on a machine with no card).
fn microphone_works() -> bool {
    dyad_media::audio::Microphone::open(None, 1, dyad_media::clock::system_clock()).is_ok()
}

/// A default speaker that opens.
fn speaker_works() -> bool {
    Speaker::open(None, 1).is_ok()
}

/// The engine's video input for a picker id.
pub fn video_input(id: &str) -> Result<VideoInput> {
    Ok(match id {
        "pattern" => VideoInput::TestPattern,
        "noisy-pattern" => VideoInput::NoisyPattern,
        c if c.starts_with("camera:") => VideoInput::Camera(
            c["camera:".len()..]
                .parse()
                .map_err(|_| AppError::Invalid(format!("unknown camera {c:?}")))?,
        ),
        other => return Err(AppError::Invalid(format!("unknown camera {other:?}"))),
    })
}

/// Longest device id accepted from the page (cpal's are a few dozen characters).
const MAX_DEVICE_ID: usize = 256;

/// What a microphone picker id means to the engine: the input, and for a microphone its
/// device id (`None`: the system default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicChoice {
    /// The engine's audio input.
    pub input: AudioInput,
    /// The microphone (`dyad_media::list_audio_devices` id); `None`: the default.
    pub id: Option<String>,
}

fn device_id<'a>(id: &'a str, prefix: &str, what: &str) -> Result<Option<&'a str>> {
    match id.strip_prefix(prefix) {
        Some("default") => Ok(None),
        Some(dev)
            if !dev.is_empty() && dev.len() <= MAX_DEVICE_ID && !dev.contains(char::is_control) =>
        {
            Ok(Some(dev))
        }
        _ => Err(AppError::Invalid(format!("unknown {what} {id:?}"))),
    }
}

/// The engine's audio input for a picker id.
pub fn audio_input(id: &str) -> Result<MicChoice> {
    let plain = |input| MicChoice { input, id: None };
    Ok(match id {
        "speech" => plain(AudioInput::Speech),
        "tone" => plain(AudioInput::Tone),
        other => MicChoice {
            input: AudioInput::Microphone,
            id: device_id(other, "mic:", "microphone")?.map(str::to_string),
        },
    })
}

/// Checks a speaker id.
pub fn check_speaker(id: &str) -> Result<()> {
    if id == "speaker:none" {
        return Ok(());
    }
    device_id(id, "speaker:", "speaker").map(|_| ())
}

/// The speaker's device id for a picker id (`None`: the default; an error for "no sound").
fn speaker_id(id: &str) -> Result<Option<&str>> {
    if id == "speaker:none" {
        return Err(AppError::Invalid("no sound".into()));
    }
    device_id(id, "speaker:", "speaker")
}

/// The speaker to play the other side on; `None` for "no sound" or when there is none.
pub fn speaker(id: &str) -> Option<Box<dyn AudioSink>> {
    let dev = speaker_id(id).ok()?;
    match Speaker::open(dev, 1) {
        Ok(s) => Some(Box::new(s)),
        Err(e) => {
            tracing::info!(error = %e, "no speaker");
            None
        }
    }
}

/// The choice to use: a camera, microphone or speaker that is not there falls back to the
/// synthetic source (or no sound); the pickers' notes tell the user (see [`list`]).
pub fn effective(choice: &DeviceChoice) -> DeviceChoice {
    let mut c = choice.clone();
    if let Ok(VideoInput::Camera(i)) = video_input(&c.camera) {
        let present = dyad_media::list_cameras()
            .map(|l| l.iter().any(|cam| cam.index == i))
            .unwrap_or(false);
        if !present {
            c.camera = "pattern".into();
        }
    } else if video_input(&c.camera).is_err() {
        c.camera = "pattern".into();
    }
    // A chosen device that is gone (unplugged since the last run) gives way to the default;
    // with no default either, to the synthetic speech / no sound.
    let present = |id: &str, input: bool| {
        dyad_media::list_audio_devices()
            .map(|l| {
                l.iter()
                    .any(|d| d.id == id && if input { d.is_input } else { d.is_output })
            })
            .unwrap_or(false)
    };
    match audio_input(&c.microphone) {
        Ok(MicChoice { id: Some(id), .. }) if !present(&id, true) => {
            c.microphone = "mic:default".into();
        }
        Ok(_) => {}
        Err(_) => c.microphone = "mic:default".into(),
    }
    if c.microphone == "mic:default" && !microphone_works() {
        c.microphone = "speech".into();
    }
    match speaker_id(&c.speaker) {
        Ok(Some(id)) if !present(id, false) => c.speaker = "speaker:default".into(),
        Ok(_) => {}
        Err(_) if c.speaker == "speaker:none" => {}
        Err(_) => c.speaker = "speaker:default".into(),
    }
    if c.speaker == "speaker:default" && !speaker_works() {
        c.speaker = "speaker:none".into();
    }
    c
}

/// The ring tone for an incoming call (440 + 480 Hz, 2 s on, 4 s off) on the default speaker,
/// until dropped. The page does not play it: WebKitGTK's audio output blocks the page on a
/// machine without a sound card, while a speaker that will not open here fails at once.
#[derive(Debug)]
pub struct Ringer {
    stop: Arc<AtomicBool>,
}

impl Drop for Ringer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Ringer {
    /// Starts ringing on `speaker` (a picker id); `None` for "no sound" or no speaker.
    pub fn start(speaker: &str) -> Option<Ringer> {
        let mut sink = Speaker::open(speaker_id(speaker).ok()?, 1).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("dyad-ringer".into())
            .spawn(move || {
                let mut pacer = Pacer::new(Duration::from_millis(20));
                let rate = f64::from(AUDIO_SAMPLE_RATE);
                let mut n: u64 = 0;
                while !s.load(Ordering::Relaxed) {
                    pacer.wait();
                    // 300 frames of 20 ms = 6 s: ring for the first 100.
                    let on = n % 300 < 100;
                    let samples: Vec<i16> = (0..AUDIO_FRAME_SAMPLES as u64)
                        .map(|i| {
                            if !on {
                                return 0;
                            }
                            let t = (n * AUDIO_FRAME_SAMPLES as u64 + i) as f64 / rate;
                            let v = (std::f64::consts::TAU * 440.0 * t).sin()
                                + (std::f64::consts::TAU * 480.0 * t).sin();
                            (v * 0.15 * f64::from(i16::MAX)) as i16
                        })
                        .collect();
                    let Ok(frame) = dyad_media::AudioFrame::new(1, samples, 0) else {
                        return;
                    };
                    if sink.play(&frame).is_err() {
                        return;
                    }
                    n += 1;
                }
            });
        spawned.ok().map(|_| Ringer { stop })
    }
}

/// The running preview; dropping it stops the capture threads.
#[derive(Debug)]
pub struct Preview {
    stop: Arc<AtomicBool>,
}

impl Drop for Preview {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Self-view frames go here.
pub type FrameOut = Box<dyn Fn(Arc<VideoFrame>) + Send>;
/// Microphone levels (dBFS, 10 per second) go here.
pub type LevelOut = Box<dyn Fn(f64) + Send>;

impl Preview {
    /// Opens `video` and `audio` and runs them until dropped.
    pub fn start(
        video: VideoInput,
        audio: MicChoice,
        frames: FrameOut,
        levels: LevelOut,
    ) -> Result<Preview> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut next = open_video(&video, FORMAT, &None)?;
        let s = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("dyad-preview-video".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match next() {
                        Ok(Some(f)) => frames(Arc::new(f)),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "preview camera");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })
            .map_err(|source| AppError::Io {
                what: "preview thread".into(),
                source,
            })?;
        let mut source = open_audio_with(audio.input, audio.id.as_deref(), None)?;
        let s = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("dyad-preview-audio".into())
            .spawn(move || {
                let Some(src) = source.as_mut() else { return };
                let mut pacer = Pacer::new(Duration::from_millis(20));
                let mut peak = f64::NEG_INFINITY;
                let mut n = 0;
                while !s.load(Ordering::Relaxed) {
                    pacer.wait();
                    match src.next_frame() {
                        Ok(f) => peak = peak.max(f.level_dbfs()),
                        Err(e) => {
                            tracing::warn!(error = %e, "preview microphone");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                    n += 1;
                    if n % 5 == 0 {
                        levels(peak.max(-100.0));
                        peak = f64::NEG_INFINITY;
                    }
                }
            })
            .map_err(|source| AppError::Io {
                what: "preview thread".into(),
                source,
            })?;
        Ok(Preview { stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_ids_map_to_inputs_and_unknown_ids_are_refused() {
        assert!(matches!(video_input("camera:2"), Ok(VideoInput::Camera(2))));
        assert!(matches!(
            video_input("pattern"),
            Ok(VideoInput::TestPattern)
        ));
        assert!(video_input("camera:x").is_err());
        assert!(video_input("/etc/passwd").is_err());
        assert_eq!(
            audio_input("tone").map(|m| m.input).ok(),
            Some(AudioInput::Tone)
        );
        let usb = audio_input("mic:alsa:hw:CARD=USB,DEV=0").expect("a device id");
        assert_eq!(usb.input, AudioInput::Microphone);
        assert_eq!(usb.id.as_deref(), Some("alsa:hw:CARD=USB,DEV=0"));
        assert_eq!(audio_input("mic:default").expect("default").id, None);
        assert!(audio_input("mic:").is_err());
        assert!(audio_input("other").is_err());
        assert!(audio_input(&format!("mic:{}", "x".repeat(300))).is_err());
        assert!(audio_input("mic:a\nb").is_err());
        assert!(check_speaker("speaker:none").is_ok());
        assert!(check_speaker("speaker:alsa:hw:CARD=USB,DEV=0").is_ok());
        assert!(check_speaker("speaker:").is_err());
        assert!(check_speaker("hdmi").is_err());
    }

    #[test]
    fn a_device_that_is_gone_gives_way_to_the_default_and_then_to_the_synthetic_source() {
        // This machine has no sound card: the unplugged USB headset falls back to the default,
        // and the default (none here) to synthetic speech / no sound. Never an error.
        let want = DeviceChoice {
            camera: "pattern".into(),
            microphone: "mic:alsa:hw:CARD=Headset,DEV=0".into(),
            speaker: "speaker:alsa:hw:CARD=Headset,DEV=0".into(),
        };
        let got = effective(&want);
        let expect_mic = if microphone_works() {
            "mic:default"
        } else {
            "speech"
        };
        let expect_speaker = if speaker_works() {
            "speaker:default"
        } else {
            "speaker:none"
        };
        assert_eq!(got.microphone, expect_mic);
        assert_eq!(got.speaker, expect_speaker);
        // A choice that is there stays.
        let synthetic = DeviceChoice {
            microphone: "tone".into(),
            speaker: "speaker:none".into(),
            ..want
        };
        assert_eq!(effective(&synthetic), synthetic);
    }

    #[test]
    fn synthetic_sources_are_always_offered() {
        let l = list();
        assert!(l.cameras.iter().any(|c| c.id == "pattern"));
        assert!(l.microphones.iter().any(|c| c.id == "speech"));
        assert!(l.speakers.iter().any(|c| c.id == "speaker:none"));
    }

    #[test]
    fn preview_delivers_frames_and_levels() {
        let (ftx, frx) = std::sync::mpsc::channel();
        let (ltx, lrx) = std::sync::mpsc::channel();
        let p = Preview::start(
            VideoInput::TestPattern,
            MicChoice {
                input: AudioInput::Tone,
                id: None,
            },
            Box::new(move |f| {
                let _ = ftx.send(f.width());
            }),
            Box::new(move |l| {
                let _ = ltx.send(l);
            }),
        )
        .expect("synthetic sources open");
        assert_eq!(frx.recv_timeout(Duration::from_secs(5)), Ok(640));
        let level = lrx.recv_timeout(Duration::from_secs(5)).expect("a level");
        // The tone is generated at -20 dBFS RMS; its peak frame level reads the same.
        assert!((level - -20.0).abs() < 1.5, "{level}");
        drop(p);
    }
}
