#!/usr/bin/env bash
# README command 2: install what is needed and run every check and test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

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
echo "== the main job (README command 1) still runs"
cargo run --release --locked -p dyad -- demo --seconds 2 --fast
# And the README's first command, shortened: a real call to the embedded echo bot.
cargo run --release --locked -p dyad -- call --seconds 3
