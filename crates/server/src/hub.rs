//! The hub: the one task that owns the [`Router`] and the table of live connections (STYLE.md
//! §1). Connection tasks send it [`HubEvent`]s; it feeds the router with the time and executes the
//! outputs: deliver messages, fan presence out to watchers, queue history rows for the writer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyad_proto::limits::MAX_CONTACTS;
use dyad_proto::{
    ClientEnvelope, ClientMessage, Contact, ContactState, ErrorCode, Presence, ProtoError,
    ServerMessage,
};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::ServerConfig;
use crate::router::{HistoryEvent, Input, Output, Party, Router};
use crate::store::Store;

/// A text frame ready to send (serialised once, shared by every recipient).
pub type Frame = Arc<str>;

/// Milliseconds since the UNIX epoch: the driver's clock, handed to the router as an input.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What one queued frame costs beyond its text (the `Arc` header and the queue slot), counted
/// against an outbox's byte budget so that many tiny frames are bounded too.
const FRAME_OVERHEAD: usize = 48;

/// Frames waiting for one connection: a FIFO bounded in bytes that the hub pushes to and the
/// connection task drains. Lighter than a tokio mpsc channel, whose first block of slots is
/// allocated up front (≈ 500 B for every idle session, docs/benchmarks.md); this costs ≈ 150 B
/// until used.
#[derive(Debug, Default)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct OutboxState {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: bool,
    overflowed: bool,
    logged_out: bool,
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The outbox was closed already (the connection is ending): not queued.
    Closed,
    /// This frame would take the outbox past its byte budget: the connection is not reading.
    /// The outbox is now closed and emptied; its connection closes with 4013 and the client
    /// reconnects and resyncs, so nothing is lost unannounced.
    Overflow,
}

impl Outbox {
    /// An empty, open outbox.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        // A panic while holding this lock cannot leave the queue inconsistent (push/pop only).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a frame unless that would hold more than `max_bytes`.
    pub fn push(&self, frame: Frame, max_bytes: usize) -> Pushed {
        {
            let mut state = self.lock();
            if state.closed {
                return Pushed::Closed;
            }
            let cost = frame.len() + FRAME_OVERHEAD;
            if state.bytes + cost > max_bytes {
                state.frames = VecDeque::new();
                state.bytes = 0;
                state.closed = true;
                state.overflowed = true;
                drop(state);
                self.ready.notify_one();
                return Pushed::Overflow;
            }
            state.bytes += cost;
            state.frames.push_back(frame);
        }
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Closes the outbox: `next` returns what is queued, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Closes the outbox because its session's token was logged out: the connection closes with
    /// 4001 once it has sent what is queued.
    pub fn log_out(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            state.logged_out = true;
        }
        self.ready.notify_one();
    }

    /// Whether the outbox was closed by [`Outbox::log_out`].
    pub fn logged_out(&self) -> bool {
        self.lock().logged_out
    }

    /// Whether the outbox was closed because it overflowed (see [`Pushed::Overflow`]).
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// The next frame, waiting for one; `None` once closed and drained. One consumer only.
    pub async fn next(&self) -> Option<Frame> {
        loop {
            {
                let mut state = self.lock();
                if let Some(frame) = state.frames.pop_front() {
                    state.bytes -= frame.len() + FRAME_OVERHEAD;
                    return Some(frame);
                }
                if state.closed {
                    return None;
                }
            }
            // A push between the check above and this wait leaves a permit, so nothing is lost.
            self.ready.notified().await;
        }
    }
}

/// A contact added or removed (already written to the store by the connection's task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactChange {
    /// `contact_add` succeeded: a request (`Requested`) or, once both asked, `Accepted`.
    Added(String, ContactState),
    /// `contact_remove` succeeded.
    Removed(String),
    /// An add or remove that changed nothing (asked already, or nothing to remove): only the
    /// sender's list is sent again.
    Unchanged,
}

/// What connection tasks tell the hub. Anything that needs the database (the token, the contact
/// list, contact changes) is done by the connection's own task before it reaches the hub, so the
/// hub never waits for the store.
#[derive(Debug)]
pub enum HubEvent {
    /// A device connected. The reply says whether it may stay.
    Join {
        /// Who.
        party: Party,
        /// Unique id of this connection (a reconnect of the same device gets a new one).
        conn: u64,
        /// Where to queue its frames.
        outbox: Arc<Outbox>,
        /// The user's contacts and requests, loaded from the store by the connection's task.
        contacts: Vec<(String, ContactState)>,
        /// Accepted, or refused with a reason.
        reply: oneshot::Sender<Result<(), ProtoError>>,
    },
    /// A connection ended.
    Leave {
        /// Who.
        party: Party,
        /// Which connection.
        conn: u64,
    },
    /// A validated message from a connection (call messages and `contact_list`).
    Message {
        /// From whom.
        party: Party,
        /// The message and its ref.
        envelope: ClientEnvelope,
    },
    /// `set_privacy`, stored by the connection's task: tell every device of the user.
    Privacy {
        /// From whom.
        party: Party,
        /// The new setting.
        anyone_may_call: bool,
        /// The message's ref, to acknowledge.
        reference: Option<String>,
    },
    /// A contact change the connection's task has stored.
    Contacts {
        /// From whom.
        party: Party,
        /// What changed.
        change: ContactChange,
        /// The message's ref, to acknowledge.
        reference: Option<String>,
    },
}

#[derive(Debug)]
struct Session {
    device: String,
    conn: u64,
    outbox: Arc<Outbox>,
}

/// The hub's state; `run` is its task.
///
/// Everything it does per event costs O(the parties involved): sessions are kept per user, and
/// presence goes to an in-memory index of who watches whom (the contacts of online users, kept
/// in step with `contact_add` / `contact_remove`) instead of a database query and a scan of
/// every session for each watcher.
pub struct Hub {
    router: Router,
    /// Connected devices, per user.
    sessions: HashMap<String, Vec<Session>>,
    /// The contacts and requests of each online user, sorted by name.
    contacts: HashMap<String, Vec<(String, ContactState)>>,
    /// For each user, the online users who have them as an accepted contact (and so see their
    /// presence).
    watchers: HashMap<String, Vec<String>>,
    /// Connections whose outbox overflowed while an event was carried out: dropped after it.
    overflowed: RefCell<Vec<(Party, u64)>>,
    /// Presence changes still being handed to their watchers' devices, oldest first (see
    /// [`Hub::fan_out`]).
    fanouts: VecDeque<Fanout>,
    /// How many watcher devices in `fanouts` still wait for their frame.
    fanout_backlog: usize,
    config: ServerConfig,
    history: mpsc::UnboundedSender<HistoryEvent>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("users", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// One presence change on its way to the devices that were watching when it happened.
#[derive(Debug)]
struct Fanout {
    frame: Frame,
    /// Each watching device: who (for an overflow), which connection, its outbox.
    targets: Vec<(Party, u64, Arc<Outbox>)>,
    /// How many of `targets` have it.
    done: usize,
}

/// Watcher devices handed a presence frame per [`FANOUT_PERIOD`] (more when a backlog builds
/// up). A fan-out to 1 000 watchers at once is 1 000 connection tasks woken and 1 000 writes in
/// one burst, which on a small server delays every message relayed meanwhile by milliseconds;
/// spread over ≈ 30 ms it costs the others next to nothing, and presence is not in a hurry.
pub const FANOUT_CHUNK: usize = 32;

/// How often the hub hands out the next [`FANOUT_CHUNK`] of presence frames.
pub const FANOUT_PERIOD: Duration = Duration::from_millis(1);

fn frame(msg: &ServerMessage) -> Frame {
    Arc::from(msg.to_json())
}

impl Hub {
    /// A hub with these settings; history rows go to `history` (the writer task).
    pub fn new(config: ServerConfig, history: mpsc::UnboundedSender<HistoryEvent>) -> Self {
        Self {
            router: Router::new(config.router),
            sessions: HashMap::new(),
            contacts: HashMap::new(),
            watchers: HashMap::new(),
            overflowed: RefCell::new(Vec::new()),
            fanouts: VecDeque::new(),
            fanout_backlog: 0,
            config,
            history,
        }
    }

    /// Runs until every sender of `events` is gone.
    ///
    /// Presence is paced and events come first: while fan-outs are pending, the next
    /// [`FANOUT_CHUNK`] watcher devices get theirs every [`FANOUT_PERIOD`], and every event that
    /// arrives meanwhile is carried out at once.
    pub async fn run(mut self, mut events: mpsc::Receiver<HubEvent>) {
        let mut next_chunk = tokio::time::Instant::now();
        loop {
            if !self.fanouts.is_empty() {
                tokio::select! {
                    biased;
                    event = events.recv() => match event {
                        Some(event) => self.event(event),
                        None => {
                            self.fan_out(usize::MAX);
                            return;
                        }
                    },
                    () = tokio::time::sleep_until(next_chunk) => {
                        if self
                            .router
                            .next_deadline()
                            .is_some_and(|at| at <= now_ms())
                        {
                            self.input(Input::Tick, None);
                        }
                        // A backlog (everyone back online after a restart) drains within
                        // about 100 chunks, however large.
                        self.fan_out(FANOUT_CHUNK.max(self.fanout_backlog / 100));
                        next_chunk = tokio::time::Instant::now() + FANOUT_PERIOD;
                    }
                }
                self.drop_overflowed();
                continue;
            }
            next_chunk = tokio::time::Instant::now();
            let deadline = self.router.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.event(event),
                    None => return,
                },
                () = sleep => self.input(Input::Tick, None),
            }
            self.drop_overflowed();
        }
    }

    /// Brings back a call that was up when the server stopped (see [`Router::restore`]).
    pub fn restore(&mut self, call_id: String, caller: Party, callee: Party, relay_only: bool) {
        self.router
            .restore(now_ms(), call_id, caller, callee, relay_only);
    }

    /// Carries out one event.
    fn event(&mut self, event: HubEvent) {
        match event {
            HubEvent::Join {
                party,
                conn,
                outbox,
                contacts,
                reply,
            } => {
                let count = self.router.device_count(&party.user);
                let replacing = self.session(&party).is_some();
                if !replacing && count >= self.config.max_connections_per_user {
                    let _ = reply.send(Err(ProtoError::new(
                        ErrorCode::TooManyConnections,
                        format!(
                            "at most {} devices at once",
                            self.config.max_connections_per_user
                        ),
                    )));
                    return;
                }
                // The same device connecting again replaces its old connection (whose task sees
                // its outbox closed and ends).
                let first_device = !self.sessions.contains_key(&party.user);
                // Most users have one device: room for exactly one (a default Vec's first push
                // makes room for four, 120 B more per idle session).
                let devices = self
                    .sessions
                    .entry(party.user.clone())
                    .or_insert_with(|| Vec::with_capacity(1));
                let session = Session {
                    device: party.device.clone(),
                    conn,
                    outbox,
                };
                match devices.iter_mut().find(|s| s.device == party.device) {
                    Some(old) => std::mem::replace(old, session).outbox.close(),
                    None => devices.push(session),
                }
                // A user's first device brings their contact list; later ones find it kept in
                // step already (a list loaded before a change another device made is stale).
                // No entry while online means no contacts.
                if first_device && !contacts.is_empty() {
                    for (c, _) in contacts
                        .iter()
                        .filter(|(_, s)| *s == ContactState::Accepted)
                    {
                        self.watchers
                            .entry(c.clone())
                            .or_default()
                            .push(party.user.clone());
                    }
                    self.contacts.insert(party.user.clone(), contacts);
                }
                let _ = reply.send(Ok(()));
                self.input(Input::Connected(party.clone()), None);
                self.send_contacts(&party);
            }
            HubEvent::Leave { party, conn } => self.leave(party, conn),
            HubEvent::Message { party, envelope } => {
                let ClientEnvelope { reference, message } = envelope;
                if message == ClientMessage::ContactList {
                    // A list carries presence: no older change may arrive after it.
                    self.fan_out(usize::MAX);
                    self.ack(&party, reference);
                    self.send_contacts(&party);
                } else {
                    self.input(
                        Input::Message(party.clone(), message),
                        Some((&party, reference)),
                    );
                }
            }
            HubEvent::Contacts {
                party,
                change,
                reference,
            } => {
                self.fan_out(usize::MAX);
                let other = self.contact_change(&party.user, change);
                self.ack(&party, reference);
                self.send_contacts(&party);
                // The other person's devices see the request, the acceptance or the removal.
                if let Some(other) = other {
                    for device in self.devices_of(&other) {
                        self.send_contacts(&Party::new(&other, device));
                    }
                }
            }
            HubEvent::Privacy {
                party,
                anyone_may_call,
                reference,
            } => {
                self.ack(&party, reference);
                let msg = frame(&ServerMessage::Privacy { anyone_may_call });
                self.send_to_user(&party.user, &msg);
            }
        }
    }

    fn session(&self, party: &Party) -> Option<&Session> {
        self.sessions
            .get(&party.user)?
            .iter()
            .find(|s| s.device == party.device)
    }

    /// A connection ended (or was dropped for not reading): forget it if it is still the
    /// device's current one.
    fn leave(&mut self, party: Party, conn: u64) {
        let Some(devices) = self.sessions.get_mut(&party.user) else {
            return;
        };
        let Some(i) = devices
            .iter()
            .position(|s| s.device == party.device && s.conn == conn)
        else {
            return;
        };
        devices.swap_remove(i).outbox.close();
        if devices.is_empty() {
            self.sessions.remove(&party.user);
            for (c, state) in self.contacts.remove(&party.user).unwrap_or_default() {
                if state == ContactState::Accepted {
                    self.unwatch(&c, &party.user);
                }
            }
        }
        self.input(Input::Disconnected(party), None);
    }

    fn unwatch(&mut self, user: &str, watcher: &str) {
        if let Some(w) = self.watchers.get_mut(user) {
            w.retain(|x| x != watcher);
            if w.is_empty() {
                self.watchers.remove(user);
            }
        }
    }

    /// Applies a stored contact change to the index of online users, both sides of it; returns
    /// the other person, if anything changed.
    fn contact_change(&mut self, owner: &str, change: ContactChange) -> Option<String> {
        Some(match change {
            ContactChange::Unchanged => return None,
            ContactChange::Added(other, state) => {
                let theirs = match state {
                    ContactState::Requested => ContactState::Incoming,
                    s => s,
                };
                self.set_contact(owner, &other, Some(state));
                self.set_contact(&other, owner, Some(theirs));
                other
            }
            ContactChange::Removed(other) => {
                self.set_contact(owner, &other, None);
                self.set_contact(&other, owner, None);
                other
            }
        })
    }

    /// Sets (or removes) `other` in online `user`'s list; `user` watches `other`'s presence
    /// exactly while it is accepted. Only online users are indexed.
    fn set_contact(&mut self, user: &str, other: &str, state: Option<ContactState>) {
        if !self.sessions.contains_key(user) {
            return;
        }
        let list = self.contacts.entry(user.to_string()).or_default();
        let before = match list.binary_search_by(|(n, _)| n.as_str().cmp(other)) {
            Ok(i) => {
                let before = list[i].1;
                match state {
                    Some(s) => list[i].1 = s,
                    None => {
                        list.remove(i);
                    }
                }
                Some(before)
            }
            Err(i) => {
                let incoming = || {
                    list.iter()
                        .filter(|(_, s)| *s == ContactState::Incoming)
                        .count()
                };
                // As the store does: nobody's list grows without bound because others ask.
                let full = state == Some(ContactState::Incoming) && incoming() >= MAX_CONTACTS;
                if let (Some(s), false) = (state, full) {
                    list.insert(i, (other.to_string(), s));
                }
                None
            }
        };
        if list.is_empty() {
            self.contacts.remove(user);
        }
        let accepted = |s: Option<ContactState>| s == Some(ContactState::Accepted);
        if accepted(before) && !accepted(state) {
            self.unwatch(other, user);
        } else if accepted(state) && !accepted(before) {
            self.watchers
                .entry(other.to_string())
                .or_default()
                .push(user.to_string());
        }
    }

    fn devices_of(&self, user: &str) -> Vec<String> {
        self.sessions
            .get(user)
            .into_iter()
            .flatten()
            .map(|s| s.device.clone())
            .collect()
    }

    /// Drops the connections whose outbox overflowed: their device goes offline at once (its
    /// calls get the reconnect grace), and its task closes the socket with 4013.
    fn drop_overflowed(&mut self) {
        loop {
            let dropped = std::mem::take(&mut *self.overflowed.borrow_mut());
            if dropped.is_empty() {
                return;
            }
            for (party, conn) in dropped {
                tracing::info!(
                    "connection {conn} ({}/{}) not reading: send queue full, closing it",
                    party.user,
                    party.device
                );
                self.leave(party, conn);
            }
        }
    }

    fn ack(&self, party: &Party, reference: Option<String>) {
        if let Some(reference) = reference {
            self.send(party, &ServerMessage::Ack { reference });
        }
    }

    /// Feeds the router and carries out what it says. `sender` is who sent a message (for the
    /// ack or the error).
    fn input(&mut self, input: Input, sender: Option<(&Party, Option<String>)>) {
        match self.router.handle(now_ms(), input) {
            Err(e) => {
                if let Some((party, reference)) = sender {
                    self.send(party, &ServerMessage::Error(e.with_ref(reference)));
                }
            }
            Ok(outputs) => {
                if let Some((party, reference)) = sender {
                    self.ack(party, reference);
                }
                for output in outputs {
                    match output {
                        Output::Send(to, msg) => self.send(&to, &msg),
                        Output::History(event) => {
                            let _ = self.history.send(event);
                        }
                        Output::Presence(user, presence) => {
                            let Some(watchers) = self.watchers.get(&user) else {
                                continue;
                            };
                            let frame = frame(&ServerMessage::Presence {
                                username: user.clone(),
                                presence,
                            });
                            // The devices watching now: one that joins later gets the
                            // presence of now in its contact list instead.
                            let targets = watchers
                                .iter()
                                .flat_map(|w| {
                                    self.sessions.get(w).into_iter().flatten().map(move |s| {
                                        (Party::new(w, &s.device), s.conn, s.outbox.clone())
                                    })
                                })
                                .collect::<Vec<_>>();
                            self.fanout_backlog += targets.len();
                            self.fanouts.push_back(Fanout {
                                frame,
                                targets,
                                done: 0,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Hands pending presence frames to up to `budget` watcher devices, oldest change first (so
    /// each device sees one user's changes in order).
    fn fan_out(&mut self, mut budget: usize) {
        while budget > 0 {
            let Some(fanout) = self.fanouts.front_mut() else {
                return;
            };
            let end = fanout.targets.len().min(fanout.done.saturating_add(budget));
            for (party, conn, outbox) in &fanout.targets[fanout.done..end] {
                if outbox.push(fanout.frame.clone(), self.config.send_queue_bytes)
                    == Pushed::Overflow
                {
                    self.overflowed.borrow_mut().push((party.clone(), *conn));
                }
            }
            budget -= end - fanout.done;
            self.fanout_backlog -= end - fanout.done;
            fanout.done = end;
            if fanout.done == fanout.targets.len() {
                self.fanouts.pop_front();
            }
        }
    }

    fn send_contacts(&self, party: &Party) {
        let contacts = self
            .contacts
            .get(&party.user)
            .into_iter()
            .flatten()
            .map(|(username, state)| Contact {
                username: username.clone(),
                presence: if *state == ContactState::Accepted {
                    self.router.presence(username)
                } else {
                    Presence::Offline
                },
                state: *state,
            })
            .collect();
        self.send(party, &ServerMessage::Contacts { contacts });
    }

    /// Queues a frame for a connection. One whose queue is over its byte budget is not reading:
    /// it is dropped after this event (never a frame silently lost on a connection that stays).
    fn deliver(&self, user: &str, session: &Session, msg: &Frame) {
        if session
            .outbox
            .push(msg.clone(), self.config.send_queue_bytes)
            == Pushed::Overflow
        {
            self.overflowed
                .borrow_mut()
                .push((Party::new(user, &session.device), session.conn));
        }
    }

    fn send_to_user(&self, user: &str, msg: &Frame) {
        for session in self.sessions.get(user).into_iter().flatten() {
            self.deliver(user, session, msg);
        }
    }

    fn send(&self, to: &Party, msg: &ServerMessage) {
        if let Some(session) = self.session(to) {
            self.deliver(&to.user, session, &frame(msg));
        }
    }
}

/// The history writer: applies history events to the store in order, off the hub's path.
pub async fn write_history(store: Store, mut events: mpsc::UnboundedReceiver<HistoryEvent>) {
    while let Some(event) = events.recv().await {
        let result = match &event {
            HistoryEvent::Started {
                call_id,
                caller,
                callee,
                caller_device,
                at_ms,
                relay_only,
            } => {
                store
                    .call_started(
                        call_id,
                        (caller, caller_device),
                        callee,
                        *at_ms,
                        *relay_only,
                    )
                    .await
            }
            HistoryEvent::Answered {
                call_id,
                caller,
                device,
                at_ms,
            } => store.call_answered((caller, call_id), device, *at_ms).await,
            HistoryEvent::Path {
                call_id,
                caller,
                by_caller,
                path,
                at_ms,
            } => {
                store
                    .call_path((caller, call_id), *by_caller, path, *at_ms)
                    .await
            }
            HistoryEvent::Ended {
                call_id,
                caller,
                at_ms,
                reason,
                by,
            } => {
                store
                    .call_ended((caller, call_id), *at_ms, *reason, by.as_deref())
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!("call history {event:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(outbox: &Outbox) -> Vec<String> {
        outbox.lock().frames.iter().map(|f| f.to_string()).collect()
    }

    fn join(party: &Party, conn: u64, contacts: &[&str]) -> (HubEvent, Arc<Outbox>) {
        let outbox = Outbox::new();
        let (reply, _) = oneshot::channel();
        let contacts = contacts
            .iter()
            .map(|c| (c.to_string(), ContactState::Accepted))
            .collect();
        let event = HubEvent::Join {
            party: party.clone(),
            conn,
            outbox: outbox.clone(),
            contacts,
            reply,
        };
        (event, outbox)
    }

    /// One user with 1 000 watchers comes online while someone else's message is queued: the
    /// message is handed out before most watchers have the presence frame, the frame goes out
    /// a chunk per period, and every watcher gets it once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_big_presence_fan_out_is_paced_and_does_not_hold_back_other_messages() {
        let (history, _rx) = mpsc::unbounded_channel();
        let mut hub = Hub::new(ServerConfig::default(), history);
        let watchers: Vec<Arc<Outbox>> = (0..1000)
            .map(|i| {
                let (event, outbox) = join(&Party::new(format!("w{i}"), "d"), i, &["star"]);
                hub.event(event);
                outbox
            })
            .collect();
        let bystander = Party::new("bystander", "d");
        let (event, bystander_box) = join(&bystander, 5000, &[]);
        hub.event(event);
        bystander_box.lock().frames.clear();
        for w in &watchers {
            w.lock().frames.clear();
        }
        let (events, rx) = mpsc::channel(16);
        let (star, _star_box) = join(&Party::new("star", "d"), 6000, &[]);
        events.send(star).await.expect("queue");
        events
            .send(HubEvent::Privacy {
                party: bystander.clone(),
                anyone_may_call: true,
                reference: Some("r1".into()),
            })
            .await
            .expect("queue");
        let hub = tokio::spawn(hub.run(rx));
        // Let the hub run until it waits.
        tokio::task::yield_now().await;
        let got = queued(&bystander_box);
        assert!(
            got.iter().any(|f| f.contains("\"privacy\"")),
            "the bystander's frame is out: {got:?}"
        );
        let served = || watchers.iter().filter(|w| !queued(w).is_empty()).count();
        assert!(
            served() <= FANOUT_CHUNK,
            "the message waited for {} watchers' presence",
            served()
        );
        // Paced: a chunk per period, not all at once (a lower bound: sleeps never end early).
        let started = std::time::Instant::now();
        while served() < watchers.len() {
            tokio::time::sleep(FANOUT_PERIOD).await;
        }
        let chunks = watchers.len().div_ceil(FANOUT_CHUNK) as u32;
        assert!(
            started.elapsed() >= FANOUT_PERIOD * (chunks - 2),
            "all {} watchers served in {:?}",
            watchers.len(),
            started.elapsed()
        );
        // Each watcher once.
        tokio::task::yield_now().await;
        for w in &watchers {
            let frames = queued(w);
            assert_eq!(frames.len(), 1, "{frames:?}");
            assert!(frames[0].contains("\"star\""), "{frames:?}");
        }
        drop(events);
        hub.await.expect("hub ends");
    }

    #[tokio::test]
    async fn outbox_is_fifo_bounded_in_bytes_and_closes_after_draining() {
        let cost = 1 + FRAME_OVERHEAD;
        let budget = 2 * cost;
        let outbox = Outbox::new();
        assert_eq!(outbox.push(Arc::from("a"), budget), Pushed::Queued);
        assert_eq!(outbox.push(Arc::from("b"), budget), Pushed::Queued);
        assert_eq!(outbox.next().await.as_deref(), Some("a"));
        // A consumer waiting on an empty outbox wakes for the next push.
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let b = outbox.next().await;
                let d = outbox.next().await;
                (b, d)
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(outbox.push(Arc::from("d"), budget), Pushed::Queued);
        let (b, d) = waiter.await.expect("join");
        assert_eq!((b.as_deref(), d.as_deref()), (Some("b"), Some("d")));
        assert_eq!(outbox.push(Arc::from("e"), budget), Pushed::Queued);
        outbox.close();
        assert_eq!(outbox.push(Arc::from("f"), budget), Pushed::Closed);
        assert_eq!(
            outbox.next().await.as_deref(),
            Some("e"),
            "queued frames still drain"
        );
        assert_eq!(outbox.next().await, None);
        assert!(!outbox.overflowed());
    }

    #[tokio::test]
    async fn an_outbox_over_its_byte_budget_empties_and_says_so() {
        let outbox = Outbox::new();
        let budget = 1000;
        let big: Frame = Arc::from("x".repeat(400));
        assert_eq!(outbox.push(big.clone(), budget), Pushed::Queued);
        assert_eq!(outbox.push(big.clone(), budget), Pushed::Queued);
        // Two 448-byte frames fit in 1000; a third does not, nor does a small one after it.
        assert_eq!(outbox.push(big, budget), Pushed::Overflow);
        assert_eq!(outbox.push(Arc::from("y"), budget), Pushed::Closed);
        assert!(outbox.overflowed());
        assert_eq!(
            outbox.next().await,
            None,
            "what it held is released at once"
        );
    }
}
