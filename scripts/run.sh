#!/usr/bin/env bash
# README command 1: install what is needed, build, and run the main job.
# Today that is the media-engine demo: test pattern → VP8 → decode, measured, plus Opus audio.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo run --release -p dyad -- demo "$@"
