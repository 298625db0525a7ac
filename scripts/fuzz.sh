#!/usr/bin/env bash
# The fuzzing benchmark (not part of CI): runs every parser of outside input for INPUTS inputs
# and prints target | inputs run | crashes | time. Exits non-zero when any target crashed or
# failed; a target stopped by the time cap before INPUTS says so in the table.
#
#   bash scripts/fuzz.sh [INPUTS] [MAX_SECONDS]     # defaults: 1000000 inputs, 1200 s per target
#   bash scripts/fuzz.sh 1000000000 10              # a smoke run: 10 s per target
#
# cargo-fuzz targets (fuzz/, nightly, no sanitizer: the crates are safe Rust, so a panic,
# overflow, OOM or timeout is the crash signal; debug assertions and overflow checks are on) run
# on fuzz/corpus/<target>, which starts from the committed seeds (seed-*) and grows (ignored by
# git); a crash is saved under fuzz/artifacts/<target>/. The desktop app's parsers are proptest
# properties (stable; a cargo-fuzz build of dyad-app would be a second, instrumented Tauri build),
# run with PROPTEST_CASES=INPUTS. Environment:
#   FUZZ_TARGETS="turn rtcp app_settings"   only these (names as in the table)
#   FUZZ_JOBS=2                             targets at once (default 1)
#   FUZZ_TARGET_DIR, FUZZ_STABLE_TARGET_DIR build directories (defaults under ~/.cache)
# Everything runs under `nice -n 19`. docs/benchmarks.md ("Fuzzing") has the figures.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INPUTS=${1:-1000000}
MAX_SECONDS=${2:-1200}
JOBS=${FUZZ_JOBS:-1}
FUZZ_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/dyad-fuzz-target}
STABLE_DIR=${FUZZ_STABLE_TARGET_DIR:-$HOME/.cache/dyad-fuzz-stable-target}
CARGO_FUZZ_TARGETS="signalling http_bodies sdp sdp_answer ice_candidate rtp_assembler rtcp turn turn_guard"
PROPTEST_TARGETS="app_settings app_tokens app_frame_socket"
# Targets that run in several processes of at most this many inputs each, the counts summed:
# webrtc-rs 0.17.2 keeps ≈ 50–90 KB per closed peer connection (docs/benchmarks.md), so one
# process answering a million offers would run out of memory, not find bugs.
declare -A CHUNK=([sdp_answer]=10000)
declare -A PROPTEST_NAME=(
  [app_settings]=proptests::settings_files_load_or_fail_cleanly
  [app_tokens]=proptests::token_files_read_or_are_replaced
  [app_frame_socket]=proptests::frame_socket_handshakes_and_acks_never_break_the_server
)
TARGETS=${FUZZ_TARGETS:-$CARGO_FUZZ_TARGETS $PROPTEST_TARGETS}
OUT=$(mktemp -d /tmp/dyad-fuzz.XXXXXX)
echo "fuzz: $INPUTS inputs per target, at most $MAX_SECONDS s each; logs in $OUT"

is_proptest() { [[ " $PROPTEST_TARGETS " == *" $1 "* ]]; }

want_fuzz=0 want_prop=0
for t in $TARGETS; do
  if is_proptest "$t"; then want_prop=1; else want_fuzz=1; fi
done

if [ $want_fuzz = 1 ]; then
  echo "== building the cargo-fuzz targets (nightly)"
  (cd fuzz && nice -n 19 cargo +nightly fuzz build -s none --target-dir "$FUZZ_DIR") \
    >"$OUT/build-fuzz.log" 2>&1 || { tail -30 "$OUT/build-fuzz.log"; exit 2; }
fi
if [ $want_prop = 1 ]; then
  echo "== building dyad-app's property tests (stable)"
  CARGO_TARGET_DIR=$STABLE_DIR nice -n 19 cargo test -p dyad-app --lib --no-run \
    >"$OUT/build-app.log" 2>&1 || { tail -30 "$OUT/build-app.log"; exit 2; }
fi

# One target; writes "inputs crashes seconds note" to $OUT/<target>.result.
run_one() {
  local t=$1 start end secs runs crashes note="" rc
  start=$(date +%s)
  if is_proptest "$t"; then
    PROPTEST_CASES=$INPUTS CARGO_TARGET_DIR=$STABLE_DIR timeout "$MAX_SECONDS" \
      nice -n 19 cargo test -q -p dyad-app --lib "${PROPTEST_NAME[$t]}" -- --exact \
      >"$OUT/$t.log" 2>&1
    rc=$?
    end=$(date +%s)
    if [ $rc = 0 ]; then runs=$INPUTS crashes=0
    elif [ $rc = 124 ]; then runs="<$INPUTS" crashes=0 note="stopped at the time cap"
    else runs="?" crashes=1 note="failed: see $OUT/$t.log"
    fi
  else
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    local bin="$FUZZ_DIR/x86_64-unknown-linux-gnu/release/$t"
    local before
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    local chunk=${CHUNK[$t]:-$INPUTS} left_time n
    runs=0 rc=0
    : >"$OUT/$t.log"
    while [ "$runs" -lt "$INPUTS" ] && [ $rc = 0 ]; do
      left_time=$(( MAX_SECONDS - ($(date +%s) - start) ))
      [ $left_time -le 0 ] && break
      n=$(( INPUTS - runs < chunk ? INPUTS - runs : chunk ))
      (cd fuzz && nice -n 19 "$bin" "corpus/$t" -runs="$n" -max_total_time="$left_time" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/") >>"$OUT/$t.log" 2>&1
      rc=$?
      n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$' | tail -1)
      [ -z "$n" ] && break
      runs=$(( runs + n ))
      # A process stopped by the time cap ran fewer than it was given: that was the last.
      [ "$left_time" -le 1 ] && break
    done
    end=$(date +%s)
    crashes=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
    if [ $rc != 0 ] && [ "$crashes" = 0 ]; then crashes=1; note="exit $rc: see $OUT/$t.log"; fi
    [ -z "$runs" ] && runs="?"
    if [ "$crashes" = 0 ] && [ "$runs" != "?" ] && [ "$runs" -lt "$INPUTS" ]; then
      note="stopped at the time cap"
    fi
    [ "$crashes" != 0 ] && [ -z "$note" ] && note="see fuzz/artifacts/$t/"
  fi
  secs=$(( end - start ))
  echo "$runs $crashes $secs $note" >"$OUT/$t.result"
  echo "   $t: $runs inputs, $crashes crashes, ${secs} s ${note}"
}

echo "== running"
running=0
for t in $TARGETS; do
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

status=0
printf '\n| target | engine | inputs run | crashes | time |\n| --- | --- | --- | --- | --- |\n'
for t in $TARGETS; do
  read -r runs crashes secs note <"$OUT/$t.result"
  engine=cargo-fuzz; is_proptest "$t" && engine=proptest
  printf '| %s | %s | %s | %s | %s s%s |\n' "$t" "$engine" "$runs" "$crashes" "$secs" \
    "${note:+ ($note)}"
  if [ "$crashes" != 0 ]; then status=1; fi
done
df -h / | tail -1 | awk '{print "(disk: " $4 " free)"}'
exit $status
