//! TURN over a byte stream (TCP, TLS): where one message ends. Shared by the embedded TURN
//! server's TCP/TLS side and the client's UDP↔TCP shim.

/// The length of the message that starts with `head`, those 4 bytes included, and the padding
/// after it: a STUN message (first two bits 00) is its 20-byte header plus the length field
/// (a multiple of 4); ChannelData (channel 0x4000-0x4FFF) is 4 bytes plus the length field,
/// padded to a multiple of 4 over TCP (RFC 8656 §12.5). `None` for anything else: the stream is
/// not TURN. (A message longer than the reader's buffer is refused by the reader.)
pub fn frame_len(head: [u8; 4]) -> Option<(usize, usize)> {
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    match head[0] >> 6 {
        0b00 if len % 4 == 0 => Some((20 + len, 0)),
        // Channel numbers are 0x4000 through 0x4FFF; 0x5000-0x7FFF are reserved.
        0b01 if head[0] < 0x50 => Some((4 + len, (4 - len % 4) % 4)),
        _ => None,
    }
}

/// Whether `datagram` is ChannelData (channel 0x4000-0x4FFF), which a stream must pad.
pub fn is_channel_data(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (0x40..0x50).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_stun_or_padded_channel_data_and_nothing_else() {
        // A STUN Binding request with 8 bytes of attributes: 20 + 8.
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]), Some((28, 0)));
        // A STUN length must be a multiple of 4.
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x07]), None);
        // ChannelData 0x4000 with 5 bytes: 4 + 5, then 3 bytes of padding.
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Some((9, 3)));
        assert_eq!(frame_len([0x4f, 0xff, 0x00, 0x08]), Some((12, 0)));
        // The largest: 4 + 65535 and 1 byte of padding, or 20 + 65532.
        assert_eq!(frame_len([0x40, 0x01, 0xff, 0xff]), Some((65539, 1)));
        assert_eq!(frame_len([0x01, 0x01, 0xff, 0xfc]), Some((65552, 0)));
        // Reserved channel numbers, "POST", a TLS record of 258 bytes (not a multiple of 4),
        // anything with the top bits 10 or 11 is not TURN. ("GET " reads as channel 0x4745
        // with 21 536 bytes: the reader refuses it as larger than its buffer.)
        assert_eq!(frame_len([0x50, 0x00, 0x00, 0x04]), None);
        assert_eq!(frame_len(*b"POST"), None);
        assert_eq!(frame_len(*b"GET "), Some((21540, 0)));
        assert_eq!(frame_len([0x16, 0x03, 0x01, 0x02]), None);
        assert_eq!(frame_len([0x80, 0, 0, 0]), None);
        assert_eq!(frame_len([0xc0, 0, 0, 0]), None);
    }
}
