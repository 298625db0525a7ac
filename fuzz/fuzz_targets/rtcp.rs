//! A sequence of compound RTCP packets into a connected, sending call session: webrtc-rs's RTCP
//! unmarshal and rtc.rs's `decode_rtcp` (receiver and sender reports, NACK, PLI/FIR, TWCC via
//! `feedback_results`, REMB), then the session — the bandwidth estimator, the NACK responder,
//! RTT from reports, keyframe orders.
//!
//! Input: packets as in `dyad_fuzz::Packets`, each `[control, rtcp...]`: control = ms to wait
//! before it arrives (× 2); a video frame is sent every 33 ms of that time.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use dyad_call::media::EncodedVideo;
use dyad_call::session::Input;
use dyad_fuzz::{connected_session, drain, Packets};
// Inputs that hit the known rtcp 0.17.2 panics are skipped (`upstream_rtcp_panics`).
use libfuzzer_sys::fuzz_target;

fn frame(n: u32) -> EncodedVideo {
    let mut data = vec![0u8; 2500];
    data[0] = u8::from(n % 30 != 0);
    EncodedVideo {
        data: Bytes::from(data),
        keyframe: n % 30 == 0,
        rtp_timestamp: n * 3000,
        encode_time: Duration::from_millis(3),
        width: 640,
        height: 480,
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut sent_until = t0;
    let mut frames = 0u32;
    let mut s = connected_session(t0);
    for p in Packets(data) {
        let Some((&control, raw)) = p.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(control) * 2);
        while sent_until <= now {
            s.handle_input(sent_until, Input::Video(frame(frames)));
            drain(&mut s, sent_until);
            frames += 1;
            sent_until += Duration::from_millis(33);
        }
        if dyad_fuzz::upstream_rtcp_panics(raw) {
            continue;
        }
        let feedback = dyad_call::rtc::fuzzing::rtcp(raw);
        s.handle_input(now, Input::Rtcp(feedback));
        drain(&mut s, now);
    }
});
