#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lint, typecheck, build and every package's tests.
# Ends with one line summing up every package's vitest results: `tests: N passed, N failed, N skipped`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-env.sh
pnpm lint
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
pnpm turbo run build typecheck test --output-logs=new-only --concurrency=1 "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
# vitest prints e.g. "Tests  2 failed | 40 passed | 1 skipped (43)" per package.
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^\S+:test:\s+Tests\s' | node -e '
  let passed = 0, failed = 0, skipped = 0;
  for (const line of require("fs").readFileSync(0, "utf8").split("\n")) {
    for (const [, n, kind] of line.matchAll(/(\d+) (passed|failed|skipped|todo)/g)) {
      if (kind === "passed") passed += +n; else if (kind === "failed") failed += +n; else skipped += +n;
    }
  }
  console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
'
exit "$status"
