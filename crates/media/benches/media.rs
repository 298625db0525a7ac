//! Media engine benchmarks (criterion). Figures and the command are in docs/benchmarks.md:
//!   cargo bench -p dyad-media --bench media

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dyad_media::testpattern::render;
use dyad_media::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use dyad_media::{
    AudioSource, ManualClock, OpusConfig, OpusDecoder, OpusEncoder, SpeechLike, VideoFrame,
};

const FRAMES: u32 = 60;

fn pattern(w: u32, h: u32) -> Vec<VideoFrame> {
    (0..FRAMES)
        .map(|n| render(w, h, n, u64::from(n) * 33_333).expect("valid size"))
        .collect()
}

fn vp8(c: &mut Criterion) {
    for (w, h, kbps) in [(640, 480, 800), (1280, 720, 1500)] {
        let frames = pattern(w, h);
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(w, h, 30, kbps)).expect("encoder");
        let mut i = 0usize;
        c.bench_function(&format!("vp8 encode {w}x{h} @{kbps}k 1 thread"), |b| {
            b.iter(|| {
                let out = enc.encode(&frames[i % frames.len()]).expect("encode");
                i += 1;
                black_box(out)
            })
        });

        let mut enc = Vp8Encoder::new(Vp8Config::realtime(w, h, 30, kbps)).expect("encoder");
        let encoded: Vec<_> = frames
            .iter()
            .filter_map(|f| enc.encode(f).expect("encode"))
            .collect();
        let mut dec = Vp8Decoder::new(1).expect("decoder");
        let mut i = 0usize;
        c.bench_function(&format!("vp8 decode {w}x{h} @{kbps}k 1 thread"), |b| {
            b.iter(|| {
                let e = &encoded[i % encoded.len()];
                i += 1;
                black_box(dec.decode(&e.data, e.capture_us).expect("decode"))
            })
        });
    }
}

fn test_pattern(c: &mut Criterion) {
    let mut n = 0u32;
    c.bench_function("test pattern render 1280x720", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(render(1280, 720, n, u64::from(n)).expect("frame"))
        })
    });
    let frame = render(1280, 720, 7, 7).expect("frame");
    c.bench_function("test pattern read marker 1280x720", |b| {
        b.iter(|| black_box(dyad_media::read_marker(&frame).expect("marker")))
    });
}

fn opus(c: &mut Criterion) {
    for channels in [1u16, 2] {
        let clock = std::sync::Arc::new(ManualClock::new(0));
        let mut speech = SpeechLike::new(channels, clock, 7).expect("source");
        let frames: Vec<_> = (0..250)
            .map(|_| speech.next_frame().expect("frame"))
            .collect();
        let config = OpusConfig {
            channels,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(config).expect("encoder");
        let mut i = 0usize;
        c.bench_function(
            &format!("opus encode 20 ms, {channels} ch, 32 kbit/s, FEC"),
            |b| {
                b.iter(|| {
                    i += 1;
                    black_box(enc.encode(&frames[i % frames.len()]).expect("encode"))
                })
            },
        );
        let mut enc = OpusEncoder::new(config).expect("encoder");
        let packets: Vec<_> = frames
            .iter()
            .filter_map(|f| enc.encode(f).expect("encode"))
            .collect();
        let mut dec = OpusDecoder::new(channels).expect("decoder");
        let mut i = 0usize;
        c.bench_function(
            &format!("opus decode 20 ms, {channels} ch, 32 kbit/s"),
            |b| {
                b.iter(|| {
                    i += 1;
                    black_box(
                        dec.decode(&packets[i % packets.len()].data)
                            .expect("decode"),
                    )
                })
            },
        );
    }
}

fn conversion(c: &mut Criterion) {
    use dyad_media::convert::{i420_to_rgba, to_i420, PixelFormat};
    let (w, h) = (1280u32, 720u32);
    let frame = render(w, h, 3, 0).expect("frame");
    let rgba = i420_to_rgba(&frame);
    let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    // YUYV as a camera delivers it: each row's luma pairs with the row pair's chroma.
    let (y, u, v) = (frame.y(), frame.u(), frame.v());
    let mut yuyv = Vec::with_capacity(rgb.len() / 3 * 2);
    for row in 0..h as usize {
        for pair in 0..w as usize / 2 {
            let ci = (row / 2) * (w as usize / 2) + pair;
            let yi = row * w as usize + 2 * pair;
            yuyv.extend_from_slice(&[y[yi], u[ci], y[yi + 1], v[ci]]);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 85)
        .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    c.bench_function("convert YUYV→I420 1280x720", |b| {
        b.iter(|| black_box(to_i420(PixelFormat::Yuyv, w, h, &yuyv, 0).expect("yuyv")))
    });
    c.bench_function("convert RGB→I420 1280x720", |b| {
        b.iter(|| black_box(to_i420(PixelFormat::Rgb, w, h, &rgb, 0).expect("rgb")))
    });
    c.bench_function("convert MJPEG→I420 1280x720 (q85)", |b| {
        b.iter(|| black_box(to_i420(PixelFormat::Mjpeg, w, h, &jpeg, 0).expect("mjpeg")))
    });
}

criterion_group!(benches, vp8, test_pattern, opus, conversion);
criterion_main!(benches);
