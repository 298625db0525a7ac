//! A call's statistics as files: JSON shaped like a `chrome://webrtc-internals` dump (so tools
//! that read those read ours) and CSV (one row per second, one column per figure).
//!
//! The dump: `{"getUserMedia": [], "PeerConnections": {"<id>": {"stats": {"<statsId>-<name>":
//! {"startTime", "endTime", "statsType", "values"}}, "updateLog": [...]}}, "UserAgent",
//! "version"}`, where `values` is a JSON array *encoded as a string*, as Chrome writes it. Stat
//! ids follow Chrome's (`OT01V` outbound video, `IT01A` inbound audio, `RI01V` remote-inbound,
//! `CP01` the candidate pair, `T01` the transport); ours that have no W3C home are `BWE01`
//! (`dyad-estimate`), `Q01` (`dyad-quality`) and `RT01` (`dyad-rates`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::quality::StatsPoint;

/// What the dump says made it.
pub const USER_AGENT: &str = concat!("Dyad/", env!("CARGO_PKG_VERSION"));

/// The groups of one point: (stats id, W3C type, the group as JSON).
fn groups(p: &StatsPoint) -> Vec<(&'static str, &'static str, Value)> {
    let s = &p.snapshot;
    let mut out = vec![
        ("OT01V", "outbound-rtp", v(&s.outbound_video)),
        ("OT01A", "outbound-rtp", v(&s.outbound_audio)),
        ("IT01V", "inbound-rtp", v(&s.inbound_video)),
        ("IT01A", "inbound-rtp", v(&s.inbound_audio)),
        ("RI01V", "remote-inbound-rtp", v(&s.remote_inbound_video)),
        ("RI01A", "remote-inbound-rtp", v(&s.remote_inbound_audio)),
        ("BWE01", "dyad-estimate", v(&s.estimate)),
        ("AV01", "dyad-av-sync", v(&s.av_sync)),
        ("Q01", "dyad-quality", v(&p.score)),
        ("RT01", "dyad-rates", v(&p.rates)),
    ];
    if let Some(c) = &s.candidate_pair {
        out.push(("CP01", "candidate-pair", v(c)));
    }
    if let Some(t) = &s.transport {
        out.push(("T01", "transport", v(t)));
    }
    // Chrome's derived series, so its graphs' names work on our dumps.
    for (id, name, bits) in [
        ("OT01V", "[bytesSent_in_bits/s]", s.outbound_video.bitrate),
        ("OT01A", "[bytesSent_in_bits/s]", s.outbound_audio.bitrate),
        (
            "IT01V",
            "[bytesReceived_in_bits/s]",
            s.inbound_video.bitrate,
        ),
        (
            "IT01A",
            "[bytesReceived_in_bits/s]",
            s.inbound_audio.bitrate,
        ),
    ] {
        if let Some((_, _, Value::Object(m))) = out.iter_mut().find(|g| g.0 == id) {
            m.insert(name.into(), Value::from(bits));
        }
    }
    out
}

fn v<T: Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    start_time: String,
    end_time: String,
    stats_type: &'static str,
    values: String,
}

#[derive(Serialize)]
struct UpdateLog {
    time: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// The whole call as a webrtc-internals style dump. `peer` names the other side.
pub fn internals_json(points: &[StatsPoint], peer: &str) -> String {
    // id-name → (type, first ms, last ms, values)
    let mut series: BTreeMap<String, (&'static str, u64, u64, Vec<Value>)> = BTreeMap::new();
    let mut log = Vec::new();
    for p in points {
        let t = p.snapshot.timestamp;
        for (id, kind, g) in groups(p) {
            let Value::Object(fields) = g else { continue };
            for (name, value) in fields {
                if value.is_object() || value.is_array() {
                    continue;
                }
                let e = series
                    .entry(format!("{id}-{name}"))
                    .or_insert_with(|| (kind, t, t, Vec::new()));
                e.2 = t;
                e.3.push(value);
            }
        }
        for ev in &p.snapshot.events {
            let (kind, value) = ev.split_once(' ').unwrap_or((ev.as_str(), ""));
            log.push(UpdateLog {
                time: iso8601(t),
                kind: kind.to_string(),
                value: value.to_string(),
            });
        }
    }
    let stats: BTreeMap<String, Series> = series
        .into_iter()
        .map(|(k, (kind, start, end, values))| {
            (
                k,
                Series {
                    start_time: iso8601(start),
                    end_time: iso8601(end),
                    stats_type: kind,
                    values: serde_json::to_string(&values).unwrap_or_else(|_| "[]".into()),
                },
            )
        })
        .collect();
    let mut pc = Map::new();
    pc.insert("pid".into(), Value::from(std::process::id()));
    pc.insert("url".into(), Value::from(format!("dyad:call/{peer}")));
    pc.insert("rtcConfiguration".into(), Value::from(""));
    pc.insert("constraints".into(), Value::from(""));
    pc.insert(
        "stats".into(),
        serde_json::to_value(stats).unwrap_or(Value::Null),
    );
    pc.insert(
        "updateLog".into(),
        serde_json::to_value(log).unwrap_or(Value::Null),
    );
    let mut pcs = Map::new();
    pcs.insert(format!("{}-1", std::process::id()), Value::Object(pc));
    let mut root = Map::new();
    root.insert("getUserMedia".into(), Value::Array(Vec::new()));
    root.insert("PeerConnections".into(), Value::Object(pcs));
    root.insert("UserAgent".into(), Value::from(USER_AGENT));
    root.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
    serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_else(|_| "{}".into())
}

/// The whole call as CSV: a header row, then one row per second. Columns: `timestamp`
/// (ISO 8601), `callSeconds`, `events` (`;`-separated), then `<statsId>.<name>` for every figure
/// seen in the call, in a stable order.
pub fn csv(points: &[StatsPoint]) -> String {
    let rows: Vec<BTreeMap<String, Value>> = points
        .iter()
        .map(|p| {
            let mut row = BTreeMap::new();
            for (id, _, g) in groups(p) {
                if let Value::Object(fields) = g {
                    for (name, value) in fields {
                        if !value.is_object() && !value.is_array() {
                            row.insert(format!("{id}.{name}"), value);
                        }
                    }
                }
            }
            row
        })
        .collect();
    let mut columns: Vec<String> = rows
        .iter()
        .flat_map(|r| r.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    columns.dedup();
    let mut out = String::from("timestamp,callSeconds,events");
    for c in &columns {
        out.push(',');
        out.push_str(&csv_field(c));
    }
    out.push('\n');
    for (p, row) in points.iter().zip(&rows) {
        out.push_str(&iso8601(p.snapshot.timestamp));
        out.push(',');
        out.push_str(&format!("{:.3}", p.snapshot.call_seconds));
        out.push(',');
        out.push_str(&csv_field(&p.snapshot.events.join(";")));
        for c in &columns {
            out.push(',');
            match row.get(c) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.push_str(&csv_field(s)),
                Some(v) => out.push_str(&v.to_string()),
            }
        }
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Milliseconds since the Unix epoch → `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days → civil date (proleptic Gregorian; H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::{Context, Nominal, QualityTracker, Rates};
    use crate::rtc::PathInfo;
    use crate::stats::StatsSnapshot;

    fn points() -> Vec<StatsPoint> {
        let mut t = QualityTracker::new(Nominal::default());
        let mut prev = StatsSnapshot::default();
        (0..3u64)
            .map(|i| {
                let mut s = StatsSnapshot {
                    timestamp: 1_764_470_000_000 + i * 1000,
                    call_seconds: i as f64,
                    ..Default::default()
                };
                s.outbound_video.kind = "video";
                s.outbound_video.codec = "video/VP8";
                s.outbound_video.bytes_sent = 1000 * (i + 1);
                s.outbound_video.bitrate = 8000.0 * i as f64;
                s.outbound_video.quality_limitation_reason = "bandwidth";
                s.remote_inbound_video.round_trip_time = (i > 0).then_some(0.05);
                s.av_sync.offset_ms = (i > 0).then_some(-12.5);
                s.av_sync.video_delay_ms = 80.0 * i as f64;
                s.candidate_pair = Some(PathInfo {
                    local_candidate_type: "host".into(),
                    protocol: "udp".into(),
                    ..Default::default()
                });
                if i == 1 {
                    s.events = vec!["resolution_change 320x240".into(), "ice_restart".into()];
                }
                let p = StatsPoint::new(
                    s.clone(),
                    t.update(&s, Context::default()),
                    Rates::between(&prev, &s),
                );
                prev = s;
                p
            })
            .collect()
    }

    #[test]
    fn dump_reads_like_webrtc_internals() {
        let json = internals_json(&points(), "echo");
        let v: Value = serde_json::from_str(&json).expect("valid JSON");
        let pcs = v["PeerConnections"].as_object().expect("PeerConnections");
        assert_eq!(pcs.len(), 1);
        let pc = pcs.values().next().expect("one");
        let stats = &pc["stats"];
        let sent = &stats["OT01V-bytesSent"];
        assert_eq!(sent["statsType"], "outbound-rtp");
        assert_eq!(sent["startTime"], "2025-11-30T02:33:20.000Z");
        assert_eq!(sent["endTime"], "2025-11-30T02:33:22.000Z");
        // `values` is an array encoded as a string, as Chrome writes it.
        let values: Vec<u64> =
            serde_json::from_str(sent["values"].as_str().expect("string")).expect("array");
        assert_eq!(values, [1000, 2000, 3000]);
        let bits: Vec<f64> = serde_json::from_str(
            stats["OT01V-[bytesSent_in_bits/s]"]["values"]
                .as_str()
                .expect("string"),
        )
        .expect("array");
        assert_eq!(bits, [0.0, 8000.0, 16000.0]);
        assert_eq!(
            stats["OT01V-qualityLimitationReason"]["values"],
            "[\"bandwidth\",\"bandwidth\",\"bandwidth\"]"
        );
        // Missing RTT in the first second stays in the series as null.
        assert_eq!(stats["RI01V-roundTripTime"]["values"], "[null,0.05,0.05]");
        assert_eq!(
            stats["CP01-localCandidateType"]["statsType"],
            "candidate-pair"
        );
        assert_eq!(stats["Q01-band"]["statsType"], "dyad-quality");
        let log = pc["updateLog"].as_array().expect("log");
        assert_eq!(log.len(), 2);
        assert_eq!(log[0]["type"], "resolution_change");
        assert_eq!(log[0]["value"], "320x240");
        assert_eq!(log[1]["type"], "ice_restart");
        assert_eq!(log[1]["time"], "2025-11-30T02:33:21.000Z");
    }

    #[test]
    fn csv_has_one_row_per_second_and_quotes_what_needs_it() {
        let csv = csv(&points());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(&header[..3], ["timestamp", "callSeconds", "events"]);
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(row[0], "2025-11-30T02:33:21.000Z");
        assert_eq!(row[2], "resolution_change 320x240;ice_restart");
        assert_eq!(row[col("OT01V.bytesSent")], "2000");
        assert_eq!(row[col("OT01V.codec")], "video/VP8");
        assert_eq!(row[col("RI01V.roundTripTime")], "0.05");
        // The first second has no RTT: an empty cell, not "null".
        let first: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(first[col("RI01V.roundTripTime")], "");
        // Lip sync: the offset (none yet in the first second) and what was held for it.
        assert_eq!(first[col("AV01.offsetMs")], "");
        assert_eq!(row[col("AV01.offsetMs")], "-12.5");
        assert_eq!(row[col("AV01.videoDelayMs")], "80.0");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn dates_are_utc_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
