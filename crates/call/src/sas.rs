//! The verification code (a short authentication string, as ZRTP and Signal show): six digits
//! both people can read to each other to check that nobody sits in the middle of the media.
//!
//! The DTLS fingerprints that authenticate the media travel inside the SDP, through the
//! signalling server; whoever runs the server could swap them for its own and relay the media.
//! Each side hashes the two fingerprints it actually negotiated (its own and the one it was
//! given for the other side), in sorted order, so both compute the same code when nothing was
//! swapped, and different codes when something was. The guest page computes the same code in
//! the browser (ui/src/guest/main.ts); keep the two in step.

use sha2::{Digest, Sha256};

/// The DTLS fingerprint `sdp` declares, normalised (`sha-256 AB:CD:…`): the SHA-256 one when
/// there are several (aiortc lists SHA-256, -384 and -512), else the first.
pub fn fingerprint(sdp: &str) -> Option<String> {
    let all: Vec<(String, String)> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .filter_map(|v| {
            let (alg, hex) = v.trim().split_once(' ')?;
            Some((alg.to_ascii_lowercase(), hex.trim().to_ascii_uppercase()))
        })
        .collect();
    all.iter()
        .find(|(alg, _)| alg == "sha-256")
        .or_else(|| all.first())
        .map(|(alg, hex)| format!("{alg} {hex}"))
}

/// The code for a call whose local and remote descriptions are these: `"123 456"`. `None` when
/// either has no fingerprint.
pub fn verification_code(local_sdp: &str, remote_sdp: &str) -> Option<String> {
    let (a, b) = (fingerprint(local_sdp)?, fingerprint(remote_sdp)?);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("{lo}\n{hi}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    Some(format!("{:03} {:03}", n / 1000, n % 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=video 9 X 96\r\n";
    const B: &str = "v=0\r\nm=audio 9 X 96\r\na=fingerprint:sha-512 11:22\r\na=fingerprint:SHA-256 12:34:56\r\n";
    const M: &str = "v=0\r\na=fingerprint:sha-256 66:66:66\r\n";

    #[test]
    fn both_sides_get_the_same_code_and_a_swapped_fingerprint_another() {
        let alice = verification_code(A, B).expect("code");
        let bob = verification_code(B, A).expect("code");
        assert_eq!(alice, bob);
        assert_eq!(alice.len(), 7, "{alice}");
        // A man in the middle gives each side his own fingerprint for the other.
        let alice_sees = verification_code(A, M).expect("code");
        let bob_sees = verification_code(B, M).expect("code");
        assert_ne!(alice_sees, bob_sees);
        assert_ne!(alice_sees, alice);
        assert_eq!(verification_code(A, "v=0\r\n"), None);
    }

    #[test]
    fn the_sha_256_fingerprint_is_used_whatever_its_case() {
        assert_eq!(fingerprint(B).as_deref(), Some("sha-256 12:34:56"));
        assert_eq!(
            fingerprint("a=fingerprint:sha-1 aa:bb\r\n").as_deref(),
            Some("sha-1 AA:BB")
        );
        // A known value, so the browser's implementation can be checked against it.
        assert_eq!(verification_code(A, B).as_deref(), Some(KNOWN));
    }

    /// `verification_code(A, B)`, also asserted by the guest page's unit test.
    const KNOWN: &str = "218 795";
}
