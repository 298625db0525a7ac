//! `dyad call`, `dyad answer`, `dyad echo` and `dyad bench call`: headless clients over
//! `dyad-call`. Without `--server`, `dyad call` starts an embedded signalling server on
//! loopback and an echo bot, and calls it: a real call with nothing else running.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use dyad_call::echo::EchoBot;
use dyad_call::engine::{CallEvent, ClientConfig, ClientHandle, CountingSink};
use dyad_call::quality::StatsPoint;
use dyad_call::signal::ServerUrl;
use dyad_call::{AudioInput, VideoInput};
use dyad_media::VideoFormat;
use dyad_server::EmbeddedServer;
use tokio::sync::mpsc;

/// Who we are and where the server is.
#[derive(Args, Debug, Clone)]
pub struct Account {
    /// Signalling server, `http://host:port`. Default: an embedded one on loopback.
    #[arg(long)]
    server: Option<String>,
    /// Username (created on first use).
    #[arg(long, default_value = "caller")]
    user: String,
    /// Password (or the DYAD_PASSWORD environment variable). Required with --server: the
    /// account is a real one (created on first use). Without --server the call goes to an
    /// in-memory server of this process, where a fixed password is used.
    #[arg(long, env = "DYAD_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Use TURN relays only.
    #[arg(long)]
    relay_only: bool,
    /// Capture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    size: String,
    /// Video source: `pattern` (test pattern), `noisy-pattern`, `camera:N`, or a .y4m file.
    #[arg(long, default_value = "pattern")]
    video: String,
    /// Audio source: `speech` (synthetic speech), `tone` (440 Hz) or `microphone`.
    #[arg(long, default_value = "speech")]
    audio: String,
    /// What a `microphone` goes through: `all`, `off`, or a comma-separated list of `echo`,
    /// `noise`, `gain`, `highpass` (the synthetic sources are always sent untouched).
    #[arg(long, default_value = "all")]
    audio_processing: String,
}

/// Parses `--audio-processing`.
fn processing_config(spec: &str) -> Result<dyad_media::ProcessingConfig> {
    use dyad_media::ProcessingConfig;
    match spec.trim() {
        "all" => return Ok(ProcessingConfig::ALL),
        "off" | "none" => return Ok(ProcessingConfig::OFF),
        _ => {}
    }
    let mut c = ProcessingConfig::OFF;
    for part in spec.split(',').map(str::trim) {
        match part {
            "echo" => c.echo_cancellation = true,
            "noise" => c.noise_suppression = true,
            "gain" => c.auto_gain = true,
            "highpass" => c.high_pass = true,
            other => bail!(
                "--audio-processing {other}: all, off, or a list of echo, noise, gain, highpass"
            ),
        }
    }
    Ok(c)
}

/// `dyad call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// Who to call. Default (with no --server): the embedded echo bot.
    peer: Option<String>,
    #[command(flatten)]
    account: Account,
    /// Hang up after this many seconds (0: until the other side ends or Ctrl-C).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Write the call's statistics history (JSON) here at the end.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

/// `dyad answer` and `dyad echo`.
#[derive(Args, Debug)]
pub struct AnswerArgs {
    #[command(flatten)]
    account: Account,
    /// Stop after this many calls (0: never).
    #[arg(long, default_value_t = 0)]
    calls: u32,
    /// Hang up each call this many seconds after it connects (0: let the caller end it).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Write each call's statistics history (JSON) here when it ends (the last call's stays).
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

/// `dyad doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The signalling server, e.g. https://dyad.example.org.
    #[arg(long)]
    server: String,
    /// Your username.
    #[arg(long)]
    user: String,
    /// Your password. Default: the DYAD_PASSWORD environment variable.
    #[arg(long, env = "DYAD_PASSWORD", hide_env_values = true)]
    password: String,
}

/// `dyad invite`.
#[derive(Args, Debug)]
pub struct InviteArgs {
    /// The signalling server, e.g. https://dyad.example.org.
    #[arg(long)]
    server: String,
    /// Your username.
    #[arg(long)]
    user: String,
    /// Your password. Default: the DYAD_PASSWORD environment variable.
    #[arg(long, env = "DYAD_PASSWORD")]
    password: String,
    /// How long the link stays usable, seconds (60 to 604800; the server's default is a day).
    #[arg(long)]
    ttl_secs: Option<u64>,
    /// Revoke this link (its token, the last part of its URL) instead of making one.
    #[arg(long)]
    revoke: Option<String>,
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("size is WIDTHxHEIGHT")?;
    Ok((w.parse()?, h.parse()?))
}

/// The in-memory server of `dyad call` without --server: nothing to protect.
const EMBEDDED_PASSWORD: &str = "dyad local password";

fn config(a: &Account, server: ServerUrl) -> Result<ClientConfig> {
    let password = match (&a.password, &a.server) {
        (Some(p), _) => p.as_str(),
        (None, None) => EMBEDDED_PASSWORD,
        (None, Some(_)) => bail!(
            "--password (or DYAD_PASSWORD) is required with --server: the account is a real one"
        ),
    };
    let mut c = ClientConfig::new(server, &a.user, password);
    let (width, height) = parse_size(&a.size)?;
    c.media.format = VideoFormat {
        width,
        height,
        fps: 30,
    };
    c.media.video = match a.video.as_str() {
        "pattern" => VideoInput::TestPattern,
        "noisy-pattern" => VideoInput::NoisyPattern,
        v if v.starts_with("camera:") => VideoInput::Camera(v[7..].parse().context("camera:N")?),
        path => VideoInput::Y4m(path.into()),
    };
    c.media.audio = match a.audio.as_str() {
        "speech" => AudioInput::Speech,
        "tone" => AudioInput::Tone,
        "microphone" => AudioInput::Microphone,
        other => bail!("--audio {other}: speech, tone or microphone"),
    };
    c.media.processing = processing_config(&a.audio_processing)?;
    c.relay_only = a.relay_only;
    c.device = format!("cli-{}", std::process::id());
    Ok(c)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An embedded signalling server on 127.0.0.1 (in memory) with the echo contact signed in.
async fn embedded_with_echo() -> Result<(EmbeddedServer, ServerUrl, EchoBot)> {
    let server = EmbeddedServer::start(dyad_server::Store::open_in_memory().await?).await?;
    let url = ServerUrl::parse(&server.url)?;
    let token = server.echo_token(now_unix()).await?;
    let echo = EchoBot::start(url.clone(), dyad_server::embedded::ECHO_USER, token).await?;
    Ok((server, url, echo))
}

fn kbps(b: f64) -> String {
    format!("{:.0}", b / 1000.0)
}

fn print_stats(p: &StatsPoint) {
    let (s, q) = (&p.snapshot, &p.score);
    let (vo, vi, ai) = (&s.outbound_video, &s.inbound_video, &s.inbound_audio);
    let rtt = s
        .remote_inbound_video
        .round_trip_time
        .map_or("-".into(), |r| format!("{:.1}", r * 1000.0));
    let g2g = vi
        .glass_to_glass_ms
        .map_or("-".into(), |g| format!("{g:.1}"));
    // Lip sync: picture − sound, ms, and what is held back for it (audio / video).
    let sync = s.av_sync.offset_ms.map_or("-".into(), |o| {
        format!(
            "{o:+.0} ms (held {:.0}/{:.0})",
            s.av_sync.audio_delay_ms, s.av_sync.video_delay_ms
        )
    });
    let path = s.candidate_pair.as_ref().map_or("-".into(), |p| {
        format!("{}/{}", p.local_candidate_type, p.protocol)
    });
    println!(
        "{:>5.1}s  send {}x{} {:>4.1} fps {:>5} of {:>5} kbit/s | recv {}x{} {:>4.1} fps {:>5} kbit/s frame #{} loss {:.1}% | audio {:.0} frames/s | rtt {} ms | capture→decoded {} ms | lip sync {} | {} ({}) | {:?} {:.0} %{}",
        s.call_seconds,
        vo.frame_width,
        vo.frame_height,
        vo.frames_per_second,
        kbps(vo.bitrate),
        kbps(vo.target_bitrate),
        vi.frame_width,
        vi.frame_height,
        vi.frames_per_second,
        kbps(vi.bitrate),
        vi.last_marker_frame.map_or("-".into(), |n| n.to_string()),
        vi.loss_percent,
        ai.frames_per_second,
        rtt,
        g2g,
        sync,
        path,
        vo.quality_limitation_reason,
        q.band,
        q.score,
        if q.reason_text.is_empty() {
            String::new()
        } else {
            format!(": {}", q.reason_text)
        },
    );
}

/// How long `dyad call` waits for its contact request to be accepted.
const CONTACT_WAIT: Duration = Duration::from_secs(15);

/// Asks `peer` to be a contact and waits until they accept (a `dyad answer` or echo bot does at
/// once; a person has [`CONTACT_WAIT`]). Used when a call was refused `not_allowed`: only
/// contacts may call each other, unless the callee lets anyone call or the server is open.
async fn become_contacts(
    h: &ClientHandle,
    ev: &mut tokio::sync::mpsc::UnboundedReceiver<CallEvent>,
    peer: &str,
) -> Result<()> {
    h.add_contact(peer)?;
    println!("dyad call: {peer} is not a contact yet: asked them to accept you");
    let deadline = Instant::now() + CONTACT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline.into(), ev.recv()).await {
            Err(_) => bail!(
                "{peer} has not accepted your contact request (only contacts can call each other)"
            ),
            Ok(None) => bail!("the call engine stopped"),
            Ok(Some(CallEvent::Contacts(list)))
                if list.iter().any(|c| {
                    c.username == peer && c.state == dyad_proto::ContactState::Accepted
                }) =>
            {
                return Ok(())
            }
            // What a refused contact_add answers (the refused call's late candidates answer
            // unknown_call: not ours to stop for).
            Ok(Some(CallEvent::Error { code, message }))
                if matches!(
                    code.as_str(),
                    "unknown_user" | "self_reference" | "invalid_field"
                ) =>
            {
                bail!("{code}: {message}")
            }
            Ok(Some(_)) => {}
        }
    }
}

/// `dyad call`.
pub fn call(args: &CallArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(call_async(args))
}

async fn call_async(args: &CallArgs) -> Result<()> {
    let (url, _embedded) = match &args.account.server {
        Some(s) => (ServerUrl::parse(s)?, None),
        None => {
            let (server, url, echo) = embedded_with_echo().await?;
            println!("dyad call: embedded server on {url} with an echo bot");
            (url, Some((server, echo)))
        }
    };
    let peer = match (&args.peer, &args.account.server) {
        (Some(p), _) => p.clone(),
        (None, None) => "echo".into(),
        (None, Some(_)) => bail!("say who to call: dyad call <user> --server ..."),
    };
    let (h, mut ev) = dyad_call::start(config(&args.account, url)?).await?;
    h.set_audio_sink(Box::new(CountingSink::default()));
    h.dial(&peer)?;
    println!("dyad call: calling {peer}");
    let mut asked = false;
    let deadline = (args.seconds > 0).then(|| Instant::now() + Duration::from_secs(args.seconds));
    let mut hung_up = false;
    loop {
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        let next = tokio::select! {
            e = ev.recv() => e,
            _ = tokio::time::sleep(wait), if !hung_up => {
                hung_up = true;
                h.hangup()?;
                continue;
            }
            _ = tokio::signal::ctrl_c(), if !hung_up => {
                hung_up = true;
                h.hangup()?;
                continue;
            }
        };
        let Some(event) = next else {
            bail!("the call engine stopped")
        };
        match event {
            CallEvent::RemoteRinging { .. } => println!("dyad call: ringing"),
            CallEvent::Connected { verification, .. } => println!(
                "dyad call: connected; verification code {}",
                verification.as_deref().unwrap_or("-")
            ),
            CallEvent::FirstRemoteFrame { after_answer, .. } => println!(
                "dyad call: first remote frame {:.1} ms after the answer",
                after_answer.as_secs_f64() * 1000.0
            ),
            CallEvent::Stats(p) => print_stats(&p),
            CallEvent::Error { code, .. } if code == "not_allowed" && !asked && !hung_up => {
                // The dial ends with it (unavailable); call again once we are contacts.
                asked = true;
                let ended = tokio::time::timeout(CONTACT_WAIT, async {
                    while let Some(e) = ev.recv().await {
                        if matches!(e, CallEvent::Ended { .. }) {
                            return;
                        }
                    }
                });
                let _ = ended.await;
                become_contacts(&h, &mut ev, &peer).await?;
                h.dial(&peer)?;
                println!("dyad call: calling {peer}");
            }
            CallEvent::Error { code, message } => eprintln!("dyad call: {code}: {message}"),
            CallEvent::Ended { reason, stats, .. } => {
                println!("dyad call: ended ({reason:?})");
                if let Some(path) = &args.stats_json {
                    std::fs::write(path, stats.to_json())
                        .with_context(|| format!("write {}", path.display()))?;
                    println!("dyad call: statistics in {}", path.display());
                }
                h.shutdown().await;
                return match reason {
                    dyad_proto::EndReason::UserHangup if stats.snapshots.is_empty() => {
                        bail!("the call ended before any media flowed")
                    }
                    dyad_proto::EndReason::UserHangup => Ok(()),
                    other => bail!("call ended: {other:?}"),
                };
            }
            _ => {}
        }
    }
}

/// `dyad answer` (accepts calls) and `dyad echo` (the echo bot).
pub fn answer(args: &AnswerArgs, echo: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(answer_async(args, echo))
}

async fn answer_async(args: &AnswerArgs, echo: bool) -> Result<()> {
    let url = match &args.account.server {
        Some(s) => ServerUrl::parse(s)?,
        None => bail!("--server is required (start one with `dyad serve`)"),
    };
    let mut cfg = config(&args.account, url)?;
    cfg.auto_accept = true;
    if echo {
        cfg = cfg.echo();
    }
    let (h, mut ev) = dyad_call::start(cfg).await?;
    h.set_audio_sink(Box::new(CountingSink::default()));
    println!(
        "dyad {}: signed in as {}, waiting for calls",
        if echo { "echo" } else { "answer" },
        args.account.user
    );
    let mut calls = 0;
    let mut hang_up_at: Option<tokio::time::Instant> = None;
    loop {
        let wait =
            hang_up_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let ev = tokio::select! {
            e = ev.recv() => e,
            _ = tokio::time::sleep_until(wait), if hang_up_at.is_some() => {
                hang_up_at = None;
                h.hangup()?;
                continue;
            }
            _ = tokio::signal::ctrl_c() => {
                h.shutdown().await;
                return Ok(());
            }
        };
        match ev {
            None => bail!("the call engine stopped"),
            Some(CallEvent::Incoming { from, .. }) => println!("call from {from}"),
            Some(CallEvent::Connected { verification, .. }) => {
                println!(
                    "connected; verification code {}",
                    verification.as_deref().unwrap_or("-")
                );
                if args.seconds > 0 {
                    hang_up_at =
                        Some(tokio::time::Instant::now() + Duration::from_secs(args.seconds));
                }
            }
            Some(CallEvent::FirstRemoteFrame { after_answer, .. }) => println!(
                "first remote frame {:.1} ms after the answer",
                after_answer.as_secs_f64() * 1000.0
            ),
            Some(CallEvent::Stats(p)) if !echo => print_stats(&p),
            Some(CallEvent::Error { code, message }) => eprintln!("{code}: {message}"),
            Some(CallEvent::Ended { reason, stats, .. }) => {
                hang_up_at = None;
                println!("call ended ({reason:?})");
                if let Some(path) = &args.stats_json {
                    std::fs::write(path, stats.to_json())
                        .with_context(|| format!("write {}", path.display()))?;
                }
                calls += 1;
                if args.calls > 0 && calls >= args.calls {
                    h.shutdown().await;
                    return Ok(());
                }
            }
            Some(_) => {}
        }
    }
}

/// `dyad doctor`: tests this network against the server and says what will work; fails (exit
/// status 1) when no call could be set up from here.
pub fn doctor(args: &DoctorArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(async {
        let url = ServerUrl::parse(&args.server)?;
        println!("dyad doctor: testing this network against {url}…");
        let findings = dyad_call::doctor::run(&url, &args.user, &args.password).await?;
        for line in dyad_call::doctor::verdict(&findings) {
            println!("{line}");
        }
        if !dyad_call::doctor::calls_possible(&findings) {
            bail!("no call can be set up from this network");
        }
        Ok(())
    })
}

/// `dyad invite`: prints the guest link.
pub fn invite(args: &InviteArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(async {
        let url = ServerUrl::parse(&args.server)?;
        let session = dyad_call::signal::login(&url, &args.user, &args.password).await?;
        if let Some(token) = &args.revoke {
            let token = token.rsplit('/').next().unwrap_or(token);
            dyad_call::signal::revoke_invite(&url, &session.token, token).await?;
            println!("dyad invite: revoked");
            return Ok(());
        }
        let link = dyad_call::signal::create_invite(&url, &session.token, args.ttl_secs).await?;
        println!("{url}{}", link.path);
        eprintln!(
            "dyad invite: one use, until {} (UNIX time); the guest can call only {}",
            link.expires_at, args.user
        );
        Ok(())
    })
}

/// `dyad bench call`.
#[derive(Args, Debug)]
pub struct BenchCallArgs {
    /// Calls per size.
    #[arg(long, default_value_t = 5)]
    calls: u32,
    /// Seconds of media per call.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Sizes to measure.
    #[arg(long, default_values_t = vec!["640x480".to_string(), "1280x720".to_string()])]
    sizes: Vec<String>,
    /// Where the bandwidth estimate starts, kbit/s (it ramps ≤ 8 %/s from there). Default:
    /// enough for the size itself (300, or 0.9 bit per pixel·s: 830 at 720p), so that the
    /// resolution ladder does not send a quarter of it while the estimate climbs.
    #[arg(long)]
    start_kbps: Option<u64>,
    /// Send the test pattern with camera-like noise (content that uses its bitrate).
    #[arg(long)]
    noise: bool,
}

/// Where a bench call's estimate starts when `--start-kbps` is not given: above the ladder's
/// threshold for the full size (0.845 bit per pixel·s to step up to it), at least 300.
fn default_start_kbps(width: u32, height: u32) -> u64 {
    (u64::from(width) * u64::from(height) * 9 / 10_000).max(300)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

async fn next_matching<T>(
    ev: &mut mpsc::UnboundedReceiver<CallEvent>,
    what: &str,
    mut pick: impl FnMut(&CallEvent) -> Option<T>,
) -> Result<T> {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = tokio::time::timeout_at(until, ev.recv())
            .await
            .with_context(|| format!("timed out waiting for {what}"))?
            .context("engine stopped")?;
        if let CallEvent::Ended { reason, .. } = &e {
            bail!("call ended ({reason:?}) while waiting for {what}");
        }
        if let Some(t) = pick(&e) {
            return Ok(t);
        }
    }
}

/// Both clients run in this process against an embedded server on loopback.
pub fn bench_call(args: &BenchCallArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(async {
        let server = EmbeddedServer::start(dyad_server::Store::open_in_memory().await?).await?;
        let url = ServerUrl::parse(&server.url)?;
        println!(
            "dyad bench call: {} calls x {} s per size, caller and callee in this process, server {url}",
            args.calls, args.seconds
        );
        println!("| size | sent (seconds at each size, all calls) | answer applied → first frame p50 | accept → caller's first frame p50 | capture → decoded p50 / p95 | CPU-s per minute (both sides) | video kbit/s each way (target) |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for size in &args.sizes {
            let (w, h) = parse_size(size)?;
            let mut answer_ms = Vec::new();
            let mut accept_ms = Vec::new();
            let mut latency_ms = Vec::new();
            let mut cpu_per_min = Vec::new();
            let mut kbit = Vec::new();
            let mut target = Vec::new();
            // What the caller actually sent, per measured second: the ladder may send less
            // than the size asked for.
            let mut sent: std::collections::BTreeMap<(u32, u32), u32> = Default::default();
            let start_kbps = args.start_kbps.unwrap_or_else(|| default_start_kbps(w, h));
            for i in 0..args.calls {
                // Tokens minted from the store: no password logins (which the server throttles).
                let tokens = (
                    server.local_token("caller", now_unix()).await?,
                    server.local_token("callee", now_unix()).await?,
                );
                server.make_contacts("caller", "callee").await?;
                let mk = |name: &str| {
                    let mut c = ClientConfig::new(url.clone(), name, "");
                    c.token = Some(if name == "caller" {
                        tokens.0.clone()
                    } else {
                        tokens.1.clone()
                    });
                    c.register = false;
                    c.media.format = VideoFormat {
                        width: w,
                        height: h,
                        fps: 30,
                    };
                    c.device = format!("bench-{i}");
                    c.start_bps = start_kbps * 1000;
                    if args.noise {
                        c.media.video = VideoInput::NoisyPattern;
                    }
                    c
                };
                let (a, mut aev) = dyad_call::start(mk("caller")).await?;
                let (b, mut bev) = dyad_call::start(mk("callee")).await?;
                a.dial("callee")?;
                next_matching(&mut bev, "incoming", |e| {
                    matches!(e, CallEvent::Incoming { .. }).then_some(())
                })
                .await?;
                let accepted = Instant::now();
                b.accept()?;
                let after_answer = next_matching(&mut aev, "first frame", |e| match e {
                    CallEvent::FirstRemoteFrame { after_answer, .. } => Some(*after_answer),
                    _ => None,
                })
                .await?;
                accept_ms.push(accepted.elapsed().as_secs_f64() * 1000.0);
                answer_ms.push(after_answer.as_secs_f64() * 1000.0);
                // Let the estimator settle before measuring steady state.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let cpu0 = cpu_seconds();
                let t0 = Instant::now();
                let mut rx = a.remote_video();
                let end = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
                let clock = dyad_media::clock::system_clock();
                while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
                    let f = rx.borrow_and_update().clone();
                    if let Some(f) = f {
                        if let Ok(m) = dyad_media::read_marker(&f.frame) {
                            latency_ms.push(m.age_us(clock.now_us()) as f64 / 1000.0);
                        }
                    }
                }
                let cpu = cpu_seconds() - cpu0;
                cpu_per_min.push(cpu * 60.0 / t0.elapsed().as_secs_f64());
                if let Some(h) = a.stats().await? {
                    if let Some(s) = h.snapshots.back() {
                        kbit.push(s.outbound_video.bitrate / 1000.0);
                        target.push(s.outbound_video.target_bitrate / 1000.0);
                    }
                    for s in h.snapshots.iter().rev().take(args.seconds as usize) {
                        let o = &s.outbound_video;
                        *sent.entry((o.frame_width, o.frame_height)).or_default() += 1;
                    }
                }
                a.hangup()?;
                a.shutdown().await;
                b.shutdown().await;
            }
            let sent: Vec<String> = sent
                .iter()
                .rev()
                .map(|((w, h), n)| format!("{w}×{h} {n} s"))
                .collect();
            println!(
                "| {size} (from {start_kbps} kbit/s) | {} | {:.1} ms | {:.1} ms | {:.1} / {:.1} ms | {:.1} | {:.0} ({:.0}) |",
                sent.join(", "),
                percentile(&mut answer_ms, 0.5),
                percentile(&mut accept_ms, 0.5),
                percentile(&mut latency_ms.clone(), 0.5),
                percentile(&mut latency_ms, 0.95),
                percentile(&mut cpu_per_min, 0.5),
                percentile(&mut kbit, 0.5),
                percentile(&mut target, 0.5),
            );
        }
        Ok(())
    })
}
