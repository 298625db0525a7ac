//! The audio processing in a simulated room (`dyad_media::room`): the far end's voice played
//! into an echo path (120 ms, ≈ 10 dB down, RT60 ≈ 170 ms) and added to the near end's voice and
//! the room's noise at the microphone. Each check runs on several seeds (talkers and rooms) and
//! against the same room with the processing off, so that what it proves is the processing's.
//!
//! The assertions are a little looser than the goals; docs/benchmarks.md, "Audio processing",
//! has the figures (`dyad bench room`).

use dyad_media::room::{run, RoomReport, Scenario};
use dyad_media::ProcessingConfig;

const SEEDS: [u64; 4] = [1, 2, 3, 4];

fn runs(scenario: Scenario, config: ProcessingConfig) -> Vec<RoomReport> {
    SEEDS
        .iter()
        .map(|&seed| run(scenario, config, seed).expect("the room runs"))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn single_talk_echo_is_cancelled_by_25_db_within_2_5_s() {
    for r in runs(Scenario::SingleTalk, ProcessingConfig::ALL) {
        let erle = r.erle_db.expect("far-end windows");
        assert!(erle >= 30.0, "median ERLE {erle:.1} dB: {}", r.summary());
        let converged = r.converged_s.expect("converges");
        assert!(converged <= 2.5, "converged at {converged} s");
        assert!(r.leak_windows * 20 <= r.judged_windows, "{}", r.summary());
    }
    // The same room with processing off: the echo goes out as it came in.
    for r in runs(Scenario::SingleTalk, ProcessingConfig::OFF) {
        let erle = r.erle_db.expect("far-end windows");
        assert!(
            erle.abs() < 1.0,
            "processing off still removed {erle:.1} dB"
        );
        assert_eq!(r.converged_s, None);
    }
}

#[test]
fn the_canceller_finds_the_echo_again_after_the_delay_jumps_50_ms() {
    let reports = runs(Scenario::DelayJump, ProcessingConfig::ALL);
    for r in &reports {
        assert!(
            r.erle_db.expect("far-end windows") >= 30.0,
            "{}",
            r.summary()
        );
    }
    // Goal 1 s; measured median 1.4 s over 8 seeds (the worst 5.0 s): see benchmarks.md.
    let recovered = median(
        reports
            .iter()
            .map(|r| r.recovered_s.unwrap_or(f64::INFINITY))
            .collect(),
    );
    assert!(recovered <= 2.0, "median recovery {recovered} s");
}

#[test]
fn double_talk_keeps_the_near_end_voice_within_3_db() {
    for r in runs(Scenario::DoubleTalk, ProcessingConfig::ALL) {
        let near = r.near_change_db.expect("double talk measured");
        assert!(
            near.abs() <= 3.0,
            "near end changed by {near:.1} dB: {}",
            r.summary()
        );
        // And the echo is still cancelled before the near end starts.
        assert!(
            r.erle_db.expect("single-talk windows") >= 30.0,
            "{}",
            r.summary()
        );
    }
}

#[test]
fn stationary_noise_is_suppressed_by_15_db_and_the_voice_kept() {
    for r in runs(Scenario::Noise, ProcessingConfig::ALL) {
        let noise = r.noise_change_db.expect("pauses measured");
        let speech = r.speech_change_db.expect("speech measured");
        assert!(
            noise <= -15.0,
            "noise only {noise:.1} dB down: {}",
            r.summary()
        );
        assert!(speech.abs() <= 3.0, "voice changed by {speech:.1} dB");
    }
    for r in runs(Scenario::Noise, ProcessingConfig::OFF) {
        let noise = r.noise_change_db.expect("pauses measured");
        assert!(
            noise.abs() < 0.5,
            "processing off changed the noise by {noise:.1} dB"
        );
    }
}

#[test]
fn each_switch_turns_its_part_off() {
    let no_aec = ProcessingConfig {
        echo_cancellation: false,
        ..ProcessingConfig::ALL
    };
    let r = run(Scenario::SingleTalk, no_aec, 1).expect("runs");
    // Noise suppression and gain control alone leave the echo (the gain may even raise it).
    assert!(r.erle_db.expect("far-end windows") < 3.0, "{}", r.summary());
    let no_ns = ProcessingConfig {
        noise_suppression: false,
        ..ProcessingConfig::ALL
    };
    let r = run(Scenario::Noise, no_ns, 1).expect("runs");
    assert!(r.noise_change_db.expect("pauses") > -3.0, "{}", r.summary());
}
