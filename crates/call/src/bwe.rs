//! Send-side bandwidth estimation in the style of Google Congestion Control
//! (draft-ietf-rmcat-gcc-02), sans-IO: packets sent, TWCC feedback and receiver reports in
//! (with `now`), a target bitrate out.
//!
//! * Delay-based: packets are grouped into 5 ms send bursts; for consecutive groups the delay
//!   variation d = Δarrival − Δsend feeds a trendline filter (libwebrtc's successor of the
//!   draft's Kalman filter: accumulated delay, smoothed with α = 0.9, least-squares slope over
//!   the last 20 groups, gain 4). An adaptive threshold γ (K_u = 0.01, K_d = 0.00018, 6–600 ms)
//!   turns the trend into overuse (trend > γ for ≥ 10 ms and still rising), underuse
//!   (trend < −γ) or normal.
//! * Rate control (AIMD): overuse → 0.85 × the bitrate the receiver acknowledged; normal →
//!   ×1.08 per second far from the last congestion point, ≈ one packet per response time near it;
//!   underuse → hold. An increase never goes past 1.5 × acknowledged + 10 kbit/s, so an
//!   application-limited sender does not run its estimate away (nor is it pulled down by it).
//! * Loss-based (receiver reports): loss > 10 % → target × (1 − 0.5 × loss); < 2 % → ×1.05;
//!   in between, hold.
//! * Target = min(delay-based, loss-based), clamped to [min, max].
//! * A peer that sends no TWCC feedback (aiortc; transport-cc not negotiated) leaves only
//!   receiver reports: until the first TWCC feedback arrives the target is GCC's loss-based
//!   controller on its own (libwebrtc's `SendSideBandwidthEstimation` without a delay-based
//!   bound): from the start rate, ×1.08 per second + 1 kbit/s/s below 2 % loss, hold to 10 %,
//!   × (1 − 0.5 × loss) above, an increase never past 1.5 × what we actually sent + 10 kbit/s;
//!   the reports' round trip stands in for the delay signal (a round trip 150 ms above the
//!   lowest cuts to 0.85 × what we sent; no increase while it is 50 ms above).
//! * REMB (`goog-remb`), when a peer sends it, caps the target in either mode.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Limits and the starting point.
#[derive(Debug, Clone, Copy)]
pub struct BweConfig {
    /// First target, bit/s.
    pub start_bps: u64,
    /// Never below, bit/s.
    pub min_bps: u64,
    /// Never above, bit/s.
    pub max_bps: u64,
}

impl Default for BweConfig {
    fn default() -> Self {
        Self {
            start_bps: 300_000,
            min_bps: 50_000,
            max_bps: 2_500_000,
        }
    }
}

/// One packet's fate in a TWCC feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number (16 bits, as on the wire).
    pub seq: u16,
    /// Arrival on the receiver's clock, µs; `None` = reported lost.
    pub arrival_us: Option<i64>,
}

/// The delay detector's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthUsage {
    /// Queues stable.
    Normal,
    /// Queues growing: send less.
    Overusing,
    /// Queues draining.
    Underusing,
}

/// Sent packets remembered for feedback.
pub const MAX_HISTORY: usize = 10_000;
const HISTORY_AGE: Duration = Duration::from_secs(2);
const BURST: Duration = Duration::from_millis(5);
const TREND_WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
const K_UP: f64 = 0.01;
const K_DOWN: f64 = 0.000_18;
const OVERUSE_TIME_MS: f64 = 10.0;
const ACK_WINDOW_US: i64 = 500_000;
/// Without TWCC: a round trip this far above the lowest seen is a standing queue (cut).
const QUEUE_CUT: Duration = Duration::from_millis(150);
/// Without TWCC: the estimate climbs only while the round trip is within this of the lowest.
const QUEUE_CALM: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: Instant,
    last_send: Instant,
    last_arrival_us: i64,
    size: usize,
}

/// The estimator.
#[derive(Debug)]
pub struct BandwidthEstimator {
    cfg: BweConfig,
    sent: BTreeMap<u64, (Instant, usize)>,
    highest_sent: Option<u64>,
    // Delay-based.
    current: Option<Group>,
    previous: Option<Group>,
    first_arrival_us: Option<i64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    window: VecDeque<(f64, f64)>,
    num_deltas: u32,
    threshold: f64,
    last_threshold_update: Option<i64>,
    overuse_ms: f64,
    overuse_count: u32,
    last_trend: f64,
    usage: BandwidthUsage,
    // Rate control.
    delay_bps: f64,
    last_update: Instant,
    congestion_point: Option<f64>,
    rtt: Duration,
    // Acknowledged rate.
    acked: VecDeque<(i64, usize)>,
    acked_bps: Option<u64>,
    // Loss-based.
    loss_bps: f64,
    // Without TWCC feedback: the loss-based controller alone, and REMB.
    transport_feedback_seen: bool,
    report_bps: f64,
    last_report: Instant,
    min_rtt: Option<Duration>,
    remb_bps: Option<f64>,
}

impl BandwidthEstimator {
    /// A new estimator at `start_bps`.
    pub fn new(cfg: BweConfig, now: Instant) -> Self {
        let start = cfg.start_bps.clamp(cfg.min_bps, cfg.max_bps) as f64;
        Self {
            cfg,
            sent: BTreeMap::new(),
            highest_sent: None,
            current: None,
            previous: None,
            first_arrival_us: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            window: VecDeque::new(),
            num_deltas: 0,
            threshold: 12.5,
            last_threshold_update: None,
            overuse_ms: 0.0,
            overuse_count: 0,
            last_trend: 0.0,
            usage: BandwidthUsage::Normal,
            delay_bps: start,
            last_update: now,
            congestion_point: None,
            rtt: Duration::from_millis(100),
            acked: VecDeque::new(),
            acked_bps: None,
            loss_bps: cfg.max_bps as f64,
            transport_feedback_seen: false,
            report_bps: start,
            last_report: now,
            min_rtt: None,
            remb_bps: None,
        }
    }

    /// A packet carrying transport-wide sequence number `seq` (unwrapped by the caller) left.
    pub fn on_packet_sent(&mut self, seq: u64, size_bytes: usize, now: Instant) {
        self.sent.insert(seq, (now, size_bytes));
        self.highest_sent = Some(self.highest_sent.map_or(seq, |h| h.max(seq)));
        while self.sent.len() > MAX_HISTORY {
            self.sent.pop_first();
        }
        while let Some((_, (t, _))) = self.sent.first_key_value() {
            if now.saturating_duration_since(*t) > HISTORY_AGE {
                self.sent.pop_first();
            } else {
                break;
            }
        }
    }

    /// Sent packets remembered.
    pub fn history_len(&self) -> usize {
        self.sent.len()
    }

    /// One TWCC feedback.
    pub fn on_transport_feedback(&mut self, results: &[PacketResult], now: Instant) {
        let Some(high) = self.highest_sent else {
            return;
        };
        let mut received: Vec<(u64, Instant, usize, i64)> = results
            .iter()
            .filter_map(|r| {
                let seq = unwrap_seq(Some(high), r.seq);
                let arrival = r.arrival_us?;
                let &(sent, size) = self.sent.get(&seq)?;
                Some((seq, sent, size, arrival))
            })
            .collect();
        received.sort_by_key(|r| r.0);
        if !received.is_empty() {
            self.transport_feedback_seen = true;
        }
        for &(_, sent, size, arrival) in &received {
            self.on_arrival(sent, size, arrival);
        }
        self.update_rate(now);
    }

    fn on_arrival(&mut self, sent: Instant, size: usize, arrival_us: i64) {
        // Acknowledged bitrate over a sliding window of arrival times.
        self.acked.push_back((arrival_us, size));
        while let Some(&(t, _)) = self.acked.front() {
            if arrival_us.saturating_sub(t) > ACK_WINDOW_US || self.acked.len() > 4096 {
                self.acked.pop_front();
            } else {
                break;
            }
        }
        if let (Some(first), Some(last)) = (self.acked.front(), self.acked.back()) {
            let span = last.0.saturating_sub(first.0).max(1) as f64 / 1e6;
            if span >= 0.1 {
                let bytes: usize = self.acked.iter().map(|(_, s)| s).sum();
                self.acked_bps = Some((bytes as f64 * 8.0 / span) as u64);
            }
        }
        match &mut self.current {
            Some(g)
                if sent.saturating_duration_since(g.first_send) < BURST && sent >= g.first_send =>
            {
                g.last_send = g.last_send.max(sent);
                g.last_arrival_us = g.last_arrival_us.max(arrival_us);
                g.size += size;
            }
            _ => {
                let done = self.current.take();
                self.current = Some(Group {
                    first_send: sent,
                    last_send: sent,
                    last_arrival_us: arrival_us,
                    size,
                });
                if let Some(done) = done {
                    if let Some(prev) = self.previous {
                        self.on_group_delta(prev, done);
                    }
                    self.previous = Some(done);
                }
            }
        }
    }

    fn on_group_delta(&mut self, prev: Group, cur: Group) {
        if cur.last_send < prev.last_send {
            return; // reordered groups: skip
        }
        let send_ms = cur
            .last_send
            .saturating_duration_since(prev.last_send)
            .as_secs_f64()
            * 1e3;
        // Saturating: arrival times come from the other side (garbage must not overflow).
        let arrival_ms = cur.last_arrival_us.saturating_sub(prev.last_arrival_us) as f64 / 1e3;
        if !(-1000.0..=1000.0).contains(&arrival_ms) {
            // Clock jump or garbage: start the filter again.
            self.window.clear();
            self.accumulated_ms = 0.0;
            self.smoothed_ms = 0.0;
            return;
        }
        let d = arrival_ms - send_ms;
        self.num_deltas = (self.num_deltas + 1).min(1000);
        self.accumulated_ms += d;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let first = *self.first_arrival_us.get_or_insert(cur.last_arrival_us);
        let t_ms = cur.last_arrival_us.saturating_sub(first) as f64 / 1e3;
        self.window.push_back((t_ms, self.smoothed_ms));
        if self.window.len() > TREND_WINDOW {
            self.window.pop_front();
        }
        let trend = if self.window.len() == TREND_WINDOW {
            slope(&self.window).unwrap_or(0.0)
        } else {
            0.0
        };
        self.detect(trend, send_ms, cur.last_arrival_us);
    }

    fn detect(&mut self, trend: f64, send_delta_ms: f64, now_us: i64) {
        let modified = f64::from(self.num_deltas.min(60)) * trend * TREND_GAIN;
        if modified > self.threshold {
            self.overuse_ms += send_delta_ms.max(1.0);
            self.overuse_count += 1;
            if self.overuse_ms > OVERUSE_TIME_MS
                && self.overuse_count > 1
                && trend >= self.last_trend
            {
                self.overuse_ms = 0.0;
                self.overuse_count = 0;
                self.usage = BandwidthUsage::Overusing;
            }
        } else if modified < -self.threshold {
            self.overuse_ms = 0.0;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Underusing;
        } else {
            self.overuse_ms = 0.0;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Normal;
        }
        self.last_trend = trend;
        // Adaptive threshold (draft §5.4), not moved by outliers.
        let last = self.last_threshold_update.unwrap_or(now_us);
        let dt_ms = (now_us.saturating_sub(last) as f64 / 1e3).clamp(0.0, 100.0);
        if modified.abs() <= self.threshold + 15.0 {
            let k = if modified.abs() < self.threshold {
                K_DOWN
            } else {
                K_UP
            };
            self.threshold += k * (modified.abs() - self.threshold) * dt_ms;
            self.threshold = self.threshold.clamp(6.0, 600.0);
        }
        self.last_threshold_update = Some(now_us);
    }

    fn update_rate(&mut self, now: Instant) {
        let dt = now
            .saturating_duration_since(self.last_update)
            .as_secs_f64()
            .min(1.0);
        self.last_update = now;
        let acked = self.acked_bps.map(|a| a as f64);
        match self.usage {
            BandwidthUsage::Overusing => {
                let base = acked.unwrap_or(self.delay_bps).min(self.delay_bps);
                self.congestion_point = Some(base);
                self.delay_bps = 0.85 * base;
                // One decrease per overuse episode.
                self.usage = BandwidthUsage::Normal;
                self.overuse_ms = 0.0;
                self.last_update = now + self.rtt;
            }
            BandwidthUsage::Underusing => {}
            BandwidthUsage::Normal => {
                let before = self.delay_bps;
                let near = self
                    .congestion_point
                    .is_some_and(|p| (self.delay_bps - p).abs() < 0.15 * p);
                if near {
                    let response = self.rtt.as_secs_f64() + 0.1;
                    let packet_bits = 1200.0 * 8.0;
                    self.delay_bps += (packet_bits * dt / response).max(1000.0 * dt);
                } else {
                    self.delay_bps *= 1.08f64.powf(dt);
                }
                // The acknowledged rate limits how far an increase may go; it never pulls an
                // estimate down by itself (an encoder that undershoots on easy content is not
                // congestion).
                if let Some(a) = acked {
                    self.delay_bps = self.delay_bps.min((1.5 * a + 10_000.0).max(before));
                }
            }
        }
        self.delay_bps = self
            .delay_bps
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }

    /// An RTCP receiver report about our video: `fraction_lost` is Q8.
    pub fn on_receiver_report(&mut self, fraction_lost: u8, rtt: Option<Duration>, now: Instant) {
        if let Some(rtt) = rtt {
            self.rtt = rtt.min(Duration::from_secs(5));
        }
        let loss = f64::from(fraction_lost) / 256.0;
        self.on_report_without_twcc(loss, rtt, now);
        if loss > 0.10 {
            self.loss_bps = self.target_bps() as f64 * (1.0 - 0.5 * loss);
        } else if loss < 0.02 {
            self.loss_bps = (self.loss_bps * 1.05).max(self.delay_bps);
        }
        self.loss_bps = self
            .loss_bps
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }

    /// The loss-based controller that runs alone while no TWCC feedback has arrived, with the
    /// report's round trip as its delay signal: a deep router buffer fills long before it
    /// drops (a second at 2 Mbit/s), so loss alone would leave a standing queue of a second and
    /// a frozen picture. RTT above the call's lowest by more than [`QUEUE_CUT`] means a
    /// standing queue: back to 0.85 × what we sent; no increase while it is above
    /// [`QUEUE_CALM`].
    fn on_report_without_twcc(&mut self, loss: f64, rtt: Option<Duration>, now: Instant) {
        let dt = now
            .saturating_duration_since(self.last_report)
            .as_secs_f64()
            .min(1.0);
        self.last_report = now;
        let queue = rtt.map(|r| {
            let min = *self.min_rtt.get_or_insert(r);
            self.min_rtt = Some(min.min(r));
            r.saturating_sub(min)
        });
        if loss > 0.10 {
            self.report_bps *= 1.0 - 0.5 * loss;
        } else if queue.is_some_and(|q| q > QUEUE_CUT) {
            self.report_bps = self.report_bps.min(0.85 * self.sent_bps(now));
        } else if loss < 0.02 && queue.is_none_or(|q| q <= QUEUE_CALM) {
            let before = self.report_bps;
            self.report_bps = self.report_bps * 1.08f64.powf(dt) + 1000.0 * dt;
            // What we really sent bounds how far an increase may go (an encoder that
            // undershoots on easy content must not run the estimate away to the ceiling).
            let sent = self.sent_bps(now);
            self.report_bps = self.report_bps.min((1.5 * sent + 10_000.0).max(before));
        }
        self.report_bps = self
            .report_bps
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }

    /// What left over the last second, bit/s.
    fn sent_bps(&self, now: Instant) -> f64 {
        let bytes: usize = self
            .sent
            .values()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) <= Duration::from_secs(1))
            .map(|(_, size)| size)
            .sum();
        bytes as f64 * 8.0
    }

    /// A REMB from the peer (its receive-side estimate of what it can take), bit/s.
    pub fn on_remb(&mut self, bps: u64) {
        self.remb_bps = Some(bps as f64);
    }

    /// Whether the peer's TWCC feedback drives the estimate (else receiver reports alone).
    pub fn uses_transport_feedback(&self) -> bool {
        self.transport_feedback_seen
    }

    /// Changes the ceiling (e.g. the cap for the current resolution).
    pub fn set_max(&mut self, max_bps: u64) {
        self.cfg.max_bps = max_bps.max(self.cfg.min_bps);
        self.delay_bps = self.delay_bps.min(self.cfg.max_bps as f64);
        self.loss_bps = self.loss_bps.min(self.cfg.max_bps as f64);
        self.report_bps = self.report_bps.min(self.cfg.max_bps as f64);
    }

    /// What to send now, bit/s.
    pub fn target_bps(&self) -> u64 {
        let base = if self.transport_feedback_seen {
            self.delay_bps.min(self.loss_bps)
        } else {
            self.report_bps
        };
        let capped = self.remb_bps.map_or(base, |r| base.min(r));
        (capped as u64).clamp(self.cfg.min_bps, self.cfg.max_bps)
    }

    /// The delay-based bound.
    pub fn delay_based_bps(&self) -> u64 {
        self.delay_bps as u64
    }

    /// The loss-based bound.
    pub fn loss_based_bps(&self) -> u64 {
        self.loss_bps as u64
    }

    /// What the receiver acknowledged over the last 0.5 s.
    pub fn acknowledged_bps(&self) -> Option<u64> {
        self.acked_bps
    }

    /// The delay detector's state.
    pub fn usage(&self) -> BandwidthUsage {
        self.usage
    }
}

fn slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// A 16-bit sequence number unwrapped next to `last` (the nearest candidate).
pub fn unwrap_seq(last: Option<u64>, seq16: u16) -> u64 {
    let Some(last) = last else {
        return u64::from(seq16);
    };
    let cycle = last & !0xffff;
    [
        cycle.checked_sub(1 << 16),
        Some(cycle),
        Some(cycle + (1 << 16)),
    ]
    .into_iter()
    .flatten()
    .map(|c| c | u64::from(seq16))
    .min_by_key(|c| c.abs_diff(last))
    .unwrap_or(u64::from(seq16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_reported_loss_halves_the_target_and_light_loss_lets_it_grow() {
        let t0 = Instant::now();
        let mut b = BandwidthEstimator::new(
            BweConfig {
                start_bps: 1_000_000,
                ..BweConfig::default()
            },
            t0,
        );
        let rtt = Some(Duration::from_millis(40));
        let start = b.target_bps();
        // 20 % (51/256) in ten receiver reports a second apart: ×0.9 each.
        for i in 1..=10 {
            b.on_receiver_report(51, rtt, t0 + Duration::from_secs(i));
        }
        let cut = b.target_bps();
        assert!(cut * 2 <= start, "20 % loss: {start} -> {cut}");
        // 5 % holds; under 2 % the loss bound grows again (and then the delay bound rules).
        b.on_receiver_report(13, rtt, t0 + Duration::from_secs(11));
        assert_eq!(b.target_bps(), cut, "5 % holds");
        b.on_receiver_report(2, rtt, t0 + Duration::from_secs(12));
        assert!(b.loss_based_bps() > cut);
    }

    #[test]
    fn remb_caps_the_target_with_or_without_transport_feedback() {
        let t0 = Instant::now();
        let mut b = BandwidthEstimator::new(BweConfig::default(), t0);
        assert!(!b.uses_transport_feedback());
        b.on_remb(120_000);
        assert_eq!(b.target_bps(), 120_000);
        b.on_remb(10_000_000);
        assert_eq!(
            b.target_bps(),
            300_000,
            "a high REMB is a cap, not a target"
        );
        b.on_packet_sent(1, 1200, t0);
        b.on_transport_feedback(
            &[PacketResult {
                seq: 1,
                arrival_us: Some(1000),
            }],
            t0 + Duration::from_millis(30),
        );
        assert!(b.uses_transport_feedback());
        b.on_remb(90_000);
        assert_eq!(b.target_bps(), 90_000);
    }

    #[test]
    fn without_transport_feedback_a_growing_round_trip_cuts_and_a_calm_one_climbs() {
        let t0 = Instant::now();
        let mut b = BandwidthEstimator::new(BweConfig::default(), t0);
        let ms = Duration::from_millis;
        // 400 kbit/s actually sent, reports a second apart with no loss at a 40 ms round trip.
        let mut seq = 0;
        let mut send = |b: &mut BandwidthEstimator, from: u64| {
            for i in 0..40 {
                seq += 1;
                b.on_packet_sent(seq, 1250, t0 + ms(from * 1000 + i * 25));
            }
        };
        for s in 1..=5 {
            send(&mut b, s - 1);
            b.on_receiver_report(0, Some(ms(40)), t0 + Duration::from_secs(s));
        }
        let climbed = b.target_bps();
        assert!(climbed > 400_000, "{climbed}");
        // The round trip grows by 300 ms: a standing queue. Back under what we sent.
        send(&mut b, 5);
        b.on_receiver_report(0, Some(ms(340)), t0 + Duration::from_secs(6));
        assert!(b.target_bps() <= 340_000, "{}", b.target_bps());
        // 100 ms above the lowest: hold; back at 40 ms: climb again.
        let held = b.target_bps();
        send(&mut b, 6);
        b.on_receiver_report(0, Some(ms(140)), t0 + Duration::from_secs(7));
        assert_eq!(b.target_bps(), held);
        send(&mut b, 7);
        b.on_receiver_report(0, Some(ms(40)), t0 + Duration::from_secs(8));
        assert!(b.target_bps() > held);
    }

    #[test]
    fn unwraps_sequence_numbers() {
        assert_eq!(unwrap_seq(None, 7), 7);
        assert_eq!(unwrap_seq(Some(65_535), 0), 65_536);
        assert_eq!(unwrap_seq(Some(65_536), 65_535), 65_535);
        assert_eq!(unwrap_seq(Some(3 * 65_536 + 10), 5), 3 * 65_536 + 5);
        assert_eq!(unwrap_seq(Some(5), 65_530), 65_530, "no negative cycle");
    }

    #[test]
    fn garbage_feedback_is_harmless_and_history_is_bounded() {
        let t0 = Instant::now();
        let mut b = BandwidthEstimator::new(BweConfig::default(), t0);
        b.on_transport_feedback(
            &[PacketResult {
                seq: 1,
                arrival_us: Some(5),
            }],
            t0,
        );
        for i in 0..20_000u64 {
            b.on_packet_sent(i, 1200, t0 + Duration::from_micros(i * 50));
        }
        assert!(b.history_len() <= MAX_HISTORY);
        let before = b.target_bps();
        let junk: Vec<PacketResult> = (0..500u16)
            .map(|i| PacketResult {
                seq: i.wrapping_mul(7919),
                arrival_us: Some(match i % 4 {
                    0 => -1_000_000_000,
                    1 => i64::MAX - i64::from(i),
                    2 => i64::MIN + i64::from(i),
                    _ => i64::from(i) * 1_000_000,
                }),
            })
            .collect();
        b.on_transport_feedback(&junk, t0 + Duration::from_secs(1));
        let after = b.target_bps();
        assert!(after as f64 >= before as f64 * 0.5 && after as f64 <= before as f64 * 2.0);
    }
}
