//! The engine's events applied to the app's state, and passed on to the UI.

use super::*;

impl Core {
    /// Applies one engine event to the state and tells the UI.
    pub(super) fn on_event(&self, generation: u64, ev: CallEvent) {
        if self.state().generation != generation {
            return;
        }
        match ev {
            CallEvent::SignedIn { username, .. } => {
                {
                    let mut s = self.state();
                    s.session = SessionView::SignedIn { username };
                    s.online = true;
                }
                self.emit_session();
                self.emit(UiEvent::Connection { online: true });
            }
            CallEvent::SessionExpired { code, message } => {
                tracing::info!(%code, %message, "session expired");
                let me = self.clone();
                tauri::async_runtime::spawn(async move { me.session_expired().await });
            }
            CallEvent::SignallingLost | CallEvent::SignallingRestored => {
                let online = matches!(ev, CallEvent::SignallingRestored);
                self.state().online = online;
                self.emit(UiEvent::Connection { online });
            }
            CallEvent::Contacts(list) => {
                let embedded = self.state().settings.server.is_none();
                let contacts: Vec<ContactView> = list
                    .into_iter()
                    .map(|c| ContactView {
                        echo: embedded && c.username == ECHO_USER,
                        username: c.username,
                        presence: presence(c.presence),
                        state: match c.state {
                            ContactState::Accepted => ContactStateView::Accepted,
                            ContactState::Requested => ContactStateView::Requested,
                            ContactState::Incoming => ContactStateView::Incoming,
                        },
                    })
                    .collect();
                self.state().contacts = contacts.clone();
                self.emit(UiEvent::Contacts { contacts });
            }
            CallEvent::Privacy { anyone_may_call } => {
                self.state().anyone_may_call = anyone_may_call;
                self.emit(UiEvent::Privacy { anyone_may_call });
            }
            CallEvent::Presence {
                username,
                presence: p,
            } => {
                let contacts = {
                    let mut s = self.state();
                    for c in s.contacts.iter_mut().filter(|c| c.username == username) {
                        c.presence = presence(p);
                    }
                    s.contacts.clone()
                };
                self.emit(UiEvent::Contacts { contacts });
            }
            CallEvent::Dialling { call_id, peer } => {
                self.stop_preview();
                self.state().stats = CallStats::new(&call_id, &peer);
                self.set_call(CallView {
                    call_id,
                    peer,
                    outgoing: true,
                    phase: CallPhase::Dialling,
                    connected_at_ms: None,
                    mic_muted: false,
                    camera_off: false,
                    verification: None,
                    stranger: false,
                });
            }
            CallEvent::Incoming {
                call_id,
                from,
                stranger,
            } => {
                self.state().stats = CallStats::new(&call_id, &from);
                self.set_call(CallView {
                    call_id,
                    peer: from.clone(),
                    outgoing: false,
                    phase: CallPhase::Incoming,
                    connected_at_ms: None,
                    mic_muted: false,
                    camera_off: false,
                    verification: None,
                    stranger,
                });
                let speaker = self.state().settings.devices.speaker.clone();
                let ringer = devices::Ringer::start(&speaker);
                self.state().ringer = ringer;
                let notify = self.0.notify.lock().ok().and_then(|n| n.clone());
                if let Some(n) = notify {
                    let who = if stranger {
                        format!("{from} (not a contact) is calling you")
                    } else {
                        format!("{from} is calling you")
                    };
                    n("Incoming call", &who);
                }
            }
            CallEvent::RemoteRinging { .. } => self.update_call(|c| c.phase = CallPhase::Ringing),
            CallEvent::Connecting { .. } => {
                self.stop_preview();
                self.update_call(|c| c.phase = CallPhase::Connecting);
            }
            CallEvent::Connected { verification, .. } => self.update_call(|c| {
                c.phase = CallPhase::Connected;
                c.connected_at_ms.get_or_insert_with(now_ms);
                c.verification = verification;
            }),
            CallEvent::FirstRemoteFrame { after_answer, .. } => {
                tracing::info!(ms = after_answer.as_millis() as u64, "first remote frame");
            }
            CallEvent::Stats(point) => {
                self.state().stats.push((*point).clone());
                self.emit(UiEvent::Stats { point });
            }
            CallEvent::Ended {
                call_id, reason, ..
            } => {
                let call = {
                    let mut s = self.state();
                    s.ringer = None;
                    s.call.take()
                };
                self.0.frames.set_remote(None);
                self.0.frames.set_local(None);
                let (peer, outgoing, connected_at) = call
                    .map(|c| (c.peer, c.outgoing, c.connected_at_ms))
                    .unwrap_or_default();
                // Kept before the UI hears of the end: it reloads the history then.
                let summary = {
                    let mut s = self.state();
                    if s.stats.call_id == call_id {
                        summarize(&call_id, s.stats.points.make_contiguous())
                    } else {
                        None
                    }
                };
                if let Some(summary) = summary {
                    if let Err(e) = self.0.summaries.add(summary) {
                        tracing::warn!(error = %e, "could not keep the call's summary");
                    }
                }
                let duration_secs = connected_at
                    .map(|t| now_ms().saturating_sub(t) as f64 / 1000.0)
                    .unwrap_or(0.0);
                let (message, failed) = end_message(reason, &peer, outgoing);
                self.emit(UiEvent::Ended {
                    ended: CallEnded {
                        call_id,
                        peer,
                        reason: reason_code(reason),
                        message,
                        duration_secs,
                        failed,
                    },
                });
            }
            CallEvent::Error { code, message } => {
                let kind = match code.as_str() {
                    "video_source_failed"
                    | "audio_source_failed"
                    | "microphone_replaced"
                    | "speaker_replaced"
                    | "camera"
                    | "media" => ErrorKind::Device,
                    "invalid_state" | "unknown_call" | "duplicate_call" => ErrorKind::InvalidState,
                    "unknown_user" | "self_reference" | "invalid_field" => ErrorKind::InvalidInput,
                    "unauthorized" | "token_expired" => ErrorKind::SessionExpired,
                    _ => ErrorKind::Internal,
                };
                self.emit(UiEvent::Error {
                    error: IpcError { kind, message },
                });
            }
        }
    }

    pub(super) fn set_call(&self, call: CallView) {
        self.state().call = Some(call.clone());
        self.emit(UiEvent::Call { call });
    }

    pub(super) fn update_call(&self, f: impl FnOnce(&mut CallView)) {
        let call = {
            let mut s = self.state();
            let Some(c) = s.call.as_mut() else { return };
            f(c);
            let c = c.clone();
            if c.phase != CallPhase::Incoming {
                s.ringer = None;
            }
            c
        };
        self.emit(UiEvent::Call { call });
    }
}
