#!/usr/bin/env bash
# N calls in a row each way between Dyad (`dyad call` / `dyad answer`) and aiortc
# (tests/peers/aiortc_peer.py) through a local `dyad serve`: how many carry media both ways, and
# answer → first frame on each side. A benchmark, not CI (CI runs crates/call/tests/aiortc.rs).
# Usage: bash scripts/interop-aiortc.sh [N]   (DYAD_CLI: the dyad binary, default target/debug/dyad)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
dyad="${DYAD_CLI:-${CARGO_TARGET_DIR:-$PWD/target}/debug/dyad}"
python="$(bash scripts/aiortc-venv.sh)"
peer="tests/peers/aiortc_peer.py"
work="$(mktemp -d)"
port=18471
url="http://127.0.0.1:$port"
"$dyad" serve --listen "127.0.0.1:$port" --memory --auth-attempts-per-min 1000 >"$work/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; rm -rf "$work"' EXIT
sleep 1

median() { sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.0f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else printf "-"}'; }
ok_calls() { grep -l '"frames_decoded": [1-9]' "$@" 2>/dev/null | wc -l; }

# 1. Dyad calls aiortc (Dyad offers, so Dyad is the ICE controlling agent).
for i in $(seq "$n"); do
  "$python" -u "$peer" --server "$url" --answer --seconds 3 --timeout 30 >"$work/a$i.py" 2>/dev/null &
  py=$!
  sleep 1.5
  timeout 30 "$dyad" call aiortc --server "$url" --user dyadcaller --password "dyad caller pw" \
    --seconds 5 >"$work/a$i.dyad" 2>/dev/null || true
  wait "$py" || true
done
# 2. aiortc calls Dyad (aiortc offers: payload types 97/96, aiortc controls ICE).
for i in $(seq "$n"); do
  timeout 30 "$dyad" answer --server "$url" --user dyadcallee --password "dyad callee pw" \
    --calls 1 >"$work/b$i.dyad" 2>/dev/null &
  dy=$!
  sleep 1.5
  "$python" -u "$peer" --server "$url" --call dyadcallee --seconds 3 --timeout 30 >"$work/b$i.py" 2>/dev/null || true
  wait "$dy" || true
done

frame_ms() { grep -ho 'first remote frame [0-9.]*' "$@" | awk '{print $4}'; }
py_ms() { grep -ho '"ms_after_answer": [0-9.]*' "$@" | awk '{print $2}'; }
dyad_ok() { grep -l 'frame #[0-9]' "$@" 2>/dev/null | wc -l; }
echo "Dyad calls aiortc: $n calls; aiortc decoded Dyad's video in $(ok_calls "$work"/a*.py), Dyad decoded aiortc's in $(dyad_ok "$work"/a*.dyad);"
echo "  answer → first frame, median ms: at Dyad $(frame_ms "$work"/a*.dyad | median) ($(frame_ms "$work"/a*.dyad | sort -n | tr '\n' ' ')), at aiortc $(py_ms "$work"/a*.py | median)"
echo "aiortc calls Dyad: $n calls; aiortc decoded Dyad's video in $(ok_calls "$work"/b*.py), Dyad decoded aiortc's in $(dyad_ok "$work"/b*.dyad);"
echo "  answer → first frame, median ms: at Dyad $(frame_ms "$work"/b*.dyad | median) ($(frame_ms "$work"/b*.dyad | sort -n | tr '\n' ' ')), at aiortc $(py_ms "$work"/b*.py | median)"
