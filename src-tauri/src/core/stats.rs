//! The call's statistics as the app keeps them (the engine scores them, one point a second),
//! and their export to JSON or CSV.

use super::*;

impl Core {
    /// Where exports are written from now on (the app sets the Downloads folder).
    pub fn set_export_dir(&self, dir: PathBuf) {
        if let Ok(mut d) = self.0.export_dir.lock() {
            *d = dir;
        }
    }

    /// The current call's statistics so far (after a call: that call's, until the next one).
    pub fn call_stats(&self) -> Vec<StatsPoint> {
        self.state().stats.points.iter().cloned().collect()
    }

    /// Writes the current (or last) call's statistics to a file in the export folder.
    pub fn export_stats(&self, format: ExportFormat) -> Result<ExportResult> {
        let (points, peer) = {
            let s = self.state();
            (
                s.stats.points.iter().cloned().collect::<Vec<_>>(),
                s.stats.peer.clone(),
            )
        };
        let first = points.first().ok_or(AppError::State(
            "there are no call statistics to export yet",
        ))?;
        let (body, ext) = match format {
            ExportFormat::Json => (dyad_call::export::internals_json(&points, &peer), "json"),
            ExportFormat::Csv => (dyad_call::export::csv(&points), "csv"),
        };
        let dir = self
            .0
            .export_dir
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|_| self.0.data_dir.join("exports"));
        let io = |source| AppError::Io {
            what: format!("writing statistics to {}", dir.display()),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        // dyad-stats-<peer>-<start, UTC, file-name safe>.<ext>; the peer is a checked username.
        let stamp: String = dyad_call::export::iso8601(first.snapshot.timestamp)
            .chars()
            .take(19)
            .filter(|c| c.is_ascii_alphanumeric() || *c == 'T')
            .collect();
        let safe_peer: String = peer
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        let path = dir.join(format!("dyad-stats-{safe_peer}-{stamp}.{ext}"));
        std::fs::write(&path, body.as_bytes()).map_err(io)?;
        Ok(ExportResult {
            path: path.display().to_string(),
            bytes: body.len() as u64,
            points: points.len().min(u32::MAX as usize) as u32,
        })
    }
}

/// One call's statistics as the app keeps them (scored by the engine, one point a second).
pub(super) struct CallStats {
    pub(super) call_id: String,
    pub(super) peer: String,
    pub(super) points: std::collections::VecDeque<StatsPoint>,
}

impl CallStats {
    pub(super) fn new(call_id: &str, peer: &str) -> Self {
        CallStats {
            call_id: call_id.to_string(),
            peer: peer.to_string(),
            points: std::collections::VecDeque::new(),
        }
    }

    /// Keeps a point (the oldest go first past [`MAX_HISTORY`]).
    pub(super) fn push(&mut self, point: StatsPoint) {
        if self.points.len() >= MAX_HISTORY {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }
}
