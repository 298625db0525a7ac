//! A remote offer through the whole answering path: a fresh webrtc-rs peer connection with our
//! codecs applies it and answers (`RtcPeer::answer`: negotiation, payload types, tidy_sdp,
//! the codec check, the verification code). A peer connection per input makes this one slow.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds")
    })
}

fuzz_target!(|offer: &[u8]| {
    // What the server relays passed dyad-proto's checks: UTF-8, starts with v=0, bounded.
    let Ok(offer) = std::str::from_utf8(offer) else {
        return;
    };
    if dyad_proto::limits::check_sdp(offer).is_err() {
        return;
    }
    runtime().block_on(dyad_call::rtc::fuzzing::answer_offer(offer));
});
