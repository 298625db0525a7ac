//! What the history keeps of a call's statistics: a summary per call (average and worst
//! quality, freezes, the path), in `summaries.json` in the data dir, newest last, bounded.

use std::path::{Path, PathBuf};

use dyad_call::quality::{Band, StatsPoint};

use crate::error::{AppError, Result};
use crate::ipc::CallSummary;
use crate::settings::write_private;

/// Summaries kept (older ones are dropped first).
pub const MAX_SUMMARIES: usize = 1000;
/// A larger file is not read (≈ 300 bytes per summary).
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Seconds averaged for "worst": a one-second blip is not the call's worst moment.
pub const WORST_WINDOW: usize = 5;
/// The first seconds ramp up and are left out (as the score does for video).
const SETTLE_SECS: f64 = 3.0;

/// A call's summary from its points; `None` for a call with no statistics.
pub fn summarize(call_id: &str, points: &[StatsPoint]) -> Option<CallSummary> {
    let last = points.last()?;
    let settled: Vec<&StatsPoint> = points
        .iter()
        .filter(|p| p.snapshot.call_seconds >= SETTLE_SECS)
        .collect();
    let judged: Vec<&StatsPoint> = if settled.is_empty() {
        points.iter().collect()
    } else {
        settled
    };
    let scores: Vec<f64> = judged.iter().map(|p| p.score.score).collect();
    let average = scores.iter().sum::<f64>() / scores.len() as f64;
    let w = WORST_WINDOW.min(scores.len());
    // The worst window's mean, and the reason given at its worst second.
    let (worst_at, worst) = (0..=scores.len() - w)
        .map(|i| (i, scores[i..i + w].iter().sum::<f64>() / w as f64))
        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    let worst_second = (worst_at..worst_at + w)
        .min_by(|a, b| scores[*a].total_cmp(&scores[*b]))
        .unwrap_or(worst_at);
    let worst_band = Band::of(worst);
    let vi = &last.snapshot.inbound_video;
    Some(CallSummary {
        call_id: call_id.to_string(),
        seconds: last.snapshot.call_seconds,
        average_score: average,
        average_band: Band::of(average),
        worst_score: worst,
        worst_band,
        worst_reason: if worst_band == Band::Good {
            String::new()
        } else {
            judged[worst_second].score.reason_text.clone()
        },
        freezes: vi.freeze_count,
        freeze_seconds: vi.total_freezes_duration,
        path: points
            .iter()
            .rev()
            .map(|p| p.path.as_str())
            .find(|p| !p.is_empty())
            .unwrap_or("")
            .to_string(),
    })
}

/// The summaries file.
#[derive(Debug, Clone)]
pub struct SummaryStore {
    path: PathBuf,
    max: usize,
}

impl SummaryStore {
    /// `summaries.json` in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        SummaryStore {
            path: data_dir.join("summaries.json"),
            max: MAX_SUMMARIES,
        }
    }

    /// All summaries, oldest first. A missing file is empty; an oversized or broken one is
    /// reported (and not overwritten until the next call adds one).
    pub fn load(&self) -> Result<Vec<CallSummary>> {
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io(source)),
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return Err(AppError::Invalid(format!(
                    "call summaries file {} is larger than {MAX_FILE_BYTES} bytes",
                    self.path.display()
                )))
            }
            Ok(_) => {}
        }
        let raw = std::fs::read(&self.path).map_err(|e| self.io(e))?;
        serde_json::from_slice(&raw).map_err(|e| {
            AppError::Invalid(format!(
                "call summaries file {} is not valid: {e}",
                self.path.display()
            ))
        })
    }

    /// Adds (or replaces) one call's summary. A broken file is replaced rather than blocking
    /// every later summary; it only ever held summaries.
    pub fn add(&self, s: CallSummary) -> Result<()> {
        let mut all = self.load().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "starting a new call summaries file");
            Vec::new()
        });
        all.retain(|x| x.call_id != s.call_id);
        all.push(s);
        if all.len() > self.max {
            all.drain(..all.len() - self.max);
        }
        let body = serde_json::to_vec(&all)
            .map_err(|e| AppError::Invalid(format!("call summaries: {e}")))?;
        write_private(&self.path, &body)
    }

    fn io(&self, source: std::io::Error) -> AppError {
        AppError::Io {
            what: format!("call summaries {}", self.path.display()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyad_call::quality::{Rates, Reason, Score};
    use dyad_call::rtc::PathInfo;
    use dyad_call::stats::StatsSnapshot;

    fn point(secs: f64, score: f64, reason: &str) -> StatsPoint {
        let mut s = StatsSnapshot {
            call_seconds: secs,
            ..Default::default()
        };
        s.inbound_video.freeze_count = 2;
        s.inbound_video.total_freezes_duration = 1.5;
        s.candidate_pair = Some(PathInfo {
            local_candidate_type: "host".into(),
            remote_candidate_type: "host".into(),
            protocol: "udp".into(),
            ..Default::default()
        });
        StatsPoint::new(
            s,
            Score {
                score,
                band: Band::of(score),
                reason: Reason::None,
                reason_text: reason.into(),
                audio_in: score,
                audio_out: score,
                video_in: 100.0,
                video_out: 100.0,
                mos: 4.0,
                one_way_delay_ms: 50.0,
            },
            Rates::default(),
        )
    }

    #[test]
    fn summary_averages_and_takes_the_worst_five_seconds() {
        // Ramp-up seconds are ignored; a 1 s dip to 20 alone is not the worst 5 s.
        let mut pts = vec![point(0.0, 10.0, "ramp"), point(1.0, 10.0, "ramp")];
        for i in 3..23 {
            let (score, why) = match i {
                10 => (20.0, "blip"),
                15..=19 => (55.0, "the delay is long (800 ms round trip)"),
                _ => (90.0, ""),
            };
            pts.push(point(f64::from(i), score, why));
        }
        let s = summarize("c1", &pts).expect("summary");
        assert_eq!(s.seconds, 22.0);
        assert_eq!(s.worst_score, 55.0);
        assert_eq!(s.worst_band, Band::Fair);
        assert_eq!(s.worst_reason, "the delay is long (800 ms round trip)");
        let avg = (20.0 + 5.0 * 55.0 + 14.0 * 90.0) / 20.0;
        assert!((s.average_score - avg).abs() < 1e-9);
        assert_eq!(s.average_band, Band::Good);
        assert_eq!((s.freezes, s.freeze_seconds), (2, 1.5));
        assert_eq!(s.path, "direct (host) over UDP");
        assert!(summarize("c2", &[]).is_none());
        // A short call is judged on what it has.
        let s = summarize("c3", &[point(0.0, 40.0, "x")]).expect("summary");
        assert_eq!(s.worst_band, Band::Poor);
    }

    #[test]
    fn store_keeps_newest_bounded_and_survives_a_broken_file() {
        let dir = std::env::temp_dir().join(format!("dyad-summaries-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = SummaryStore::new(&dir);
        assert!(store.load().expect("missing file is empty").is_empty());
        let one = summarize("c1", &[point(5.0, 80.0, "")]).expect("summary");
        store.add(one.clone()).expect("add");
        store.add(one.clone()).expect("replace");
        assert_eq!(store.load().expect("load"), vec![one.clone()]);
        std::fs::write(dir.join("summaries.json"), b"{not json").expect("write");
        assert!(store.load().is_err());
        store.add(one.clone()).expect("a broken file is replaced");
        assert_eq!(store.load().expect("load").len(), 1);
        let small = SummaryStore {
            max: 3,
            ..store.clone()
        };
        for i in 0..5 {
            let mut s = one.clone();
            s.call_id = format!("k{i}");
            small.add(s).expect("add");
        }
        let ids: Vec<String> = small
            .load()
            .expect("load")
            .into_iter()
            .map(|s| s.call_id)
            .collect();
        assert_eq!(ids, ["k2", "k3", "k4"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
