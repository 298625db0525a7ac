//! The signalling connection: sending (queued while it is down), losing it, reconnecting with
//! backoff, and signing in again when the token has expired.

use std::time::Instant;

use dyad_proto::ClientMessage;

use super::{Client, PING_INTERVAL};
use crate::api::{CallEvent, BACKOFF, MAX_QUEUED_MESSAGES};
use crate::error::CallError;
use crate::machine::{Phase, RESUME_REF};
use crate::signal::{self, Connection};

impl Client {
    pub(super) async fn send(&mut self, msg: ClientMessage) {
        if let Some(conn) = &mut self.conn {
            if conn.send(&msg).await.is_ok() {
                return;
            }
            self.lost_signalling();
        }
        if self.queued.len() < MAX_QUEUED_MESSAGES {
            self.queued.push_back(msg);
        }
    }

    pub(super) fn lost_signalling(&mut self) {
        if self.conn.take().is_some() {
            self.emit(CallEvent::SignallingLost);
            self.backoff = BACKOFF.0;
            self.reconnect_at = Some(Instant::now() + self.backoff);
        }
    }

    pub(super) async fn try_reconnect(&mut self) {
        match Connection::connect(&self.config.server, &self.token, &self.config.device).await {
            Ok(conn) => {
                let anyone_may_call = conn.anyone_may_call;
                self.conn = Some(conn);
                self.reconnect_at = None;
                self.next_ping = Instant::now() + PING_INTERVAL;
                self.emit(CallEvent::SignallingRestored);
                self.emit(CallEvent::Privacy { anyone_may_call });
                self.resume_call().await;
                while let Some(m) = self.queued.pop_front() {
                    if let Some(c) = &mut self.conn {
                        if c.send(&m).await.is_err() {
                            self.lost_signalling();
                            break;
                        }
                    }
                }
            }
            Err(CallError::Server { code, message })
                if code == "unauthorized" || code == "token_expired" =>
            {
                // The token is gone: sign in again with the password, if we have one.
                if self.config.password.is_empty() {
                    self.reconnect_at = None;
                    self.emit(CallEvent::SessionExpired { code, message });
                    return;
                }
                let (server, user, password) = (
                    &self.config.server,
                    &self.config.username,
                    &self.config.password,
                );
                match signal::login(server, user, password).await {
                    Ok(s) => {
                        self.token = s.token;
                        self.reconnect_at = Some(Instant::now());
                    }
                    // Asking again would not change the answer (and counts against the
                    // server's throttle): stop, and say so.
                    Err(CallError::Server { code, message }) if code == "wrong_credentials" => {
                        self.reconnect_at = None;
                        self.emit(CallEvent::SessionExpired { code, message });
                    }
                    Err(_) => {
                        self.emit(CallEvent::Error { code, message });
                        self.schedule_retry();
                    }
                }
            }
            Err(_) => self.schedule_retry(),
        }
    }

    /// Tells the server we are still in our call: a server that restarted brought the call back
    /// from its history and ends it unless both sides say so (docs/protocol.md). Errors (an old
    /// server, a call the server lost) are ignored by `machine::route`.
    async fn resume_call(&mut self) {
        let Some(call) = &self.call else {
            return;
        };
        if !matches!(call.m.phase(), Phase::Connecting | Phase::Connected) {
            return;
        }
        let msg = ClientMessage::Resume {
            call_id: call.m.call_id.clone(),
        };
        if let Some(conn) = &mut self.conn {
            if conn.send_with_ref(&msg, RESUME_REF).await.is_err() {
                self.lost_signalling();
            }
        }
    }

    pub(super) fn schedule_retry(&mut self) {
        self.backoff = (self.backoff * 2).min(BACKOFF.1);
        self.reconnect_at = Some(Instant::now() + self.backoff);
    }
}
