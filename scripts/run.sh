#!/usr/bin/env bash
# README command 1: install what is needed, build, and run the main job.
# Until the desktop app lands, that is a real call on loopback: an embedded signalling server,
# an echo bot, and a caller that sends the test pattern and prints live call statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo run --release -p dyad -- call "$@"
