//! The CLI's own rules, run as a user would run it.

use std::process::Command;

/// Runs `dyad args` without DYAD_PASSWORD; it must fail, and its stderr is returned.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dyad"))
        .args(args)
        .env_remove("DYAD_PASSWORD")
        .output()
        .expect("run dyad");
    assert!(!out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A real account never gets a password nobody chose: with --server, no --password and no
/// DYAD_PASSWORD, `dyad answer` and `dyad call` refuse before touching the network.
#[test]
fn a_real_server_needs_a_real_password() {
    for args in [
        &[
            "answer",
            "--server",
            "http://127.0.0.1:9",
            "--user",
            "bobby",
        ][..],
        &[
            "call",
            "alice",
            "--server",
            "http://127.0.0.1:9",
            "--user",
            "bobby",
        ][..],
    ] {
        let err = refused(args);
        assert!(
            err.contains("--password (or DYAD_PASSWORD) is required with --server"),
            "{args:?}: {err}"
        );
    }
}

/// `--audio-processing` takes `all`, `off` or a list of parts, and names what it did not
/// understand before touching the network.
#[test]
fn audio_processing_parts_are_checked() {
    let err = refused(&[
        "call",
        "alice",
        "--server",
        "http://127.0.0.1:9",
        "--user",
        "bobby",
        "--password",
        "bobby password",
        "--audio",
        "microphone",
        "--audio-processing",
        "echo,reverb",
    ]);
    assert!(
        err.contains(
            "--audio-processing reverb: all, off, or a list of echo, noise, gain, highpass"
        ),
        "{err}"
    );
}
