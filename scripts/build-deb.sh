#!/usr/bin/env bash
# Builds the desktop app's .deb with the Tauri bundler (release build, ~3 MiB package).
# AppImage needs downloads this machine cannot make, so only the .deb is built.
# Install it with: sudo apt install ./<target>/release/bundle/deb/Dyad_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build-ui.sh
# The Tauri CLI wants its config beside a Cargo.toml with a [package]: src-tauri/tauri.conf.json
# is a committed symlink to the root config, and TAURI_APP_PATH points the CLI at it.
# The CLI resolves paths in the config from src-tauri/ while generate_context! (which the CLI's
# cargo build also runs, with the merged config) resolves them from the root: absolute paths
# satisfy both.
export TAURI_APP_PATH="$PWD/src-tauri"
root="$PWD"
override="{\"build\":{\"frontendDist\":\"$root/ui/dist\"},\"bundle\":{\"icon\":[\"$root/icons/32x32.png\",\"$root/icons/128x128.png\",\"$root/icons/128x128@2x.png\",\"$root/icons/icon.png\"]}}"
(cd ui && npx tauri build --bundles deb --config "$override" -- --locked) || {
  echo "build-deb: the Tauri bundler failed (see above)" >&2
  exit 1
}
ls -l "${CARGO_TARGET_DIR:-$PWD/target}"/release/bundle/deb/*.deb
