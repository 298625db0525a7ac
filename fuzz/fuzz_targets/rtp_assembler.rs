//! A sequence of RTP packets into a connected call session: webrtc-rs's RTP unmarshal and
//! rtc.rs's conversion (transport-wide sequence extension), then the session — payload-type
//! check, counters, TWCC recording, the VP8 descriptor parse and frame assembler, NACK and PLI
//! policy — with time moving on between packets.
//!
//! Input: the first byte picks the transport-cc extension id; then packets as in
//! `dyad_fuzz::Packets`, each `[control, rtp...]`: control bit 0 = audio, bits 1–7 = ms to wait
//! before it arrives (× 4).
#![no_main]

use std::time::Instant;

use dyad_call::rtp::Kind;
use dyad_call::session::Input;
use dyad_fuzz::{advance, connected_session, drain, Packets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ext, data)) = data.split_first() else {
        return;
    };
    let twcc_id = Some(ext % 16).filter(|&id| id != 0);
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = connected_session(t0);
    for p in Packets(data) {
        let Some((&control, raw)) = p.split_first() else {
            continue;
        };
        let kind = if control & 1 == 1 {
            Kind::Audio
        } else {
            Kind::Video
        };
        advance(&mut s, &mut now, u64::from(control >> 1) * 4);
        // The known rtp 0.17.2 panic is skipped (`upstream_rtp_panics`).
        if dyad_fuzz::upstream_rtp_panics(raw) {
            continue;
        }
        if let Some(rtp) = dyad_call::rtc::fuzzing::rtp(kind, twcc_id, raw, now) {
            s.handle_input(now, Input::Rtp(rtp));
            drain(&mut s, now);
        }
    }
    // Let every timer run out: frame deadlines, NACK retries, reports, the media check.
    for _ in 0..20 {
        advance(&mut s, &mut now, 500);
    }
});
