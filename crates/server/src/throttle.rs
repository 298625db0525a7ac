//! Throttling of password attempts (`POST /v1/login`, `POST /v1/register`), sans-IO: every call
//! takes `now`. Each attempt costs an argon2 hash (19 MiB, tens of ms), so unthrottled attempts
//! are both unlimited password guessing and a cheap denial of service.
//!
//! Two token buckets must both allow an attempt: one per source address (an IPv6 /64 counts as
//! one address, as for admission) and, for logins, one per account. The per-account bucket stops
//! guessing from many addresses; its price is that someone can slow a victim's own logins for
//! the bucket's refill time, which is why it refills in seconds, not hours. The maps are bounded:
//! past [`MAX_KEYS`] entries the stalest is forgotten.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most sources (or accounts) remembered at once.
pub const MAX_KEYS: usize = 65_536;

/// How fast attempts may come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Attempts per minute from one source address, sustained.
    pub per_address_per_min: f64,
    /// Attempts at once from one source address.
    pub per_address_burst: f64,
    /// Login attempts per minute for one account, sustained.
    pub per_account_per_min: f64,
    /// Login attempts at once for one account.
    pub per_account_burst: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_address_per_min: 30.0,
            per_address_burst: 30.0,
            per_account_per_min: 10.0,
            per_account_burst: 10.0,
        }
    }
}

#[derive(Debug)]
struct Buckets<K> {
    rate_per_sec: f64,
    burst: f64,
    map: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(per_min: f64, burst: f64) -> Self {
        Self {
            rate_per_sec: per_min.max(0.001) / 60.0,
            burst: burst.max(1.0),
            map: HashMap::new(),
        }
    }

    /// Tokens `key` has at `now`.
    fn tokens(&self, key: &K, now: Instant) -> f64 {
        self.map.get(key).map_or(self.burst, |&(t, at)| {
            (t + now.saturating_duration_since(at).as_secs_f64() * self.rate_per_sec)
                .min(self.burst)
        })
    }

    /// How long until `key` may try again (zero: now).
    fn wait(&self, key: &K, now: Instant) -> Duration {
        let missing = 1.0 - self.tokens(key, now);
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate_per_sec)
        }
    }

    fn take(&mut self, key: &K, now: Instant) {
        let left = self.tokens(key, now) - 1.0;
        if !self.map.contains_key(key) && self.map.len() >= MAX_KEYS {
            let stalest = self
                .map
                .iter()
                .min_by_key(|(_, &(_, at))| at)
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.map.remove(&k);
            }
        }
        self.map.insert(key.clone(), (left, now));
    }
}

/// The throttle (one per server).
#[derive(Debug)]
pub struct Throttle {
    per_address: Buckets<IpAddr>,
    per_account: Buckets<String>,
}

impl Throttle {
    /// A throttle with these rates.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            per_address: Buckets::new(cfg.per_address_per_min, cfg.per_address_burst),
            per_account: Buckets::new(cfg.per_account_per_min, cfg.per_account_burst),
        }
    }

    /// One attempt from `source` (when known; see [`crate::accept::source_key`]) for `account`
    /// (logins), at `now`: allowed and counted, or refused with how long to wait.
    pub fn attempt(
        &mut self,
        source: Option<IpAddr>,
        account: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let source = source.map(crate::accept::source_key);
        let account = account.map(str::to_ascii_lowercase);
        let wait = source
            .map_or(Duration::ZERO, |s| self.per_address.wait(&s, now))
            .max(
                account
                    .as_ref()
                    .map_or(Duration::ZERO, |a| self.per_account.wait(a, now)),
            );
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(s) = source {
            self.per_address.take(&s, now);
        }
        if let Some(a) = account {
            self.per_account.take(&a, now);
        }
        Ok(())
    }

    /// Sources remembered (for tests of the bound).
    pub fn sources(&self) -> usize {
        self.per_address.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn the_burst_then_the_rate_and_the_wait_is_exact() {
        let cfg = ThrottleConfig {
            per_address_per_min: 60.0,
            per_address_burst: 3.0,
            per_account_per_min: 6.0,
            per_account_burst: 2.0,
        };
        let mut t = Throttle::new(cfg);
        let t0 = Instant::now();
        // The account's burst of 2 ends first; it then waits 10 s (6 a minute).
        assert!(t.attempt(ip("192.0.2.1"), Some("alice"), t0).is_ok());
        assert!(
            t.attempt(ip("192.0.2.2"), Some("ALICE"), t0).is_ok(),
            "case folded"
        );
        let wait = t
            .attempt(ip("192.0.2.3"), Some("alice"), t0)
            .expect_err("account spent");
        assert_eq!(wait, Duration::from_secs(10));
        assert!(t.attempt(ip("192.0.2.3"), Some("alice"), t0 + wait).is_ok());
        // The address's burst of 3 (one already used by alice above): 2 more, then 1 s.
        assert!(t.attempt(ip("192.0.2.1"), Some("bob"), t0).is_ok());
        assert!(t.attempt(ip("192.0.2.1"), Some("carol"), t0).is_ok());
        let wait = t
            .attempt(ip("192.0.2.1"), Some("dave"), t0)
            .expect_err("address spent");
        assert_eq!(wait, Duration::from_secs(1));
        // A refused attempt costs nothing: after the wait it goes through.
        assert!(t.attempt(ip("192.0.2.1"), Some("dave"), t0 + wait).is_ok());
        // One /64 is one address.
        let mut t = Throttle::new(cfg);
        for i in 0..3 {
            let a = format!("2001:db8::{i}");
            assert!(t.attempt(ip(&a), None, t0).is_ok());
        }
        assert!(t.attempt(ip("2001:db8::ffff"), None, t0).is_err());
    }

    #[test]
    fn the_maps_are_bounded() {
        let mut t = Throttle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 10) {
            let a = IpAddr::from(i.to_be_bytes());
            assert!(t
                .attempt(Some(a), None, t0 + Duration::from_micros(u64::from(i)))
                .is_ok());
        }
        assert_eq!(t.sources(), MAX_KEYS);
    }
}
