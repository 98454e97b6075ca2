#!/usr/bin/env bash
# Builds the example agent as static binaries: agent-x86_64 and agent-aarch64 (when the cross
# compiler is there: Debian's gcc-aarch64-linux-gnu and libc6-dev-arm64-cross).
#
#   examples/agent/build.sh [OUTDIR]     (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here}
mkdir -p "$out"
flags=(-static -Os -s -Wall -Wextra -Werror)
gcc "${flags[@]}" -o "$out/agent-x86_64.tmp" "$here/agent.c"
mv "$out/agent-x86_64.tmp" "$out/agent-x86_64"
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  aarch64-linux-gnu-gcc "${flags[@]}" -o "$out/agent-aarch64.tmp" "$here/agent.c"
  mv "$out/agent-aarch64.tmp" "$out/agent-aarch64"
fi
