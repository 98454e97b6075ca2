#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lint, typecheck, build and every package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-env.sh
pnpm lint
pnpm turbo run build typecheck test --output-logs=new-only --concurrency=1 "$@"
