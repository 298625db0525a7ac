# Sourced by scripts/test.sh: `phase NAME` starts a timed phase (and ends the one before); at
# exit, a table of each phase's wall time goes to stderr and to $DYAD_TIMINGS (default:
# <target>/ci-timings.txt), marked failed when the run stopped inside that phase.
_phases=()
_phase_t0=$(date +%s)
_phase_start=$_phase_t0
_phase_name=""

_phase_close() {
  local now
  now=$(date +%s)
  if [ -n "$_phase_name" ]; then
    _phases+=("$_phase_name|$((now - _phase_start))|${1:-ok}")
  fi
  _phase_start=$now
  _phase_name=""
}

phase() {
  _phase_close ok
  _phase_name="$1"
  echo "== $1"
}

_phase_report() {
  local rc=$? total out line name secs status
  _phase_close "$([ "$rc" -eq 0 ] && echo ok || echo failed)"
  total=$(($(date +%s) - _phase_t0))
  out="${DYAD_TIMINGS:-${CARGO_TARGET_DIR:-target}/ci-timings.txt}"
  mkdir -p "$(dirname "$out")"
  {
    printf '%-66s %8s  %s\n' "phase" "seconds" "status"
    for line in "${_phases[@]}"; do
      IFS='|' read -r name secs status <<<"$line"
      printf '%-66s %8d  %s\n' "$name" "$secs" "$status"
    done
    printf '%-66s %8d  %s\n' "total" "$total" "$([ "$rc" -eq 0 ] && echo ok || echo "failed (exit $rc)")"
  } | tee "$out" >&2
  return "$rc"
}
trap _phase_report EXIT
