#!/usr/bin/env bash
# The desktop app's end-to-end tests: the built app in a real window under Xvfb, driven over
# WebDriver (tauri-driver → Debian's WebKitWebDriver). Screenshots land in $DYAD_SHOTS
# (default: <target>/e2e-shots). Expects scripts/install-deps.sh and the UI build to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
tools="${DYAD_TOOLS:-$HOME/.cache/dyad-tools}"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  echo "== installing tauri-driver 2.x into $tools"
  cargo install tauri-driver --version "^2" --locked --root "$tools"
fi
cargo build --locked -p dyad-app -p dyad
export TAURI_DRIVER="$tools/bin/tauri-driver"
export DYAD_APP="$target/debug/dyad-app" DYAD_CLI="$target/debug/dyad"
export DYAD_SHOTS="${DYAD_SHOTS:-$target/e2e-shots}"
# Software rendering under Xvfb: compositing off makes canvas/WebGL drawing ~20x cheaper here.
export WEBKIT_DISABLE_COMPOSITING_MODE=1
# Bounded: a wedged window must fail the run, not hang CI.
timeout --kill-after=10 600 \
  xvfb-run -a -s "-screen 0 1280x800x24" node --test --test-reporter=spec ui/e2e/app.e2e.mjs
echo "e2e screenshots: $DYAD_SHOTS"
