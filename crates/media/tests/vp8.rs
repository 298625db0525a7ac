//! VP8 through the real libvpx, checked by content: frame numbers read back from the decoded
//! test pattern, PSNR, keyframe bits in the bitstream, and bytes per second after a bitrate change.

use std::sync::Arc;

use dyad_media::frame::psnr_y;
use dyad_media::testpattern::{read_marker, render};
use dyad_media::vp8::{is_keyframe, Vp8Config, Vp8Decoder, Vp8Encoder};
use dyad_media::{ManualClock, TestPattern, VideoFormat, VideoSource};

/// Encodes `frames` test-pattern frames at the given size and bitrate, decodes them, and returns
/// (frame numbers read from decoded frames, mean luma PSNR).
fn round_trip(w: u32, h: u32, kbps: u32, frames: u32) -> (Vec<u32>, f64) {
    let clock = ManualClock::new(1_000_000);
    let fmt = VideoFormat {
        width: w,
        height: h,
        fps: 30,
    };
    let mut src = TestPattern::new(fmt, Arc::new(clock.clone())).expect("pattern");
    let mut enc = Vp8Encoder::new(Vp8Config::realtime(w, h, 30, kbps)).expect("encoder");
    let mut dec = Vp8Decoder::new(1).expect("decoder");
    let (mut numbers, mut psnr_sum, mut psnr_n) = (vec![], 0.0, 0);
    for _ in 0..frames {
        let frame = src.next_frame().expect("frame");
        clock.advance_us(33_333);
        let Some(encoded) = enc.encode(&frame).expect("encode") else {
            continue;
        };
        let decoded = dec
            .decode(&encoded.data, encoded.capture_us)
            .expect("decode")
            .expect("picture");
        assert_eq!(decoded.capture_us, frame.capture_us);
        numbers.push(read_marker(&decoded).expect("marker survives VP8").frame);
        psnr_sum += psnr_y(&frame, &decoded).expect("same size");
        psnr_n += 1;
    }
    (numbers, psnr_sum / f64::from(psnr_n))
}

fn strictly_increasing(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn every_frame_number_reads_back_in_order_at_300_kbps() {
    let (numbers, _) = round_trip(640, 480, 300, 90);
    // Rate control may drop a frame or two; what arrives is in order, without misreads, and
    // nearly everything arrives.
    assert!(
        numbers.len() >= 85,
        "only {} of 90 frames encoded: {numbers:?}",
        numbers.len()
    );
    assert!(strictly_increasing(&numbers), "{numbers:?}");
    assert_eq!(numbers.last().copied(), Some(89));
}

#[test]
fn marker_survives_150_kbps() {
    let (numbers, _) = round_trip(640, 480, 150, 60);
    assert!(
        numbers.len() >= 50,
        "only {} of 60: {numbers:?}",
        numbers.len()
    );
    assert!(strictly_increasing(&numbers), "{numbers:?}");
}

#[test]
fn psnr_floor_at_480p_and_720p() {
    let (_, psnr_480) = round_trip(640, 480, 800, 45);
    let (_, psnr_720) = round_trip(1280, 720, 1500, 30);
    assert!(psnr_480 > 32.0, "640x480 @ 800 kbit/s: {psnr_480:.1} dB");
    assert!(psnr_720 > 32.0, "1280x720 @ 1500 kbit/s: {psnr_720:.1} dB");
}

#[test]
fn first_frame_and_forced_frames_are_keyframes() {
    let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30, 400)).expect("encoder");
    let mut kinds = vec![];
    for n in 0..40u32 {
        if n == 20 {
            enc.request_keyframe();
        }
        let f = render(320, 240, n, u64::from(n) * 33_333).expect("frame");
        if let Some(e) = enc.encode(&f).expect("encode") {
            assert_eq!(
                e.keyframe,
                is_keyframe(&e.data),
                "encoder flag agrees with bitstream"
            );
            kinds.push((n, is_keyframe(&e.data)));
        }
    }
    let keys: Vec<u32> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
    assert_eq!(
        keys,
        vec![0, 20],
        "keyframes only at start and on request: {kinds:?}"
    );
}

/// The test pattern plus deterministic luma noise: hard enough content that 1.5 Mbit/s is used.
fn noisy(w: u32, h: u32, n: u32) -> dyad_media::VideoFrame {
    let mut f = render(w, h, n, u64::from(n) * 33_333).expect("frame");
    let mut state = 0x9e37_79b9_u32 ^ n.wrapping_mul(0x85eb_ca6b);
    let (y, _, _) = f.planes_mut();
    for px in y.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *px = px.saturating_add((state & 31) as u8);
    }
    f
}

#[test]
fn lowering_the_bitrate_shrinks_the_output() {
    let (w, h) = (640, 480);
    let mut enc = Vp8Encoder::new(Vp8Config::realtime(w, h, 30, 1500)).expect("encoder");
    let mut bytes = [0usize; 2];
    for n in 0..180u32 {
        if n == 90 {
            enc.set_bitrate(250).expect("new bitrate");
        }
        let f = noisy(w, h, n);
        let size = enc.encode(&f).expect("encode").map_or(0, |e| e.data.len());
        // Compare the last two seconds under each setting (after rate control settled).
        if (30..90).contains(&n) {
            bytes[0] += size;
        } else if n >= 120 {
            bytes[1] += size;
        }
    }
    let kbps = |b: usize| b as f64 * 8.0 / 2.0 / 1000.0;
    let (hi, lo) = (kbps(bytes[0]), kbps(bytes[1]));
    assert!(
        lo < hi * 0.4,
        "1500 kbit/s gave {hi:.0} kbit/s, 250 kbit/s gave {lo:.0}"
    );
    // Noise at 250 kbit/s sits at the quantizer ceiling; CBR still holds it near the target.
    assert!(
        lo < 250.0 * 1.5,
        "CBR at 250 kbit/s produced {lo:.0} kbit/s"
    );
}

#[test]
fn resolution_change_restarts_with_a_keyframe_at_the_new_size() {
    let mut enc = Vp8Encoder::new(Vp8Config::realtime(640, 480, 30, 600)).expect("encoder");
    let mut dec = Vp8Decoder::new(1).expect("decoder");
    let f = render(640, 480, 0, 0).expect("frame");
    enc.encode(&f).expect("encode").expect("first frame");
    enc.set_resolution(320, 240).expect("resize");
    assert_eq!(
        enc.encode(&f).map_err(|e| e.code()).err(),
        Some("invalid_size")
    );
    let small = render(320, 240, 1, 33_333).expect("frame");
    let e = enc
        .encode(&small)
        .expect("encode")
        .expect("frame after resize");
    assert!(is_keyframe(&e.data));
    let d = dec.decode(&e.data, 0).expect("decode").expect("picture");
    assert_eq!((d.width(), d.height()), (320, 240));
    assert_eq!(read_marker(&d).expect("marker").frame, 1);
}

#[test]
fn garbage_and_truncated_frames_are_errors_and_the_decoder_recovers() {
    let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30, 400)).expect("encoder");
    let mut dec = Vp8Decoder::new(1).expect("decoder");
    assert_eq!(
        dec.decode(&[], 0).map_err(|e| e.code()).err(),
        Some("truncated")
    );
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(dec.decode(&garbage, 0).is_err(), "garbage must not decode");
    let key = enc
        .encode(&render(320, 240, 7, 0).expect("frame"))
        .expect("enc")
        .expect("key");
    assert!(
        dec.decode(&key.data[..key.data.len() / 3], 0).is_err(),
        "truncated keyframe"
    );
    // A good keyframe afterwards decodes: one bad frame does not poison the decoder.
    let d = dec.decode(&key.data, 0).expect("decode").expect("picture");
    assert_eq!(read_marker(&d).expect("marker").frame, 7);
}
