#!/usr/bin/env bash
# The desktop app's end-to-end tests: the built app in a real window under Xvfb, driven over
# WebDriver (tauri-driver → Debian's WebKitWebDriver). Screenshots land in $DYAD_SHOTS
# (default: <target>/e2e-shots). Expects scripts/install-deps.sh and the UI build to have run.
# With DYAD_APP and DYAD_CLI set (scripts/test.sh sets them) it runs those binaries; without,
# it builds them.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
tools="${DYAD_TOOLS:-$HOME/.cache/dyad-tools}"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  echo "== installing tauri-driver 2.x into $tools"
  env -u RUSTC_WORKSPACE_WRAPPER CARGO_TARGET_DIR="$tools/build" \
    cargo install tauri-driver --version "^2" --locked --root "$tools"
  rm -rf "$tools/build"
fi
if [ -z "${DYAD_APP:-}" ] || [ -z "${DYAD_CLI:-}" ]; then
  cargo build --locked -p dyad-app -p dyad
  DYAD_APP="$target/debug/dyad-app" DYAD_CLI="$target/debug/dyad"
fi
export TAURI_DRIVER="$tools/bin/tauri-driver"
export DYAD_APP DYAD_CLI
export DYAD_SHOTS="${DYAD_SHOTS:-$target/e2e-shots}"
# Software rendering under Xvfb: compositing off makes canvas/WebGL drawing ~20x cheaper here.
export WEBKIT_DISABLE_COMPOSITING_MODE=1
# Bounded: a wedged window must fail the run, not hang CI.
timeout --kill-after=10 600 \
  xvfb-run -a -s "-screen 0 1280x800x24" node --test --test-reporter=spec ui/e2e/app.e2e.mjs

# The statistics screen on a lossy link: the same app inside a network namespace whose loopback
# the test makes drop a share of UDP once the call is up (nftables random drop; this kernel has no
# netem). Signalling is TCP and unaffected; the call's media loses packets both ways. The rule is
# on input: dropped on output, the sender's sendto() gets EPERM, which is not what a lossy network
# does.
loss=12
ns="dyad-e2e-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" ip link set lo up
DYAD_LOSS_PERCENT=$loss timeout --kill-after=10 300 \
  ip netns exec "$ns" xvfb-run -a -s "-screen 0 1280x800x24" \
  node --test --test-reporter=spec ui/e2e/impaired.e2e.mjs

# A guest joins the app by its own link from headless Chromium: again in a namespace of its own
# with only loopback (the app's built-in server, WebKit and Chromium all inside).
gns="dyad-e2e-guest-$$"
ip netns add "$gns"
trap 'ip netns del "$ns" 2>/dev/null || true; ip netns del "$gns" 2>/dev/null || true' EXIT
ip netns exec "$gns" ip link set lo up
timeout --kill-after=10 300 \
  ip netns exec "$gns" xvfb-run -a -s "-screen 0 1280x800x24" \
  node --test --test-reporter=spec ui/e2e/guest.e2e.mjs
echo "e2e screenshots: $DYAD_SHOTS"
