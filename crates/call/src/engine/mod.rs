//! The driver: one task per client that owns the I/O — the signalling WebSocket (reconnecting
//! with backoff), the current call's peer connection and the channels to its media threads —
//! and moves what arrives into the sans-IO parts that decide: the call's state machine
//! ([`crate::machine`]) and its media session ([`crate::session`]). One `select!` over commands,
//! the server, the peer connection, the media threads and the next deadline of either.

mod call;
mod signalling;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dyad_media::VideoFrame;
use dyad_proto::http::IceConfig;
use dyad_proto::{ClientMessage, EndReason, ServerMessage};
use tokio::sync::{mpsc, watch};

pub use crate::api::{CallEvent, ClientConfig, ClientHandle, CountingSink, MEDIA_FAILED_AFTER};
use crate::api::{Command, ContactCmd, BACKOFF};
use crate::error::{CallError, Result};
use crate::machine::{self, Action, CallMachine, Input};
use crate::media::{DecodedVideo, SharedSink};
use crate::rtc::{RtcConfig, RtcPeer};
use crate::session;
use crate::signal::{self, Connection};
use call::Call;

/// How often the client pings the server while connected.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Signs in, connects and starts the client task.
pub async fn start(
    config: ClientConfig,
) -> Result<(ClientHandle, mpsc::UnboundedReceiver<CallEvent>)> {
    let session = if let Some(token) = &config.token {
        dyad_proto::http::Session {
            token: token.clone(),
            username: config.username.clone(),
            expires_at: 0,
        }
    } else if config.register {
        signal::login_or_register(&config.server, &config.username, &config.password).await?
    } else {
        signal::login(&config.server, &config.username, &config.password).await?
    };
    let conn = Connection::connect(&config.server, &session.token, &config.device).await?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (video_tx, video_rx) = watch::channel(None);
    let (self_tx, self_rx) = watch::channel(None);
    let audio_out: SharedSink = Arc::new(Mutex::new(None));
    let _ = ev_tx.send(CallEvent::SignedIn {
        username: session.username.clone(),
        device: conn.device.clone(),
    });
    let _ = ev_tx.send(CallEvent::Privacy {
        anyone_may_call: conn.anyone_may_call,
    });
    let client = Client {
        config,
        token: session.token,
        conn: Some(conn),
        queued: VecDeque::new(),
        events: ev_tx,
        call: None,
        remote_video: video_tx,
        self_view: self_tx,
        audio_out: Arc::clone(&audio_out),
        backoff: BACKOFF.0,
        reconnect_at: None,
        accepted: std::collections::HashSet::new(),
        next_ping: Instant::now() + PING_INTERVAL,
    };
    tokio::spawn(client.run(cmd_rx));
    Ok((
        ClientHandle {
            cmd: cmd_tx,
            remote_video: video_rx,
            self_view: self_rx,
            audio_out,
        },
        ev_rx,
    ))
}

struct Client {
    config: ClientConfig,
    token: String,
    conn: Option<Connection>,
    queued: VecDeque<ClientMessage>,
    events: mpsc::UnboundedSender<CallEvent>,
    call: Option<Call>,
    remote_video: watch::Sender<Option<Arc<DecodedVideo>>>,
    self_view: watch::Sender<Option<Arc<VideoFrame>>>,
    audio_out: SharedSink,
    backoff: Duration,
    reconnect_at: Option<Instant>,
    next_ping: Instant,
    /// Contact requests accepted so far (auto_accept): each is accepted once, not again on every
    /// list that still shows it while the acceptance travels.
    accepted: std::collections::HashSet<String>,
}

fn new_call_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // Fall back on time: ids only need to be unique per caller.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..12].copy_from_slice(&t.to_le_bytes()[..12]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn recv_opt<T>(rx: Option<&mut mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Client {
    fn emit(&self, e: CallEvent) {
        let _ = self.events.send(e);
    }

    /// The earliest of: the call machine's timer, the session's, a reconnect, a ping.
    fn next_deadline(&self) -> Instant {
        let call = self.call.as_ref().map(|c| {
            c.m.next_deadline()
                .map_or(c.session_at, |m| m.min(c.session_at))
        });
        let ping = self.conn.as_ref().map(|_| self.next_ping);
        [call, self.reconnect_at, ping]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn run(mut self, mut cmd_rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            while let Some(input) = self.call.as_mut().and_then(|c| c.for_machine.pop_front()) {
                self.feed(input).await;
            }
            let deadline = tokio::time::Instant::from_std(self.next_deadline());
            let (rtc_rx, send_rx, dec_rx) = match self.call.as_mut() {
                Some(c) => (
                    Some(&mut c.rtc_rx),
                    Some(&mut c.send_rx),
                    Some(&mut c.dec_rx),
                ),
                None => (None, None, None),
            };
            let conn = self.conn.as_mut();
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                    None => return self.stop().await,
                },
                ev = recv_opt(send_rx) => if let Some(ev) = ev { self.on_send_event(ev).await },
                ev = recv_opt(rtc_rx) => if let Some(ev) = ev { self.on_rtc_event(ev).await },
                ev = recv_opt(dec_rx) => if let Some(ev) = ev { self.on_decode_event(ev).await },
                msg = async { match conn { Some(c) => c.recv().await, None => std::future::pending().await } } => {
                    match msg {
                        Ok(Some(m)) => self.on_server(m).await,
                        Err(CallError::Server { code, message }) if code == "replaced" => {
                            // Another connection of this device took over: reconnecting would
                            // only take it back and start a tug of war.
                            self.conn = None;
                            self.emit(CallEvent::Error { code, message });
                        }
                        _ => self.lost_signalling(),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => self.on_deadline().await,
            }
        }
    }

    async fn stop(&mut self) {
        if self.call.is_some() {
            self.feed(Input::Hangup).await;
        }
        if let Some(c) = self.call.take() {
            self.finish(c).await;
        }
    }

    async fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.reconnect_at.is_some_and(|at| now >= at) {
            self.try_reconnect().await;
        }
        if self.conn.is_some() && now >= self.next_ping {
            self.next_ping = now + PING_INTERVAL;
            self.send(ClientMessage::Ping).await;
        }
        let Some(call) = &mut self.call else { return };
        if now >= call.session_at {
            call.feed(session::Input::Timeout, &self.events).await;
        }
        if self
            .call
            .as_ref()
            .and_then(|c| c.m.next_deadline())
            .is_some_and(|t| now >= t)
        {
            self.feed(Input::Tick).await;
        }
    }

    async fn on_server(&mut self, msg: ServerMessage) {
        let current = self
            .call
            .as_ref()
            .map(|c| (&c.m.call_id[..], c.m.phase(), c.m.direction));
        match machine::route(current, msg) {
            machine::Route::Ignore => {}
            machine::Route::Event(CallEvent::Contacts(list)) if self.config.auto_accept => {
                for c in &list {
                    if c.state == dyad_proto::ContactState::Incoming
                        && self.accepted.len() < dyad_proto::limits::MAX_CONTACTS
                        && self.accepted.insert(c.username.clone())
                    {
                        let username = c.username.clone();
                        self.send(ClientMessage::ContactAdd { username }).await;
                    }
                }
                self.emit(CallEvent::Contacts(list));
            }
            machine::Route::Event(e) => self.emit(e),
            machine::Route::Busy(call_id) => self.send(ClientMessage::Reject { call_id }).await,
            machine::Route::Invite {
                call_id,
                from,
                sdp,
                glare,
                relay_only,
            } => {
                if glare {
                    if let Some(old) = self.call.take() {
                        self.finish(old).await;
                    }
                }
                let (m, actions) = CallMachine::incoming(call_id.clone(), from.clone(), sdp);
                let mut call = Call::new(m, &self.config);
                call.relay_only = relay_only;
                self.call = Some(call);
                self.emit(CallEvent::Incoming {
                    call_id,
                    from,
                    stranger: relay_only,
                });
                self.run_actions(actions).await;
                if self.config.auto_accept || glare {
                    self.feed(Input::Accept).await;
                }
            }
            machine::Route::Call { event, input } => {
                if let Some(e) = event {
                    self.emit(e);
                }
                if let Some(i) = input {
                    self.feed(i).await;
                }
            }
        }
    }

    // ---- commands ----

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(user) => {
                if self.call.is_some() {
                    self.emit(CallEvent::Error {
                        code: "invalid_state".into(),
                        message: "already in a call".into(),
                    });
                    return;
                }
                let call_id = new_call_id();
                let (m, actions) = CallMachine::outgoing(
                    call_id.clone(),
                    user.clone(),
                    self.config.invite_lifetime_ms,
                );
                self.call = Some(Call::new(m, &self.config));
                self.emit(CallEvent::Dialling {
                    call_id,
                    peer: user,
                });
                self.run_actions(actions).await;
            }
            Command::Accept => self.feed(Input::Accept).await,
            Command::Reject => self.feed(Input::Reject).await,
            Command::Hangup => self.feed(Input::Hangup).await,
            Command::MuteAudio(m) => self.mute(Some(m), None).await,
            Command::MuteVideo(m) => self.mute(None, Some(m)).await,
            Command::SwitchVideo(input) => {
                self.config.media.video = input.clone();
                if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
                    if let Ok(mut s) = media.ctl.switch_video.lock() {
                        *s = Some(input);
                    }
                }
            }
            Command::SwitchAudio(input, id) => {
                self.config.media.audio = input;
                self.config.media.microphone_id = id.clone();
                if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
                    if let Ok(mut s) = media.ctl.switch_audio.lock() {
                        *s = Some((input, id));
                    }
                }
                self.echo_control().await;
            }
            Command::AudioProcessing(processing) => {
                self.config.media.processing = processing;
                if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
                    if let Ok(mut p) = media.processor.lock() {
                        p.set_config(processing);
                    }
                }
                self.echo_control().await;
            }
            Command::Contacts(c) => {
                let msg = match c {
                    ContactCmd::Add(username) => ClientMessage::ContactAdd { username },
                    ContactCmd::Remove(username) => ClientMessage::ContactRemove { username },
                    ContactCmd::Privacy(anyone_may_call) => {
                        ClientMessage::SetPrivacy { anyone_may_call }
                    }
                };
                self.send(msg).await;
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.call.as_ref().map(|c| c.history.clone()));
            }
            Command::Shutdown(_) => {}
        }
    }

    /// Tells the session whether the other side may hear themselves: our microphone is in a
    /// room and echo cancellation is off (the quality score counts it).
    async fn echo_control(&mut self) {
        let media = &self.config.media;
        let uncancelled = media.audio.is_room() && !media.processing.echo_cancellation;
        let Some(c) = &mut self.call else { return };
        c.feed(session::Input::EchoControl { uncancelled }, &self.events)
            .await;
    }

    /// Microphone and/or camera off or on: the send threads and the session's statistics.
    async fn mute(&mut self, audio: Option<bool>, video: Option<bool>) {
        let Some(c) = &mut self.call else { return };
        c.muted = (audio.unwrap_or(c.muted.0), video.unwrap_or(c.muted.1));
        if let Some(media) = &c.media {
            media.ctl.audio_muted.store(c.muted.0, Ordering::Relaxed);
            media.ctl.video_muted.store(c.muted.1, Ordering::Relaxed);
        }
        let (audio, video) = c.muted;
        c.feed(session::Input::Muted { audio, video }, &self.events)
            .await;
    }

    // ---- the call machine's actions ----

    async fn feed(&mut self, input: Input) {
        let Some(call) = &mut self.call else { return };
        let actions = call.m.handle(Instant::now(), input);
        self.run_actions(actions).await;
    }

    async fn run_actions(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let follow = self.run_action(action).await;
            if let (Some(input), Some(call)) = (follow, &mut self.call) {
                queue.extend(call.m.handle(Instant::now(), input));
            }
        }
    }

    async fn ensure_peer(&mut self) -> Result<()> {
        let Some(call) = &mut self.call else {
            return Err(CallError::InvalidState("no call"));
        };
        if call.peer.is_some() {
            return Ok(());
        }
        let ice = signal::ice_servers(&self.config.server, &self.token)
            .await
            .unwrap_or(IceConfig {
                ice_servers: Vec::new(),
                ttl_secs: 0,
                nat_test: None,
            });
        let config = RtcConfig {
            ice_servers: ice.ice_servers,
            // A stranger's call: our address must not reach them, so no host or reflexive
            // candidate is even gathered (the server drops any that would pass, too).
            relay_only: self.config.relay_only || call.relay_only,
            turn_tls: self.config.server.turn_tls_config().ok(),
            turn_route: self.config.server.stream_route(),
        };
        call.peer = Some(RtcPeer::new(&config, call.rtc_tx.clone()).await?);
        Ok(())
    }

    /// Carries out one action; may return an input to feed back.
    async fn run_action(&mut self, action: Action) -> Option<Input> {
        let failed = |me: &Self, e: &CallError, input: Input| {
            me.report(e);
            Some(input)
        };
        match action {
            Action::Send(msg) => {
                self.send(msg).await;
                None
            }
            Action::CreateOffer { restart } => {
                if let Err(e) = self.ensure_peer().await {
                    return failed(self, &e, Input::NegotiationFailed(EndReason::MediaFailed));
                }
                let call = self.call.as_mut()?;
                if restart {
                    call.feed(session::Input::Note("ice_restart"), &self.events)
                        .await;
                }
                match call.peer.as_mut()?.create_offer(restart).await {
                    Ok(sdp) => Some(Input::OfferReady { sdp, restart }),
                    Err(e) => failed(self, &e, Input::NegotiationFailed(EndReason::MediaFailed)),
                }
            }
            Action::CreateAnswer { sdp, renegotiation } => {
                if let Err(e) = self.ensure_peer().await {
                    return failed(self, &e, Input::NegotiationFailed(EndReason::MediaFailed));
                }
                let call = self.call.as_mut()?;
                let res = call.peer.as_mut()?.answer(&sdp).await;
                let note = if renegotiation {
                    session::Input::Note("ice_restart")
                } else {
                    session::Input::Answered
                };
                call.feed(note, &self.events).await;
                self.add_pending_candidates().await;
                match res {
                    Ok(answer) => {
                        if !renegotiation {
                            self.emit_connecting();
                        }
                        Some(Input::AnswerReady(answer))
                    }
                    Err(e) => failed(self, &e, Input::NegotiationFailed(EndReason::MediaFailed)),
                }
            }
            Action::ApplyAnswer(sdp) => {
                let call = self.call.as_mut()?;
                let res = call.peer.as_mut()?.apply_answer(&sdp).await;
                call.feed(session::Input::Answered, &self.events).await;
                self.add_pending_candidates().await;
                match res {
                    Ok(()) => {
                        self.emit_connecting();
                        None
                    }
                    Err(e) => failed(self, &e, Input::MediaFailed),
                }
            }
            Action::AddCandidates(cands) => {
                let call = self.call.as_mut()?;
                match &call.peer {
                    Some(peer) if peer.has_remote_description().await => {
                        for c in &cands {
                            if let Err(e) = peer.add_remote_candidate(c).await {
                                tracing::debug!(error = %e, "remote candidate refused");
                            }
                        }
                    }
                    _ => {
                        let room = machine::MAX_PENDING_CANDIDATES
                            .saturating_sub(call.pending_candidates.len());
                        call.pending_candidates.extend(cands.into_iter().take(room));
                    }
                }
                None
            }
            Action::Connected => {
                if let Err(e) = self.start_media().await {
                    return failed(self, &e, Input::MediaFailed);
                }
                let call = self.call.as_ref()?;
                let call_id = call.m.call_id.clone();
                let verification = call.peer.as_ref().and_then(|p| p.verification_code());
                self.emit(CallEvent::Connected {
                    call_id,
                    verification,
                });
                None
            }
            Action::End(_) => {
                if let Some(call) = self.call.take() {
                    self.finish(call).await;
                }
                None
            }
        }
    }

    async fn add_pending_candidates(&mut self) {
        let Some(call) = &mut self.call else { return };
        let pending = std::mem::take(&mut call.pending_candidates);
        if let Some(peer) = &call.peer {
            for c in &pending {
                let _ = peer.add_remote_candidate(c).await;
            }
        }
    }

    fn emit_connecting(&self) {
        if let Some(c) = &self.call {
            self.emit(CallEvent::Connecting {
                call_id: c.m.call_id.clone(),
            });
        }
    }

    fn report(&self, e: &CallError) {
        tracing::warn!(error = %e, "call error");
        self.emit(CallEvent::Error {
            code: e.code().into(),
            message: e.to_string(),
        });
    }
}
