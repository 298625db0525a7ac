#!/usr/bin/env bash
# Installs the UI's npm packages (exact versions from ui/package-lock.json) and builds ui/dist,
# which the desktop app embeds at compile time. Runs the type check and the UI unit tests first
# when called with --test.
set -euo pipefail
cd "$(dirname "$0")/../ui"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ "${1:-}" = "--test" ]; then
  echo "== UI type check"
  npm run check
  echo "== UI unit tests (vitest)"
  npm test
fi
npm run build
