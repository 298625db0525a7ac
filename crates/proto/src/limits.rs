//! The bounds every input is held to, and the validators that apply them.

use crate::error::{ErrorCode, ProtoError};

/// Largest WebSocket frame or HTTP body accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest SDP (offer, answer, renegotiation).
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// Largest single ICE candidate line.
pub const MAX_CANDIDATE_BYTES: usize = 512;
/// Most candidates in one `candidates` message.
pub const MAX_CANDIDATES_PER_MESSAGE: usize = 32;
/// Username length bounds.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Password length bounds (bytes).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;
/// Call id length bounds.
pub const CALL_ID_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Device (party) id length bounds.
pub const DEVICE_ID_LEN: std::ops::RangeInclusive<usize> = 1..=64;
/// Client `ref` length bound.
pub const MAX_REF_LEN: usize = 64;
/// Invite lifetime bounds (ms): how long the callee's devices ring.
pub const INVITE_LIFETIME_MS: std::ops::RangeInclusive<u64> = 5_000..=120_000;
/// Invite lifetime when the client gives none.
pub const DEFAULT_INVITE_LIFETIME_MS: u64 = 60_000;
/// Most contacts one user may have.
pub const MAX_CONTACTS: usize = 1000;

fn invalid(what: &str, why: &str) -> ProtoError {
    ProtoError::new(ErrorCode::InvalidField, format!("{what}: {why}"))
}

/// Usernames: 3–32 of `a-z 0-9 _ . -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), ProtoError> {
    if !USERNAME_LEN.contains(&name.len()) {
        return Err(invalid("username", "must be 3 to 32 characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            "username",
            "only lowercase letters, digits, '_', '.', '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

/// A name for a new account: [`check_username`], and it ends with a letter or digit and has no
/// two separators in a row, so `alice.`, `alice-` or `ali..ce` can't pass for `alice`. (Existing
/// names are still accepted everywhere else; the look-alike rule is [`username_skeleton`].)
pub fn check_new_username(name: &str) -> Result<(), ProtoError> {
    check_username(name)?;
    let sep = |c: char| "_.-".contains(c);
    if name.ends_with(sep) {
        return Err(invalid("username", "must end with a letter or digit"));
    }
    if name
        .as_bytes()
        .windows(2)
        .any(|w| sep(w[0] as char) && sep(w[1] as char))
    {
        return Err(invalid("username", "no two of '_', '.', '-' in a row"));
    }
    Ok(())
}

/// What a name looks like to a reader: separators dropped and characters that pass for others
/// folded (`0`→`o`, `1`/`i`→`l`, `2`→`z`, `3`→`e`, `4`→`a`, `5`→`s`, `7`→`t`, `8`→`b`,
/// `9`→`g`, `rn`→`m`, `vv`→`w`). Two accounts may not share one, so `al1ce`, `a.lice` and
/// `alice` are one name. No two digits fold alike: `user6` and `user8` stay two names.
pub fn username_skeleton(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let folded = match c {
            '_' | '.' | '-' => continue,
            '0' => 'o',
            '1' | 'i' => 'l',
            '2' => 'z',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '8' => 'b',
            '7' => 't',
            '9' => 'g',
            other => other,
        };
        out.push(folded);
        if out.ends_with("rn") || out.ends_with("vv") {
            out.truncate(out.len() - 2);
            out.push(if folded == 'n' { 'm' } else { 'w' });
        }
    }
    out
}

/// Passwords: 8–256 bytes, anything else goes.
pub fn check_password(password: &str) -> Result<(), ProtoError> {
    if !PASSWORD_LEN.contains(&password.len()) {
        return Err(invalid("password", "must be 8 to 256 bytes"));
    }
    Ok(())
}

fn check_token_like(
    what: &str,
    value: &str,
    len: std::ops::RangeInclusive<usize>,
) -> Result<(), ProtoError> {
    if !len.contains(&value.len()) {
        return Err(invalid(
            what,
            &format!("must be {} to {} characters", len.start(), len.end()),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(what, "only letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// Call ids: 8–64 of `A-Z a-z 0-9 - _` (chosen by the caller, e.g. a random UUID).
pub fn check_call_id(call_id: &str) -> Result<(), ProtoError> {
    check_token_like("call_id", call_id, CALL_ID_LEN)
}

/// Device ids (Matrix's party ids): 1–64 of `A-Z a-z 0-9 - _`, chosen by the client, stable
/// across reconnects of the same device.
pub fn check_device_id(device_id: &str) -> Result<(), ProtoError> {
    check_token_like("device", device_id, DEVICE_ID_LEN)
}

/// SDP: non-empty, at most [`MAX_SDP_BYTES`], and looks like SDP (starts with `v=0`).
pub fn check_sdp(sdp: &str) -> Result<(), ProtoError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(ProtoError::new(
            ErrorCode::TooLarge,
            format!("sdp: {} bytes, limit {MAX_SDP_BYTES}", sdp.len()),
        ));
    }
    if !sdp.starts_with("v=0") {
        return Err(invalid("sdp", "must start with v=0"));
    }
    Ok(())
}

/// Invite lifetimes within [`INVITE_LIFETIME_MS`].
pub fn check_lifetime(ms: u64) -> Result<(), ProtoError> {
    if !INVITE_LIFETIME_MS.contains(&ms) {
        return Err(invalid("lifetime_ms", "must be 5000 to 120000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["bob", "alice.smith", "a_1-2", "007"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Bob",
            "_bob",
            "bob smith",
            "bob\u{e9}",
            &"x".repeat(33),
        ] {
            assert_eq!(
                check_username(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidField),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_names_do_not_end_or_double_on_a_separator() {
        for ok in ["alice", "alice.smith", "a_1-2", "007", "bob-b"] {
            assert!(check_new_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "alice.", "alice-", "alice_", "ali..ce", "al-_ice", "Bob", "ab",
        ] {
            assert_eq!(
                check_new_username(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidField),
                "{bad}"
            );
        }
    }

    #[test]
    fn look_alike_names_share_a_skeleton() {
        let alice = username_skeleton("alice");
        for same in ["al1ce", "a.lice", "a_l_i_c_e", "allce", "a1ice", "alic3"] {
            assert_eq!(username_skeleton(same), alice, "{same}");
        }
        assert_eq!(username_skeleton("rnartin"), username_skeleton("martin"));
        assert_eq!(username_skeleton("vvendy"), username_skeleton("wendy"));
        assert_eq!(username_skeleton("b0b"), username_skeleton("bob"));
        assert_eq!(username_skeleton("9reg"), username_skeleton("greg"));
        assert_eq!(username_skeleton("li2"), username_skeleton("liz"));
        let digits: std::collections::HashSet<String> = (0..10)
            .map(|d| username_skeleton(&format!("user{d}")))
            .collect();
        assert_eq!(digits.len(), 10, "numbered names stay apart: {digits:?}");
        for different in ["alicia", "bob", "alex", "malice"] {
            assert_ne!(username_skeleton(different), alice, "{different}");
        }
    }

    #[test]
    fn ids_sdp_and_lifetimes() {
        assert!(check_call_id("c0ffee-1234").is_ok());
        assert!(check_call_id("short").is_err());
        assert!(check_call_id("has space in it").is_err());
        assert!(check_device_id("laptop").is_ok());
        assert!(check_device_id("").is_err());
        assert!(check_sdp("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n").is_ok());
        assert_eq!(
            check_sdp("hello").map_err(|e| e.code),
            Err(ErrorCode::InvalidField)
        );
        let huge = format!("v=0{}", "a".repeat(MAX_SDP_BYTES));
        assert_eq!(
            check_sdp(&huge).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        assert!(check_lifetime(60_000).is_ok());
        assert!(check_lifetime(1).is_err());
    }
}
