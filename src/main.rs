//! `dyad`: the headless command line: the media demo (`demo`), devices (`devices`), the
//! signalling server (`serve`), headless calls (`call`, `answer`, `echo`) and benchmarks
//! (`bench`).
//! It only parses arguments, calls the libraries and prints.

mod bench;
mod call;
mod demo;
mod serve;

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
        Command::Bench(bench::BenchCommand::Call(args)) => call::bench_call(&args),
        Command::Bench(cmd) => bench::run(&cmd),
    }
}
