#!/usr/bin/env bash
# Installs the system packages Dyad builds and tests against (Debian/Ubuntu, run as root or with
# sudo available). Safe to run again: apt skips what is already there.
set -euo pipefail

packages=(
  build-essential pkg-config clang libclang-dev cmake nasm
  libvpx-dev libopus-dev libasound2-dev libv4l-dev
  coturn
  # The HTTP proxy the client signs in through in crates/call/tests/proxy.rs and tests/nat_lab.rs
  tinyproxy
  # The network lab reads the server's call history rows as an operator would (docs/deploy.md)
  sqlite3
  # The desktop app (Tauri 2 over WebKitGTK), the OS keyring (D-Bus), and its window tests
  libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev
  xvfb xauth webkit2gtk-driver imagemagick
  # ip netns, veth, tc tbf and nft for the impaired-link tests (tests/call_netns.rs)
  iproute2 nftables
  # The aiortc interop peer's venv (scripts/aiortc-venv.sh; aiortc itself comes from pip)
  python3 python3-venv
  # The guest page's browser test (tests/guest_chromium.rs): Debian's Chromium, driven by
  # playwright-core from ui/package-lock.json (never a downloaded browser)
  chromium
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: installing nodejs and npm (the UI is built with Vite)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found. Install a Rust toolchain (1.85 or newer, e.g. with rustup) first." >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
