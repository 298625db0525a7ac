//! `dyad`: the headless command line: the media demo (`demo`), devices (`devices`), the
//! signalling server (`serve`), headless calls (`call`, `answer`, `echo`) and benchmarks
//! (`bench`).
//! It only parses arguments, calls the libraries and prints.

mod bench;
mod call;
mod demo;
mod serve;

/// jemalloc instead of the C library's allocator: keeps short-lived buffers (hyper's 8 KiB
/// request buffers, one set per WebSocket handshake) in their own size class, so they neither
/// fragment the heap between the small allocations idle sessions keep nor need mmap/munmap (and
/// the TLB shootdowns that come with it) to stay out of their way. `dyad bench signalling`,
/// 19 000 sessions: 166–217 → ≈ 120 µs of server CPU per join, 4.98–5.09 → ≈ 4.7–4.8 KiB per
/// idle session (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: freed pages go back to the system after ≈ 1 s of
/// disuse (its default, 10 s, keeps a burst of handshakes' buffers resident that long) and at
/// once when "muzzy" (lazily freed) pages would linger.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: a pointer to the first byte of a 'static, NUL-terminated string, which is what
    // jemalloc reads this symbol as (a `const char *`).
    Some(unsafe { &*c"dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr() });

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dyad",
    version,
    about = "Dyad one-to-one video calls: headless tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture the test pattern, encode it with VP8 and Opus, decode it and print what was
    /// measured (frame numbers read back, PSNR, bitrate, encode/decode time, latency).
    Demo(demo::DemoArgs),
    /// List cameras and audio devices (with the reason when there are none).
    Devices,
    /// Write the test pattern as a .y4m and a tone as a .wav (for a browser's fake camera and
    /// microphone, or any tool that reads files).
    Pattern(demo::PatternArgs),
    /// Run the signalling server (accounts, presence, calls, TURN credentials; optionally the
    /// embedded STUN/TURN server).
    Serve(serve::ServeArgs),
    /// Place a call and print its live statistics. With no --server: an embedded server and an
    /// echo bot on loopback, so a real call works with nothing else running.
    Call(call::CallArgs),
    /// Sign in and accept every incoming call, printing its statistics.
    Answer(call::AnswerArgs),
    /// The echo bot: accept every call and send the caller's own video and audio back.
    Echo(call::AnswerArgs),
    /// Test this network against a server ("Test my network"): HTTPS, STUN, TURN over UDP,
    /// TCP and TLS, IPv4/IPv6, NAT; says in plain words what will and won't work.
    Doctor(call::DoctorArgs),
    /// Make a one-use guest link: whoever opens it in a browser can call you (and only you).
    Invite(call::InviteArgs),
    /// Benchmarks that need real processes and sockets (figures go to docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DYAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,webrtc=error,webrtc_ice=error,webrtc_mdns=error,webrtc_dtls=error,webrtc_srtp=error,turn=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Devices => demo::devices(),
        Command::Pattern(args) => demo::pattern(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Call(args) => call::call(&args),
        Command::Answer(args) => call::answer(&args, false),
        Command::Echo(args) => call::answer(&args, true),
        Command::Invite(args) => call::invite(&args),
        Command::Doctor(args) => call::doctor(&args),
        Command::Bench(bench::BenchCommand::Call(args)) => call::bench_call(&args),
        Command::Bench(cmd) => bench::run(&cmd),
    }
}
