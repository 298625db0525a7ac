//! The embedded TURN server: a sequence of UDP datagrams from one client through turn's request
//! handler with our REST-credential check (STUN/TURN message and attribute parsing, ChannelData,
//! allocate / refresh / permission / channel bind / send with a known nonce), on a fresh server
//! per input; and the REST credential check itself on the first datagram split at a newline.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use dyad_fuzz::Packets;
use dyad_server::fuzzing::{check_credentials, Turn};
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    conn: Arc<tokio::net::UdpSocket>,
    client: SocketAddr,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        let conn = rt
            .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
            .expect("a loopback UDP socket");
        // Answers go to a socket nobody reads: they are dropped by the kernel when its buffer
        // is full, as for a client that went away.
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP socket");
        let client = sink.local_addr().expect("bound");
        std::mem::forget(sink);
        World {
            rt,
            conn: Arc::new(conn),
            client,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    if let Some(line) = data.split(|&b| b == b'\n').next() {
        if let Ok(text) = std::str::from_utf8(line) {
            let (user, password) = text.split_once(' ').unwrap_or((text, ""));
            check_credentials(user, password);
        }
    }
    w.rt.block_on(async {
        let turn = Turn::new(Arc::clone(&w.conn));
        for datagram in Packets(data).take(16) {
            // The server reads into a 1500-byte buffer: longer datagrams arrive cut.
            turn.datagram(w.client, &datagram[..datagram.len().min(1500)])
                .await;
        }
        turn.close().await;
    });
});
