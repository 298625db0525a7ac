#!/usr/bin/env bash
# README command 2: install what is needed and run every check and test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The UI first: its type check and unit tests, and ui/dist, which the app crate embeds.
bash scripts/build-ui.sh --test

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ -f ../shared/check-layering.py ]; then
  echo "== crate layering (../shared/check-layering.py)"
  python3 ../shared/check-layering.py
fi
echo "== cargo test"
cargo test --workspace --all-targets --locked
echo "== desktop app in a real window (WebDriver under Xvfb)"
bash scripts/e2e.sh
echo "== the main job (README command 1) still runs"
cargo run --locked -p dyad -- demo --seconds 2 --fast
# And the headless call that README command 1 falls back to without a display (debug build:
# dependencies are optimised in the dev profile, and CI saves a second, release build).
cargo run --locked -p dyad -- call --seconds 3
