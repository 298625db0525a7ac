//! The receive side of VP8 over RTP (RFC 7741), sans-IO: packets in (in arrival order:
//! reordered, duplicated, lost, retransmitted late by NACK), complete frames out, in order.
//!
//! The latency rule: a frame is emitted by the `poll` right after the `push` of its last missing
//! packet — normally the one with the RTP marker bit. webrtc-rs's `SampleBuilder` emits a frame
//! only once the next one starts, one frame interval later; this replaces it.
//!
//! A gap waits up to [`JitterConfig::max_wait`] for a retransmission. Then the frames it broke
//! are dropped and, because VP8 inter frames need every earlier frame, so is everything until
//! the next complete keyframe; [`JitterEvent::KeyframeNeeded`] asks for one (again every
//! [`JitterConfig::keyframe_retry`] while still blocked). Memory is bounded by
//! [`JitterConfig::max_packets`] and [`JitterConfig::max_frame_bytes`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One received RTP packet of the video stream.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp (one per frame).
    pub timestamp: u32,
    /// Marker bit: last packet of a frame.
    pub marker: bool,
    /// Payload (VP8 descriptor + data).
    pub payload: Bytes,
    /// When it arrived.
    pub arrival: Instant,
}

/// A complete VP8 frame.
#[derive(Debug, Clone)]
pub struct AssembledFrame {
    /// The VP8 bitstream, descriptors removed.
    pub data: Vec<u8>,
    /// Its RTP timestamp.
    pub rtp_timestamp: u32,
    /// Keyframe (RFC 6386 §9.1).
    pub keyframe: bool,
    /// Arrival of its first packet.
    pub first_arrival: Instant,
    /// Arrival of the packet that completed it.
    pub complete_at: Instant,
    /// Packets it was made of.
    pub packets: u32,
}

/// Settings.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// How long a gap waits for a retransmission.
    pub max_wait: Duration,
    /// Packets buffered at most.
    pub max_packets: usize,
    /// Largest frame accepted.
    pub max_frame_bytes: usize,
    /// How often to repeat a keyframe request while blocked.
    pub keyframe_retry: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(150),
            max_packets: 1024,
            max_frame_bytes: 4 << 20,
            keyframe_retry: Duration::from_secs(1),
        }
    }
}

/// Why frames were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A packet never came, or the frame depended on one that did not.
    Lost,
    /// A payload descriptor was malformed.
    Corrupt,
    /// Larger than `max_frame_bytes`.
    TooLarge,
    /// Waiting for a keyframe.
    Stale,
}

/// What `poll` returns.
#[derive(Debug, Clone)]
pub enum JitterEvent {
    /// A frame ready for the decoder.
    Frame(AssembledFrame),
    /// Send a PLI.
    KeyframeNeeded,
    /// Frames dropped.
    Dropped {
        /// How many.
        frames: u32,
        /// Why.
        reason: DropReason,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Frames emitted.
    pub frames_emitted: u64,
    /// Frames dropped.
    pub frames_dropped: u64,
    /// Keyframe requests emitted.
    pub keyframe_requests: u64,
    /// Duplicate packets ignored.
    pub packets_duplicate: u64,
    /// Packets that came after their frame was emitted or given up.
    pub packets_late: u64,
    /// Packets with a malformed descriptor.
    pub packets_corrupt: u64,
    /// Sequence numbers asked for again (NACK).
    pub nacks_sent: u64,
    /// W3C `jitterBufferDelay`: Σ(emit − first arrival), seconds.
    pub jitter_buffer_delay: f64,
    /// W3C `jitterBufferEmittedCount`.
    pub jitter_buffer_emitted_count: u64,
}

/// A malformed VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("VP8 payload descriptor truncated or empty")]
pub struct DescriptorError;

/// The fields of an RFC 7741 §4.2 payload descriptor we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// S bit.
    pub start_of_partition: bool,
    /// PID.
    pub partition_id: u8,
    /// N bit.
    pub non_reference: bool,
    /// PictureID (7 or 15 bits).
    pub picture_id: Option<u16>,
    /// TL0PICIDX.
    pub tl0_pic_idx: Option<u8>,
}

impl Vp8Descriptor {
    /// The first packet of a frame: S=1 and PID=0.
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_id == 0
    }
}

/// Parses a descriptor; returns it and its length. The payload after it must not be empty.
pub fn parse_vp8_descriptor(p: &[u8]) -> Result<(Vp8Descriptor, usize), DescriptorError> {
    let b0 = *p.first().ok_or(DescriptorError)?;
    let mut d = Vp8Descriptor {
        start_of_partition: b0 & 0x10 != 0,
        partition_id: b0 & 0x07,
        non_reference: b0 & 0x20 != 0,
        ..Default::default()
    };
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i).ok_or(DescriptorError)?;
        i += 1;
        if x & 0x80 != 0 {
            let m = *p.get(i).ok_or(DescriptorError)?;
            if m & 0x80 != 0 {
                let lo = *p.get(i + 1).ok_or(DescriptorError)?;
                d.picture_id = Some(u16::from(m & 0x7f) << 8 | u16::from(lo));
                i += 2;
            } else {
                d.picture_id = Some(u16::from(m));
                i += 1;
            }
        }
        if x & 0x40 != 0 {
            d.tl0_pic_idx = Some(*p.get(i).ok_or(DescriptorError)?);
            i += 1;
        }
        if x & 0x30 != 0 {
            p.get(i).ok_or(DescriptorError)?;
            i += 1;
        }
    }
    if p.len() <= i {
        return Err(DescriptorError);
    }
    Ok((d, i))
}

#[derive(Debug)]
struct Pkt {
    ts: u32,
    marker: bool,
    /// None: corrupt descriptor.
    start: Option<bool>,
    header: usize,
    payload: Bytes,
    arrival: Instant,
}

/// VP8 frame assembly and ordering.
#[derive(Debug)]
pub struct FrameAssembler {
    cfg: JitterConfig,
    buf: BTreeMap<u64, Pkt>,
    highest: Option<u64>,
    /// First seq of the next frame to emit.
    next: Option<u64>,
    /// Below this nothing is accepted any more (emitted or given up), even while `next` is
    /// unknown: a retransmission arriving after its frame was given up must not rewind the
    /// assembler into frames it already dropped (and ask for them all again).
    floor: Option<u64>,
    gap_since: Option<Instant>,
    need_keyframe: bool,
    requested_at: Option<Instant>,
    out: VecDeque<JitterEvent>,
    stats: JitterStats,
    nacked: BTreeMap<u64, (u8, Instant)>,
}

/// Times one missing packet is asked for again before the assembler just waits it out: more
/// only feeds a congested link (a NACK storm: every retry of a lost retransmission is more load).
pub const MAX_NACKS_PER_PACKET: u8 = 2;
/// Sequence numbers in one NACK round at most.
pub const MAX_NACKS_PER_ROUND: usize = 64;
/// More packets missing than this at once and the assembler does not ask for them again: it
/// drops to the next keyframe and asks for one (after a 3 s blackout, repairing the gap queued
/// 1.4 s of retransmissions on a 2 Mbit/s link: `sim` tests).
pub const MAX_REPAIRABLE_GAP: u64 = 64;

enum Attempt {
    Complete(u64),
    Missing,
    Bad(DropReason, u64),
}

impl FrameAssembler {
    /// A new assembler: it waits for a keyframe before emitting anything.
    pub fn new(cfg: JitterConfig) -> Self {
        Self {
            cfg,
            buf: BTreeMap::new(),
            highest: None,
            next: None,
            floor: None,
            gap_since: None,
            need_keyframe: true,
            requested_at: None,
            out: VecDeque::new(),
            stats: JitterStats::default(),
            nacked: BTreeMap::new(),
        }
    }

    fn unwrap(&self, seq: u16) -> u64 {
        match self.highest {
            None => (1 << 32) | u64::from(seq),
            Some(h) => {
                let cycle = h & !0xffff;
                [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)]
                    .map(|c| c | u64::from(seq))
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(h))
                    .unwrap_or(h)
            }
        }
    }

    /// Adds a packet.
    pub fn push(&mut self, pkt: RtpIn) {
        let seq = self.unwrap(pkt.seq);
        if let Some(h) = self.highest {
            if seq > h + self.cfg.max_packets as u64 || h > seq + (self.cfg.max_packets as u64) * 4
            {
                // A jump: the sender restarted or we lost a lot. Start over at a keyframe.
                let dropped = self.buf.len();
                self.buf.clear();
                self.next = None;
                self.floor = None;
                self.gap_since = None;
                self.highest = Some(seq);
                if dropped > 0 {
                    self.drop_frames(1, DropReason::Lost);
                }
                self.block(pkt.arrival);
            }
        }
        if self.next.or(self.floor).is_some_and(|n| seq < n) {
            self.stats.packets_late += 1;
            return;
        }
        if self.buf.contains_key(&seq) {
            self.stats.packets_duplicate += 1;
            return;
        }
        let (start, header) = match parse_vp8_descriptor(&pkt.payload) {
            Ok((d, len)) => (Some(d.starts_frame()), len),
            Err(_) => {
                self.stats.packets_corrupt += 1;
                (None, 0)
            }
        };
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        self.buf.insert(
            seq,
            Pkt {
                ts: pkt.timestamp,
                marker: pkt.marker,
                start,
                header,
                payload: pkt.payload,
                arrival: pkt.arrival,
            },
        );
        while self.buf.len() > self.cfg.max_packets {
            // Full: the oldest frame can never complete in time; give it up.
            if let Some((&first, _)) = self.buf.first_key_value() {
                self.give_up(first, pkt.arrival);
            }
        }
    }

    fn drop_frames(&mut self, n: u32, reason: DropReason) {
        self.stats.frames_dropped += u64::from(n);
        self.out
            .push_back(JitterEvent::Dropped { frames: n, reason });
    }

    fn block(&mut self, now: Instant) {
        if !self.need_keyframe || self.requested_at.is_none() {
            self.need_keyframe = true;
            self.requested_at = Some(now);
            self.stats.keyframe_requests += 1;
            self.out.push_back(JitterEvent::KeyframeNeeded);
        }
    }

    /// Drops everything before the next frame start after `from`, and blocks for a keyframe.
    fn give_up(&mut self, from: u64, now: Instant) {
        let ts = self.buf.get(&from).map(|p| p.ts);
        let resume = self
            .buf
            .range(from + 1..)
            .find(|(_, p)| p.start == Some(true) && Some(p.ts) != ts)
            .map(|(&s, _)| s);
        match resume {
            Some(r) => {
                self.buf.retain(|&s, _| s >= r);
                self.next = Some(r);
            }
            None => {
                self.buf.retain(|&s, _| s > from);
                self.next = None;
                self.floor = Some(from + 1);
            }
        }
        self.gap_since = None;
        self.drop_frames(1, DropReason::Lost);
        self.block(now);
    }

    fn attempt(&self, start: u64) -> Attempt {
        let Some(first) = self.buf.get(&start) else {
            return Attempt::Missing;
        };
        match first.start {
            None => return Attempt::Bad(DropReason::Corrupt, start),
            Some(false) => return Attempt::Bad(DropReason::Lost, start),
            Some(true) => {}
        }
        let mut bytes = 0usize;
        let mut seq = start;
        loop {
            let Some(p) = self.buf.get(&seq) else {
                return Attempt::Missing;
            };
            if p.ts != first.ts {
                // The frame ended without a marker (its marker packet was lost and a later
                // frame started): it cannot be trusted.
                return Attempt::Bad(DropReason::Lost, seq - 1);
            }
            if p.start.is_none() {
                return Attempt::Bad(DropReason::Corrupt, seq);
            }
            bytes += p.payload.len().saturating_sub(p.header);
            if bytes > self.cfg.max_frame_bytes {
                return Attempt::Bad(DropReason::TooLarge, seq);
            }
            if p.marker {
                return Attempt::Complete(seq);
            }
            seq += 1;
        }
    }

    fn take_frame(&mut self, start: u64, end: u64, now: Instant) -> AssembledFrame {
        let mut data = Vec::new();
        let mut first_arrival = now;
        let mut complete_at = None::<Instant>;
        let mut ts = 0;
        let mut packets = 0;
        for s in start..=end {
            if let Some(p) = self.buf.remove(&s) {
                if s == start {
                    first_arrival = p.arrival;
                    ts = p.ts;
                }
                first_arrival = first_arrival.min(p.arrival);
                complete_at = Some(complete_at.map_or(p.arrival, |c| c.max(p.arrival)));
                data.extend_from_slice(p.payload.get(p.header..).unwrap_or_default());
                packets += 1;
            }
        }
        let keyframe = is_keyframe(&data);
        AssembledFrame {
            data,
            rtp_timestamp: ts,
            keyframe,
            first_arrival,
            complete_at: complete_at.unwrap_or(now),
            packets,
        }
    }

    /// The next event, if any. Call after every `push` and at `next_timeout`, until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<JitterEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            if self.need_keyframe {
                if let Some(at) = self.requested_at {
                    if now.saturating_duration_since(at) >= self.cfg.keyframe_retry {
                        self.requested_at = Some(now);
                        self.stats.keyframe_requests += 1;
                        return Some(JitterEvent::KeyframeNeeded);
                    }
                }
            }
            let start = match self.next {
                Some(n) => n,
                None => {
                    // Not synchronised: begin at the first buffered frame start.
                    let first = self
                        .buf
                        .iter()
                        .find(|(_, p)| p.start == Some(true))
                        .map(|(&s, _)| s)?;
                    // Anything before it can never be decoded.
                    self.buf.retain(|&s, _| s >= first);
                    self.next = Some(first);
                    first
                }
            };
            match self.attempt(start) {
                Attempt::Complete(end) => {
                    self.gap_since = None;
                    let frame = self.take_frame(start, end, now);
                    self.next = Some(end + 1);
                    if self.need_keyframe && !frame.keyframe {
                        if self.requested_at.is_none() {
                            self.block(now);
                        }
                        self.drop_frames(1, DropReason::Stale);
                        continue;
                    }
                    self.need_keyframe = false;
                    self.requested_at = None;
                    self.stats.frames_emitted += 1;
                    self.stats.jitter_buffer_delay += now
                        .saturating_duration_since(frame.first_arrival)
                        .as_secs_f64();
                    self.stats.jitter_buffer_emitted_count += 1;
                    return Some(JitterEvent::Frame(frame));
                }
                Attempt::Bad(reason, at) => {
                    self.give_up(at, now);
                    if let Some(JitterEvent::Dropped { reason: r, .. }) = self.out.get_mut(0) {
                        *r = reason;
                    }
                }
                Attempt::Missing => {
                    // Only a gap if something later has arrived.
                    let later = self.buf.range(start..).next_back().is_some();
                    if !later {
                        return None;
                    }
                    // A gap this long (a blackout, a Wi-Fi handover) is not worth repairing: the
                    // retransmissions would queue up behind new media for a picture that is
                    // already old. Ask for a keyframe at once instead.
                    let span = self.highest.map_or(0, |h| h + 1 - start.min(h + 1));
                    let missing = span.saturating_sub(self.buf.range(start..).count() as u64);
                    if missing > MAX_REPAIRABLE_GAP {
                        self.give_up(start, now);
                        continue;
                    }
                    let since = *self.gap_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= self.cfg.max_wait {
                        self.give_up(start, now);
                    } else {
                        return None;
                    }
                }
            }
        }
    }

    /// When `poll` must run again even without a packet.
    pub fn next_timeout(&self) -> Option<Instant> {
        let gap = self.gap_since.map(|g| g + self.cfg.max_wait);
        let retry = if self.need_keyframe {
            self.requested_at.map(|r| r + self.cfg.keyframe_retry)
        } else {
            None
        };
        match (gap, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Missing packets to ask for (RFC 4585 generic NACK): each gap inside the buffered window,
    /// at most [`MAX_NACKS_PER_PACKET`] times, a retry no sooner than one `rtt` (≥ 20 ms) later.
    pub fn nacks(&mut self, now: Instant, rtt: Duration) -> Vec<u16> {
        let (Some(&first), Some(high)) = (self.buf.keys().next(), self.highest) else {
            self.nacked.clear();
            return Vec::new();
        };
        let from = self.next.unwrap_or(first).min(first);
        self.nacked.retain(|&s, _| s >= from && s <= high);
        let spacing = rtt.max(Duration::from_millis(20));
        let mut out = Vec::new();
        for seq in from..high {
            if out.len() >= MAX_NACKS_PER_ROUND {
                break;
            }
            if self.buf.contains_key(&seq) {
                continue;
            }
            let entry = self.nacked.entry(seq).or_insert((0, now));
            let due = entry.0 == 0 || now.saturating_duration_since(entry.1) >= spacing;
            if entry.0 < MAX_NACKS_PER_PACKET && due {
                *entry = (entry.0 + 1, now);
                out.push((seq & 0xffff) as u16);
            }
        }
        self.stats.nacks_sent += out.len() as u64;
        out
    }

    /// When [`FrameAssembler::nacks`] will next have a retry to send: the earliest missing
    /// packet asked for fewer than [`MAX_NACKS_PER_PACKET`] times, one `rtt` (≥ 20 ms) after its
    /// last ask. New gaps are found when packets arrive, not by time.
    pub fn next_nack_at(&self, rtt: Duration) -> Option<Instant> {
        let first = *self.buf.keys().next()?;
        let from = self.next.unwrap_or(first).min(first);
        let spacing = rtt.max(Duration::from_millis(20));
        self.nacked
            .range(from..)
            .filter(|(s, (n, _))| *n < MAX_NACKS_PER_PACKET && !self.buf.contains_key(s))
            .map(|(_, (_, t))| *t + spacing)
            .min()
    }

    /// Packets buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

/// A VP8 keyframe: P bit 0 and the start code 9d 01 2a (RFC 6386 §9.1).
pub fn is_keyframe(data: &[u8]) -> bool {
    data.len() >= 10 && data[0] & 0x01 == 0 && data[3..6] == [0x9d, 0x01, 0x2a]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(key: bool, len: usize, tag: u8) -> Vec<u8> {
        let mut v = vec![tag; len.max(10)];
        v[0] = if key { 0x00 } else { 0x01 };
        if key {
            v[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        }
        v
    }

    /// Packetizes with a 1-byte descriptor (0x10 on the first packet).
    fn packetize(seq0: u16, ts: u32, data: &[u8], t: Instant) -> Vec<RtpIn> {
        let chunks: Vec<&[u8]> = data.chunks(1200).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                RtpIn {
                    seq: seq0.wrapping_add(i as u16),
                    timestamp: ts,
                    marker: i + 1 == n,
                    payload: Bytes::from(p),
                    arrival: t,
                }
            })
            .collect()
    }

    fn drain(a: &mut FrameAssembler, now: Instant) -> Vec<JitterEvent> {
        std::iter::from_fn(|| a.poll(now)).collect()
    }

    fn frames(ev: &[JitterEvent]) -> Vec<(u32, bool, usize)> {
        ev.iter()
            .filter_map(|e| match e {
                JitterEvent::Frame(f) => Some((f.rtp_timestamp, f.keyframe, f.data.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_frames_come_out_on_their_marker_packet() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        let key = frame_bytes(true, 3000, 7);
        let mut seq = 100u16;
        let pk = packetize(seq, 0, &key, t);
        seq += pk.len() as u16;
        let n = pk.len();
        for (i, p) in pk.into_iter().enumerate() {
            a.push(p);
            let ev = drain(&mut a, t);
            if i + 1 < n {
                assert!(ev.is_empty(), "nothing before the marker");
            } else {
                match &ev[..] {
                    [JitterEvent::Frame(f)] => {
                        assert_eq!(f.data, key);
                        assert!(f.keyframe);
                        assert_eq!(f.packets, 3);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        for k in 1..5u32 {
            let inter = frame_bytes(false, 500, k as u8);
            for p in packetize(seq, k * 3000, &inter, t) {
                a.push(p);
            }
            seq += 1;
            let ev = drain(&mut a, t);
            assert_eq!(frames(&ev), vec![(k * 3000, false, 500)]);
        }
        assert_eq!(a.stats().frames_emitted, 5);
    }

    #[test]
    fn reordering_within_and_across_frames_is_undone() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        let mut all = packetize(0, 0, &frame_bytes(true, 2500, 1), t);
        all.extend(packetize(3, 3000, &frame_bytes(false, 2000, 2), t));
        all.extend(packetize(5, 6000, &frame_bytes(false, 100, 3), t));
        // 0 1 2 | 3 4 | 5  →  2 0 5 4 1 3
        let order = [2, 0, 5, 4, 1, 3];
        let mut out = Vec::new();
        for i in order {
            a.push(all[i].clone());
            out.extend(drain(&mut a, t));
        }
        assert_eq!(
            frames(&out),
            vec![(0, true, 2500), (3000, false, 2000), (6000, false, 100)]
        );
    }

    #[test]
    fn a_retransmission_in_time_fills_the_gap() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        for p in packetize(10, 0, &frame_bytes(true, 100, 1), t) {
            a.push(p);
        }
        assert_eq!(frames(&drain(&mut a, t)).len(), 1);
        let f2 = packetize(11, 3000, &frame_bytes(false, 2000, 2), t);
        let f3 = packetize(13, 6000, &frame_bytes(false, 100, 3), t);
        a.push(f2[1].clone());
        a.push(f3[0].clone());
        let t1 = t + Duration::from_millis(100);
        assert!(drain(&mut a, t1).is_empty());
        assert_eq!(a.next_timeout(), Some(t1 + Duration::from_millis(150)));
        let t2 = t + Duration::from_millis(200);
        a.push(f2[0].clone());
        let ev = drain(&mut a, t2);
        assert_eq!(frames(&ev), vec![(3000, false, 2000), (6000, false, 100)]);
        assert_eq!(a.stats().frames_dropped, 0);
    }

    #[test]
    fn a_lost_packet_drops_until_a_keyframe_and_asks_for_one() {
        let t = Instant::now();
        let cfg = JitterConfig::default();
        let mut a = FrameAssembler::new(cfg);
        for p in packetize(0, 0, &frame_bytes(true, 100, 1), t) {
            a.push(p);
        }
        drain(&mut a, t);
        let f2 = packetize(1, 3000, &frame_bytes(false, 2000, 2), t);
        a.push(f2[1].clone()); // f2[0] lost for good
        for p in packetize(3, 6000, &frame_bytes(false, 100, 3), t) {
            a.push(p);
        }
        assert!(drain(&mut a, t).is_empty());
        let deadline = a.next_timeout().unwrap();
        assert_eq!(deadline, t + cfg.max_wait);
        assert!(drain(
            &mut a,
            deadline.checked_sub(Duration::from_millis(1)).unwrap()
        )
        .is_empty());
        let ev = drain(&mut a, deadline);
        assert!(matches!(
            ev[0],
            JitterEvent::Dropped {
                reason: DropReason::Lost,
                ..
            }
        ));
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, JitterEvent::KeyframeNeeded))
                .count(),
            1
        );
        assert!(
            frames(&ev).is_empty(),
            "the inter frame after the gap is dropped"
        );
        // Still blocked a second later: ask again.
        let later = deadline + cfg.keyframe_retry;
        assert_eq!(a.next_timeout(), Some(later));
        assert!(matches!(
            drain(&mut a, later)[..],
            [JitterEvent::KeyframeNeeded]
        ));
        for p in packetize(4, 9000, &frame_bytes(true, 100, 4), later) {
            a.push(p);
        }
        assert_eq!(frames(&drain(&mut a, later)), vec![(9000, true, 100)]);
        assert_eq!(a.next_timeout(), None);
    }

    #[test]
    fn missing_packets_are_nacked_at_most_twice_and_spaced_by_the_rtt() {
        let t = Instant::now();
        let rtt = Duration::from_millis(50);
        let mut a = FrameAssembler::new(JitterConfig::default());
        for p in packetize(0, 0, &frame_bytes(true, 100, 1), t) {
            a.push(p);
        }
        drain(&mut a, t);
        let f = packetize(1, 3000, &frame_bytes(false, 4000, 2), t);
        a.push(f[0].clone());
        a.push(f[3].clone()); // 2 and 3 (seq) missing
        assert_eq!(a.nacks(t, rtt), vec![2, 3]);
        assert!(
            a.nacks(t + Duration::from_millis(10), rtt).is_empty(),
            "too soon"
        );
        // The retry is due one RTT after the first ask: the owner's next wake-up.
        assert_eq!(a.next_nack_at(rtt), Some(t + rtt));
        assert_eq!(a.nacks(t + rtt, rtt), vec![2, 3]);
        assert_eq!(
            a.next_nack_at(rtt),
            None,
            "both asked twice: nothing more to ask"
        );
        a.push(f[1].clone());
        assert!(
            a.nacks(t + rtt * 3, rtt).is_empty(),
            "3 was asked twice, 2 arrived"
        );
        assert_eq!(a.stats().nacks_sent, 4);
    }

    #[test]
    fn a_late_retransmission_after_a_give_up_does_not_rewind_the_assembler() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        for p in packetize(0, 0, &frame_bytes(true, 100, 1), t) {
            a.push(p);
        }
        drain(&mut a, t);
        // Frame 2 (seqs 1..=3) loses its first packet; only its tail is buffered.
        let f = packetize(1, 3000, &frame_bytes(false, 3000, 2), t);
        a.push(f[1].clone());
        a.push(f[2].clone());
        assert!(frames(&drain(&mut a, t)).is_empty(), "waiting for seq 1");
        assert_eq!(a.nacks(t, Duration::from_millis(50)), vec![1]);
        let later = t + Duration::from_millis(200);
        let ev = drain(&mut a, later);
        assert!(ev.iter().any(|e| matches!(e, JitterEvent::KeyframeNeeded)));
        // The retransmission of seq 1 comes after the give-up: too late, not a new start.
        a.push(f[0].clone());
        assert_eq!(a.stats().packets_late, 1);
        assert!(frames(&drain(&mut a, later)).is_empty());
        assert!(
            a.nacks(later, Duration::from_millis(50)).is_empty(),
            "nothing asked again"
        );
    }

    #[test]
    fn a_gap_too_long_to_repair_asks_for_a_keyframe_at_once_and_no_nacks() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        for p in packetize(0, 0, &frame_bytes(true, 100, 1), t) {
            a.push(p);
        }
        drain(&mut a, t);
        // Seqs 1..=100 lost (a blackout); then a frame arrives.
        for p in packetize(101, 90_000, &frame_bytes(false, 100, 2), t) {
            a.push(p);
        }
        let ev = drain(&mut a, t);
        assert!(
            ev.iter().any(|e| matches!(e, JitterEvent::KeyframeNeeded)),
            "no wait for retransmissions: {ev:?}"
        );
        assert!(a.nacks(t, Duration::from_millis(50)).is_empty());
        // A short gap is still repaired.
        for p in packetize(102, 93_000, &frame_bytes(true, 3600, 3), t) {
            if p.seq != 103 {
                a.push(p);
            }
        }
        drain(&mut a, t);
        assert_eq!(a.nacks(t, Duration::from_millis(50)), vec![103]);
    }

    #[test]
    fn wraps_duplicates_late_packets_and_jumps() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(JitterConfig::default());
        let key = packetize(65_534, 0, &frame_bytes(true, 3000, 1), t);
        assert_eq!(key[2].seq, 0);
        for p in &key {
            a.push(p.clone());
        }
        assert_eq!(frames(&drain(&mut a, t)).len(), 1);
        a.push(key[1].clone());
        assert_eq!(a.stats().packets_late, 1);
        // A duplicate inside a frame still waiting for its other packets.
        let f = packetize(1, 3000, &frame_bytes(false, 2000, 2), t);
        a.push(f[1].clone());
        a.push(f[1].clone());
        assert_eq!(a.stats().packets_duplicate, 1);
        a.push(f[0].clone());
        assert_eq!(frames(&drain(&mut a, t)), vec![(3000, false, 2000)]);
        a.push(f[0].clone());
        assert_eq!(a.stats().packets_late, 2, "after its frame went out");
        // A jump of 40 000: start over, needing a keyframe.
        for p in packetize(40_001, 90_000, &frame_bytes(false, 100, 3), t) {
            a.push(p);
        }
        let ev = drain(&mut a, t);
        assert!(frames(&ev).is_empty());
        assert!(ev.iter().any(|e| matches!(e, JitterEvent::KeyframeNeeded)));
        for p in packetize(40_002, 93_000, &frame_bytes(true, 100, 4), t) {
            a.push(p);
        }
        assert_eq!(frames(&drain(&mut a, t)), vec![(93_000, true, 100)]);
    }

    #[test]
    fn garbage_never_panics_and_memory_stays_bounded() {
        let cfg = JitterConfig {
            max_packets: 256,
            ..Default::default()
        };
        let mut a = FrameAssembler::new(cfg);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = Instant::now();
        for _ in 0..100_000 {
            let r = next();
            let len = (r % 1500) as usize;
            let payload: Vec<u8> = (0..len).map(|i| (r >> (i % 56)) as u8).collect();
            a.push(RtpIn {
                seq: (next() % 2048) as u16,
                timestamp: (next() % 64) as u32 * 3000,
                marker: next() % 3 == 0,
                payload: Bytes::from(payload),
                arrival: t,
            });
            t += Duration::from_micros(next() % 20_000);
            while a.poll(t).is_some() {}
            let _ = a.next_timeout();
            assert!(a.buffered() <= cfg.max_packets);
        }
    }

    #[test]
    fn descriptor_layouts() {
        assert_eq!(parse_vp8_descriptor(&[0x10, 0xaa]).unwrap().1, 1);
        // X, I with 7-bit PictureID.
        let (d, n) = parse_vp8_descriptor(&[0x90, 0x80, 0x05, 0xaa]).unwrap();
        assert_eq!((d.picture_id, n), (Some(5), 3));
        // X, I with M=1 (15-bit), L, T/K.
        let (d, n) = parse_vp8_descriptor(&[0x90, 0xf0, 0x81, 0x02, 0x09, 0x40, 0xaa]).unwrap();
        assert_eq!((d.picture_id, d.tl0_pic_idx, n), (Some(0x102), Some(9), 6));
        assert!(d.starts_frame());
        for bad in [
            &[][..],
            &[0x10],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x85, 0x01],
        ] {
            assert!(parse_vp8_descriptor(bad).is_err(), "{bad:?}");
        }
    }
}
