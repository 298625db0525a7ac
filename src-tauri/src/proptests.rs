//! Property tests of the app's parsers of outside input: the settings file, the token file and
//! the frame socket's handshake and acks. `bash scripts/fuzz.sh` runs them as the fuzzing
//! benchmark with `PROPTEST_CASES` set (docs/benchmarks.md, "Fuzzing"); `cargo test` runs a
//! few cases of each. proptest rather than cargo-fuzz here: a fuzz target would be a second,
//! nightly, sanitizer-instrumented build of all of Tauri and WebKitGTK's bindings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use proptest::prelude::*;

use crate::frames::FrameHub;
use crate::settings::{random_hex, Settings, TokenStore};

/// Cases per property: `PROPTEST_CASES`, else `default` (what `cargo test` runs).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Failures are shrunk and reported; they are not written beside the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dyad-app-prop-{name}-{}", random_hex(4)));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Panics anywhere in the process (the frame server's tasks swallow theirs) are counted here.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Settings-file text: arbitrary bytes, or JSON with the settings' keys and odd values.
fn settings_body() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        ".{0,40}".prop_map(|s| format!("{s:?}")),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just(r#"{"camera":"camera:1","microphone":"mic:x","speaker":1}"#.to_string()),
    ];
    let key = prop_oneof![
        Just("server"),
        Just("username"),
        Just("device_id"),
        Just("devices"),
        Just("other"),
    ];
    let json = proptest::collection::vec((key, value), 0..6).prop_map(|kv| {
        let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        format!("{{{}}}", fields.join(",")).into_bytes()
    });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), json]
}

proptest! {
    #![proptest_config(config(64))]

    /// Whatever the settings file holds, loading it gives settings or an `invalid` error, never
    /// a panic; what loads saves and loads back the same.
    #[test]
    fn settings_files_load_or_fail_cleanly(body in settings_body()) {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        let path = DIR.get_or_init(|| tmpdir("settings")).join("settings.json");
        std::fs::write(&path, &body).expect("write");
        match Settings::load(&path) {
            Ok(s) => {
                prop_assert!(!s.device_id.is_empty());
                s.save(&path).expect("save");
                prop_assert_eq!(Settings::load(&path).expect("reload"), s);
            }
            Err(e) => prop_assert!(matches!(e, crate::error::AppError::Invalid(_)), "{e:?}"),
        }
    }

    /// Whatever the token file holds, reading a token gives one or none, and keeping a token
    /// afterwards works (a broken file is replaced, not fatal).
    #[test]
    fn token_files_read_or_are_replaced(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            proptest::collection::btree_map(".{0,12}", ".{0,12}", 0..4)
                .prop_map(|m| serde_json::to_vec(&m).expect("a map of strings")),
        ],
        user in "[a-z]{3,8}",
    ) {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        let dir = DIR.get_or_init(|| tmpdir("tokens"));
        std::fs::write(dir.join("tokens.json"), &body).expect("write");
        let store = TokenStore::new(dir, false);
        let _ = store.get("http://127.0.0.1:1", &user);
        store.put("http://127.0.0.1:1", &user, "t0ken").expect("put");
        let kept = store.get("http://127.0.0.1:1", &user);
        prop_assert_eq!(kept.as_deref(), Some("t0ken"));
    }
}

/// A frame server for the handshake properties, on a runtime that outlives the test cases.
fn frame_hub() -> &'static (tokio::runtime::Runtime, FrameHub) {
    static HUB: OnceLock<(tokio::runtime::Runtime, FrameHub)> = OnceLock::new();
    HUB.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let hub = rt.block_on(FrameHub::start()).expect("loopback");
        (rt, hub)
    })
}

/// One query parameter of a handshake: the right secret, a wrong one, a stream, or noise.
fn query_part(secret: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("secret={secret}")),
        "[0-9a-f]{0,40}".prop_map(|s| format!("secret={s}")),
        prop_oneof![Just("remote"), Just("local"), Just("both")]
            .prop_map(|s| format!("stream={s}")),
        // Characters a request target may hold, so the request line itself stays valid.
        "[a-zA-Z0-9=._~-]{0,20}",
    ]
}

/// The request head a page (or another local process) sends; arbitrary bytes sometimes.
fn handshake(secret: String) -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    let head = (
        proptest::collection::vec(query_part(secret), 0..4),
        any::<bool>(),
        "[ -~]{0,30}",
    )
        .prop_map(|(parts, upgrade, extra)| {
            let query = parts.join("&");
            let upgrade = if upgrade {
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            } else {
                ""
            };
            format!(
                "GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{upgrade}X-Extra: {extra}\r\n\r\n"
            )
            .into_bytes()
        });
    let head = prop_oneof![head, proptest::collection::vec(any::<u8>(), 0..300)];
    // Acks the page would send once the stream is open: "drawn <seq> <age>", or anything.
    let ack = prop_oneof![
        (any::<u32>(), any::<i64>()).prop_map(|(s, a)| format!("drawn {s} {a}")),
        "drawn [ -~]{0,20}",
        "[ -~]{0,200}",
    ];
    (head, proptest::collection::vec(ack, 0..4))
}

/// A text frame from a client (masked, as RFC 6455 requires), without a WebSocket library.
fn client_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [1u8, 2, 3, 4];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn frame_socket_handshakes_and_acks_never_break_the_server() {
    count_panics();
    let (_rt, hub) = frame_hub();
    let ep = hub.endpoint();
    let addr = ep
        .url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let secret = ep.secret.clone();
    let mut runner = proptest::test_runner::TestRunner::new(config(32));
    runner
        .run(&handshake(secret.clone()), |(head, acks)| {
            let mut s = TcpStream::connect(&addr).expect("the frame server listens");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(&head).expect("write head");
            let text = String::from_utf8_lossy(&head).into_owned();
            let first_line = text.lines().next().unwrap_or_default().to_string();
            let query = first_line.split(['?', ' ']).nth(2).unwrap_or_default();
            let params: Vec<&str> = query.split('&').collect();
            let secret_param = format!("secret={secret}");
            // The server keeps the last secret= it sees, and needs a stream it knows.
            let right_secret = params
                .iter()
                .rev()
                .find(|p| p.starts_with("secret="))
                .is_some_and(|p| *p == secret_param);
            let has_stream = params
                .iter()
                .any(|p| *p == "stream=remote" || *p == "stream=local");
            let mut upgraded = false;
            if text.starts_with("GET /?") && text.contains("Upgrade: websocket") {
                let mut reply = [0u8; 12];
                let n = read_some(&mut s, &mut reply);
                upgraded = reply[..n].starts_with(b"HTTP/1.1 101");
                prop_assert_eq!(
                    upgraded,
                    right_secret && has_stream,
                    "reply {:?} to {:?}",
                    String::from_utf8_lossy(&reply[..n]),
                    first_line
                );
            }
            if upgraded {
                for ack in &acks {
                    if s.write_all(&client_text_frame(ack)).is_err() {
                        break;
                    }
                }
            }
            drop(s);
            prop_assert_eq!(
                PANICS.load(Ordering::SeqCst),
                0,
                "a panic in the frame server"
            );
            Ok(())
        })
        .expect("no handshake breaks the frame server");
    // Still serving after all that.
    let mut s = TcpStream::connect(&addr).expect("still listening");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let good = format!(
        "GET /?stream=local&secret={secret} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(good.as_bytes()).expect("write");
    let mut reply = [0u8; 12];
    let n = read_some(&mut s, &mut reply);
    assert!(reply[..n].starts_with(b"HTTP/1.1 101"), "{reply:?}");
}

/// Reads until `buf` is full, the peer closes or the read times out; returns the bytes read.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}
