//! The hub: the one task that owns the [`Router`] and the table of live connections (STYLE.md
//! §1). Connection tasks send it [`HubEvent`]s; it feeds the router with the time and executes the
//! outputs: deliver messages, fan presence out to watchers, queue history rows for the writer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyad_proto::{ClientEnvelope, ClientMessage, Contact, ErrorCode, ProtoError, ServerMessage};
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

/// Frames waiting for one connection: a bounded FIFO the hub pushes to and the connection task
/// drains. Lighter than a tokio mpsc channel, whose first block of slots is allocated up front
/// (≈ 500 B for every idle session, docs/benchmarks.md); this costs ≈ 150 B until used.
#[derive(Debug, Default)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct OutboxState {
    frames: VecDeque<Frame>,
    closed: bool,
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

    /// Queues a frame; false when the outbox is closed or already holds `limit` frames (the
    /// connection is not reading: the frame is dropped).
    pub fn push(&self, frame: Frame, limit: usize) -> bool {
        {
            let mut state = self.lock();
            if state.closed || state.frames.len() >= limit {
                return false;
            }
            state.frames.push_back(frame);
        }
        self.ready.notify_one();
        true
    }

    /// Closes the outbox: `next` returns what is queued, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The next frame, waiting for one; `None` once closed and drained. One consumer only.
    pub async fn next(&self) -> Option<Frame> {
        loop {
            {
                let mut state = self.lock();
                if let Some(frame) = state.frames.pop_front() {
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

/// What connection tasks tell the hub.
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
    /// A validated message from a connection.
    Message {
        /// From whom.
        party: Party,
        /// The message and its ref.
        envelope: ClientEnvelope,
    },
}

struct Session {
    conn: u64,
    outbox: Arc<Outbox>,
}

/// The hub's state; `run` is its task.
pub struct Hub {
    router: Router,
    sessions: HashMap<Party, Session>,
    store: Store,
    config: ServerConfig,
    history: mpsc::UnboundedSender<HistoryEvent>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn frame(msg: &ServerMessage) -> Frame {
    Arc::from(msg.to_json())
}

impl Hub {
    /// A hub over this store; history rows go to `history` (the writer task).
    pub fn new(
        store: Store,
        config: ServerConfig,
        history: mpsc::UnboundedSender<HistoryEvent>,
    ) -> Self {
        Self {
            router: Router::new(config.router),
            sessions: HashMap::new(),
            store,
            config,
            history,
        }
    }

    /// Runs until every sender of `events` is gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<HubEvent>) {
        loop {
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
                    Some(event) => self.event(event).await,
                    None => return,
                },
                () = sleep => self.input(Input::Tick, None).await,
            }
        }
    }

    async fn event(&mut self, event: HubEvent) {
        match event {
            HubEvent::Join {
                party,
                conn,
                outbox,
                reply,
            } => {
                let count = self.router.device_count(&party.user);
                let replacing = self.sessions.contains_key(&party);
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
                if let Some(old) = self
                    .sessions
                    .insert(party.clone(), Session { conn, outbox })
                {
                    old.outbox.close();
                }
                let _ = reply.send(Ok(()));
                self.input(Input::Connected(party.clone()), None).await;
                self.send_contacts(&party).await;
            }
            HubEvent::Leave { party, conn } => {
                if self.sessions.get(&party).is_some_and(|s| s.conn == conn) {
                    self.sessions.remove(&party);
                    self.input(Input::Disconnected(party), None).await;
                }
            }
            HubEvent::Message { party, envelope } => self.message(party, envelope).await,
        }
    }

    async fn message(&mut self, party: Party, envelope: ClientEnvelope) {
        let ClientEnvelope { reference, message } = envelope;
        let result = match &message {
            ClientMessage::ContactAdd { username } => {
                self.store.add_contact(&party.user, username).await
            }
            ClientMessage::ContactRemove { username } => {
                self.store.remove_contact(&party.user, username).await
            }
            ClientMessage::ContactList | ClientMessage::Ping => Ok(()),
            _ => {
                self.input(
                    Input::Message(party.clone(), message.clone()),
                    Some((&party, reference)),
                )
                .await;
                return;
            }
        };
        match result {
            Ok(()) => {
                self.ack(&party, reference);
                self.send_contacts(&party).await;
            }
            Err(e) => self.send(
                &party,
                &ServerMessage::Error(e.to_proto().with_ref(reference)),
            ),
        }
    }

    fn ack(&self, party: &Party, reference: Option<String>) {
        if let Some(reference) = reference {
            self.send(party, &ServerMessage::Ack { reference });
        }
    }

    /// Feeds the router and carries out what it says. `sender` is who sent a message (for the
    /// ack or the error).
    async fn input(&mut self, input: Input, sender: Option<(&Party, Option<String>)>) {
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
                            let watchers = match self.store.watchers(&user).await {
                                Ok(w) => w,
                                Err(e) => {
                                    tracing::warn!("presence of {user}: watchers: {e}");
                                    continue;
                                }
                            };
                            let msg = frame(&ServerMessage::Presence {
                                username: user,
                                presence,
                            });
                            for watcher in watchers {
                                self.send_to_user(&watcher, &msg);
                            }
                        }
                    }
                }
            }
        }
    }

    async fn send_contacts(&self, party: &Party) {
        match self.store.contacts(&party.user).await {
            Ok(names) => {
                let contacts = names
                    .into_iter()
                    .map(|username| {
                        let presence = self.router.presence(&username);
                        Contact { username, presence }
                    })
                    .collect();
                self.send(party, &ServerMessage::Contacts { contacts });
            }
            Err(e) => tracing::warn!("contacts of {}: {e}", party.user),
        }
    }

    /// Queues a frame for a connection. A connection whose queue is full is stuck (not reading):
    /// the frame is dropped rather than letting one slow client grow the server's memory.
    fn deliver(&self, session: &Session, msg: &Frame) {
        if !session.outbox.push(msg.clone(), self.config.send_queue) {
            tracing::debug!(
                "connection {} queue full or closed: frame dropped",
                session.conn
            );
        }
    }

    fn send_to_user(&self, user: &str, msg: &Frame) {
        for (party, session) in &self.sessions {
            if party.user == user {
                self.deliver(session, msg);
            }
        }
    }

    fn send(&self, to: &Party, msg: &ServerMessage) {
        if let Some(session) = self.sessions.get(to) {
            self.deliver(session, &frame(msg));
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
                at_ms,
            } => store.call_started(call_id, caller, callee, *at_ms).await,
            HistoryEvent::Answered { call_id, at_ms } => store.call_answered(call_id, *at_ms).await,
            HistoryEvent::Ended {
                call_id,
                at_ms,
                reason,
                by,
            } => {
                store
                    .call_ended(call_id, *at_ms, *reason, by.as_deref())
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

    #[tokio::test]
    async fn outbox_is_fifo_bounded_and_closes_after_draining() {
        let outbox = Outbox::new();
        assert!(outbox.push(Arc::from("a"), 2));
        assert!(outbox.push(Arc::from("b"), 2));
        assert!(!outbox.push(Arc::from("c"), 2), "full: dropped");
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
        assert!(outbox.push(Arc::from("d"), 2));
        let (b, d) = waiter.await.expect("join");
        assert_eq!((b.as_deref(), d.as_deref()), (Some("b"), Some("d")));
        assert!(outbox.push(Arc::from("e"), 2));
        outbox.close();
        assert!(!outbox.push(Arc::from("f"), 2), "closed: refused");
        assert_eq!(
            outbox.next().await.as_deref(),
            Some("e"),
            "queued frames still drain"
        );
        assert_eq!(outbox.next().await, None);
    }
}
