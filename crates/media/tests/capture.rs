//! Pixel conversion, Y4M files and the camera path, checked by content.

use std::sync::Arc;

use dyad_media::convert::{i420_to_rgba, to_i420, PixelFormat};
use dyad_media::frame::psnr_y;
use dyad_media::testpattern::render;
use dyad_media::y4m::{Y4mFile, Y4mWriter};
use dyad_media::{list_cameras, Camera, ManualClock, VideoFormat, VideoFrame, VideoSource};

/// Eight vertical colour bars, `w × h`, 3 bytes per pixel in R G B order.
fn bars_rgb(w: usize, h: usize) -> Vec<u8> {
    const BARS: [[u8; 3]; 8] = [
        [235, 235, 235],
        [235, 235, 16],
        [16, 235, 235],
        [16, 235, 16],
        [235, 16, 235],
        [235, 16, 16],
        [16, 16, 235],
        [16, 16, 16],
    ];
    let mut out = Vec::with_capacity(w * h * 3);
    for _ in 0..h {
        for x in 0..w {
            out.extend_from_slice(&BARS[x * 8 / w]);
        }
    }
    out
}

/// Largest per-channel difference between RGB(A) images, sampled away from bar edges.
fn max_diff_at_bar_centres(rgb: &[u8], rgb_px: usize, rgba: &[u8], w: usize, h: usize) -> u8 {
    let mut worst = 0;
    for bar in 0..8 {
        let x = bar * w / 8 + w / 16;
        for y in [1, h / 2, h - 2] {
            for c in 0..3 {
                let a = rgb[(y * w + x) * rgb_px + c];
                let b = rgba[(y * w + x) * 4 + c];
                worst = worst.max(a.abs_diff(b));
            }
        }
    }
    worst
}

#[test]
fn rgb_family_converts_to_i420_and_back_keeping_colours() {
    let (w, h) = (64usize, 32usize);
    let rgb = bars_rgb(w, h);
    let swap = |px: &[u8]| [px[2], px[1], px[0]];
    let rgba: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let bgr: Vec<u8> = rgb.chunks(3).flat_map(swap).collect();
    let bgra: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[2], p[1], p[0], 255])
        .collect();
    for (format, data) in [
        (PixelFormat::Rgb, &rgb),
        (PixelFormat::Rgba, &rgba),
        (PixelFormat::Bgr, &bgr),
        (PixelFormat::Bgra, &bgra),
    ] {
        let frame = to_i420(format, w as u32, h as u32, data, 42).expect("convert");
        assert_eq!(frame.capture_us, 42);
        let back = i420_to_rgba(&frame);
        let worst = max_diff_at_bar_centres(&rgb, 3, &back, w, h);
        assert!(worst <= 6, "{format:?}: colours off by {worst}");
    }
}

/// Packs an I420 frame as YUYV / NV12 (the layouts cameras deliver).
fn pack(frame: &VideoFrame) -> (Vec<u8>, Vec<u8>) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (y, u, v) = (frame.y(), frame.u(), frame.v());
    let mut yuyv = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        for pair in 0..w / 2 {
            let c = (row / 2) * (w / 2) + pair;
            yuyv.extend_from_slice(&[y[row * w + 2 * pair], u[c], y[row * w + 2 * pair + 1], v[c]]);
        }
    }
    let mut nv12 = y.to_vec();
    for (a, b) in u.iter().zip(v) {
        nv12.extend_from_slice(&[*a, *b]);
    }
    (yuyv, nv12)
}

#[test]
fn yuyv_and_nv12_convert_back_to_the_same_planes() {
    let original = render(320, 240, 5, 0).expect("frame");
    let (yuyv, nv12) = pack(&original);
    let from_nv12 = to_i420(PixelFormat::Nv12, 320, 240, &nv12, 0).expect("nv12");
    assert!(
        from_nv12.data() == original.data(),
        "NV12 is a lossless re-layout"
    );
    let from_yuyv = to_i420(PixelFormat::Yuyv, 320, 240, &yuyv, 0).expect("yuyv");
    let wrong = from_yuyv
        .y()
        .iter()
        .zip(original.y())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(wrong, 0, "YUYV luma must come through exactly");
    // YUYV carries chroma per row pair twice; 4:2:0 averages them (equal here) → within 1.
    for (a, b) in from_yuyv
        .u()
        .iter()
        .chain(from_yuyv.v())
        .zip(original.u().iter().chain(original.v()))
    {
        assert!(a.abs_diff(*b) <= 1);
    }
    let i420 = to_i420(PixelFormat::I420, 320, 240, original.data(), 0).expect("i420");
    assert!(i420 == original);
}

#[test]
fn mjpeg_from_a_real_encoder_decodes_close_to_the_source() {
    let (w, h) = (320u16, 240u16);
    let source = render(u32::from(w), u32::from(h), 9, 0).expect("frame");
    let rgba = i420_to_rgba(&source);
    let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encode jpeg");
    let decoded = to_i420(PixelFormat::Mjpeg, w.into(), h.into(), &jpeg, 7).expect("decode");
    let psnr = psnr_y(&source, &decoded).expect("same size");
    assert!(psnr > 30.0, "MJPEG round trip PSNR {psnr:.1} dB");
    assert_eq!(dyad_media::read_marker(&decoded).expect("marker").frame, 9);
    // A JPEG of another size than declared is refused, not stretched.
    assert_eq!(
        to_i420(PixelFormat::Mjpeg, 640, 480, &jpeg, 0)
            .map_err(|e| e.code())
            .err(),
        Some("malformed")
    );
    // Cut short, or garbage: errors, never a panic.
    assert!(to_i420(
        PixelFormat::Mjpeg,
        w.into(),
        h.into(),
        &jpeg[..jpeg.len() / 2],
        0
    )
    .is_err());
    let garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(
        to_i420(PixelFormat::Mjpeg, w.into(), h.into(), &garbage, 0)
            .map_err(|e| e.code())
            .err(),
        Some("malformed")
    );
    assert!(to_i420(PixelFormat::Mjpeg, w.into(), h.into(), &[], 0).is_err());
}

#[test]
fn bad_sizes_and_short_buffers_have_their_codes() {
    let code = |r: dyad_media::Result<VideoFrame>| r.map_err(|e| e.code()).err();
    assert_eq!(
        code(to_i420(PixelFormat::Yuyv, 641, 480, &[0; 641 * 480 * 2], 0)),
        Some("invalid_size")
    );
    assert_eq!(
        code(to_i420(PixelFormat::Rgb, 0, 480, &[], 0)),
        Some("invalid_size")
    );
    assert_eq!(
        code(to_i420(PixelFormat::Rgb, 9000, 2, &[], 0)),
        Some("invalid_size")
    );
    assert_eq!(
        code(to_i420(PixelFormat::Yuyv, 640, 480, &[0; 640 * 480], 0)),
        Some("truncated")
    );
    assert_eq!(
        code(to_i420(
            PixelFormat::Nv12,
            640,
            480,
            &[0; 640 * 480 * 3 / 2 - 1],
            0
        )),
        Some("truncated")
    );
    assert_eq!(
        code(to_i420(PixelFormat::Rgba, 4, 4, &[0; 65], 0)),
        Some("truncated")
    );
}

#[test]
fn y4m_round_trip_loops_and_advances_time() {
    let path = std::env::temp_dir().join(format!("dyad-y4m-{}.y4m", std::process::id()));
    let format = VideoFormat {
        width: 160,
        height: 120,
        fps: 25,
    };
    let frames: Vec<VideoFrame> = (0..3)
        .map(|n| render(160, 120, n, 0).expect("frame"))
        .collect();
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut writer = Y4mWriter::new(std::io::BufWriter::new(file), format).expect("writer");
        for f in &frames {
            writer.write_frame(f).expect("write");
        }
        writer.finish().expect("finish");
    }
    let clock = ManualClock::new(1_000_000);
    let mut file = Y4mFile::open(&path, Arc::new(clock)).expect("open");
    assert_eq!(file.format(), format);
    for n in 0..7u64 {
        let f = file.next_frame().expect("frame");
        assert_eq!(
            f.data(),
            frames[(n % 3) as usize].data(),
            "frame {n} (loops after 3)"
        );
        assert_eq!(f.capture_us, 1_000_000 + n * 40_000, "25 fps = 40 ms apart");
    }
    std::fs::write(&path, b"YUV4MPEG2 W160 H120 F25:1 C420jpeg\nFRAME\nshort").expect("write");
    let truncated =
        Y4mFile::open(&path, Arc::new(ManualClock::new(0))).and_then(|mut f| f.next_frame());
    assert_eq!(truncated.map_err(|e| e.code()).err(), Some("truncated"));
    std::fs::write(&path, b"YUV4MPEG2 W160 H120 F25:1 C444\nFRAME\n").expect("write");
    let unsupported =
        Y4mFile::open(&path, Arc::new(ManualClock::new(0))).and_then(|mut f| f.next_frame());
    assert_eq!(
        unsupported.map_err(|e| e.code()).err(),
        Some("unsupported_format")
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn camera_without_a_device_fails_cleanly() {
    let cameras = list_cameras().expect("listing cameras never fails for lack of one");
    let index = if cameras.is_empty() { 0 } else { 9999 };
    let format = VideoFormat {
        width: 640,
        height: 480,
        fps: 30,
    };
    let started = std::time::Instant::now();
    let opened = Camera::open(index, format, Arc::new(ManualClock::new(0)));
    assert_eq!(opened.map_err(|e| e.code()).err(), Some("no_device"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no hang"
    );
}

/// yuvutils-rs 0.8.3's SIMD path leaves the right-most 16 columns unwritten; convert.rs redoes
/// them. Every width, narrow to wide, must come through exactly.
#[test]
fn yuyv_is_exact_at_every_width() {
    for (w, h) in [
        (16usize, 2usize),
        (18, 2),
        (34, 4),
        (64, 2),
        (322, 240),
        (1280, 720),
    ] {
        let mut yuyv = Vec::with_capacity(w * h * 2);
        let mut luma = Vec::with_capacity(w * h);
        for row in 0..h {
            for p in 0..w / 2 {
                let (a, b) = (
                    ((row * w + 2 * p) % 200 + 16) as u8,
                    ((row * w + 2 * p + 1) % 200 + 16) as u8,
                );
                luma.extend_from_slice(&[a, b]);
                yuyv.extend_from_slice(&[a, (p % 50 + 100) as u8, b, 200]);
            }
        }
        let f = to_i420(PixelFormat::Yuyv, w as u32, h as u32, &yuyv, 0).expect("convert");
        let bad_luma = f.y().iter().zip(&luma).filter(|(a, b)| a != b).count();
        let bad_u = f
            .u()
            .iter()
            .enumerate()
            .filter(|(i, &u)| u != ((i % (w / 2)) % 50 + 100) as u8)
            .count();
        let bad_v = f.v().iter().filter(|&&v| v != 200).count();
        assert_eq!((bad_luma, bad_u, bad_v), (0, 0, 0), "{w}x{h}");
    }
}
