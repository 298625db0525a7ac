//! The accept loop under the HTTP application: TCP options, limits on connections that have not
//! authenticated, HTTP/1 with a deadline for the request head, and a graceful stop.
//!
//! Instead of `axum::serve`, which sets no timer: a client trickling a byte a second could hold a
//! socket (and its descriptor) for ever, and a few thousand such clients starved honest logins.
//! A connection counts as unauthenticated from its accept until its WebSocket upgrade is
//! authenticated ([`Admission::authenticated`]); plain HTTP requests (login, register, history)
//! stay counted for their short lives. Over the limit in total or from one source address, a new
//! connection is closed at once, before anything is read from it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

/// Limits on connections that have not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// In total.
    pub total: usize,
    /// From one source address.
    pub per_address: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            total: 1024,
            per_address: 256,
        }
    }
}

/// The count of unauthenticated connections, in total and per source address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Shared by the accept loop and every connection's [`Admission`].
#[derive(Debug, Default)]
pub struct Admissions {
    limits: AdmissionLimits,
    counts: Mutex<Counts>,
}

impl Admissions {
    /// Admissions under these limits.
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counting only: a panic elsewhere cannot leave the counts half-updated.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, or `None` when that would pass a limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Arc<Admission>> {
        let ip = source_key(ip);
        let mut counts = self.lock();
        let from_ip = counts.per_address.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.limits.total || from_ip >= self.limits.per_address {
            return None;
        }
        counts.total += 1;
        counts.per_address.insert(ip, from_ip + 1);
        Some(Arc::new(Admission {
            admissions: self.clone(),
            ip,
            counted: AtomicBool::new(true),
        }))
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&ip);
            }
        }
    }
}

/// Whose budget a connection from `ip` counts against: an IPv6 address by its /64 (a single
/// host is routinely given a whole /64, so counting each address would give one attacker 2^64
/// budgets), an IPv4-mapped IPv6 address as its IPv4 address, an IPv4 address as itself.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// One admitted connection; handlers find it in the request's extensions.
#[derive(Debug)]
pub struct Admission {
    admissions: Arc<Admissions>,
    ip: IpAddr,
    counted: AtomicBool,
}

impl Admission {
    /// Whose budget the connection counts against ([`source_key`] of its peer address).
    pub fn source(&self) -> IpAddr {
        self.ip
    }

    /// The connection authenticated (its WebSocket upgrade passed the token check): it no
    /// longer counts against the limits.
    pub fn authenticated(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.admissions.release(self.ip);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.authenticated();
    }
}

/// How a connection is served.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For each request head (the first one from the accept, later ones from the previous
    /// response: an idle keep-alive connection ends too).
    pub head: Duration,
}

/// Serves `app` on every connection `listener` gives until `stop` flips, then lets the open
/// connections finish (WebSocket tasks see the same signal and close theirs).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    admissions: Arc<Admissions>,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let (done_tx, done_rx) = watch::channel(());
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            _ = stop.changed() => break,
        };
        let Some(admission) = admissions.admit(peer.ip()) else {
            tracing::debug!("{peer}: too many unauthenticated connections, closed");
            continue;
        };
        let app = app.clone();
        let mut stop = stop.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let service = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(admission.clone());
                req.map(axum::body::Body::new)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.head);
            let conn = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!("{peer}: {e}");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
        });
    }
    drop(done_rx);
    // Every connection task holds a receiver: `closed` completes when the last one ends. A
    // request still trickling in is not waited for past a few seconds.
    let _ = tokio::time::timeout(Duration::from_secs(5), done_tx.closed()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_its_ipv4() {
        let a = Admissions::new(AdmissionLimits {
            total: 100,
            per_address: 2,
        });
        // Two addresses of one /64 share its budget; a third from it is refused.
        let one = a.admit(ip("2001:db8:1:2::1")).expect("first");
        let two = a.admit(ip("2001:db8:1:2:ffff::7")).expect("second");
        assert!(a.admit(ip("2001:db8:1:2:abcd::1")).is_none(), "same /64");
        // The next /64 has its own.
        assert!(a.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
        // ::ffff:192.0.2.1 is 192.0.2.1.
        let _v4 = a.admit(ip("192.0.2.1")).expect("v4");
        let _mapped = a.admit(ip("::ffff:192.0.2.1")).expect("mapped");
        assert!(
            a.admit(ip("192.0.2.1")).is_none(),
            "mapped counted as the v4 address"
        );
        // A released connection gives its place back.
        one.authenticated();
        assert!(a.admit(ip("2001:db8:1:2::99")).is_some());
        drop(two);
    }
}
