//! `dyad bench signalling`: a real `dyad serve` process under load from several client
//! processes. Measures sessions held, server memory per idle session (the RSS slope), call
//! set-ups per second (invite → answer through the server) and relay latency.
//!
//! Accounts and tokens are provisioned straight into the server's database in one transaction
//! (hashing thousands of passwords through `/v1/register` would take minutes). Workers bind to
//! different 127.0.0.x source addresses, because one source address has only ~28 000 ephemeral
//! ports. Each process may hold as many descriptors as its limit allows: the coordinator raises
//! its soft limit to the hard one (and, run as root, the hard one to what the sessions need),
//! and the server and workers it starts inherit that.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// `dyad bench …`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Load-test the signalling server.
    Signalling(SignallingArgs),
    /// Call set-up time, capture → decoded latency and CPU of a real call on loopback.
    Call(crate::call::BenchCallArgs),
    /// CPU time of the simulated network (`dyad_call::sim`): calls of simulated time per second.
    Sim(SimArgs),
    /// The microphone's processing (echo cancellation, noise suppression, gain control) in the
    /// simulated room (`dyad_media::room`), on and off: a markdown table.
    Room(RoomArgs),
    /// (internal) one load-generating process of `bench signalling`.
    #[command(hide = true)]
    SignallingWorker(WorkerArgs),
}

/// Options of `dyad bench signalling`.
#[derive(Args, Debug)]
pub struct SignallingArgs {
    /// Authenticated WebSocket sessions to open and hold.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Load-generating processes (each with its own 127.0.0.x source address).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Call set-ups per second in total (each: invite → answer → hangup, 6 relayed messages).
    #[arg(long, default_value_t = 300)]
    calls_per_sec: u32,
    /// Seconds of calling.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The presence-heavy case: this many of the callers and callees are a contact of
    /// `--watchers` idle sessions each, so each of their calls fans two presence changes out to
    /// all of those (the relay latency of everyone else shows whether that stalls the server).
    #[arg(long, default_value_t = 0)]
    watched: usize,
    /// Idle sessions watching each `--watched` account.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
}

/// Options of `dyad bench sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Simulated seconds per call.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: u32,
}

/// Options of `dyad bench room`.
#[derive(Args, Debug)]
pub struct RoomArgs {
    /// Seeds (talkers and rooms) per scenario; medians and worsts are over them.
    #[arg(long, default_value_t = 8)]
    seeds: u64,
}

/// Options of one worker process.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    source: IpAddr,
    /// File with one `username token` per line.
    #[arg(long)]
    tokens: PathBuf,
    #[arg(long)]
    calls_per_sec: u32,
    #[arg(long)]
    seconds: u64,
}

/// Runs a bench subcommand.
pub fn run(cmd: &BenchCommand) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    match cmd {
        BenchCommand::Signalling(args) => runtime.block_on(coordinator(args)),
        BenchCommand::SignallingWorker(args) => runtime.block_on(worker(args)),
        BenchCommand::Call(args) => crate::call::bench_call(args),
        BenchCommand::Sim(args) => sim(args),
        BenchCommand::Room(args) => room(args),
    }
}

/// A call on a 2 Mbit/s link losing 5 % with a 50 ms one-way delay, both ways, model media at
/// 640×480@30: the CPU it takes per simulated minute.
fn sim(args: &SimArgs) -> Result<()> {
    use dyad_call::sim::{self, Link, Loss, Scenario};
    let link = Link {
        delay: Duration::from_millis(50),
        loss: Loss::Random(0.05),
        ..Link::capped(2_000_000)
    };
    let scenario = Scenario::new(args.seconds, link);
    let mut cpu = Vec::new();
    for i in 0..args.runs.max(1) {
        let t0 = crate::call::cpu_seconds();
        let report = sim::run(&Scenario {
            seed: u64::from(i) + 1,
            ..scenario.clone()
        });
        let secs = crate::call::cpu_seconds() - t0;
        println!(
            "run {i}: {:.3} CPU-s for {:.0} s simulated, {} packets carried, {} frames decoded at B",
            secs,
            args.seconds,
            report.packets.0,
            report.b.decoded.len()
        );
        cpu.push(secs);
    }
    cpu.sort_by(f64::total_cmp);
    let median = cpu[cpu.len() / 2];
    println!(
        "dyad bench sim: median {median:.3} CPU-s per {:.0} s call ({:.0}x faster than real time)",
        args.seconds,
        args.seconds / median.max(1e-9)
    );
    Ok(())
}

/// Each room scenario on `--seeds` seeds, processing on and off; then the processing's CPU.
fn room(args: &RoomArgs) -> Result<()> {
    use dyad_media::room::{self, Scenario, GOAL_ERLE_DB};
    use dyad_media::{AudioFrame, AudioProcessor, AudioSource, ProcessingConfig};

    let seeds = args.seeds.max(1);
    let stat = |mut v: Vec<f64>, lower_is_worse: bool| -> String {
        v.retain(|x| !x.is_nan());
        if v.is_empty() {
            return "–".into();
        }
        v.sort_by(f64::total_cmp);
        let worst = if lower_is_worse { v[0] } else { v[v.len() - 1] };
        format!("{:.1} ({:.1})", v[v.len() / 2], worst)
    };
    println!(
        "| scenario | processing | ERLE dB | windows < {GOAL_ERLE_DB} dB | converged s | \
         recovered s | near end dB | noise dB | voice dB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for scenario in Scenario::ALL {
        for (name, config) in [
            ("on", ProcessingConfig::ALL),
            ("off", ProcessingConfig::OFF),
        ] {
            let mut reports = Vec::new();
            for seed in 1..=seeds {
                reports.push(room::run(scenario, config, seed)?);
            }
            // Never settling counts as the whole run.
            let never = f64::from(scenario.seconds());
            let col = |f: &dyn Fn(&room::RoomReport) -> Option<f64>| -> Vec<f64> {
                reports.iter().map(|r| f(r).unwrap_or(f64::NAN)).collect()
            };
            let leaks: usize = reports.iter().map(|r| r.leak_windows).sum();
            let judged: usize = reports.iter().map(|r| r.judged_windows).sum();
            let settled = |v: Option<f64>| Some(v.unwrap_or(never));
            let echo = scenario != Scenario::Noise;
            println!(
                "| {} | {name} | {} | {} | {} | {} | {} | {} | {} |",
                scenario.name(),
                stat(col(&|r| r.erle_db), true),
                if echo {
                    format!("{leaks} of {judged}")
                } else {
                    "–".into()
                },
                if matches!(scenario, Scenario::SingleTalk | Scenario::DelayJump) {
                    stat(col(&|r| settled(r.converged_s)), false)
                } else {
                    "–".into()
                },
                if scenario == Scenario::DelayJump {
                    stat(col(&|r| settled(r.recovered_s)), false)
                } else {
                    "–".into()
                },
                stat(col(&|r| r.near_change_db.map(f64::abs)), false),
                stat(col(&|r| r.noise_change_db), false),
                stat(col(&|r| r.speech_change_db.map(f64::abs)), false),
            );
        }
    }
    println!(
        "\n(median (worst) over {seeds} seeds; never settling counts as the scenario's length; \
         near end and voice: the size of the change)"
    );

    // CPU: a minute of far end and microphone through everything, in this build's profile.
    let clock = std::sync::Arc::new(dyad_media::ManualClock::new(0));
    let mut far = room::Talker::new(clock.clone(), 11)?;
    let mut near = room::Talker::new(clock, 12)?;
    let mut place = room::Room::new(room::EchoPath::default(), Some(-60.0), 1);
    let mut frames = Vec::with_capacity(3000);
    for _ in 0..3000 {
        let f = far.next_frame()?;
        let n = near.next_frame()?;
        let mic = place.step(&f, &n)?.mic;
        frames.push((f, mic));
    }
    let mut processor = AudioProcessor::new(ProcessingConfig::ALL);
    let t0 = crate::call::cpu_seconds();
    for (f, mic) in &frames {
        processor.analyze_render(f)?;
        let mut m: AudioFrame = mic.clone();
        processor.process_capture(&mut m)?;
    }
    let cpu = crate::call::cpu_seconds() - t0;
    println!(
        "processing CPU: {cpu:.2} CPU-s per minute of call ({:.2} ms per 20 ms frame)",
        cpu * 1000.0 / 3000.0
    );
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces, hence the last ')').
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> Result<f64> { Ok(fields.get(i).context("stat field")?.parse::<f64>()?) };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dyad serve`; with `DYAD_BENCH_SERVER_WRAPPER=heaptrack` (or another profiler that takes
/// the program and its arguments) the server runs under it.
fn start_server(db: &Path) -> Result<(Killed, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let mut command = match std::env::var_os("DYAD_BENCH_SERVER_WRAPPER") {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    // Open calls: the accounts call each other without contact requests (the bench measures
    // routing; the consent check is one indexed query per invite, in the connection task).
    let mut child = command
        .args(["serve", "--open-calls", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start dyad serve")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().context("serve exited")??;
        if let Some(rest) = line.strip_prefix("dyad serve: http://") {
            break rest.split_whitespace().next().context("address")?.parse()?;
        }
    };
    Ok((Killed(child), addr))
}

/// Raises this process's descriptor limit to at least `want` if it can (soft up to the hard
/// limit; the hard limit too when privileged), and says what it is now.
fn raise_descriptor_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur >= want {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: want.max(limit.rlim_cur),
        rlim_max: want.max(limit.rlim_max),
    };
    // SAFETY: as above. Refused without CAP_SYS_RESOURCE when the hard limit must grow.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return raised.rlim_cur;
    }
    let soft = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above; raising the soft limit to the hard one is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return soft.rlim_cur;
    }
    limit.rlim_cur
}

async fn coordinator(args: &SignallingArgs) -> Result<()> {
    if args.sessions < 2 * args.workers || args.workers == 0 || args.workers > 200 {
        bail!("need at least 2 sessions per worker and 1..=200 workers");
    }
    // The server holds a descriptor per session (plus its listener, database, logs...).
    let want = args.sessions as u64 + 1_024;
    let limit = raise_descriptor_limit(want);
    if limit < want {
        println!("descriptor limit {limit} (< {want}): sessions past it will fail to connect");
    }
    let dir = std::env::temp_dir().join(format!("dyad-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    println!("provisioning {} accounts…", args.sessions);
    let names: Vec<String> = (0..args.sessions).map(|i| format!("bench{i}")).collect();
    {
        let store = dyad_server::Store::open(&db).await?;
        let hash = dyad_server::store::hash_password("bench password")?;
        let tokens = store
            .provision_users(&names, &hash, unix_now(), 24 * 3600)
            .await?;
        let per = args.sessions.div_ceil(args.workers);
        if args.watched > 0 {
            // Worker 0's first accounts are callers and callees; the last accounts are idle.
            let callers_0 = 2 * (per / 2).min(200);
            let idle = args.sessions.saturating_sub(args.workers * 400);
            if args.watched > callers_0 || args.watchers > idle {
                bail!("--watched ≤ {callers_0} and --watchers ≤ {idle} with these sessions");
            }
            let watchers = &names[args.sessions - args.watchers..];
            // Both ways: presence flows between accepted contacts only.
            let pairs: Vec<(String, String)> = names[..args.watched]
                .iter()
                .flat_map(|w| {
                    watchers
                        .iter()
                        .flat_map(move |o| [(o.clone(), w.clone()), (w.clone(), o.clone())])
                })
                .collect();
            store.provision_contacts(&pairs).await?;
            println!(
                "presence-heavy: {} callers/callees with {} watchers each ({} contacts)",
                args.watched,
                args.watchers,
                pairs.len()
            );
        }
        for (w, chunk) in names
            .iter()
            .zip(&tokens)
            .collect::<Vec<_>>()
            .chunks(per)
            .enumerate()
        {
            let mut f = std::fs::File::create(dir.join(format!("tokens-{w}")))?;
            for (name, token) in chunk {
                writeln!(f, "{name} {token}")?;
            }
        }
    }
    let (server, addr) = start_server(&db)?;
    let pid = server.0.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid)?;
    let cpu_before = cpu_secs(pid)?;
    println!("server {addr} (pid {pid}) RSS before sessions: {rss_before} KiB");

    let mut workers = Vec::new();
    for w in 0..args.workers {
        let child = Command::new(std::env::current_exe()?)
            .args(["bench", "signalling-worker", "--server", &addr.to_string()])
            .args(["--source", &format!("127.0.0.{}", 2 + w)])
            .arg("--tokens")
            .arg(dir.join(format!("tokens-{w}")))
            .args([
                "--calls-per-sec",
                &(args.calls_per_sec / args.workers as u32)
                    .max(1)
                    .to_string(),
            ])
            .args(["--seconds", &args.seconds.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start worker")?;
        workers.push(Killed(child));
    }
    // Each worker prints "connected N" once its sessions are up.
    let mut outputs = Vec::new();
    let mut held = 0usize;
    let started = Instant::now();
    for w in &mut workers {
        let stdout = w.0.stdout.take().context("worker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().context("worker ended")??;
        held += line
            .strip_prefix("connected ")
            .context("worker protocol")?
            .parse::<usize>()?;
        outputs.push(lines);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let cpu_joins = cpu_secs(pid)? - cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid)?;
    let per_session = (rss_idle.saturating_sub(rss_before)) as f64 * 1024.0 / held as f64;
    println!(
        "sessions held: {held} of {} (connected in {connect_secs:.1} s); server RSS {rss_idle} KiB → {:.2} KiB per idle session",
        args.sessions,
        per_session / 1024.0
    );
    println!(
        "joins: server CPU {:.0} µs per session (upgrade, token check, contact load, hub) → {:.0} joins/s per core",
        cpu_joins * 1e6 / held.max(1) as f64,
        held as f64 / cpu_joins.max(1e-9)
    );
    for w in &mut workers {
        let stdin = w.0.stdin.as_mut().context("worker stdin")?;
        writeln!(stdin, "go")?;
    }
    let (mut relay, mut setup, mut calls, mut failed) = (Vec::new(), Vec::new(), 0u64, 0u64);
    let mut presence = 0u64;
    for lines in outputs {
        for line in lines {
            let line = line?;
            let Some(json) = line.strip_prefix("result ") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(json)?;
            let list = |k: &str| -> Vec<u64> {
                v[k].as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                    .unwrap_or_default()
            };
            relay.extend(list("relay_us"));
            setup.extend(list("setup_us"));
            calls += v["calls"].as_u64().unwrap_or(0);
            failed += v["failed"].as_u64().unwrap_or(0);
            presence += v["presence"].as_u64().unwrap_or(0);
        }
    }
    let rss_after = rss_kib(pid)?;
    relay.sort_unstable();
    setup.sort_unstable();
    let pct = |v: &[u64], q: f64| {
        v.get(((v.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let secs = args.seconds as f64;
    println!(
        "calls: {calls} set up in {secs:.0} s = {:.0}/s ({failed} failed); relayed messages ≈ {:.0}/s",
        calls as f64 / secs,
        calls as f64 * 6.0 / secs
    );
    println!(
        "presence frames delivered: {presence} ({:.0}/s)",
        presence as f64 / secs
    );
    println!(
        "relay latency (invite sent → callee has it): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&relay, 0.5),
        pct(&relay, 0.99),
        pct(&relay, 1.0)
    );
    println!(
        "call set-up (invite sent → answer back at caller): p50 {:.2} ms, p99 {:.2} ms",
        pct(&setup, 0.5),
        pct(&setup, 0.99)
    );
    println!("server RSS after calls: {rss_after} KiB");
    drop(workers);
    // SIGTERM first: the server shuts down cleanly (and a profiler wrapping it can finish).
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let mut server = server;
    for _ in 0..100 {
        if server.0.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    Message,
>;

async fn open_session(
    server: SocketAddr,
    source: IpAddr,
    user: &str,
    token: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    let url = format!("ws://{server}/v1/ws?device=bench&token={token}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .with_context(|| format!("{user}: upgrade"))?;
    Ok(ws)
}

#[derive(Default)]
struct Tally {
    relay_us: Vec<u64>,
    setup_us: Vec<u64>,
    calls: u64,
    presence: u64,
}

async fn worker(args: &WorkerArgs) -> Result<()> {
    let list = std::fs::read_to_string(&args.tokens)?;
    let accounts: Vec<(String, String)> = list
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let epoch = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    // The first 2×P accounts make P caller/callee pairs; the rest are held idle.
    let pairs = (accounts.len() / 2).min(200);
    let mut sinks: Vec<Arc<tokio::sync::Mutex<Sink>>> = Vec::new();
    let connected = AtomicU64::new(0);
    let mut opened = Vec::new();
    // Connect in batches of 200 at once: fast, without a SYN flood.
    for chunk in accounts.chunks(200) {
        let futs = chunk
            .iter()
            .map(|(u, t)| open_session(args.server, args.source, u, t));
        for r in futures_util::future::join_all(futs).await {
            match r {
                Ok(ws) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                    opened.push(Some(ws));
                }
                Err(e) => {
                    eprintln!("worker {}: {e:#}", args.source);
                    opened.push(None);
                }
            }
        }
    }
    for (i, ws) in opened.into_iter().enumerate() {
        let Some(ws) = ws else { continue };
        let (sink, mut stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        if i < 2 * pairs {
            sinks.push(sink.clone());
        }
        // Keep every session alive past the server's idle timeout, as a real client would.
        let pinger = sink.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let ping = Message::Text(r#"{"type":"ping"}"#.into());
                if pinger.lock().await.send(ping).await.is_err() {
                    break;
                }
            }
        });
        let tally = tally.clone();
        // Callees answer invites and count relay latency; callers count set-up latency and hang up.
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                // Presence frames are only counted: parsing thousands of them would load the
                // shared cores and show up as the server's latency.
                if text.starts_with(r#"{"type":"presence""#) {
                    if let Ok(mut t) = tally.lock() {
                        t.presence += 1;
                    }
                    continue;
                }
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let now_us = epoch.elapsed().as_micros() as u64;
                let call_id = v["call_id"].as_str().unwrap_or_default().to_string();
                let sent_us: u64 = call_id
                    .rsplit('-')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(now_us);
                let reply = match v["type"].as_str() {
                    Some("invite") => {
                        if let Ok(mut t) = tally.lock() {
                            t.relay_us.push(now_us.saturating_sub(sent_us));
                        }
                        format!(r#"{{"type":"answer","call_id":"{call_id}","sdp":"v=0\r\n"}}"#)
                    }
                    Some("answer") => {
                        if let Ok(mut t) = tally.lock() {
                            t.setup_us.push(now_us.saturating_sub(sent_us));
                            t.calls += 1;
                        }
                        format!(
                            r#"{{"type":"hangup","call_id":"{call_id}","reason":"user_hangup"}}"#
                        )
                    }
                    _ => continue,
                };
                if sink
                    .lock()
                    .await
                    .send(Message::Text(reply.into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    println!("connected {}", connected.load(Ordering::Relaxed));
    let _ = std::io::stdout().flush();
    // Wait for "go" from the coordinator (it measures memory meanwhile), keeping sessions alive.
    let mut line = String::new();
    let go = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line));
    let _ = go.await;
    let callers: Vec<(usize, String)> = (0..sinks.len() / 2)
        .map(|p| (2 * p, accounts[2 * p + 1].0.clone()))
        .collect();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.calls_per_sec.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut seq = 0u64;
    let mut failed = 0u64;
    while Instant::now() < end && !callers.is_empty() {
        ticker.tick().await;
        let (caller, callee) = &callers[(seq as usize) % callers.len()];
        seq += 1;
        let sent = epoch.elapsed().as_micros();
        let invite = format!(
            r#"{{"type":"invite","call_id":"c{}-{seq}-{sent}","to":"{callee}","sdp":"v=0\r\n","lifetime_ms":5000}}"#,
            args.source.to_string().replace('.', "_")
        );
        if sinks[*caller]
            .lock()
            .await
            .send(Message::Text(invite.into()))
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    // Let the last answers arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally lock poisoned"))?;
    let result = serde_json::json!({
        "relay_us": t.relay_us, "setup_us": t.setup_us, "calls": t.calls, "presence": t.presence,
        "failed": failed + seq.saturating_sub(t.calls),
    });
    println!("result {result}");
    Ok(())
}
