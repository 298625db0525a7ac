#!/usr/bin/env bash
# The Python venv with aiortc that the interop tests run (crates/call/tests/aiortc.rs, peer
# tests/peers/aiortc_peer.py). Wheels only (PyAV's bundle libvpx and libopus; nothing compiles),
# pinned in tests/peers/requirements.txt. Made once into $DYAD_TOOLS/aiortc and kept until the
# requirements change. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${DYAD_TOOLS:-$HOME/.cache/dyad-tools}"
venv="$tools/aiortc"
want="$(sha256sum tests/peers/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    -r tests/peers/requirements.txt >&2
  "$venv/bin/python" -c "import aiortc, av, numpy, websockets" >&2
  echo "$want" >"$venv/.requirements"
fi
echo "$venv/bin/python"
