#!/usr/bin/env bash
# README command 2: install what is needed and run every check and test. Each phase's wall time
# is printed at the end and kept in <target>/ci-timings.txt (docs/benchmarks.md, "Build and CI").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/timing.sh
target="${CARGO_TARGET_DIR:-$PWD/target}"
tools="${DYAD_TOOLS:-$HOME/.cache/dyad-tools}"

phase "system packages (scripts/install-deps.sh)"
bash scripts/install-deps.sh

# tauri-driver (the window tests' WebDriver proxy) builds once into a cached folder, in the
# background beside the main build: that build leaves a core idle whenever one large crate or a
# link holds it up. Its own target dir, so neither waits for the other's lock.
driver_log="$target/tauri-driver-install.log"
mkdir -p "$target"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  (env -u RUSTC_WORKSPACE_WRAPPER CARGO_TARGET_DIR="$tools/build" \
     cargo install tauri-driver --version "^2" --locked --root "$tools" >"$driver_log" 2>&1 \
     && rm -rf "$tools/build") &
  driver_pid=$!
fi

# The aiortc venv (pip wheels, mostly download time) also fills in beside the build.
aiortc_log="$target/aiortc-venv.log"
(bash scripts/aiortc-venv.sh >"$aiortc_log" 2>&1) &
aiortc_pid=$!

phase "UI: npm ci, type check, vitest, vite build (scripts/build-ui.sh)"
# First: ui/dist is embedded in the app crate at compile time.
bash scripts/build-ui.sh --test

phase "cargo fmt --check"
cargo fmt --all -- --check

if [ -f ../shared/check-layering.py ]; then
  phase "crate layering (../shared/check-layering.py)"
  python3 ../shared/check-layering.py
fi

# Clippy and the build in one pass. `cargo clippy` is `cargo check` with clippy-driver as the
# workspace crates' compiler; driving a real build the same way lints every target (lib, bins,
# tests, benches, with and without cfg(test): what `clippy --all-targets` covers) while it
# compiles them, so the ~700 dependencies are compiled once instead of once in check mode for
# clippy and again for the tests. The same environment stays set for every cargo command below,
# so nothing is rebuilt; one package selection (--workspace --all-targets) for the same reason.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
phase "build + clippy -D warnings: every target of the workspace"
cargo build --workspace --all-targets --locked

phase "waiting for the aiortc venv (scripts/aiortc-venv.sh, made in the background)"
wait "$aiortc_pid" || { cat "$aiortc_log" >&2; exit 1; }
export DYAD_AIORTC_PYTHON
DYAD_AIORTC_PYTHON="$(tail -n 1 "$aiortc_log")"

phase "cargo test --workspace --all-targets"
cargo test --workspace --all-targets --locked

if [ -n "${driver_pid:-}" ]; then
  phase "waiting for tauri-driver (built in the background)"
  wait "$driver_pid" || { cat "$driver_log" >&2; exit 1; }
fi
phase "desktop app in a real window (scripts/e2e.sh: WebDriver under Xvfb)"
DYAD_APP="$target/debug/dyad-app" DYAD_CLI="$target/debug/dyad" bash scripts/e2e.sh

# The main job (README command 1) still runs: the media demo, and the headless call that
# command 1 falls back to without a display (the binaries built above; no second build).
phase "dyad demo + dyad call (README command 1's headless path)"
"$target/debug/dyad" demo --seconds 2 --fast
"$target/debug/dyad" call --seconds 3
