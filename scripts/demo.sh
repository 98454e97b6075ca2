#!/usr/bin/env bash
# The README's first quick start, offline: a throwaway local registry, a small demo image made
# from Debian's busybox-static and pushed to it, an initramfs built from that image with an
# injected agent, and a QEMU boot that shows the agent's line.
#
#   bash scripts/demo.sh
#
# It first installs what is missing (scripts/ensure-env.sh: Debian packages, Node 24, pnpm,
# node modules, a kernel), quickly when everything is there.
#
# Leaves initramfs.cpio.gz (the demo image with the agent) in the current directory; everything else is removed on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/ensure-env.sh"
out=${IRB_DEMO_OUTPUT:-$PWD/initramfs.cpio.gz}
work=$(mktemp -d "${TMPDIR:-/tmp}/irb-demo.XXXXXX")
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# Debian's busybox-static package installs a static /bin/busybox: it runs in any image.
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "demo: $busybox is missing; install Debian's busybox-static" >&2; exit 1; }

say "starting a throwaway registry (docker-registry) on 127.0.0.1"
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
# Wait until it answers (node, not curl: curl is not on every fresh machine).
node -e "
const url = 'http://127.0.0.1:$port/v2/';
const deadline = Date.now() + 20000;
(async () => {
  for (;;) {
    try { const r = await fetch(url); if (r.ok) return; } catch {}
    if (Date.now() > deadline) { console.error('demo: the registry did not start'); process.exit(1); }
    await new Promise((r) => setTimeout(r, 100));
  }
})();
" || { cat "$work/registry/log" >&2; exit 1; }
echo "registry at 127.0.0.1:$port"

say "making a demo image from busybox-static ($busybox)"
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,root,tmp,home/demo}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:demo:/home/demo:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\ndemo:x:1000:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
layer=$work/layer.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf - . | gzip -n >"$layer"
diff_id=sha256:$(gzip -dc "$layer" | sha256sum | cut -c1-64)
oci=$work/oci
mkdir -p "$oci/blobs/sha256"
put_blob() { # file -> prints digest, size
  local sum size
  sum=$(sha256sum "$1" | cut -c1-64)
  size=$(stat -c %s "$1")
  cp "$1" "$oci/blobs/sha256/$sum"
  echo "sha256:$sum $size"
}
read -r layer_digest layer_size < <(put_blob "$layer")
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","GREETING=hello from the demo image"],"Entrypoint":["/usr/bin/agent"],"Cmd":["--serve"],"WorkingDir":"/home/demo"},"rootfs":{"type":"layers","diff_ids":["$diff_id"]},"history":[{"created_by":"scripts/demo.sh: busybox-static"}]}
JSON
read -r config_digest config_size < <(put_blob "$work/config.json")
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$layer_digest","size":$layer_size}]}
JSON
read -r manifest_digest manifest_size < <(put_blob "$work/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
cat >"$oci/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
JSON
skopeo copy --quiet --dest-tls-verify=false "oci:$oci:latest" "docker://127.0.0.1:$port/demo:latest"
echo "pushed 127.0.0.1:$port/demo:latest ($manifest_digest)"

say "writing a tiny agent"
cat >"$work/agent" <<'AGENT'
#!/bin/sh
# The demo agent: what a serverless platform would inject into every microVM.
echo "agent: up on $(uname -r) as uid $(id -u) in $(pwd), pid $$; args: $*; GREETING=$GREETING"
echo "agent: mounts: $(cut -d' ' -f2 /proc/mounts | tr '\n' ' ')"
AGENT
chmod 755 "$work/agent"

say "irb build 127.0.0.1:$port/demo:latest --inject agent:/usr/bin/agent"
(cd "$root" && pnpm --silent irb build "127.0.0.1:$port/demo:latest" --inject "$work/agent:/usr/bin/agent" -o "$out" --no-cache)

say "irb boot $(basename "$out") --expect 'irb: exit status 0'"
(cd "$root" && pnpm --silent irb boot "$out" --expect 'irb: exit status 0' --timeout 120)

say "done: the microVM booted the image and ran the agent ($out)"
