#!/usr/bin/env bash
# Installs what irb's build and tests need, idempotently and quickly when it is there:
# Debian packages, Node >= 22.19 (Node 24 from the npm registry when the machine's is
# older), pnpm, the workspace's node modules and a Linux kernel for boot tests.
# Source it (`. scripts/ensure-env.sh`) so PATH changes reach the caller.
set -euo pipefail

IRB_NODE_PREFIX=${IRB_NODE_PREFIX:-/opt/node24}
IRB_PNPM_VERSION=12.4.2
IRB_APT_PACKAGES=(docker-registry skopeo umoci qemu-system-x86 busybox-static cpio libarchive-tools pigz zstd lz4
  debootstrap apache2-utils ca-certificates openssl python3 make gcc libc6-dev g++ time qemu-system-arm
  gcc-aarch64-linux-gnu kmod initramfs-tools-core xz-utils libc6-dev-arm64-cross)

_irb_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_irb_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
_irb_log() { printf '[ensure-env] %s\n' "$*" >&2; }

_irb_node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)'
}

_irb_ensure_apt() {
  local missing=() p
  for p in "${IRB_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    _irb_log "installing Debian packages: ${missing[*]}"
    _irb_sudo apt-get update -qq
    _irb_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

_irb_ensure_node() {
  if [ -x "$IRB_NODE_PREFIX/bin/node" ]; then export PATH="$IRB_NODE_PREFIX/bin:$PATH"; fi
  if ! _irb_node_ok; then
    _irb_log "Node $(node --version 2>/dev/null || echo none) is older than 22.19: installing Node 24 into $IRB_NODE_PREFIX"
    _irb_sudo npm i -g --loglevel=error --prefix "$IRB_NODE_PREFIX" node@24 >/dev/null || true
    export PATH="$IRB_NODE_PREFIX/bin:$PATH"
    if ! _irb_node_ok; then
      _irb_log "could not install Node 24 from the npm registry (see npm's error above); install Node >= 22.19 yourself and run again"
      return 1
    fi
  fi
  if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$IRB_PNPM_VERSION" ]; then
    _irb_log "installing pnpm $IRB_PNPM_VERSION"
    local prefix=$IRB_NODE_PREFIX
    [ -w "$(dirname "$prefix")" ] || [ -d "$prefix" ] || prefix=$HOME/.local
    _irb_sudo npm i -g --loglevel=error --prefix "$prefix" "pnpm@$IRB_PNPM_VERSION" >/dev/null || true
    export PATH="$prefix/bin:$PATH"
    if ! command -v pnpm >/dev/null 2>&1; then
      _irb_log "could not install pnpm $IRB_PNPM_VERSION from the npm registry (see npm's error above)"
      return 1
    fi
  fi
}

_irb_ensure_modules() {
  # zstd-napi builds with node-gyp, which cannot download Node headers offline;
  # the distribution's headers serve any Node version (N-API).
  if [ -f /usr/include/node/node.h ] && [ -z "${npm_config_nodedir:-}" ]; then export npm_config_nodedir=/usr; fi
  local stamp="$_irb_root/node_modules/.irb-install-stamp"
  local sum
  sum=$(cat "$_irb_root/pnpm-lock.yaml" "$_irb_root"/package.json "$_irb_root"/packages/*/package.json \
    "$_irb_root"/apps/*/package.json 2>/dev/null | sha256sum | cut -c1-64)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    _irb_log "installing node modules"
    if ! (cd "$_irb_root" && pnpm install --frozen-lockfile --reporter=silent); then
      _irb_log "pnpm install failed (see above)"
      return 1
    fi
    echo "$sum" >"$stamp"
  fi
}

# A Debian kernel for boot tests, unpacked (not installed) into the cache: vmlinuz, its modules
# under lib/modules/<release> with modules.dep made by depmod (the .deb ships none; its postinst
# makes it), and the .deb itself, for tests of a .deb module source.
_irb_unpack_kernel() { # dir apt-package
  local dir=$1 pkg=$2 tmp release path
  tmp=$(mktemp -d)
  chmod 777 "$tmp"
  (cd "$tmp" && { apt-get download -qq "$pkg" >/dev/null 2>&1 || _irb_sudo apt-get download -qq "$pkg" >/dev/null; })
  mkdir -p "$dir"
  rm -f "$dir"/linux-image-*.deb
  cp "$tmp"/linux-image-*.deb "$dir"/
  dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb | tar -x -C "$dir" --wildcards './boot/vmlinuz-*' './lib/modules/*'
  local depmod
  depmod=$(command -v depmod || echo /sbin/depmod)
  for path in "$dir"/lib/modules/*/; do
    release=$(basename "$path")
    "$depmod" -b "$dir" "$release"
  done
  rm -rf "$tmp"
}

_irb_ensure_kernel() {
  local dir=${XDG_CACHE_HOME:-$HOME/.cache}/irb/kernel
  export IRB_TEST_KERNEL_DIR=$dir
  if ls "$dir"/lib/modules/*/modules.dep >/dev/null 2>&1 && ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then return; fi
  _irb_log "unpacking a Debian kernel and its modules into $dir"
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$pkg" ]; then _irb_sudo apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); fi
  _irb_unpack_kernel "$dir" "$pkg"
}

# arm64 guests for boot tests: Debian's arm64 kernel and static busybox, downloaded with apt for
# that architecture and unpacked (never installed) into the cache.
_irb_ensure_arm64() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/irb
  local kdir=$cache/kernel-aarch64 bdir=$cache/aarch64
  if ls "$kdir"/lib/modules/*/modules.dep >/dev/null 2>&1 && ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 &&
    [ -x "$bdir/bin/busybox" ]; then return; fi
  _irb_log "unpacking Debian's arm64 kernel, its modules and busybox into $cache"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    _irb_sudo dpkg --add-architecture arm64
    _irb_sudo apt-get update -qq
  fi
  local tmp pkg
  pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$pkg" ]; then _irb_sudo apt-get update -qq; pkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-/{print $2; exit}'); fi
  _irb_unpack_kernel "$kdir" "$pkg"
  tmp=$(mktemp -d)
  chmod 777 "$tmp"
  (cd "$tmp" && { apt-get download -qq busybox-static:arm64 >/dev/null 2>&1 || _irb_sudo apt-get download -qq busybox-static:arm64 >/dev/null; })
  mkdir -p "$bdir"
  dpkg-deb --fsys-tarfile "$tmp"/busybox-static_*.deb | tar -x -C "$bdir" ./bin/busybox
  rm -rf "$tmp"
}

_irb_ensure_apt
_irb_ensure_node
_irb_ensure_modules
_irb_ensure_kernel
_irb_ensure_arm64
