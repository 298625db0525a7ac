//! A second STUN address for "Test my network": a UDP port beside the embedded TURN server's
//! that answers Binding requests only. A client that asks both from one socket learns whether
//! its NAT kept one public address for the two destinations (as an endpoint-independent
//! mapping does, which ICE punches through) or gave each its own (a "symmetric" NAT, RFC 4787
//! §4.1). Both are on one IP, so a NAT that maps per destination address is not told apart.
//! It is not listed as an ICE server (calls would gather the same address twice); `/v1/ice`
//! names it in `nat_test`.

use std::net::SocketAddr;

use stun::fingerprint::FINGERPRINT;
use stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use stun::xoraddr::XorMappedAddress;

/// Requests longer than this are not read (a Binding request is 20 bytes plus a few
/// attributes; RFC 8489 §6.1 bounds what must be accepted at 548 over IPv4).
pub const MAX_REQUEST: usize = 548;

/// The answer to `request` from `from`: a Binding success response with `from` as its
/// XOR-MAPPED-ADDRESS, or nothing for anything that is not a well-formed Binding request, and
/// nothing when the answer would be longer than the request (40 bytes to an IPv4 sender, 52 to
/// an IPv6 one): a forged sender address gets no amplified reflection. Only "Test my network"
/// asks this port, and it pads its request with a SOFTWARE attribute.
pub fn binding_response(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if request.len() > MAX_REQUEST {
        return None;
    }
    let mut m = Message::new();
    m.unmarshal_binary(request).ok()?;
    if m.typ != BINDING_REQUEST {
        return None;
    }
    let mut answer = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(Message {
            transaction_id: m.transaction_id,
            ..Default::default()
        }),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(FINGERPRINT),
    ];
    answer.build(&setters).ok()?;
    (answer.raw.len() <= request.len()).then_some(answer.raw)
}

/// Answers Binding requests on `socket` until `stop` turns true.
pub(crate) async fn serve(
    socket: tokio::net::UdpSocket,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    loop {
        let (n, from) = tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok(got) => got,
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                Err(e) => {
                    tracing::debug!("NAT test port: {e}");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        if let Some(answer) = binding_response(&buf[..n], from) {
            let _ = socket.send_to(&answer, from).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::Getter;

    /// A Binding request with `software` as its SOFTWARE attribute (none if `None`), then a
    /// FINGERPRINT if `fingerprint`.
    fn binding(software: Option<String>, fingerprint: bool) -> Vec<u8> {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(stun::agent::TransactionId::new()),
            Box::new(BINDING_REQUEST),
        ];
        if let Some(text) = software {
            setters.push(Box::new(stun::textattrs::TextAttribute::new(
                stun::attributes::ATTR_SOFTWARE,
                text,
            )));
        }
        if fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        let mut m = Message::new();
        m.build(&setters).expect("request");
        m.raw
    }

    /// A request as the doctor sends it: padded with SOFTWARE.
    fn request() -> Vec<u8> {
        binding(Some(format!("{:<32}", "dyad network test")), true)
    }

    #[test]
    fn a_binding_request_is_answered_with_the_address_it_came_from() {
        let req = request();
        let from: SocketAddr = "198.18.1.2:40000".parse().expect("addr");
        let raw = binding_response(&req, from).expect("an answer");
        let mut m = Message::new();
        m.unmarshal_binary(&raw).expect("decodes");
        assert_eq!(m.typ, BINDING_SUCCESS);
        assert_eq!(m.transaction_id.0, req[8..20]);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&m).expect("XOR-MAPPED-ADDRESS");
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
        FINGERPRINT.check(&m).expect("fingerprint");
        let v6: SocketAddr = "[2001:db8:1::2]:5000".parse().expect("addr");
        let raw = binding_response(&req, v6).expect("an answer over IPv6");
        let mut m = Message::new();
        m.unmarshal_binary(&raw).expect("decodes");
        mapped.get_from(&m).expect("XOR-MAPPED-ADDRESS");
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), v6);
    }

    #[test]
    fn anything_but_a_binding_request_gets_no_answer() {
        let from: SocketAddr = "198.18.1.2:40000".parse().expect("addr");
        assert_eq!(binding_response(b"", from), None);
        assert_eq!(binding_response(&[0u8; 19], from), None);
        // Unpadded: 28 bytes in, 40 or 52 out would be an amplifier.
        assert_eq!(binding_response(&binding(None, true), from), None);
        let mut not_binding = request();
        not_binding[1] = 0x03; // Allocate
        assert_eq!(binding_response(&not_binding, from), None);
        let mut success = request();
        success[0] = 0x01; // a response, not a request
        assert_eq!(binding_response(&success, from), None);
        // A well-formed request, but longer than is read.
        let long = binding(Some("x".repeat(MAX_REQUEST)), false);
        assert!(binding_response(&long, from).is_none());
        // At the limit (20 + 4 + 524 = 548 bytes): answered.
        let at_limit = binding(Some("x".repeat(MAX_REQUEST - 24)), false);
        assert_eq!(at_limit.len(), MAX_REQUEST);
        assert!(
            binding_response(&at_limit, from).is_some(),
            "a request of the longest size read"
        );
    }
}
