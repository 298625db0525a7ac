//! What the embedded TURN server may relay to, and how many relays one account may hold.
//!
//! webrtc-rs's `turn` server has no permission hook, so the guard sits in the two sockets it hands
//! that server: the relay sockets ([`GuardedRelay`]: datagrams to or from a refused peer are
//! dropped, in both directions) and the listening socket ([`GuardedListener`]: an authenticated
//! Allocate from an account that already holds its quota is answered 486 "Allocation Quota
//! Reached" before the server sees it). The decisions are plain functions of the guard's tables
//! ([`PeerPolicy::permits`], [`Allocations`]), tested without sockets.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ipnet::IpNet;
use stun::attributes::{ATTR_REALM, ATTR_USERNAME};
use stun::error_code::{ErrorCodeAttribute, CODE_ALLOC_QUOTA_REACHED};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Setter, CLASS_ERROR_RESPONSE, METHOD_ALLOCATE};
use stun::textattrs::TextAttribute;
use webrtc_util::Conn;

use crate::turn::UnixClock;

/// The first two bytes of an Allocate request and of its success response (RFC 5389 §6).
pub(crate) const ALLOCATE_REQUEST: [u8; 2] = [0x00, 0x03];
const ALLOCATE_SUCCESS: [u8; 2] = [0x01, 0x03];

/// Whether an address is one nobody on the internet should reach through our relay: this host,
/// private and shared (carrier-grade NAT) networks, link-local (which holds cloud metadata
/// services at 169.254.169.254), multicast, broadcast and reserved ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            let last32 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
            // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d) reach
            // the IPv4 address in their last 32 bits; 6to4 (2002::/16) carries one after 2002.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[..6] == [0; 6] && !v6.is_loopback()) {
                return is_internal_v4(last32);
            }
            if s[0] == 0x2002 {
                return is_internal_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
            }
            // Local-use NAT64 (64:ff9b:1::/48, RFC 8215) translates into a site's own network.
            if s[..3] == [0x64, 0xff9b, 1] {
                return true;
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_unspecified()
        || o[0] == 0 // "this network"
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space, 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments, 192.0.0.0/24
        || o[0] >= 240 // reserved
}

/// Which peers the relay serves.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Networks relayed to although they are internal (e.g. `127.0.0.0/8` for a test on one host,
    /// or an office network the server is meant to bridge into).
    pub allow: Vec<IpNet>,
    /// The server's own addresses: refused as peers unless the port is one of our own live relays
    /// (two people relayed through the same server reach each other's relay).
    pub own: Vec<IpAddr>,
}

impl PeerPolicy {
    /// Whether a datagram may go to, or come from, `peer`; `relay_ports` are the live relays'.
    pub fn permits(&self, peer: SocketAddr, relay_ports: &HashSet<u16>) -> bool {
        let ip = canonical(peer.ip());
        let own = self.own.iter().any(|o| canonical(*o) == ip);
        if own && relay_ports.contains(&peer.port()) {
            return true;
        }
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        !own && !is_internal(ip)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Live allocations per account: confirmed ones (the server answered success) and the one each
/// client address is asking for.
#[derive(Debug, Default)]
pub struct Allocations {
    held: HashMap<String, HashSet<SocketAddr>>,
    asking: HashMap<SocketAddr, String>,
}

impl Allocations {
    /// Whether `user` may get one more allocation for `client` within `quota`; if so, the request
    /// is remembered until the server answers it. A client that already holds one (a
    /// retransmission, or the server's own "allocation exists" answer) is let through.
    pub fn ask(&mut self, user: &str, client: SocketAddr, quota: usize) -> bool {
        let held = self.held.get(user);
        if held.is_some_and(|h| h.contains(&client)) {
            return true;
        }
        if held.map_or(0, HashSet::len) >= quota {
            return false;
        }
        if self.asking.len() >= 65_536 && !self.asking.contains_key(&client) {
            // Bounded: unanswered requests (bad credentials never get a success) are forgotten.
            self.asking.clear();
        }
        self.asking.insert(client, user.to_string());
        true
    }

    /// The server answered `client`'s Allocate with success.
    pub fn granted(&mut self, client: SocketAddr) {
        if let Some(user) = self.asking.remove(&client) {
            self.held.entry(user).or_default().insert(client);
        }
    }

    /// The allocation of `client` ended (expired, refreshed to zero, or the server closed).
    pub fn ended(&mut self, user: &str, client: SocketAddr) {
        if let Some(h) = self.held.get_mut(user) {
            h.remove(&client);
            if h.is_empty() {
                self.held.remove(user);
            }
        }
    }

    /// How many allocations `user` holds.
    pub fn held(&self, user: &str) -> usize {
        self.held.get(user).map_or(0, HashSet::len)
    }
}

/// The account in a REST username `"<expiry>:<user>"`; the whole name if it has no expiry.
pub fn rest_user(rest_username: &str) -> &str {
    rest_username
        .split_once(':')
        .map_or(rest_username, |(_, user)| user)
}

/// What the guard shares between the listener and the relays.
pub(crate) struct Guard {
    pub(crate) policy: PeerPolicy,
    pub(crate) quota: usize,
    pub(crate) realm: String,
    pub(crate) secret: Vec<u8>,
    pub(crate) now: UnixClock,
    relay_ports: Mutex<HashSet<u16>>,
    allocations: Mutex<Allocations>,
    refused_peer_datagrams: AtomicU64,
    refused_allocations: AtomicU64,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(crate) fn new(
        policy: PeerPolicy,
        quota: usize,
        realm: String,
        secret: Vec<u8>,
        now: UnixClock,
    ) -> Self {
        Guard {
            policy,
            quota,
            realm,
            secret,
            now,
            relay_ports: Mutex::new(HashSet::new()),
            allocations: Mutex::new(Allocations::default()),
            refused_peer_datagrams: AtomicU64::new(0),
            refused_allocations: AtomicU64::new(0),
        }
    }

    pub(crate) fn permits(&self, peer: SocketAddr) -> bool {
        let ports = self
            .relay_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ok = self.policy.permits(peer, &ports);
        if !ok {
            self.refused_peer_datagrams.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub(crate) fn allocations(&self) -> std::sync::MutexGuard<'_, Allocations> {
        self.allocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn relay_opened(&self, port: u16) {
        self.relay_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port);
    }

    fn relay_closed(&self, port: u16) {
        self.relay_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port);
    }

    pub(crate) fn allocation_ended(&self, rest_username: &str, client: SocketAddr) {
        self.allocations().ended(rest_user(rest_username), client);
    }

    /// Counters: datagrams dropped for their peer address, Allocate requests refused for quota.
    pub(crate) fn refused(&self) -> (u64, u64) {
        (
            self.refused_peer_datagrams.load(Ordering::Relaxed),
            self.refused_allocations.load(Ordering::Relaxed),
        )
    }

    /// For an Allocate request from `client`: `None` lets the server handle it, `Some(answer)` is
    /// the 486 to send instead. Only requests whose credentials check out are counted, so nobody
    /// can use up another account's quota by naming it.
    pub(crate) fn judge_allocate(&self, datagram: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
        let mut m = Message::new();
        m.unmarshal_binary(datagram).ok()?;
        let rest_username = TextAttribute::get_from_as(&m, ATTR_USERNAME).ok()?.text;
        let realm = TextAttribute::get_from_as(&m, ATTR_REALM)
            .map(|r| r.text)
            .unwrap_or_else(|_| self.realm.clone());
        let expiry: u64 = rest_username.split_once(':')?.0.parse().ok()?;
        if (self.now)() >= expiry {
            return None;
        }
        let password = crate::turn::sign(&self.secret, &rest_username);
        let integrity =
            MessageIntegrity::new_long_term_integrity(rest_username.clone(), realm, password);
        integrity.check(&mut m).ok()?;
        let user = rest_user(&rest_username);
        if self.allocations().ask(user, client, self.quota) {
            return None;
        }
        self.refused_allocations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(user, %client, quota = self.quota, "TURN allocation quota reached");
        let mut answer = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(Message {
                transaction_id: m.transaction_id,
                ..Default::default()
            }),
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code: CODE_ALLOC_QUOTA_REACHED,
                reason: b"Allocation Quota Reached".to_vec(),
            }),
            Box::new(integrity),
            Box::new(stun::fingerprint::FINGERPRINT),
        ];
        answer.build(&setters).ok()?;
        Some(answer.raw)
    }
}

/// The TURN server's listening socket, with the allocation quota in front of it.
pub(crate) struct GuardedListener {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    pub(crate) guard: Arc<Guard>,
}

#[async_trait]
impl Conn for GuardedListener {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await?;
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            let datagram = &buf[..n];
            if datagram.starts_with(&ALLOCATE_REQUEST) {
                if let Some(answer) = self.guard.judge_allocate(datagram, from) {
                    if let Err(e) = self.inner.send_to(&answer, from).await {
                        tracing::debug!(%from, "TURN quota answer not sent: {e}");
                    }
                    continue;
                }
            }
            return Ok((n, from));
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.inner.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if buf.starts_with(&ALLOCATE_SUCCESS) {
            self.guard.allocations().granted(target);
        }
        Ok(self.inner.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // Each allocation "closes" the shared listening socket when it ends; a UDP socket has
        // nothing to close, and the server keeps listening.
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// One allocation's relay socket: datagrams to or from a peer the policy refuses are dropped, as a
/// firewall would.
pub(crate) struct GuardedRelay {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    pub(crate) port: u16,
    pub(crate) guard: Arc<Guard>,
}

#[async_trait]
impl Conn for GuardedRelay {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            if self.guard.permits(from) {
                return Ok((n, from));
            }
            tracing::debug!(%from, "TURN: datagram from a refused peer dropped");
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        match self.inner.remote_addr() {
            Some(to) if !self.guard.permits(to) => Ok(buf.len()),
            _ => self.inner.send(buf).await,
        }
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.guard.permits(target) {
            tracing::debug!(%target, "TURN: datagram to a refused peer dropped");
            return Ok(buf.len());
        }
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.guard.relay_closed(self.port);
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

impl Drop for GuardedRelay {
    fn drop(&mut self) {
        self.guard.relay_closed(self.port);
    }
}

/// Hands the TURN server guarded relay sockets bound on one address, advertised on another.
pub(crate) struct GuardedRelayGenerator {
    pub(crate) relay_address: IpAddr,
    pub(crate) bind: IpAddr,
    pub(crate) net: Arc<webrtc_util::vnet::net::Net>,
    pub(crate) guard: Arc<Guard>,
}

#[async_trait]
impl turn::relay::RelayAddressGenerator for GuardedRelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let addr = self
            .net
            .resolve_addr(use_ipv4, &format!("{}:{requested_port}", self.bind))
            .await?;
        let conn = self.net.bind(addr).await?;
        let local = conn.local_addr()?;
        self.guard.relay_opened(local.port());
        let relay = GuardedRelay {
            inner: conn,
            port: local.port(),
            guard: self.guard.clone(),
        };
        Ok((
            Arc::new(relay),
            SocketAddr::new(self.relay_address, local.port()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_relayed() {
        for internal in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.251",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.170",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc12::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "::7f00:1",
            "2002:c0a8:101::1",
        ] {
            assert!(is_internal(ip(internal)), "{internal} is internal");
        }
        for public in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.2.7",
            "198.18.0.5",
            "203.0.113.9",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.4.4",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_servers_own_address_is_refused_except_its_live_relays() {
        let policy = PeerPolicy {
            allow: Vec::new(),
            own: vec![ip("198.51.100.7")],
        };
        let live: HashSet<u16> = [50_000].into_iter().collect();
        assert!(policy.permits("198.51.100.7:50000".parse().expect("a"), &live));
        assert!(
            !policy.permits("198.51.100.7:8443".parse().expect("a"), &live),
            "the server's signalling port is not a peer"
        );
        assert!(
            !policy.permits("[::ffff:198.51.100.7]:22".parse().expect("a"), &live),
            "nor in its mapped form"
        );
        assert!(policy.permits("203.0.113.1:9".parse().expect("a"), &live));
        assert!(!policy.permits("127.0.0.1:50000".parse().expect("a"), &live));
    }

    #[test]
    fn configured_networks_are_relayed_although_internal() {
        let policy = PeerPolicy {
            allow: vec![
                "127.0.0.0/8".parse().expect("net"),
                "fd00::/8".parse().expect("net"),
            ],
            own: Vec::new(),
        };
        let none = HashSet::new();
        assert!(policy.permits("127.0.0.1:4000".parse().expect("a"), &none));
        assert!(policy.permits("[fd00::5]:4000".parse().expect("a"), &none));
        assert!(!policy.permits("10.0.0.1:4000".parse().expect("a"), &none));
        assert!(!policy.permits("[fe80::1]:4000".parse().expect("a"), &none));
    }

    #[test]
    fn the_quota_counts_granted_allocations_per_account() {
        let mut a = Allocations::default();
        let c = |p: u16| SocketAddr::from(([203, 0, 113, 1], p));
        assert!(a.ask("alice", c(1), 2));
        a.granted(c(1));
        assert!(a.ask("alice", c(1), 2), "a retransmission is let through");
        assert!(a.ask("alice", c(2), 2));
        a.granted(c(2));
        assert_eq!(a.held("alice"), 2);
        assert!(!a.ask("alice", c(3), 2), "a third is refused");
        assert!(a.ask("bobby", c(3), 2), "another account is not affected");
        a.ended("alice", c(1));
        assert!(a.ask("alice", c(3), 2), "room again once one ended");
        // Requests that were never granted (bad credentials) hold nothing.
        assert!(a.ask("carol", c(4), 1));
        assert!(a.ask("carol", c(5), 1));
        assert_eq!(a.held("carol"), 0);
    }

    #[test]
    fn the_user_is_read_from_a_rest_username() {
        assert_eq!(rest_user("1795000000:alice"), "alice");
        assert_eq!(rest_user("alice"), "alice");
    }
}
