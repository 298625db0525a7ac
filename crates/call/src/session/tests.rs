//! The session on its own: inputs in, outputs checked. Scenarios of whole calls on bad networks
//! are in `crate::sim`.

use super::*;
use crate::session::reports::REPORT_INTERVAL;

fn config(t0: Instant) -> SessionConfig {
    SessionConfig {
        start_bps: 300_000,
        format: VideoFormat {
            width: 640,
            height: 480,
            fps: 30,
        },
        corrupt_every: None,
        clock: ClockAnchor {
            at: t0,
            unix_us: 1_700_000_000_000_000,
        },
        lip_sync: true,
    }
}

/// A connected session whose streams are negotiated: ours 1 (video) / 2 (audio), theirs 11 / 12.
fn connected(t0: Instant) -> CallSession {
    let mut s = CallSession::new(config(t0), t0);
    s.handle_input(t0, Input::LocalSsrcs { video: 1, audio: 2 });
    s.handle_input(
        t0,
        Input::RemoteTrack {
            kind: Kind::Video,
            ssrc: 11,
            payload_types: vec![96],
        },
    );
    s.handle_input(
        t0,
        Input::RemoteTrack {
            kind: Kind::Audio,
            ssrc: 12,
            payload_types: vec![111],
        },
    );
    s.handle_input(t0, Input::Connected);
    drain(&mut s);
    s
}

/// Everything the session wants done now, up to (not including) its timeout.
fn drain(s: &mut CallSession) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match s.poll_output() {
            Output::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

fn frame(len: usize, key: bool) -> EncodedVideo {
    let mut data = vec![0u8; len];
    data[0] = u8::from(!key);
    if key {
        data[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    }
    EncodedVideo {
        data: Bytes::from(data),
        keyframe: key,
        rtp_timestamp: 9000,
        capture_us: 1_700_000_000_000_000,
        encode_time: Duration::from_millis(3),
        width: 640,
        height: 480,
    }
}

fn rtp(out: &[Output]) -> Vec<&RtpOut> {
    out.iter()
        .filter_map(|o| match o {
            Output::Rtp(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_frame_is_packetized_with_consecutive_sequence_and_transport_numbers() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_input(t0, Input::Video(frame(3000, true)));
    s.handle_input(
        t0,
        Input::Audio(EncodedAudio {
            data: Bytes::from_static(&[1; 80]),
            rtp_timestamp: 960,
            capture_us: 1_700_000_000_000_000,
            level_dbfs: -20.0,
        }),
    );
    let out = drain(&mut s);
    let p = rtp(&out);
    assert_eq!(p.len(), 4, "3 video packets of ≤ 1100 bytes and 1 audio");
    assert_eq!(
        p.iter()
            .map(|p| (p.kind, p.seq, p.marker))
            .collect::<Vec<_>>(),
        vec![
            (Kind::Video, 1, false),
            (Kind::Video, 2, false),
            (Kind::Video, 3, true),
            (Kind::Audio, 1, false)
        ]
    );
    assert_eq!(
        p.iter().map(|p| p.transport_seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "one transport-wide sequence across both kinds"
    );
    assert!(p
        .iter()
        .all(|p| p.payload.len() <= crate::rtc::RTP_PAYLOAD_MTU));
}

#[test]
fn a_nack_resends_the_packets_asked_for_with_new_transport_numbers() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    // Enough packets for the video sequence to wrap past 65535.
    let mut sent = Vec::new();
    for _ in 0..(65_540 / 3) {
        s.handle_input(t0, Input::Video(frame(3000, false)));
        sent.extend(rtp(&drain(&mut s)).into_iter().cloned());
    }
    let last = sent.last().expect("sent").clone();
    assert!(last.seq < 100, "the sequence wrapped: {}", last.seq);
    let asked = [last.seq.wrapping_sub(1), last.seq, 65_530, 40_000];
    s.handle_input(
        t0,
        Input::Rtcp(vec![Feedback::Nack {
            media_ssrc: 1,
            seqs: asked.to_vec(),
        }]),
    );
    let again = drain(&mut s);
    let again = rtp(&again);
    // 40 000 left the buffer long ago: not resent. The others are, byte for byte.
    assert_eq!(
        again.iter().map(|p| p.seq).collect::<Vec<_>>(),
        asked[..3].to_vec()
    );
    for (i, p) in again.iter().enumerate() {
        let original = sent
            .iter()
            .rev()
            .find(|o| o.seq == p.seq)
            .expect("was sent");
        assert_eq!(
            (&p.payload, p.marker, p.timestamp),
            (&original.payload, original.marker, original.timestamp)
        );
        // Counted by the estimator as new sends.
        assert_eq!(
            p.transport_seq,
            last.transport_seq.wrapping_add(1 + i as u16)
        );
    }
    assert_eq!(s.counters().video_out.retransmitted_packets_sent, 3);
    assert_eq!(s.counters().video_out.nack_count, 4);
}

#[test]
fn a_nack_for_another_stream_resends_nothing() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_input(t0, Input::Video(frame(3000, false)));
    drain(&mut s);
    s.handle_input(
        t0,
        Input::Rtcp(vec![Feedback::Nack {
            media_ssrc: 2, // our audio: never retransmitted
            seqs: vec![1, 2],
        }]),
    );
    assert!(rtp(&drain(&mut s)).is_empty());
    assert_eq!(s.counters().video_out.retransmitted_packets_sent, 0);
}

#[test]
fn keyframe_requests_go_out_at_most_every_200_ms() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    let plis = |out: Vec<Output>| {
        out.iter()
            .filter(|o| matches!(o, Output::Rtcp(RtcpOut::Pli { media_ssrc: 11 })))
            .count()
    };
    s.handle_input(t0, Input::VideoUndecodable);
    assert_eq!(plis(drain(&mut s)), 1);
    s.handle_input(t0 + Duration::from_millis(150), Input::VideoUndecodable);
    assert_eq!(plis(drain(&mut s)), 0, "too soon");
    s.handle_input(t0 + Duration::from_millis(210), Input::VideoUndecodable);
    assert_eq!(plis(drain(&mut s)), 1);
    assert_eq!(s.counters().video_in.pli_count, 2);
}

#[test]
fn a_pli_from_the_other_side_orders_a_keyframe() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_input(t0, Input::Rtcp(vec![Feedback::Pli, Feedback::Fir]));
    let out = drain(&mut s);
    assert_eq!(
        out.iter().filter(|o| matches!(o, Output::Keyframe)).count(),
        2
    );
    assert_eq!(
        (
            s.counters().video_out.pli_count,
            s.counters().video_out.fir_count
        ),
        (1, 1)
    );
}

fn audio_in(seq: u16, at: Instant) -> Input {
    Input::Rtp(RtpIn {
        kind: Kind::Audio,
        payload_type: 111,
        ssrc: 12,
        seq,
        timestamp: u32::from(seq) * 960,
        marker: false,
        payload: Bytes::from_static(&[0; 60]),
        transport_seq: Some(seq),
        arrival: at,
    })
}

#[test]
fn media_that_arrives_but_never_decodes_fails_the_call_after_8_s() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    for i in 0..400u16 {
        s.handle_input(
            t0 + Duration::from_millis(20 * u64::from(i)),
            audio_in(i, t0),
        );
    }
    let failed = |out: &[Output]| {
        out.iter()
            .any(|o| matches!(o, Output::Event(SessionEvent::MediaFailed)))
    };
    // Not before 8 s: the first keyframe or packet may take a while on a slow path.
    let early = drain(&mut s);
    assert!(!failed(&early));
    s.handle_input(t0 + MEDIA_FAILED_AFTER, Input::Timeout);
    assert!(failed(&drain(&mut s)), "8 s of audio packets, none decoded");
    // Said once.
    s.handle_input(t0 + MEDIA_FAILED_AFTER * 2, Input::Timeout);
    assert!(!failed(&drain(&mut s)));
}

#[test]
fn media_that_decodes_does_not_fail_the_call() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_input(t0, audio_in(0, t0));
    s.handle_input(
        t0,
        Input::AudioDecoded(AudioDecodeCounts {
            decoded: 1,
            ..Default::default()
        }),
    );
    s.handle_input(t0 + MEDIA_FAILED_AFTER, Input::Timeout);
    let out = drain(&mut s);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Event(SessionEvent::MediaFailed))));
}

#[test]
fn statistics_come_once_a_second_scored_against_the_configured_format() {
    let t0 = Instant::now();
    let mut s = CallSession::new(
        SessionConfig {
            format: VideoFormat {
                width: 1280,
                height: 720,
                fps: 30,
            },
            ..config(t0)
        },
        t0,
    );
    s.handle_input(t0, Input::Connected);
    drain(&mut s);
    let Output::Timeout(next) = s.poll_output() else {
        panic!("drained")
    };
    assert!(next <= t0 + STATS_INTERVAL);
    s.handle_input(t0 + STATS_INTERVAL, Input::Timeout);
    let points: Vec<StatsPoint> = drain(&mut s)
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(SessionEvent::Stats(p)) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert!((p.snapshot.call_seconds - 1.0).abs() < 1e-9);
    assert_eq!(
        p.snapshot.timestamp, 1_700_000_001_000,
        "from the clock anchor"
    );
    // The 720p call's cap (2.5 Mbit/s) and the first target.
    assert_eq!(s.estimator().target_bps(), 300_000);
    assert_eq!(p.snapshot.outbound_video.target_bitrate, 268_000.0);
}

#[test]
fn the_next_timeout_is_never_in_the_past() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    // A gap in the video makes the assembler wait; a long silence after it.
    for seq in [1u16, 3] {
        s.handle_input(
            t0,
            Input::Rtp(RtpIn {
                kind: Kind::Video,
                payload_type: 96,
                ssrc: 11,
                seq,
                timestamp: 0,
                marker: false,
                payload: Bytes::from_static(&[0x10, 0, 0, 0]),
                transport_seq: Some(seq),
                arrival: t0,
            }),
        );
    }
    drain(&mut s);
    let mut now = t0;
    for _ in 0..200 {
        let Output::Timeout(at) = s.poll_output() else {
            drain(&mut s);
            continue;
        };
        assert!(
            at > now,
            "deadline {:?} not after now",
            at.saturating_duration_since(now)
        );
        now = at + Duration::from_millis(7);
        s.handle_input(now, Input::Timeout);
    }
}

/// The audio sender report's RTP time 1 s after one packet with RTP time 960 went out, that
/// packet's audio captured `captured_us` (Unix µs; the session's clock reads 1.7e15 at t0).
fn audio_report_rtp_time(captured_us: u64) -> u32 {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_input(
        t0,
        Input::Audio(EncodedAudio {
            data: Bytes::from_static(&[1; 80]),
            rtp_timestamp: 960,
            capture_us: captured_us,
            level_dbfs: -20.0,
        }),
    );
    drain(&mut s);
    s.handle_input(t0 + REPORT_INTERVAL, Input::Timeout);
    drain(&mut s)
        .iter()
        .find_map(|o| match o {
            Output::Rtcp(RtcpOut::Reports { senders, .. }) => {
                senders.iter().find(|i| i.ssrc == 2).map(|i| i.rtp_time)
            }
            _ => None,
        })
        .expect("an audio sender report")
}

#[test]
fn sender_reports_tie_rtp_time_to_the_capture_clock_else_to_the_send_time() {
    let t0_us = 1_700_000_000_000_000;
    // Captured 150 ms before it was sent (a slow microphone): 1.15 s of 48 kHz later.
    assert_eq!(audio_report_rtp_time(t0_us - 150_000), 960 + 55_200);
    // No capture time (the echo contact's decoded audio), or one from another clock: the send
    // time, 1 s later.
    assert_eq!(audio_report_rtp_time(0), 960 + 48_000);
    assert_eq!(audio_report_rtp_time(t0_us - 60_000_000), 960 + 48_000);
}
