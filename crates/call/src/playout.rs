//! The audio jitter buffer: received Opus packets in, one playout decision per 20 ms out.
//!
//! Packets arrive unevenly; the speaker plays evenly. The buffer holds packets for a target
//! delay taken from the measured arrival jitter (the 95th percentile of each packet's delay over
//! the least delayed one, over the last second, plus a small margin), low on a calm link, up at
//! once when a jitter burst raises it and down slowly (10 ms per second) after. Every 20 ms
//! [`AudioPlayout::pull`] says what to play:
//! - the next packet ([`PlayoutAction::Decode`]);
//! - for a lost one, Opus's in-band FEC from the packet after it ([`PlayoutAction::Fec`]) or
//!   its packet loss concealment ([`PlayoutAction::Conceal`]);
//! - on an underrun, concealment while the late packet is waited for (the delay grows by what
//!   the burst needed: that is how the buffer follows a burst it did not foresee);
//! - to move the delay toward the target without a glitch: drop one frame when the buffer has
//!   run long (acceleration, a small DTX/silence packet first), or play one concealment frame
//!   between two packets when it runs short (deceleration).
//!
//! Sans-IO: arrival and pull times are inputs. Statistics use the W3C names (`jitterBufferDelay`,
//! `concealedSamples`, `insertedSamplesForDeceleration`, `removedSamplesForAcceleration`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One Opus frame.
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples per channel in one frame at 48 kHz.
pub const FRAME_SAMPLES: u64 = 960;
/// Margin above the measured jitter, and the least target on a link that loses nothing.
const MARGIN: Duration = Duration::from_millis(10);
/// The least target while packets are being lost: one frame more, so that the packet after a
/// lost one is usually here in time for its in-band FEC to rebuild the lost one.
const LOSSY_MIN: Duration = Duration::from_millis(30);
/// Pulls (2 s) a loss keeps the target at `LOSSY_MIN` or above.
const LOSS_MEMORY: u64 = 100;
/// The most the buffer ever waits for (a burst longer than this is concealed, not waited out).
pub const MAX_TARGET: Duration = Duration::from_millis(400);
/// How fast the target comes down once the jitter has calmed, per second of playout.
const SHRINK_PER_SECOND: Duration = Duration::from_millis(10);
/// Packets the jitter estimate looks back over (one second).
const JITTER_WINDOW: usize = 50;
/// Packets the "least delayed" reference looks back over (five seconds: follows clock drift).
const BASE_WINDOW: usize = 250;
/// Packets held at most (a sender far ahead of us cannot grow the buffer without bound).
const MAX_PACKETS: usize = 100;
/// Opus packets this small are DTX or near silence: dropped first when the buffer runs long.
const SMALL_PACKET: usize = 10;
/// A pull this late (the call task stalled, the machine slept) restarts the 20 ms schedule
/// from now instead of catching up with a burst of decisions the speaker's queue would drop.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
/// At most one acceleration or deceleration per this many frames (so that a change of delay is
/// spread out, one unnoticeable frame at a time).
const ADJUST_EVERY: u32 = 5;

/// What to play for the next 20 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayoutAction {
    /// Decode and play this packet.
    Decode {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp (lip sync maps it to the capture time).
        rtp_timestamp: u32,
        /// Opus packet.
        payload: Bytes,
    },
    /// The packet for now was lost: rebuild it from this (the next) packet's in-band FEC.
    Fec {
        /// The next packet.
        payload: Bytes,
    },
    /// Play the decoder's concealment (loss, underrun, or a deceleration frame).
    Conceal,
}

/// The buffer's counters, W3C `inbound-rtp` names.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayoutStats {
    /// Sum over emitted samples of the time each one's packet waited, seconds.
    pub jitter_buffer_delay: f64,
    /// Samples counted in `jitter_buffer_delay` (decoded from packets).
    pub jitter_buffer_emitted_count: u64,
    /// The target delay now, seconds.
    pub jitter_buffer_target_delay: f64,
    /// Samples concealed (lost or late packets, underruns, decelerations).
    pub concealed_samples: u64,
    /// Concealments that started after a decoded frame.
    pub concealment_events: u64,
    /// Samples rebuilt from in-band FEC.
    pub fec_samples: u64,
    /// Samples played to let the buffer grow.
    pub inserted_samples_for_deceleration: u64,
    /// Samples dropped to let the buffer shrink.
    pub removed_samples_for_acceleration: u64,
    /// Samples concealed because the buffer ran dry (a subset of `concealed_samples`).
    pub underrun_samples: u64,
    /// Packets that came after their time had been played (counted as lost).
    pub late_packets: u64,
    /// Decisions taken (one per 20 ms once playing).
    pub pulls: u64,
}

#[derive(Debug, Clone)]
struct Held {
    payload: Bytes,
    rtp_timestamp: u32,
    arrival: Instant,
}

/// The jitter buffer of one received audio stream.
#[derive(Debug)]
pub struct AudioPlayout {
    /// Held packets by unwrapped sequence number.
    packets: BTreeMap<u64, Held>,
    /// The highest unwrapped sequence number seen, and its 16-bit value.
    highest: Option<(u64, u16)>,
    /// Next sequence number to play; `None` until playout starts.
    next: Option<u64>,
    /// When the next pull is due.
    next_pull: Option<Instant>,
    /// (arrival − RTP time) of recent packets, µs relative to the first packet.
    transit: VecDeque<i64>,
    first: Option<(Instant, u32)>,
    target: Duration,
    /// Held on top of the target to keep in step with the video (lip sync).
    extra: Duration,
    /// Frames concealed in a row while waiting for the next packet.
    waited: u32,
    /// Frames since the last acceleration or deceleration.
    since_adjust: u32,
    /// The last action decoded a packet (a concealment after it starts an event).
    last_decoded: bool,
    /// The pull at which a packet was last found lost.
    last_loss: Option<u64>,
    stats: PlayoutStats,
}

impl Default for AudioPlayout {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioPlayout {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            next_pull: None,
            transit: VecDeque::with_capacity(BASE_WINDOW + 1),
            first: None,
            target: MARGIN,
            extra: Duration::ZERO,
            waited: 0,
            since_adjust: 0,
            last_decoded: false,
            last_loss: None,
            stats: PlayoutStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> PlayoutStats {
        PlayoutStats {
            jitter_buffer_target_delay: self.total().as_secs_f64(),
            ..self.stats
        }
    }

    /// The delay the buffer aims for now (for the jitter; [`Self::set_extra_delay`] comes on
    /// top).
    pub fn target(&self) -> Duration {
        self.target
    }

    /// Holds audio this much longer than the jitter needs (lip sync: the picture is late). The
    /// buffer gets there as it does after a jitter burst: a stretched frame at a time.
    pub fn set_extra_delay(&mut self, extra: Duration) {
        self.extra = extra;
    }

    fn total(&self) -> Duration {
        self.target + self.extra
    }

    /// When [`Self::pull`] is next due (`None`: nothing to play yet).
    pub fn next_pull(&self) -> Option<Instant> {
        self.next_pull
    }

    fn unwrap(&mut self, seq: u16) -> u64 {
        match self.highest {
            None => {
                // Start high enough that reordering before the first packet cannot underflow.
                let ext = (1u64 << 20) + u64::from(seq);
                self.highest = Some((ext, seq));
                ext
            }
            Some((ext, last)) => {
                let d = seq.wrapping_sub(last);
                let v = if d < 0x8000 {
                    ext + u64::from(d)
                } else {
                    ext.saturating_sub(u64::from(last.wrapping_sub(seq)))
                };
                if v > ext {
                    self.highest = Some((v, seq));
                }
                v
            }
        }
    }

    /// A packet arrived at `now`.
    pub fn insert(&mut self, now: Instant, seq: u16, rtp_timestamp: u32, payload: Bytes) {
        let ext = self.unwrap(seq);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late_packets += 1;
            return;
        }
        self.measure(now, rtp_timestamp);
        self.packets.entry(ext).or_insert(Held {
            payload,
            rtp_timestamp,
            arrival: now,
        });
        while self.packets.len() > MAX_PACKETS {
            self.packets.pop_first();
        }
        if self.next_pull.is_none() {
            // Playout starts once the first packet has waited the target.
            self.next_pull = Some(now + self.total());
        }
    }

    /// Updates the jitter estimate and the target from one arrival.
    fn measure(&mut self, now: Instant, ts: u32) {
        let (t0, ts0) = *self.first.get_or_insert((now, ts));
        let arrived_us =
            i64::try_from(now.saturating_duration_since(t0).as_micros()).unwrap_or(i64::MAX);
        // RTP time since the first packet, as a signed 32-bit distance (reordering, wrap).
        let rtp_us = i64::from(ts.wrapping_sub(ts0) as i32) * 1000 / 48;
        self.transit.push_back(arrived_us - rtp_us);
        while self.transit.len() > BASE_WINDOW {
            self.transit.pop_front();
        }
        let base = self.transit.iter().copied().min().unwrap_or(0);
        let mut recent: Vec<i64> = self
            .transit
            .iter()
            .rev()
            .take(JITTER_WINDOW)
            .map(|t| t - base)
            .collect();
        recent.sort_unstable();
        let p95 = recent[(recent.len() * 95 / 100).min(recent.len() - 1)];
        let wanted =
            (Duration::from_micros(u64::try_from(p95).unwrap_or(0)) + MARGIN).min(MAX_TARGET);
        if wanted > self.target {
            self.target = wanted;
        }
    }

    /// Decides the next 20 ms; call when [`Self::next_pull`] is due (a late call catches up one
    /// frame per call, up to 200 ms behind; later than that the schedule restarts from now).
    pub fn pull(&mut self, now: Instant) -> Option<PlayoutAction> {
        let mut due = self.next_pull?;
        if now < due {
            return None;
        }
        if now.saturating_duration_since(due) > MAX_CATCH_UP {
            due = now;
        }
        self.next_pull = Some(due + FRAME);
        let next = match self.next {
            Some(n) => n,
            None => {
                let (&first, _) = self.packets.first_key_value()?;
                self.next = Some(first);
                first
            }
        };
        self.stats.pulls += 1;
        self.since_adjust = self.since_adjust.saturating_add(1);
        // Down slowly toward what the jitter needs (never below the margin, nor below one frame
        // more while packets are being lost).
        let lossy = self
            .last_loss
            .is_some_and(|at| self.stats.pulls.saturating_sub(at) < LOSS_MEMORY);
        let floor = if lossy { LOSSY_MIN } else { MARGIN };
        let shrink = SHRINK_PER_SECOND / 50;
        self.target = self.target.saturating_sub(shrink).max(floor);

        let mut next = next;
        let later = self.packets.range(next + 1..).next().map(|(&k, _)| k);
        if !self.packets.contains_key(&next) && self.waited > 0 {
            if let Some(later) = later {
                // The concealment played while waiting stood in for the missing frames, as
                // many as it lasted; the stream goes on from there.
                next = (next + u64::from(self.waited)).min(later);
                self.next = Some(next);
                self.waited = 0;
                self.last_loss = Some(self.stats.pulls);
                self.target = self.target.max(LOSSY_MIN);
            }
        }
        let action = if self.packets.contains_key(&next) {
            self.waited = 0;
            self.play_next(now, next)
        } else if self.packets.range(next + 1..).next().is_some() {
            // Lost (a later packet is here): FEC from the one after it when we have it.
            self.waited = 0;
            self.next = Some(next + 1);
            self.last_loss = Some(self.stats.pulls);
            self.target = self.target.max(LOSSY_MIN);
            match self.packets.get(&(next + 1)) {
                Some(h) => {
                    self.stats.fec_samples += FRAME_SAMPLES;
                    PlayoutAction::Fec {
                        payload: h.payload.clone(),
                    }
                }
                None => self.conceal(),
            }
        } else {
            // Underrun: conceal and wait. Nothing is skipped yet: when packets come again, the
            // concealment played stands in for as many of the missing ones (above), and a
            // sender that paused with its sequence numbers running on simply resumes.
            self.waited = self.waited.saturating_add(1);
            self.stats.underrun_samples += FRAME_SAMPLES;
            self.conceal()
        };
        self.last_decoded = matches!(action, PlayoutAction::Decode { .. });
        Some(action)
    }

    fn conceal(&mut self) -> PlayoutAction {
        self.stats.concealed_samples += FRAME_SAMPLES;
        if self.last_decoded {
            self.stats.concealment_events += 1;
        }
        PlayoutAction::Conceal
    }

    /// The next packet is here: play it, or move the delay toward the target first.
    fn play_next(&mut self, now: Instant, next: u64) -> PlayoutAction {
        let waiting = |h: &Held| now.saturating_duration_since(h.arrival);
        let buffered = self.packets.range(next..).count() as u32;
        let head_wait = self.packets.get(&next).map_or(Duration::ZERO, waiting);
        let adjust = self.since_adjust >= ADJUST_EVERY;
        let total = self.total();
        // Running long: more than a frame above the target and more than one frame held.
        if adjust && self.packets.contains_key(&(next + 1)) && head_wait > total + FRAME {
            let small = self
                .packets
                .get(&next)
                .is_some_and(|h| h.payload.len() <= SMALL_PACKET);
            if small || head_wait > total + 2 * FRAME {
                self.packets.remove(&next);
                self.next = Some(next + 1);
                self.stats.removed_samples_for_acceleration += FRAME_SAMPLES;
                self.since_adjust = 0;
                return self.play_next(now, next + 1);
            }
        }
        // Running short: one frame more of waiting still does not overshoot the target. For the
        // jitter alone only with one frame held (more held means a burst just arrived, and the
        // head's wait says nothing); a sync delay fills up to all it asks for.
        let room = if self.extra.is_zero() {
            buffered == 1
        } else {
            FRAME * buffered <= total
        };
        if adjust && room && head_wait + FRAME <= total + MARGIN / 2 {
            self.stats.inserted_samples_for_deceleration += FRAME_SAMPLES;
            self.since_adjust = 0;
            return self.conceal();
        }
        match self.packets.remove(&next) {
            Some(h) => {
                self.next = Some(next + 1);
                let wait = waiting(&h);
                self.stats.jitter_buffer_delay += wait.as_secs_f64() * FRAME_SAMPLES as f64;
                self.stats.jitter_buffer_emitted_count += FRAME_SAMPLES;
                PlayoutAction::Decode {
                    seq: next as u16,
                    rtp_timestamp: h.rtp_timestamp,
                    payload: h.payload,
                }
            }
            None => self.conceal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(n: u8) -> Bytes {
        Bytes::from(vec![n; 40])
    }

    /// Sends `frames` packets every 20 ms, 30 ms late plus `delay(i)` (None: lost), pulls every
    /// 20 ms until `tail_ms` after the last one was sent, and returns the buffer and the actions.
    fn run(
        frames: u32,
        tail_ms: u64,
        delay: impl Fn(u32) -> Option<Duration>,
    ) -> (AudioPlayout, Vec<PlayoutAction>) {
        let t0 = Instant::now();
        let mut events: Vec<(Instant, u32)> = (0..frames)
            .filter_map(|i| delay(i).map(|d| (t0 + FRAME * i + Duration::from_millis(30) + d, i)))
            .collect();
        events.sort();
        let mut p = AudioPlayout::new();
        let mut actions = Vec::new();
        // Until the last packet has been played (after it, the stream has ended: no underrun).
        let end = t0 + FRAME * frames + Duration::from_millis(tail_ms);
        let mut now = t0;
        let mut ev = events.into_iter().peekable();
        while now < end {
            while let Some((at, i)) = ev.peek().copied() {
                if at > now {
                    break;
                }
                p.insert(at, i as u16, i * 960, pkt(i as u8));
                ev.next();
            }
            while let Some(a) = p.pull(now) {
                actions.push(a);
            }
            now += Duration::from_millis(1);
        }
        (p, actions)
    }

    #[test]
    fn a_calm_link_plays_every_packet_in_order_with_a_short_wait() {
        let (p, actions) = run(500, 40, |_| Some(Duration::ZERO));
        let seqs: Vec<u16> = actions
            .iter()
            .filter_map(|a| match a {
                PlayoutAction::Decode { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (0..500).collect::<Vec<u16>>());
        let s = p.stats();
        assert_eq!(s.concealed_samples, 0);
        let mean = s.jitter_buffer_delay / s.jitter_buffer_emitted_count as f64;
        assert!(mean <= 0.030, "mean wait {mean}");
    }

    #[test]
    fn after_a_first_loss_the_next_ones_are_rebuilt_from_fec() {
        let (p, actions) = run(200, 60, |i| (i != 40 && i != 100).then_some(Duration::ZERO));
        let s = p.stats();
        // The first loss is found only at its time (the buffer holds 10 ms): concealed, and the
        // stream goes on with packet 41 in its own slot.
        let played: Vec<u16> = actions
            .iter()
            .filter_map(|a| match a {
                PlayoutAction::Decode { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert!(played.contains(&41) && !played.contains(&40));
        // Then the buffer holds one frame more (a deceleration), so the second loss is known
        // while the packet after it waits: rebuilt from its FEC.
        assert!(actions.contains(&PlayoutAction::Fec { payload: pkt(101) }));
        assert_eq!(s.fec_samples, FRAME_SAMPLES);
        assert_eq!(s.inserted_samples_for_deceleration, FRAME_SAMPLES);
        assert_eq!(s.concealed_samples, 2 * FRAME_SAMPLES, "{s:?}");
        assert!(played.contains(&199));
    }

    #[test]
    fn a_jitter_burst_raises_the_target_at_once_and_it_comes_down_slowly() {
        // Calm, then 100 packets with up to 60 ms of extra delay, then calm again.
        let jitter = |i: u32| {
            let x = (i.wrapping_mul(2_654_435_761) >> 16) % 61;
            Some(Duration::from_millis(if (200..300).contains(&i) {
                u64::from(x)
            } else {
                0
            }))
        };
        let t0 = Instant::now();
        let mut p = AudioPlayout::new();
        let mut target_at = Vec::new();
        for i in 0..600u32 {
            let at = t0 + FRAME * i + jitter(i).unwrap_or_default();
            p.insert(at, i as u16, i * 960, pkt(1));
            while p.pull(at).is_some() {}
            target_at.push(p.target());
        }
        assert!(
            target_at[190] <= Duration::from_millis(15),
            "{:?}",
            target_at[190]
        );
        assert!(
            target_at[260] >= Duration::from_millis(50),
            "{:?}",
            target_at[260]
        );
        // 300 packets (6 s) after the burst: 10 ms per second down, not back at the floor yet
        // at 2 s, and down by the end.
        assert!(
            target_at[400] >= Duration::from_millis(30),
            "{:?}",
            target_at[400]
        );
        assert!(target_at[599] < target_at[400], "{:?}", target_at[599]);
    }

    #[test]
    fn a_sender_pause_loses_nothing_that_comes_after_it() {
        // One second with no packets (a microphone being replaced), sequence numbers running
        // on: every packet after the pause is played, none counted late.
        let (p, actions) = run(200, 1200, |i| {
            Some(Duration::from_millis(if i >= 100 { 1000 } else { 0 }))
        });
        let played = actions
            .iter()
            .filter(|a| matches!(a, PlayoutAction::Decode { .. }))
            .count();
        assert_eq!(p.stats().late_packets, 0);
        assert_eq!(
            played,
            200 - p.stats().removed_samples_for_acceleration as usize / 960
        );
    }

    #[test]
    fn a_stalled_caller_gets_one_decision_not_a_burst() {
        let t0 = Instant::now();
        let mut p = AudioPlayout::new();
        for i in 0..5u32 {
            p.insert(t0 + FRAME * i, i as u16, i * 960, pkt(1));
        }
        let mut n = 0;
        // Two seconds later: one decision, and the next one 20 ms on.
        while p.pull(t0 + Duration::from_secs(2)).is_some() {
            n += 1;
        }
        assert_eq!(n, 1);
        assert_eq!(p.next_pull(), Some(t0 + Duration::from_secs(2) + FRAME));
    }

    #[test]
    fn a_sync_delay_is_reached_by_stretching_and_given_back_by_dropping() {
        // A calm link; 2 s in, lip sync asks for 150 ms more, at 6 s for nothing more.
        let t0 = Instant::now();
        let mut p = AudioPlayout::new();
        // Per pull: (ms since start, how long the played packet waited after arriving).
        let mut waits: Vec<(u64, u64)> = Vec::new();
        let mut arrivals = std::collections::HashMap::new();
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if ms % 20 == 0 {
                let i = (ms / 20) as u32;
                p.insert(now, i as u16, i * 960, pkt(i as u8));
                arrivals.insert(i as u16, ms);
            }
            match ms {
                2000 => p.set_extra_delay(Duration::from_millis(150)),
                6000 => p.set_extra_delay(Duration::ZERO),
                _ => {}
            }
            while let Some(a) = p.pull(now) {
                if let PlayoutAction::Decode { seq, .. } = a {
                    waits.push((ms, ms - arrivals[&seq]));
                }
            }
        }
        let wait_at = |from: u64, to: u64| {
            let w: Vec<u64> = waits
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|x| x.1)
                .collect();
            w.iter().sum::<u64>() / w.len().max(1) as u64
        };
        let (before, held, after) = (
            wait_at(1000, 2000),
            wait_at(4000, 6000),
            wait_at(8000, 10_000),
        );
        assert!(before <= 20, "{before} ms before");
        assert!(held.abs_diff(before + 150) <= 20, "{held} ms held");
        // Back as after a jitter burst: to within two frames of the target (a frame with sound
        // in it is dropped only that far above).
        assert!(after <= before + 40, "{after} ms after");
        let s = p.stats();
        // Got there a stretched frame at a time (150 ms ≈ 8 frames) and back by dropping
        // (≈ 110 ms); nothing else was concealed.
        let frames = |samples: u64| samples / FRAME_SAMPLES;
        assert!(
            (6..=9).contains(&frames(s.inserted_samples_for_deceleration)),
            "{s:?}"
        );
        assert!(
            (4..=7).contains(&frames(s.removed_samples_for_acceleration)),
            "{s:?}"
        );
        assert_eq!(s.concealed_samples, s.inserted_samples_for_deceleration);
    }

    #[test]
    fn speeding_up_never_drops_a_packet_into_a_hole() {
        // A buffer running long (the head has waited 200 ms against a 10 ms target).
        let t0 = Instant::now();
        let late = t0 + Duration::from_millis(200);
        let held = |seqs: &[u64]| {
            let mut p = AudioPlayout::new();
            for &i in seqs {
                p.packets.insert(
                    i,
                    Held {
                        payload: pkt(i as u8),
                        rtp_timestamp: i as u32 * 960,
                        arrival: t0,
                    },
                );
            }
            p.next = Some(0);
            p.since_adjust = ADJUST_EVERY;
            p
        };
        // With the next one there, the head is dropped and the next played in its slot.
        let mut p = held(&[0, 1, 2]);
        assert_eq!(
            p.play_next(late, 0),
            PlayoutAction::Decode {
                seq: 1,
                rtp_timestamp: 960,
                payload: pkt(1)
            }
        );
        assert_eq!(p.stats.removed_samples_for_acceleration, FRAME_SAMPLES);
        // With a hole after it, dropping the head would leave a concealment in two slots: it
        // is played.
        let mut p = held(&[0, 2, 3]);
        assert_eq!(
            p.play_next(late, 0),
            PlayoutAction::Decode {
                seq: 0,
                rtp_timestamp: 0,
                payload: pkt(0)
            }
        );
        assert_eq!(p.stats.removed_samples_for_acceleration, 0);
    }

    #[test]
    fn reordered_late_and_duplicate_packets_do_not_break_the_order() {
        let t0 = Instant::now();
        let mut p = AudioPlayout::new();
        p.insert(t0, 65534, 0, pkt(1));
        p.insert(t0, 0, 1920, pkt(3));
        p.insert(t0, 65535, 960, pkt(2));
        p.insert(t0, 65535, 960, pkt(9));
        let mut got = Vec::new();
        let mut now = t0;
        for _ in 0..10 {
            now += FRAME;
            while let Some(a) = p.pull(now) {
                got.push(a);
            }
        }
        let decoded: Vec<u16> = got
            .iter()
            .filter_map(|a| match a {
                PlayoutAction::Decode { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(decoded, vec![65534, 65535, 0]);
        // A packet whose time has been played is counted late, not played.
        p.insert(now, 65533, 0, pkt(0));
        assert_eq!(p.stats().late_packets, 1);
    }
}
