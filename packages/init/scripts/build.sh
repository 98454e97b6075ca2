#!/usr/bin/env bash
# Rebuilds bin/init-x86_64 and bin/init-aarch64 from c/init.c with Debian's compilers
# (gcc and gcc-aarch64-linux-gnu, Debian 12: gcc 12.2.0). The flags make the output depend
# only on the source and the compiler version: no build id, no paths, no debug info.
#
#   scripts/build.sh            write bin/init-<arch> and bin/SHA256SUMS
#   scripts/build.sh OUTDIR     write into OUTDIR instead (the reproducibility test uses this)
set -euo pipefail
pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$pkg/bin}
mkdir -p "$out"
cd "$pkg"

flags=(-std=c11 -Os -static -nostdlib -ffreestanding -fno-builtin -fno-pic -no-pie
  -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident
  -ffunction-sections -fdata-sections -ffile-prefix-map="$pkg"=. -Wall -Wextra -Werror
  -Wl,--build-id=none -Wl,--gc-sections -Wl,-z,noexecstack -Wl,-z,noseparate-code -Wl,--hash-style=gnu -s)

build() { # arch compiler
  local arch=$1 cc=$2
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "build.sh: $cc not found; install it (Debian: apt-get install ${3})" >&2
    return 1
  fi
  "$cc" "${flags[@]}" -o "$out/init-$arch.tmp" c/init.c
  mv "$out/init-$arch.tmp" "$out/init-$arch"
}

build x86_64 gcc gcc
build aarch64 aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
(cd "$out" && sha256sum init-x86_64 init-aarch64 >SHA256SUMS)
{
  echo "gcc: $(gcc --version | head -n1)"
  echo "aarch64-linux-gnu-gcc: $(aarch64-linux-gnu-gcc --version | head -n1)"
  echo "binutils: $(ld --version | head -n1)"
  echo "aarch64-binutils: $(aarch64-linux-gnu-ld --version | head -n1)"
} >"$out/COMPILERS"
