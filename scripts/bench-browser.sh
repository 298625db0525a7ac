#!/usr/bin/env bash
# Side by side on this machine, a 640×480 call of the test pattern (+ audio) both ways:
#   Dyad ↔ Chromium  a guest link: headless Chromium (the guest page) calls `dyad answer`
#   Chromium ↔ Chromium  one headless page calling itself (ui/e2e/chromium-self.mjs)
#   Dyad ↔ Dyad  `dyad bench call` (both clients in one process)
# For each: answer → first remote frame, and CPU-seconds per minute of call for both ends
# together, measured over a steady window after 2 s. Everything runs in a network namespace with
# only loopback. A benchmark, not CI (docs/benchmarks.md, "Browsers side by side").
# Usage: bash scripts/bench-browser.sh [CALLS] [SECONDS]   (DYAD_CLI: default target/release/dyad)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-5}"
secs="${2:-10}"
dyad="$(realpath "${DYAD_CLI:-${CARGO_TARGET_DIR:-$PWD/target}/release/dyad}")"
ns="dyad-bench-browser-$$"
work="$(mktemp -d)"
ip netns add "$ns"
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
inside() { ip netns exec "$ns" "$@"; }
inside ip link set lo up
"$dyad" pattern --seconds 5 --y4m "$work/p.y4m" --wav "$work/t.wav" >/dev/null
tick="$(getconf CLK_TCK)"

# CPU seconds so far of the processes in the namespace whose command line matches $1.
cpu() {
  local total=0 p
  for p in $(ip netns pids "$ns"); do
    { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q -- "$1" || continue
    local t
    t="$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$p/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  awk -v t="$total" -v k="$tick" 'BEGIN { printf "%.3f", t / k }'
}
median() { sort -n | awk '{a[NR]=$1} END {if (!NR) {print "-"; exit} printf "%.1f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
per_minute() { awk -v a="$1" -v b="$2" -v s="$secs" 'BEGIN { printf "%.2f", (b - a) * 60 / s }'; }

# 1. Dyad ↔ Chromium.
url="http://127.0.0.1:18490"
inside "$dyad" serve --memory --listen 127.0.0.1:18490 --auth-attempts-per-min 1000 >"$work/serve.log" 2>&1 &
sleep 1
inside "$dyad" answer --server "$url" --user hostie --password "host password 1" --audio tone \
  --calls "$calls" --seconds $((secs + 4)) >"$work/answer.log" 2>&1 &
sleep 2
: >"$work/dc.cpu"
for i in $(seq "$calls"); do
  link="$(inside "$dyad" invite --server "$url" --user hostie --password "host password 1" 2>/dev/null)"
  n=0
  while read -r line; do
    case "$line" in *'"event":"sample"'*) n=$((n + 1)) ;; *) continue ;; esac
    if [ "$n" -eq 2 ]; then c0="$(cpu "$dyad answer")"; b0="$(cpu lib/chromium)"; fi
    if [ "$n" -eq $((secs + 2)) ]; then
      c1="$(cpu "$dyad answer")"; b1="$(cpu lib/chromium)"
      echo "$(per_minute "$c0" "$c1") $(per_minute "$b0" "$b1")" >>"$work/dc.cpu"
      echo "$line" | grep -o '"firstFrameMs":[0-9.]*' | cut -d: -f2 >>"$work/dc.page"
    fi
  done < <(inside node ui/e2e/guest-chromium.mjs --url "$link" --y4m "$work/p.y4m" --wav "$work/t.wav" \
             --hangup host --seconds $((secs + 3)) 2>/dev/null)
done
dyad_ff="$(grep -o 'first remote frame [0-9.]*' "$work/answer.log" | awk '{print $4}' | median)"
page_ff="$(median <"$work/dc.page")"
dyad_cpu="$(awk '{print $1}' "$work/dc.cpu" | median)"
chrome_cpu="$(awk '{print $2}' "$work/dc.cpu" | median)"
both_cpu="$(awk '{print $1 + $2}' "$work/dc.cpu" | median)"

# 2. Chromium ↔ Chromium.
: >"$work/cc.cpu"
while read -r line; do
  case "$line" in
    *'"event":"call"'*) echo "$line" | grep -o '\[[0-9.,]*\]' | tr -d '[]' | tr ',' '\n' >>"$work/cc.ff" ;;
    *'"event":"steady"'*)
      if [ -z "${s0:-}" ]; then s0="$(cpu lib/chromium)"; else
        echo "$(per_minute "$s0" "$(cpu lib/chromium)")" >>"$work/cc.cpu"; s0=""; fi ;;
  esac
done < <(inside node ui/e2e/chromium-self.mjs --origin "$url/healthz" --y4m "$work/p.y4m" --wav "$work/t.wav" --calls "$calls" \
           --seconds "$secs" 2>/dev/null)
cc_ff="$(median <"$work/cc.ff")"
cc_cpu="$(median <"$work/cc.cpu")"

# 3. Dyad ↔ Dyad.
dd="$(inside "$dyad" bench call --calls "$calls" --seconds "$secs" --sizes 640x480 2>/dev/null | grep '^| 640')"
dd_ff="$(echo "$dd" | awk -F'|' '{print $4}' | tr -d ' ms')"
dd_cpu="$(echo "$dd" | awk -F'|' '{print $7}' | tr -d ' ')"

echo "$calls calls x $secs s, 640x480, median per call; CPU-s per minute of call, both ends together"
echo "| pair | answer → first remote frame | CPU-s per minute |"
echo "| --- | --- | --- |"
echo "| Dyad ↔ Chromium (guest link) | at Dyad $dyad_ff ms, at Chromium $page_ff ms | $both_cpu (Dyad $dyad_cpu + Chromium $chrome_cpu) |"
echo "| Chromium ↔ Chromium (one page) | $cc_ff ms (both ends) | $cc_cpu |"
echo "| Dyad ↔ Dyad (dyad bench call) | $dd_ff ms | $dd_cpu |"
