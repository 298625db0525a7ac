//! A remote SDP (offer or answer) through what rtc.rs does with its text: webrtc-rs's parse,
//! the codec check, the DTLS fingerprint for the verification code, the BUNDLE mid and
//! `tidy_sdp`. The whole negotiation with a peer connection is the slower `sdp_answer` target.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Our side of a call: the local description the verification code pairs the remote one with.
const LOCAL: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0\r\n";

fuzz_target!(|sdp: &[u8]| {
    // The SDP arrives inside a JSON string: always UTF-8.
    if let Ok(sdp) = std::str::from_utf8(sdp) {
        dyad_call::rtc::fuzzing::remote_description(sdp, LOCAL);
    }
});
