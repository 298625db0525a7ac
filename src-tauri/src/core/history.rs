//! The call history as the user reads it: outcomes, durations, summaries, end messages.

use super::*;

impl Core {
    /// The call history, newest first.
    pub async fn history(&self) -> Result<Vec<HistoryRow>> {
        let (server, token, me) = {
            let s = self.state();
            let c = s.client.as_ref().ok_or(AppError::NotSignedIn)?;
            (c.server.clone(), c.token.clone(), c.username.clone())
        };
        let rows = signal::history(&server, &token).await?;
        let summaries = self.0.summaries.load().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "call summaries not shown");
            Vec::new()
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut row = history_row(&me, r);
                row.summary = summaries
                    .iter()
                    .rev()
                    .find(|s| s.call_id == row.call_id)
                    .cloned();
                row
            })
            .collect())
    }
}

impl Core {
    /// A one-use guest link on the signed-in user's server.
    pub async fn create_guest_link(&self) -> Result<crate::ipc::GuestLink> {
        let (server, token) = self.server_and_token()?;
        let link = signal::create_invite(&server, &token, None).await?;
        let local_only = server.is_loopback();
        Ok(crate::ipc::GuestLink {
            url: format!("{server}{}", link.path),
            token: link.token,
            expires_at: link.expires_at,
            local_only,
        })
    }

    /// Revokes an unused guest link.
    pub async fn revoke_guest_link(&self, link: &str) -> Result<()> {
        let (server, token) = self.server_and_token()?;
        Ok(signal::revoke_invite(&server, &token, link).await?)
    }

    /// "Test my network": the doctor's checks against the server in use, with this session's
    /// token. Not during a call (it gathers with its own peer connections and would compete with
    /// the call's media).
    pub async fn test_network(&self) -> Result<crate::ipc::NetworkReport> {
        let (server, token) = self.server_and_token()?;
        if self.state().call.is_some() {
            return Err(AppError::State("hang up first to test the network"));
        }
        let Ok(_one) = self.0.network_test.try_lock() else {
            return Err(AppError::State("the network test is already running"));
        };
        let started = std::time::Instant::now();
        let findings = dyad_call::doctor::run_signed_in(&server, &token).await?;
        Ok(crate::ipc::NetworkReport {
            server: server.to_string(),
            lines: dyad_call::doctor::verdict(&findings),
            calls_possible: dyad_call::doctor::calls_possible(&findings),
            took_secs: started.elapsed().as_secs_f64(),
        })
    }

    fn server_and_token(&self) -> Result<(signal::ServerUrl, String)> {
        let s = self.state();
        let c = s.client.as_ref().ok_or(AppError::NotSignedIn)?;
        Ok((c.server.clone(), c.token.clone()))
    }
}

pub(super) fn reason_code(r: EndReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// What to tell the user when a call ends, and whether it is a failure.
pub fn end_message(r: EndReason, peer: &str, outgoing: bool) -> (String, bool) {
    match r {
        EndReason::UserHangup => ("Call ended.".into(), false),
        EndReason::Cancelled if outgoing => ("Call cancelled.".into(), false),
        EndReason::Cancelled => (format!("Missed call from {peer}."), false),
        EndReason::Rejected if outgoing => (format!("{peer} declined the call."), true),
        EndReason::Rejected => ("Call declined.".into(), false),
        EndReason::Busy => (format!("{peer} is in another call."), true),
        EndReason::InviteTimeout if outgoing => (format!("{peer} did not answer."), true),
        EndReason::InviteTimeout => (format!("Missed call from {peer}."), false),
        EndReason::Unavailable => (format!("{peer} is offline."), true),
        EndReason::IceFailed | EndReason::IceTimeout => (
            "Could not connect: no network path to the other side (a firewall or NAT blocks it)."
                .into(),
            true,
        ),
        EndReason::MediaFailed => (
            "The connection was lost: no media arrived for several seconds.".into(),
            true,
        ),
        EndReason::PeerDisconnected => (format!("{peer} went offline; the call ended."), true),
        EndReason::ServerRestart => (
            "The server restarted while the call was ringing.".into(),
            true,
        ),
        EndReason::AnsweredElsewhere => ("Answered on another device.".into(), false),
        EndReason::RejectedElsewhere => ("Declined on another device.".into(), false),
        EndReason::Replaced => (
            "This account signed in on another window; the call moved there.".into(),
            true,
        ),
        _ => ("The call ended.".into(), true),
    }
}

/// One history row as the user reads it.
pub fn history_row(me: &str, r: dyad_proto::http::CallRecord) -> HistoryRow {
    let outgoing = r.caller == me;
    let peer = if outgoing { r.callee } else { r.caller };
    let duration_secs = match (r.answered_at_ms, r.ended_at_ms) {
        (Some(a), Some(e)) => e.saturating_sub(a) as f64 / 1000.0,
        _ => 0.0,
    };
    let reason = r.end_reason.as_deref().unwrap_or("");
    let outcome = if r.ended_at_ms.is_none() {
        Outcome::InProgress
    } else if r.answered_at_ms.is_some() || reason == "answered_elsewhere" {
        Outcome::Answered
    } else {
        match reason {
            "busy" => Outcome::Busy,
            "rejected" | "rejected_elsewhere" => Outcome::Declined,
            "cancelled" | "invite_timeout" if outgoing => Outcome::NoAnswer,
            "cancelled" | "invite_timeout" => Outcome::Missed,
            _ => Outcome::Failed,
        }
    };
    HistoryRow {
        call_id: r.call_id,
        peer,
        outgoing,
        outcome,
        started_at_ms: r.started_at_ms,
        duration_secs,
        summary: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyad_proto::http::CallRecord;

    fn rec(caller: &str, answered: bool, ended: bool, reason: &str) -> CallRecord {
        CallRecord {
            call_id: "c1".into(),
            caller: caller.into(),
            callee: if caller == "ann" { "bob" } else { "ann" }.into(),
            started_at_ms: 1_000,
            answered_at_ms: answered.then_some(2_000),
            ended_at_ms: ended.then_some(12_500),
            end_reason: ended.then(|| reason.to_string()),
            ended_by: None,
            caller_path: None,
            callee_path: None,
            connect_ms: None,
        }
    }

    #[test]
    fn history_outcomes_read_as_people_say_them() {
        let cases = [
            (
                rec("ann", true, true, "user_hangup"),
                Outcome::Answered,
                true,
            ),
            (rec("bob", false, true, "cancelled"), Outcome::Missed, false),
            (
                rec("bob", false, true, "invite_timeout"),
                Outcome::Missed,
                false,
            ),
            (
                rec("ann", false, true, "invite_timeout"),
                Outcome::NoAnswer,
                true,
            ),
            (rec("ann", false, true, "rejected"), Outcome::Declined, true),
            (
                rec("bob", false, true, "rejected"),
                Outcome::Declined,
                false,
            ),
            (rec("ann", false, true, "busy"), Outcome::Busy, true),
            (
                rec("ann", false, true, "unavailable"),
                Outcome::Failed,
                true,
            ),
            (rec("ann", false, true, "ice_failed"), Outcome::Failed, true),
            (rec("ann", false, false, ""), Outcome::InProgress, true),
        ];
        for (r, want, outgoing) in cases {
            let row = history_row("ann", r.clone());
            assert_eq!(row.outcome, want, "{r:?}");
            assert_eq!(row.outgoing, outgoing, "{r:?}");
            assert_ne!(row.peer, "ann");
        }
        assert_eq!(
            history_row("ann", rec("ann", true, true, "user_hangup")).duration_secs,
            10.5
        );
    }

    #[test]
    fn end_messages_name_the_peer_and_flag_failures() {
        let (m, failed) = end_message(EndReason::Busy, "bob", true);
        assert_eq!((m.as_str(), failed), ("bob is in another call.", true));
        let (m, failed) = end_message(EndReason::UserHangup, "bob", true);
        assert_eq!((m.as_str(), failed), ("Call ended.", false));
        assert!(end_message(EndReason::IceFailed, "bob", true).1);
        assert_eq!(reason_code(EndReason::InviteTimeout), "invite_timeout");
    }
}
