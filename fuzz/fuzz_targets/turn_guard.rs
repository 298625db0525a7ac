//! The embedded TURN server's guard: datagrams from a few clients through the Allocate check
//! (STUN parse, USERNAME and REALM, MESSAGE-INTEGRITY with our REST key, the per-account quota,
//! the 486 answer), interleaved with success responses and allocation ends that move the quota,
//! and the peer filter on arbitrary addresses. Checks that no account ever holds more than its
//! quota and that a refusal is a well-formed STUN error response.
//!
//! Input: packets as in `dyad_fuzz::Packets`, each `[op, client, bytes...]`: op % 4 = 0 a
//! datagram from client port `client`, 1 the server granted that client, 2 its allocation ended
//! (bytes = the REST username), 3 the filter on the address in bytes (4 or 16 bytes + port).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dyad_fuzz::Packets;
use dyad_server::fuzzing::Guard;
use libfuzzer_sys::fuzz_target;

const QUOTA: usize = 2;

fuzz_target!(|data: &[u8]| {
    let guard = Guard::new(QUOTA);
    let mut users: Vec<String> = Vec::new();
    for p in Packets(data) {
        let [op, client, rest @ ..] = p else {
            continue;
        };
        let from = SocketAddr::new(
            Ipv4Addr::new(203, 0, 113, 5).into(),
            40_000 + u16::from(*client),
        );
        match op % 4 {
            0 => {
                if let Some(answer) = guard.datagram(from, rest) {
                    // A STUN error response (class 0b11) to an Allocate, with our transaction id.
                    assert!(answer.len() >= 20 && answer[0] == 0x01 && answer[1] == 0x13);
                    assert_eq!(&answer[4..8], &[0x21, 0x12, 0xA4, 0x42]);
                    assert_eq!(answer.get(8..20), rest.get(8..20));
                }
            }
            1 => guard.granted(from),
            2 => {
                let name = String::from_utf8_lossy(rest).into_owned();
                guard.ended(&name, from);
                users.push(name);
            }
            _ => {
                let ip: IpAddr = match rest.len() {
                    n if n >= 18 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(&rest[..16]);
                        Ipv6Addr::from(b).into()
                    }
                    n if n >= 6 => Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]).into(),
                    _ => continue,
                };
                let port = u16::from_be_bytes([rest[rest.len() - 2], rest[rest.len() - 1]]);
                let _ = guard.permits(SocketAddr::new(ip, port));
            }
        }
    }
    for u in users
        .iter()
        .chain(std::iter::once(&"1800000600:alice".to_string()))
    {
        assert!(guard.held(u) <= QUOTA, "{u} holds more than its quota");
    }
});
