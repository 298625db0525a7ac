//! `dyad demo`: the media engine end to end in one process, measured.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use dyad_media::clock::{system_clock, Clock, SystemClock};
use dyad_media::frame::psnr_y;
use dyad_media::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use dyad_media::{
    list_audio_devices, read_marker, AudioSource, OpusConfig, OpusDecoder, OpusEncoder, Pacer,
    TestPattern, Tone, VideoFormat, VideoSource,
};

/// Options of `dyad demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Frame width.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// VP8 target bitrate, kbit/s.
    #[arg(long, default_value_t = 800)]
    bitrate: u32,
    /// Seconds of video to run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Run as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
}

/// Per-second (and whole-run) measurements of the video path.
#[derive(Default)]
struct Window {
    frames: u32,
    dropped: u32,
    bytes: usize,
    encode_ms: Vec<f64>,
    decode_ms: Vec<f64>,
    latency_ms: Vec<f64>,
    psnr: Vec<f64>,
    markers_ok: u32,
    out_of_order: u32,
}

impl Window {
    fn merge(&mut self, other: &Window) {
        self.frames += other.frames;
        self.dropped += other.dropped;
        self.bytes += other.bytes;
        self.encode_ms.extend(&other.encode_ms);
        self.decode_ms.extend(&other.decode_ms);
        self.latency_ms.extend(&other.latency_ms);
        self.psnr.extend(&other.psnr);
        self.markers_ok += other.markers_ok;
        self.out_of_order += other.out_of_order;
    }
}

/// The `q` quantile (0..=1) of `v`; 0 for an empty list.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Runs the demo and prints one line a second and a summary.
pub fn run(args: &DemoArgs) -> Result<()> {
    let format = VideoFormat {
        width: args.width,
        height: args.height,
        fps: args.fps,
    };
    let clock = system_clock();
    let mut source = TestPattern::new(format, clock.clone()).context("test pattern")?;
    let mut encoder = Vp8Encoder::new(Vp8Config::realtime(
        args.width,
        args.height,
        args.fps,
        args.bitrate,
    ))
    .context("VP8 encoder")?;
    let mut decoder = Vp8Decoder::new(1).context("VP8 decoder")?;
    let mut pacer = Pacer::new(format.frame_interval());

    println!(
        "dyad demo: test pattern {}x{}@{} → VP8 {} kbit/s (1 thread, cpu-used {}) → decode → read markers",
        args.width,
        args.height,
        args.fps,
        args.bitrate,
        encoder.config().cpu_used
    );
    println!(
        "{:>4} {:>6} {:>5} {:>8} {:>9} {:>9} {:>8} {:>11} {:>8}",
        "sec", "frames", "drop", "kbit/s", "enc p50", "dec p50", "PSNR-Y", "markers ok", "latency"
    );
    let mut total = Window::default();
    let mut last_number: Option<u32> = None;
    for second in 1..=args.seconds {
        let mut w = Window::default();
        for _ in 0..args.fps {
            if !args.fast {
                pacer.wait();
            }
            let frame = source.next_frame()?;
            w.frames += 1;
            let t0 = Instant::now();
            let encoded = encoder.encode(&frame)?;
            w.encode_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            let Some(encoded) = encoded else {
                w.dropped += 1;
                continue;
            };
            w.bytes += encoded.data.len();
            let t1 = Instant::now();
            let decoded = decoder.decode(&encoded.data, encoded.capture_us)?;
            w.decode_ms.push(t1.elapsed().as_secs_f64() * 1e3);
            let Some(decoded) = decoded else { continue };
            w.psnr.push(psnr_y(&frame, &decoded)?);
            if let Ok(marker) = read_marker(&decoded) {
                w.markers_ok += 1;
                w.latency_ms
                    .push(marker.age_us(SystemClock.now_us()) as f64 / 1e3);
                if last_number.is_some_and(|n| marker.frame <= n) {
                    w.out_of_order += 1;
                }
                last_number = Some(marker.frame);
            }
        }
        let kbps = w.bytes as f64 * 8.0 / 1000.0 * f64::from(args.fps) / f64::from(w.frames);
        println!(
            "{:>4} {:>6} {:>5} {:>8.0} {:>6.2} ms {:>6.2} ms {:>5.1} dB {:>5}/{:<5} {:>5.1} ms",
            second,
            w.frames,
            w.dropped,
            kbps,
            quantile(&w.encode_ms, 0.5),
            quantile(&w.decode_ms, 0.5),
            mean(&w.psnr),
            w.markers_ok,
            w.frames - w.dropped,
            quantile(&w.latency_ms, 0.5),
        );
        total.merge(&w);
    }
    let decoded = total.frames - total.dropped;
    let seconds = f64::from(total.frames) / f64::from(args.fps);
    println!(
        "video: {} frames, {} dropped by rate control, {:.0} kbit/s for a {} kbit/s target",
        total.frames,
        total.dropped,
        total.bytes as f64 * 8.0 / 1000.0 / seconds,
        args.bitrate
    );
    println!(
        "       encode p50 {:.2} ms p95 {:.2} ms; decode p50 {:.2} ms p95 {:.2} ms; PSNR-Y mean {:.1} dB",
        quantile(&total.encode_ms, 0.5),
        quantile(&total.encode_ms, 0.95),
        quantile(&total.decode_ms, 0.5),
        quantile(&total.decode_ms, 0.95),
        mean(&total.psnr)
    );
    println!(
        "       markers read back {}/{} in order ({} out of order); capture→decoded p50 {:.1} ms p95 {:.1} ms",
        total.markers_ok,
        decoded,
        total.out_of_order,
        quantile(&total.latency_ms, 0.5),
        quantile(&total.latency_ms, 0.95)
    );
    if total.markers_ok != decoded || total.out_of_order != 0 {
        anyhow::bail!("some decoded frames did not carry their frame number in order");
    }
    audio()?;
    println!();
    devices()
}

/// Frequency of a mono signal from its upward zero crossings.
fn zero_crossing_hz(samples: &[i16]) -> f64 {
    let ups = samples.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    ups as f64 * f64::from(dyad_media::frame::AUDIO_SAMPLE_RATE) / samples.len() as f64
}

/// A 440 Hz tone through Opus (32 kbit/s, FEC on) and back; prints what came out.
fn audio() -> Result<()> {
    const FREQ: f64 = 440.0;
    const LEVEL: f64 = -12.0;
    let mut tone = Tone::new(1, system_clock(), FREQ, LEVEL)?;
    let mut encoder = OpusEncoder::new(OpusConfig::default())?;
    let mut decoder = OpusDecoder::new(1)?;
    let (mut enc_us, mut dec_us, mut bytes, mut out) = (vec![], vec![], 0usize, vec![]);
    let frames = 100; // 2 s
    for n in 0..frames {
        let frame = tone.next_frame()?;
        let t0 = Instant::now();
        let packet = encoder.encode(&frame)?;
        enc_us.push(t0.elapsed().as_secs_f64() * 1e6);
        let Some(packet) = packet else { continue };
        bytes += packet.data.len();
        let t1 = Instant::now();
        let decoded = decoder.decode(&packet.data)?;
        dec_us.push(t1.elapsed().as_secs_f64() * 1e6);
        // Skip the codec's start-up (its first frames fade in).
        if n >= 5 {
            out.extend_from_slice(&decoded.samples);
        }
    }
    let hz = zero_crossing_hz(&out);
    let level = dyad_media::frame::rms_dbfs(&out);
    println!(
        "audio: {FREQ} Hz tone at {LEVEL} dBFS → Opus 32 kbit/s (FEC on) → decode: {hz:.1} Hz at {level:.1} dBFS, \
         {:.1} kbit/s, encode p50 {:.0} µs, decode p50 {:.0} µs per 20 ms",
        bytes as f64 * 8.0 / 1000.0 / (f64::from(frames) * 0.02),
        quantile(&enc_us, 0.5),
        quantile(&dec_us, 0.5),
    );
    if (hz - FREQ).abs() > FREQ * 0.02 || (level - LEVEL).abs() > 1.5 {
        anyhow::bail!("the tone did not survive Opus: {hz:.1} Hz at {level:.1} dBFS");
    }
    Ok(())
}

/// Lists capture and playback devices; a machine without any says so.
pub fn devices() -> Result<()> {
    match dyad_media::list_cameras() {
        Ok(cams) if cams.is_empty() => println!("cameras: none found"),
        Ok(cams) => {
            println!("cameras:");
            for cam in cams {
                let modes: Vec<String> = cam
                    .modes
                    .iter()
                    .map(|m| format!("{}x{}@{} {}", m.width, m.height, m.fps, m.format))
                    .collect();
                println!("  {:<3} {}  [{}]", cam.index, cam.name, modes.join(", "));
            }
        }
        Err(e) => println!("cameras: none usable ({}: {e})", e.code()),
    }
    match list_audio_devices() {
        Ok(list) if list.is_empty() => println!("audio devices: none"),
        Ok(list) if list.iter().all(|d| d.id.ends_with(":null")) => {
            println!("audio devices: no sound card (only ALSA's null device, which is silent)")
        }
        Ok(list) => {
            println!("audio devices:");
            for d in list {
                let dir = match (d.is_input, d.is_output) {
                    (true, true) => "in/out",
                    (true, false) => "in",
                    (false, true) => "out",
                    (false, false) => "-",
                };
                let default = if d.is_default_input || d.is_default_output {
                    " (default)"
                } else {
                    ""
                };
                println!("  {:<6} {}  {}{default}", dir, d.id, d.name);
            }
        }
        Err(e) => println!("audio devices: none usable ({}: {e})", e.code()),
    }
    Ok(())
}

/// Options of `dyad pattern`.
#[derive(Args, Debug)]
pub struct PatternArgs {
    /// Write this many seconds of the test pattern here (YUV4MPEG2, I420), e.g. for a browser's
    /// fake camera (`--use-file-for-fake-video-capture`).
    #[arg(long)]
    y4m: Option<std::path::PathBuf>,
    /// Write a sine tone here (WAV, 48 kHz mono 16-bit), e.g. for `--use-file-for-fake-audio-capture`.
    #[arg(long)]
    wav: Option<std::path::PathBuf>,
    /// Length, seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Frame size, WIDTHxHEIGHT (30 fps).
    #[arg(long, default_value = "640x480")]
    size: String,
    /// The tone's frequency, Hz.
    #[arg(long, default_value_t = 660.0)]
    tone: f64,
}

/// `dyad pattern`: the test pattern (frame numbers in every frame) and a tone as files.
pub fn pattern(args: &PatternArgs) -> Result<()> {
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .context("--size is WIDTHxHEIGHT")?;
    if let Some(path) = &args.y4m {
        let format = VideoFormat {
            width: w,
            height: h,
            fps: 30,
        };
        let file =
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        let mut out = dyad_media::y4m::Y4mWriter::new(std::io::BufWriter::new(file), format)?;
        for n in 0..args.seconds.saturating_mul(30) {
            let frame = dyad_media::testpattern::render(w, h, n, u64::from(n) * 33_333)?;
            out.write_frame(&frame)?;
        }
        use std::io::Write;
        out.finish()?.flush()?;
        println!(
            "dyad pattern: {} ({} frames of {w}x{h})",
            path.display(),
            args.seconds * 30
        );
    }
    if let Some(path) = &args.wav {
        let n = 48_000 * args.seconds as usize;
        let mut bytes = Vec::with_capacity(44 + 2 * n);
        let data = (2 * n) as u32;
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        // PCM, mono, 48 kHz, 96 000 bytes/s, 2-byte frames, 16 bits.
        for v in [16u32, 0x0001_0001, 48_000, 96_000, 0x0010_0002] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data.to_le_bytes());
        for i in 0..n {
            let t = i as f64 / 48_000.0;
            let s = (9_000.0 * (2.0 * std::f64::consts::PI * args.tone * t).sin()) as i16;
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))?;
        println!(
            "dyad pattern: {} ({} s of {} Hz)",
            path.display(),
            args.seconds,
            args.tone
        );
    }
    Ok(())
}
