//! The call router: who is online on which device, which calls exist and what state they are
//! in, and what each call message turns into. Sans-IO (STYLE.md §1–2): [`Router::handle`] takes
//! `now` and one [`Input`] and returns [`Output`]s; it owns no socket, task, lock or clock.
//!
//! States of a call (Matrix VoIP v1 semantics, enforced here):
//!
//! ```text
//!   invite ──► Ringing ──select_answer──► Connected ──hangup──► (ended)
//!                 │  ▲ answer(s) from callee devices  │
//!                 │  └ ringing / candidates            └ candidates / negotiate
//!                 ├─ reject (callee) / cancel (caller) / lifetime passes ──► (ended)
//!                 └─ glare: the lower call id survives, the other ends `replaced`
//! ```
//!
//! A message that names an unknown call, a call the sender is not part of, or that is not valid
//! in the call's state is refused with a stable code and changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use dyad_proto::{
    CandidateKind, ClientMessage, EndReason, ErrorCode, PathProtocol, Presence, ProtoError,
    ServerMessage,
};

/// One device of one user: the unit messages are delivered to (Matrix's "party").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Party {
    /// Username.
    pub user: String,
    /// Device id, chosen by the client and stable across its reconnects.
    pub device: String,
}

impl Party {
    /// A party from its parts.
    pub fn new(user: impl Into<String>, device: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            device: device.into(),
        }
    }
}

/// What happens to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A device's connection came up (new, or back after a drop).
    Connected(Party),
    /// A device's connection dropped (closed, or idle past the timeout).
    Disconnected(Party),
    /// A validated call message from a connected device.
    Message(Party, ClientMessage),
    /// Time passed: fire due timers (see [`Router::next_deadline`]).
    Tick,
}

/// A row change for the call history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryEvent {
    /// A call was placed (also for calls that end at once: busy, unavailable).
    Started {
        /// Call id.
        call_id: String,
        /// Caller username.
        caller: String,
        /// Callee username.
        callee: String,
        /// The caller's device.
        caller_device: String,
        /// When, ms.
        at_ms: u64,
        /// A stranger's call (relayed candidates only): kept with the call so that a restart
        /// keeps filtering it.
        relay_only: bool,
    },
    /// The caller selected an answer: the call is up.
    Answered {
        /// Call id (the caller's: ids are unique per caller).
        call_id: String,
        /// Caller username.
        caller: String,
        /// The callee's device that answered.
        device: String,
        /// When, ms.
        at_ms: u64,
    },
    /// A party reported the candidate pair its call runs on.
    Path {
        /// Call id (the caller's).
        call_id: String,
        /// Caller username.
        caller: String,
        /// Whether the caller reported it (else the callee).
        by_caller: bool,
        /// `local/remote protocol` as that party sees it, e.g. `relay/srflx udp`.
        path: String,
        /// When, ms.
        at_ms: u64,
    },
    /// The call ended.
    Ended {
        /// Call id (the caller's).
        call_id: String,
        /// Caller username.
        caller: String,
        /// When, ms.
        at_ms: u64,
        /// Why.
        reason: EndReason,
        /// Username of whoever ended it; `None` when the server did.
        by: Option<String>,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Deliver a message to one device.
    Send(Party, ServerMessage),
    /// Record in the call history.
    History(HistoryEvent),
    /// A user's presence changed: tell those who have them as a contact.
    Presence(String, Presence),
}

/// Timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterConfig {
    /// How long a party of a call may be disconnected before the call ends
    /// (`peer_disconnected`). A client that reconnects within it keeps its call.
    pub reconnect_grace_ms: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            reconnect_grace_ms: 20_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    Connected,
}

#[derive(Debug)]
struct Call {
    /// The id the caller chose. Ids are the caller's own: the router keys calls by caller and
    /// id ([`key`]), so nobody learns from an invite whether someone else's call has that id.
    id: String,
    caller: Party,
    callee: String,
    state: State,
    expires_ms: u64,
    /// Callee devices the invite was delivered to and that have not dropped out.
    rung: HashSet<String>,
    /// Callee devices that answered.
    answered: HashSet<String>,
    /// The callee device the caller selected (Connected state).
    selected: Option<String>,
    lifetime_ms: u64,
    sdp: String,
    glare: bool,
    /// Only relayed candidates pass (a call between people who are not contacts).
    relay_only: bool,
    /// Parties of the call whose connection is down, since when; in a restored call, also those
    /// that have not sent `resume` yet.
    away: BTreeMap<Party, u64>,
    /// Parties of a call brought back after a server restart ([`Router::restore`]) that have not
    /// said `resume`: a reconnect alone does not prove a device still has the call (it may have
    /// hung up while the server was down), so only `resume` takes them off `away`.
    unconfirmed: Vec<Party>,
}

impl Call {
    fn selected_party(&self) -> Option<Party> {
        self.selected.as_ref().map(|d| Party::new(&self.callee, d))
    }
}

/// The router. See the module documentation.
#[derive(Debug, Default)]
pub struct Router {
    config: RouterConfig,
    /// Connected devices per user.
    /// A `Vec`, not a set: at most a handful of devices each, and most users have one (a set's
    /// table costs ≈ 100 B more per user; memory per idle session is a goal, benchmarks.md).
    online: HashMap<String, Vec<String>>,
    /// Calls by [`key`].
    calls: HashMap<String, Call>,
    /// The keys of the calls each user is in (caller or callee), so that presence, busy checks and
    /// a device's comings and goings cost O(that user's calls), not O(all calls).
    calls_of: HashMap<String, Vec<String>>,
    /// Last presence announced per user (absent = offline).
    announced: HashMap<String, Presence>,
    /// Invites placed per caller (a token bucket each): one account can't fill someone's history
    /// or the router with calls.
    invites: InviteBudget,
    /// [`Router::next_deadline`], kept up to date by `handle` (the driver asks after every input;
    /// scanning every call each time cost O(calls) per relayed candidate).
    deadline: Option<u64>,
}

/// An invite's parts.
struct NewCall {
    call_id: String,
    to: String,
    sdp: String,
    lifetime_ms: u64,
    relay_only: bool,
}

/// Whether an ICE candidate (`candidate:...`, with or without `a=`) is a relayed one. Read by
/// position as RFC 8839 lays it out and as ICE agents parse it — foundation, component,
/// transport, priority, address, port, `typ`, type — so `... 5000 x host typ relay` is a host
/// candidate, not a relayed one; anything malformed counts as not relayed.
fn is_relayed(candidate: &str) -> bool {
    let value = candidate.trim_start();
    let value = value.strip_prefix("a=").unwrap_or(value).trim_start();
    let Some(rest) = value
        .get(..10)
        .filter(|p| p.eq_ignore_ascii_case("candidate:"))
        .and_then(|_| value.get(10..))
    else {
        return false;
    };
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    fields.len() >= 8
        && fields[6].eq_ignore_ascii_case("typ")
        && fields[7].eq_ignore_ascii_case("relay")
}

/// The SDP with every candidate line but the relayed ones removed: any line whose attribute,
/// however spaced or cased, is a candidate (receivers trim and tolerate those).
fn relayed_candidates_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            let t = line.trim_start_matches(['\r', ' ', '\t']);
            let attr = t.strip_prefix("a=").map(str::trim_start);
            let is_candidate = attr.is_some_and(|a| {
                a.get(..9)
                    .is_some_and(|p| p.eq_ignore_ascii_case("candidate"))
            });
            !is_candidate || is_relayed(t)
        })
        .collect()
}

/// At most [`InviteBudget::BURST`] invites at once per caller, refilled at one per
/// [`InviteBudget::REFILL_MS`] (10 a minute).
#[derive(Debug, Default)]
struct InviteBudget {
    /// Caller → (tokens left, when counted).
    callers: HashMap<String, (u32, u64)>,
}

impl InviteBudget {
    const BURST: u32 = 10;
    const REFILL_MS: u64 = 6_000;
    /// Callers remembered; past this, those back to a full bucket are forgotten.
    const MAX_CALLERS: usize = 100_000;

    fn allow(&mut self, caller: &str, now_ms: u64) -> bool {
        if self.callers.len() >= Self::MAX_CALLERS {
            let full = Self::BURST as u64 * Self::REFILL_MS;
            self.callers
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) < full);
        }
        let (tokens, at) = self
            .callers
            .entry(caller.to_string())
            .or_insert((Self::BURST, now_ms));
        let refilled = now_ms.saturating_sub(*at) / Self::REFILL_MS;
        if refilled > 0 {
            *tokens = (*tokens)
                .saturating_add(u32::try_from(refilled).unwrap_or(u32::MAX))
                .min(Self::BURST);
            *at += refilled * Self::REFILL_MS;
        }
        if *tokens == 0 {
            return false;
        }
        if *tokens == Self::BURST {
            *at = now_ms;
        }
        *tokens -= 1;
        true
    }
}

/// A call's key: its caller and the id the caller chose. `/` is in neither usernames nor call
/// ids (dyad_proto::limits), so the key is unambiguous.
fn key(caller: &str, call_id: &str) -> String {
    format!("{caller}/{call_id}")
}

fn refuse(code: ErrorCode, message: &str) -> ProtoError {
    ProtoError::new(code, message)
}

fn unknown_call() -> ProtoError {
    refuse(
        ErrorCode::UnknownCall,
        "no such call, or you are not part of it",
    )
}

fn ended(call_id: &str, reason: EndReason, by: Option<&str>) -> ServerMessage {
    ServerMessage::CallEnded {
        call_id: call_id.into(),
        reason,
        by: by.map(Into::into),
    }
}

impl Router {
    /// A router with these timing rules.
    pub fn new(config: RouterConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The presence of a user now.
    pub fn presence(&self, user: &str) -> Presence {
        if self.online.get(user).is_none_or(|d| d.is_empty()) {
            Presence::Offline
        } else if self.calls_of.contains_key(user) {
            Presence::InCall
        } else {
            Presence::Online
        }
    }

    /// How many devices of `user` are connected.
    pub fn device_count(&self, user: &str) -> usize {
        self.online.get(user).map_or(0, Vec::len)
    }

    /// Whether this device is connected.
    pub fn is_connected(&self, party: &Party) -> bool {
        self.online
            .get(&party.user)
            .is_some_and(|d| d.contains(&party.device))
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Brings back a call that was up when the server stopped (from the history table): it is
    /// connected between these two devices, both away since `now_ms`, so each has the reconnect
    /// grace to come back; a party that does not ends it `peer_disconnected`, as any drop does.
    pub fn restore(
        &mut self,
        now_ms: u64,
        call_id: String,
        caller: Party,
        callee: Party,
        relay_only: bool,
    ) {
        let k = key(&caller.user, &call_id);
        if self.calls.contains_key(&k) || caller.user == callee.user {
            return;
        }
        let device = callee.device.clone();
        let away = BTreeMap::from([(caller.clone(), now_ms), (callee.clone(), now_ms)]);
        let unconfirmed = vec![caller.clone(), callee.clone()];
        self.insert_call(
            k,
            Call {
                id: call_id,
                caller,
                callee: callee.user,
                state: State::Connected,
                expires_ms: now_ms,
                rung: HashSet::from([device.clone()]),
                answered: HashSet::from([device.clone()]),
                selected: Some(device),
                lifetime_ms: 0,
                sdp: String::new(),
                glare: false,
                relay_only,
                away,
                unconfirmed,
            },
        );
        self.deadline = self.compute_deadline();
    }

    /// The earliest time [`Input::Tick`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    fn compute_deadline(&self) -> Option<u64> {
        self.calls
            .values()
            .flat_map(|c| {
                let ring = (c.state == State::Ringing).then_some(c.expires_ms);
                let away = c
                    .away
                    .values()
                    .map(|since| since + self.config.reconnect_grace_ms);
                ring.into_iter().chain(away)
            })
            .min()
    }

    /// Applies one input at time `now_ms`. On `Err` nothing changed; the error goes back to the
    /// sender only.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Result<Vec<Output>, ProtoError> {
        let mut out = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        // Relayed messages change no timer; everything else may.
        let timers_change = !matches!(
            input,
            Input::Message(
                _,
                ClientMessage::Candidates { .. }
                    | ClientMessage::Negotiate { .. }
                    | ClientMessage::Ringing { .. }
                    | ClientMessage::Answer { .. }
            )
        );
        let result = match input {
            Input::Connected(party) => {
                self.connected(party, &mut out, &mut touched);
                Ok(())
            }
            Input::Disconnected(party) => {
                self.disconnected(now_ms, party, &mut touched);
                Ok(())
            }
            Input::Tick => {
                self.tick(now_ms, &mut out, &mut touched);
                Ok(())
            }
            Input::Message(from, msg) => self.message(now_ms, from, msg, &mut out, &mut touched),
        };
        if timers_change {
            self.deadline = self.compute_deadline();
        }
        result?;
        for user in touched {
            self.announce(&user, &mut out);
        }
        Ok(out)
    }

    fn announce(&mut self, user: &str, out: &mut Vec<Output>) {
        let now = self.presence(user);
        let before = self
            .announced
            .get(user)
            .copied()
            .unwrap_or(Presence::Offline);
        if now != before {
            if now == Presence::Offline {
                self.announced.remove(user);
            } else {
                self.announced.insert(user.to_string(), now);
            }
            out.push(Output::Presence(user.to_string(), now));
        }
    }

    fn connected(&mut self, party: Party, out: &mut Vec<Output>, touched: &mut Vec<String>) {
        // Room for exactly one device at first (a default Vec's first push makes room for four).
        let devices = self
            .online
            .entry(party.user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        if !devices.contains(&party.device) {
            devices.push(party.device.clone());
        }
        let ids = self.calls_of.get(&party.user).cloned().unwrap_or_default();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if !call.unconfirmed.contains(&party) {
                call.away.remove(&party);
            }
            // A device of the callee that comes online while the call still rings rings too.
            if call.state == State::Ringing
                && call.callee == party.user
                && call.rung.insert(party.device.clone())
            {
                out.push(Output::Send(
                    party.clone(),
                    ServerMessage::Invite {
                        call_id: call.id.clone(),
                        from: call.caller.user.clone(),
                        device: call.caller.device.clone(),
                        sdp: call.sdp.clone(),
                        lifetime_ms: call.lifetime_ms,
                        glare: call.glare,
                        relay_only: call.relay_only,
                    },
                ));
            }
        }
        touched.push(party.user);
    }

    fn disconnected(&mut self, now_ms: u64, party: Party, touched: &mut Vec<String>) {
        if let Some(devices) = self.online.get_mut(&party.user) {
            devices.retain(|d| *d != party.device);
            if devices.is_empty() {
                self.online.remove(&party.user);
            }
        }
        for id in self.calls_of.get(&party.user).into_iter().flatten() {
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            let is_caller = call.caller == party;
            let is_selected = call.selected_party().as_ref() == Some(&party);
            if is_caller || is_selected {
                call.away.entry(party.clone()).or_insert(now_ms);
            } else if call.callee == party.user && call.state == State::Ringing {
                // An unanswered device that dropped stops ringing; it rings again if it returns.
                if !call.answered.contains(&party.device) {
                    call.rung.remove(&party.device);
                }
            }
        }
        touched.push(party.user);
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Output>, touched: &mut Vec<String>) {
        let grace = self.config.reconnect_grace_ms;
        let mut due: Vec<(String, EndReason, Option<Party>)> = Vec::new();
        for (id, call) in &self.calls {
            if let Some((party, _)) = call
                .away
                .iter()
                .find(|(_, since)| now_ms >= **since + grace)
            {
                due.push((id.clone(), EndReason::PeerDisconnected, Some(party.clone())));
            } else if call.state == State::Ringing && now_ms >= call.expires_ms {
                due.push((id.clone(), EndReason::InviteTimeout, None));
            }
        }
        due.sort_by(|x, y| x.0.cmp(&y.0));
        for (id, reason, gone) in due {
            self.end_call(now_ms, &id, reason, None, gone.as_ref(), out, touched);
        }
    }

    /// Ends a call: tells every party still involved (except `skip`), records history.
    #[allow(clippy::too_many_arguments)]
    fn end_call(
        &mut self,
        now_ms: u64,
        call_key: &str,
        reason: EndReason,
        by: Option<&str>,
        skip: Option<&Party>,
        out: &mut Vec<Output>,
        touched: &mut Vec<String>,
    ) {
        let Some(call) = self.remove_call(call_key) else {
            return;
        };
        let call_id = call.id.as_str();
        let mut parties = vec![call.caller.clone()];
        match call.selected_party() {
            Some(p) => parties.push(p),
            None => parties.extend(call.rung.iter().map(|d| Party::new(&call.callee, d))),
        }
        parties.sort();
        for p in parties {
            if Some(&p) != skip {
                out.push(Output::Send(p, ended(call_id, reason, by)));
            }
        }
        out.push(Output::History(HistoryEvent::Ended {
            call_id: call_id.into(),
            caller: call.caller.user.clone(),
            at_ms: now_ms,
            reason,
            by: by.map(Into::into),
        }));
        touched.push(call.caller.user);
        touched.push(call.callee);
    }

    fn insert_call(&mut self, id: String, call: Call) {
        for user in [&call.caller.user, &call.callee] {
            self.calls_of
                .entry(user.clone())
                .or_default()
                .push(id.clone());
        }
        self.calls.insert(id, call);
    }

    fn remove_call(&mut self, id: &str) -> Option<Call> {
        let call = self.calls.remove(id)?;
        for user in [&call.caller.user, &call.callee] {
            if let Some(ids) = self.calls_of.get_mut(user) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.calls_of.remove(user);
                }
            }
        }
        Some(call)
    }

    /// The key of call `call_id` as `from` names it: their own call with that id, or the call
    /// with that id they are the callee of.
    fn key_of(&self, call_id: &str, from: &Party) -> Result<String, ProtoError> {
        let own = key(&from.user, call_id);
        if self.calls.contains_key(&own) {
            return Ok(own);
        }
        self.calls_of
            .get(&from.user)
            .into_iter()
            .flatten()
            .find(|k| self.calls.get(*k).is_some_and(|c| c.id == call_id))
            .cloned()
            .ok_or_else(unknown_call)
    }

    fn call_of<'a>(&'a mut self, call_id: &str, from: &Party) -> Result<&'a mut Call, ProtoError> {
        Ok(self.keyed_call_of(call_id, from)?.1)
    }

    /// [`Router::call_of`] with the call's key (for ending it).
    fn keyed_call_of<'a>(
        &'a mut self,
        call_id: &str,
        from: &Party,
    ) -> Result<(String, &'a mut Call), ProtoError> {
        let k = self.key_of(call_id, from)?;
        let call = self.calls.get_mut(&k).ok_or_else(unknown_call)?;
        let callee_device = call.callee == from.user
            && (call.rung.contains(&from.device) || call.selected.as_deref() == Some(&from.device));
        if call.caller != *from && !callee_device {
            return Err(unknown_call());
        }
        Ok((k, call))
    }

    fn message(
        &mut self,
        now_ms: u64,
        from: Party,
        msg: ClientMessage,
        out: &mut Vec<Output>,
        touched: &mut Vec<String>,
    ) -> Result<(), ProtoError> {
        match msg {
            ClientMessage::Invite {
                call_id,
                to,
                sdp,
                lifetime_ms,
                relay_only,
            } => {
                let sdp = if relay_only {
                    relayed_candidates_only(&sdp)
                } else {
                    sdp
                };
                let invite = NewCall {
                    call_id,
                    to,
                    sdp,
                    lifetime_ms,
                    relay_only,
                };
                self.invite(now_ms, from, invite, out, touched)
            }
            ClientMessage::Ringing { call_id } => {
                let call = self.call_of(&call_id, &from)?;
                if call.state != State::Ringing || call.caller == from {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "ringing: only a rung device, while ringing",
                    ));
                }
                let to = call.caller.clone();
                out.push(Output::Send(
                    to,
                    ServerMessage::Ringing {
                        call_id,
                        device: from.device,
                    },
                ));
                Ok(())
            }
            ClientMessage::Answer { call_id, sdp } => {
                let call = self.call_of(&call_id, &from)?;
                if call.state != State::Ringing
                    || call.caller == from
                    || call.answered.contains(&from.device)
                {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "answer: only once, from a rung device, while ringing",
                    ));
                }
                call.answered.insert(from.device.clone());
                let to = call.caller.clone();
                let sdp = if call.relay_only {
                    relayed_candidates_only(&sdp)
                } else {
                    sdp
                };
                out.push(Output::Send(
                    to,
                    ServerMessage::Answer {
                        call_id,
                        device: from.device,
                        sdp,
                    },
                ));
                Ok(())
            }
            ClientMessage::SelectAnswer { call_id, device } => {
                let call = self.call_of(&call_id, &from)?;
                if call.caller != from || call.state != State::Ringing {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "select_answer: only the caller, while ringing",
                    ));
                }
                if !call.answered.contains(&device) {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "select_answer: that device has not answered",
                    ));
                }
                call.state = State::Connected;
                call.selected = Some(device.clone());
                let device_for_history = device.clone();
                let callee = call.callee.clone();
                let caller = call.caller.user.clone();
                let mut others: Vec<String> = call
                    .rung
                    .iter()
                    .filter(|d| **d != device)
                    .cloned()
                    .collect();
                others.sort();
                out.push(Output::Send(
                    Party::new(&callee, &device),
                    ServerMessage::SelectAnswer {
                        call_id: call_id.clone(),
                        device,
                    },
                ));
                for d in others {
                    out.push(Output::Send(
                        Party::new(&callee, d),
                        ended(&call_id, EndReason::AnsweredElsewhere, Some(&callee)),
                    ));
                }
                out.push(Output::History(HistoryEvent::Answered {
                    call_id,
                    caller,
                    device: device_for_history,
                    at_ms: now_ms,
                }));
                Ok(())
            }
            ClientMessage::Reject { call_id } => {
                self.reject(now_ms, from, &call_id, EndReason::Rejected, out, touched)
            }
            ClientMessage::Cancel { call_id } => {
                let (call_key, call) = self.keyed_call_of(&call_id, &from)?;
                if call.caller != from || call.state != State::Ringing {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "cancel: only the caller, before the call is answered (use hangup after)",
                    ));
                }
                let by = from.user.clone();
                self.end_call(
                    now_ms,
                    &call_key,
                    EndReason::Cancelled,
                    Some(&by),
                    Some(&from),
                    out,
                    touched,
                );
                Ok(())
            }
            ClientMessage::Hangup { call_id, reason } => {
                let (call_key, call) = self.keyed_call_of(&call_id, &from)?;
                match call.state {
                    // Before an answer is selected a hang-up is a cancel (caller) or a decline.
                    State::Ringing if call.caller == from => {
                        let by = from.user.clone();
                        let reason = if reason == dyad_proto::HangupReason::UserHangup {
                            EndReason::Cancelled
                        } else {
                            reason.into()
                        };
                        self.end_call(
                            now_ms,
                            &call_key,
                            reason,
                            Some(&by),
                            Some(&from),
                            out,
                            touched,
                        );
                        Ok(())
                    }
                    State::Ringing => {
                        self.reject(now_ms, from, &call_id, reason.into(), out, touched)
                    }
                    State::Connected => {
                        if call.caller != from && call.selected_party().as_ref() != Some(&from) {
                            return Err(unknown_call());
                        }
                        let by = from.user.clone();
                        self.end_call(
                            now_ms,
                            &call_key,
                            reason.into(),
                            Some(&by),
                            Some(&from),
                            out,
                            touched,
                        );
                        Ok(())
                    }
                }
            }
            ClientMessage::Candidates {
                call_id,
                mut candidates,
                end_of_candidates,
            } => {
                if self.call_of(&call_id, &from)?.relay_only {
                    candidates.retain(|c| is_relayed(&c.candidate));
                }
                let msg = ServerMessage::Candidates {
                    call_id: call_id.clone(),
                    device: from.device.clone(),
                    candidates,
                    end_of_candidates,
                };
                self.relay(&call_id, &from, &msg, out)
            }
            ClientMessage::Negotiate {
                call_id,
                mut description,
            } => {
                let call = self.call_of(&call_id, &from)?;
                if call.state != State::Connected {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "negotiate: only on a connected call",
                    ));
                }
                if call.relay_only {
                    description.sdp = relayed_candidates_only(&description.sdp);
                }
                let msg = ServerMessage::Negotiate {
                    call_id: call_id.clone(),
                    device: from.device.clone(),
                    description,
                };
                self.relay(&call_id, &from, &msg, out)
            }
            ClientMessage::Resume { call_id } => {
                let call = self.call_of(&call_id, &from)?;
                if call.state != State::Connected {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "resume: only a connected call",
                    ));
                }
                if call.caller != from && call.selected_party().as_ref() != Some(&from) {
                    return Err(unknown_call());
                }
                call.unconfirmed.retain(|p| *p != from);
                call.away.remove(&from);
                Ok(())
            }
            ClientMessage::Path {
                call_id,
                local,
                remote,
                protocol,
            } => {
                let call = self.call_of(&call_id, &from)?;
                if call.state != State::Connected {
                    return Err(refuse(
                        ErrorCode::InvalidState,
                        "path: only on a connected call",
                    ));
                }
                let by_caller = call.caller == from;
                if !by_caller && call.selected_party().as_ref() != Some(&from) {
                    return Err(unknown_call());
                }
                let word = |k: CandidateKind| match k {
                    CandidateKind::Host => "host",
                    CandidateKind::Srflx => "srflx",
                    CandidateKind::Prflx => "prflx",
                    CandidateKind::Relay => "relay",
                };
                let protocol = match protocol {
                    PathProtocol::Udp => "udp",
                    PathProtocol::Tcp => "tcp",
                    PathProtocol::Tls => "tls",
                };
                out.push(Output::History(HistoryEvent::Path {
                    call_id,
                    caller: call.caller.user.clone(),
                    by_caller,
                    path: format!("{}/{} {protocol}", word(local), word(remote)),
                    at_ms: now_ms,
                }));
                Ok(())
            }
            ClientMessage::Ping
            | ClientMessage::ContactAdd { .. }
            | ClientMessage::ContactRemove { .. }
            | ClientMessage::ContactList
            | ClientMessage::SetPrivacy { .. } => {
                Err(refuse(ErrorCode::InvalidState, "not a call message"))
            }
        }
    }

    /// Sends `msg` to the other side of the call (see [`Router::peers_of`]).
    fn relay(
        &mut self,
        call_id: &str,
        from: &Party,
        msg: &ServerMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), ProtoError> {
        for to in self.peers_of(call_id, from)? {
            out.push(Output::Send(to, msg.clone()));
        }
        Ok(())
    }

    /// Who receives what `from` sends on this call: the other side (all rung callee devices
    /// while ringing, the selected one once connected).
    fn peers_of(&mut self, call_id: &str, from: &Party) -> Result<Vec<Party>, ProtoError> {
        let call = self.call_of(call_id, from)?;
        if call.caller == *from {
            let mut devices: Vec<&String> = match &call.selected {
                Some(d) => vec![d],
                None => call.rung.iter().collect(),
            };
            devices.sort();
            Ok(devices
                .into_iter()
                .map(|d| Party::new(&call.callee, d))
                .collect())
        } else if call.selected.is_none() || call.selected.as_deref() == Some(&from.device) {
            Ok(vec![call.caller.clone()])
        } else {
            Err(unknown_call())
        }
    }

    fn reject(
        &mut self,
        now_ms: u64,
        from: Party,
        call_id: &str,
        reason: EndReason,
        out: &mut Vec<Output>,
        touched: &mut Vec<String>,
    ) -> Result<(), ProtoError> {
        let (call_key, call) = self.keyed_call_of(call_id, &from)?;
        if call.caller == from || call.state != State::Ringing {
            return Err(refuse(
                ErrorCode::InvalidState,
                "reject: only a rung device, while ringing",
            ));
        }
        // Another device already answered: this one just stops ringing.
        if call.answered.iter().any(|d| *d != from.device) {
            call.rung.remove(&from.device);
            call.answered.remove(&from.device);
            out.push(Output::Send(
                from.clone(),
                ended(call_id, reason, Some(&from.user)),
            ));
            return Ok(());
        }
        let callee = from.user.clone();
        let mut others: Vec<String> = call
            .rung
            .iter()
            .filter(|d| **d != from.device)
            .cloned()
            .collect();
        others.sort();
        call.rung.retain(|d| *d == from.device);
        for d in others {
            out.push(Output::Send(
                Party::new(&callee, d),
                ended(call_id, EndReason::RejectedElsewhere, Some(&callee)),
            ));
        }
        self.end_call(
            now_ms,
            &call_key,
            reason,
            Some(&callee),
            Some(&from),
            out,
            touched,
        );
        Ok(())
    }

    fn invite(
        &mut self,
        now_ms: u64,
        from: Party,
        invite: NewCall,
        out: &mut Vec<Output>,
        touched: &mut Vec<String>,
    ) -> Result<(), ProtoError> {
        let NewCall {
            call_id,
            to,
            sdp,
            lifetime_ms,
            relay_only,
        } = invite;
        if to == from.user {
            return Err(refuse(ErrorCode::SelfReference, "you cannot call yourself"));
        }
        // Only the caller's own ids can collide: another user's call with this id is another
        // call, so an invite tells nothing about calls one is not part of.
        let call_key = key(&from.user, &call_id);
        if self.calls.contains_key(&call_key) {
            return Err(refuse(
                ErrorCode::DuplicateCall,
                "you have a call with that id",
            ));
        }

        // Glare: `to` is ringing us right now with a call nobody answered yet.
        let crossing = self
            .calls_of
            .get(&to)
            .into_iter()
            .flatten()
            .find(|id| {
                self.calls.get(*id).is_some_and(|c| {
                    c.caller.user == to
                        && c.callee == from.user
                        && c.state == State::Ringing
                        && c.answered.is_empty()
                })
            })
            .cloned();
        let mut glare = false;
        if self.calls_of.contains_key(&from.user) && crossing.is_none() {
            return Err(refuse(ErrorCode::InvalidState, "you are already in a call"));
        }
        // Spent only by an invite that goes ahead (a refused one changes nothing).
        if !self.invites.allow(&from.user, now_ms) {
            return Err(refuse(
                ErrorCode::RateLimited,
                "too many calls placed: 10 at once, then one every 6 s",
            ));
        }
        if let Some(theirs) = crossing {
            let their_id = self
                .calls
                .get(&theirs)
                .map(|c| c.id.clone())
                .unwrap_or_default();
            // The lower id survives; equal ids (each caller's own) are told apart by caller.
            if (their_id.as_str(), to.as_str()) < (call_id.as_str(), from.user.as_str()) {
                // Their call survives: ours is folded into it. Ring this device with it, marked
                // so the client accepts at once.
                let call = self.calls.get_mut(&theirs).ok_or_else(unknown_call)?;
                call.glare = true;
                call.rung.insert(from.device.clone());
                out.push(Output::Send(
                    from.clone(),
                    ended(&call_id, EndReason::Replaced, None),
                ));
                out.push(Output::Send(
                    from,
                    ServerMessage::Invite {
                        call_id: their_id,
                        from: call.caller.user.clone(),
                        device: call.caller.device.clone(),
                        sdp: call.sdp.clone(),
                        lifetime_ms: call.lifetime_ms,
                        glare: true,
                        relay_only: call.relay_only,
                    },
                ));
                return Ok(());
            }
            // Ours survives: theirs ends as replaced, and ours rings marked as glare.
            self.end_call(
                now_ms,
                &theirs,
                EndReason::Replaced,
                None,
                None,
                out,
                touched,
            );
            glare = true;
        }
        if self.calls_of.contains_key(&from.user) {
            return Err(refuse(ErrorCode::InvalidState, "you are already in a call"));
        }
        let started = HistoryEvent::Started {
            call_id: call_id.clone(),
            caller: from.user.clone(),
            callee: to.clone(),
            caller_device: from.device.clone(),
            at_ms: now_ms,
            relay_only,
        };
        let busy = self.calls_of.contains_key(&to);
        let devices: Vec<String> = self.online.get(&to).cloned().unwrap_or_default();
        // A stranger's call (relay-only) learns neither "in a call" nor "offline": both are
        // `unavailable`, and leave no row in the callee's history (nothing rang).
        let immediate_end = if busy && !relay_only {
            Some(EndReason::Busy)
        } else if busy || devices.is_empty() {
            Some(EndReason::Unavailable)
        } else {
            None
        };
        if let Some(reason) = immediate_end {
            if !relay_only {
                out.push(Output::History(started));
            }
            out.push(Output::Send(from.clone(), ended(&call_id, reason, None)));
            if !relay_only {
                out.push(Output::History(HistoryEvent::Ended {
                    call_id,
                    caller: from.user,
                    at_ms: now_ms,
                    reason,
                    by: None,
                }));
            }
            return Ok(());
        }
        out.push(Output::History(started));
        let mut devices = devices;
        devices.sort();
        for d in &devices {
            out.push(Output::Send(
                Party::new(&to, d),
                ServerMessage::Invite {
                    call_id: call_id.clone(),
                    from: from.user.clone(),
                    device: from.device.clone(),
                    sdp: sdp.clone(),
                    lifetime_ms,
                    glare,
                    relay_only,
                },
            ));
        }
        touched.push(from.user.clone());
        touched.push(to.clone());
        self.insert_call(
            call_key,
            Call {
                id: call_id,
                caller: from,
                callee: to,
                state: State::Ringing,
                expires_ms: now_ms + lifetime_ms,
                rung: devices.into_iter().collect(),
                answered: HashSet::new(),
                selected: None,
                lifetime_ms,
                sdp,
                glare,
                relay_only,
                away: BTreeMap::new(),
                unconfirmed: Vec::new(),
            },
        );
        Ok(())
    }
}
