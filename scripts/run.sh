#!/usr/bin/env bash
# README command 1: install what is needed, build, and start the desktop app on its embedded
# default (a signalling server on loopback and an "Echo test" contact). With no display it says
# so and runs the headless demo call instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The UI first: the app embeds ui/dist, and the server (in both paths) the guest page.
bash scripts/build-ui.sh
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "run: no display (DISPLAY and WAYLAND_DISPLAY are unset), so running the headless demo call instead of the desktop app."
  exec cargo run --release -p dyad -- call "$@"
fi
exec cargo run --release -p dyad-app
