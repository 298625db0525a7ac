//! `dyad`: the headless command line. For now it runs the media engine on its own (`demo`) and
//! lists devices (`devices`); later issues add `serve`, `call`, `answer`, `echo` and `bench`.
//! It only parses arguments, calls the libraries and prints.

mod demo;

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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Devices => demo::devices(),
    }
}
