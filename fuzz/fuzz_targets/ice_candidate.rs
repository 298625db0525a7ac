//! A trickled remote ICE candidate line as `RtcPeer::add_remote_candidate` hands it to
//! webrtc-rs (`candidate:` stripped, then webrtc-ice's unmarshal).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|candidate: &[u8]| {
    if let Ok(c) = std::str::from_utf8(candidate) {
        if c.len() <= dyad_proto::limits::MAX_CANDIDATE_BYTES {
            dyad_call::rtc::fuzzing::remote_candidate(c);
        }
    }
});
