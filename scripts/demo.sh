#!/usr/bin/env bash
# The README's first quick start, offline: the whole serverless loop on this machine. A throwaway
# local registry, a small demo image made from Debian's busybox-static and pushed to it, the
# example agent (examples/agent/) built and injected as the image's program with the Debian
# kernel's network drivers, a job's own variable appended, a QEMU boot with a network whose
# port 8080 is forwarded to the host, and a shell snippet sent from the host to the agent in the
# guest, whose stdout, stderr and exit status come back; then the VM is stopped.
#
#   bash scripts/demo.sh
#
# It first installs what is missing (scripts/ensure-env.sh: Debian packages, Node 24, pnpm,
# node modules, a kernel and its modules), quickly when everything is there.
#
# Leaves initramfs.cpio.gz (the demo image with the agent) in the current directory; everything
# else is removed on exit, and no VM is left running.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/ensure-env.sh"
out=${IRB_DEMO_OUTPUT:-$PWD/initramfs.cpio.gz}
work=$(mktemp -d "${TMPDIR:-/tmp}/irb-demo.XXXXXX")
registry_pid=
boot_pid=
# Stopping `irb boot` stops its QEMU (SIGTERM, then SIGKILL); it exits once QEMU has.
stop() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() {
  stop "$boot_pid"
  stop "$registry_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","GREETING=hello from the demo image"],"Cmd":["/bin/sh"],"WorkingDir":"/home/demo"},"rootfs":{"type":"layers","diff_ids":["$diff_id"]},"history":[{"created_by":"scripts/demo.sh: busybox-static"}]}
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

# The guest kernel is the Debian kernel ensure-env.sh unpacked, named explicitly: irb boot would
# otherwise take a newer /boot/vmlinuz-* of this machine, for which these modules are not made.
kernel_dir=$IRB_TEST_KERNEL_DIR
release=$(find "$kernel_dir/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
kernel=$kernel_dir/boot/vmlinuz-$release
modules=$kernel_dir/lib/modules/$release
if [ ! -r "$kernel" ] || [ ! -f "$modules/modules.dep" ]; then
  echo "demo: no kernel with its modules in $kernel_dir; run scripts/ensure-env.sh" >&2
  exit 1
fi

# What `pnpm irb` runs, started directly: the background boot's pid is then irb's own (pnpm
# would not pass a kill on to it, and irb and QEMU would outlive the demo).
irb=(node --conditions=@irb/source "$root/apps/cli/src/bin.ts")

say "building the example agent (examples/agent/build.sh: static C, HTTP on port 8080)"
"$root/examples/agent/build.sh" "$work/agent"
echo "agent-x86_64: $(stat -c %s "$work/agent/agent-x86_64") bytes, static"

say "irb build 127.0.0.1:$port/demo:latest --inject agent-x86_64:/usr/bin/agent --entrypoint /usr/bin/agent --kernel-modules $modules --modules net"
"${irb[@]}" build "127.0.0.1:$port/demo:latest" -o "$out" --no-cache \
  --inject "$work/agent/agent-x86_64:/usr/bin/agent" --entrypoint /usr/bin/agent \
  --kernel-modules "$modules" --modules net

# A platform builds the base once and appends what differs per job: here, the job's variable.
# (In a cache directory of its own: append keeps the base's tree in irb's cache, and the demo
# leaves nothing behind.)
job=$work/job-42.cpio.gz
say "irb append $(basename "$out") -o job-42.cpio.gz --env JOB=42 (a job's own variable, no rebuild)"
IRB_CACHE_DIR=$work/cache "${irb[@]}" append "$out" -o "$job" --env JOB=42

say "irb boot job-42.cpio.gz --kernel vmlinuz-$release --net --forward 127.0.0.1:0:8080 (in the background)"
started=$(date +%s%N)
"${irb[@]}" boot "$job" --kernel "$kernel" --net --forward 127.0.0.1:0:8080 --timeout 600 \
  </dev/null >"$work/console" 2>"$work/boot.err" &
boot_pid=$!
# irb prints "irb: forward 127.0.0.1:HOSTPORT -> guest port 8080" once QEMU holds a free port.
hostport=
for _ in $(seq 600); do
  hostport=$(sed -n 's/^irb: forward 127\.0\.0\.1:\([0-9]*\) -> guest port 8080.*/\1/p' "$work/boot.err")
  if [ -n "$hostport" ] || ! kill -0 "$boot_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
[ -n "$hostport" ] || { cat "$work/console" "$work/boot.err" >&2; echo "demo: irb boot did not start QEMU" >&2; exit 1; }
cat "$work/boot.err"
# QEMU is irb boot's child; named here so that the end can show it is gone.
qemu_pid=$(cat /proc/"$boot_pid"/task/*/children 2>/dev/null | tr ' ' '\n' | sed -n 1p || true)

snippet=$(cat <<'SNIPPET'
echo "hello from the guest: kernel $(uname -r), hostname $(hostname), eth0 $(ip -4 -o addr show eth0 | awk '{print $4}')"
echo "JOB=$JOB, pid 1 is $(cat /proc/1/comm), $(grep -c ^processor /proc/cpuinfo) cpu(s)"
echo "this line went to stderr" >&2
exit 3
SNIPPET
)
say "node examples/agent/send.mjs http://127.0.0.1:$hostport \"\$SNIPPET\" --wait 120"
printf '%s\n' "$snippet" | sed 's/^/  | /'
echo
status=0
node "$root/examples/agent/send.mjs" "http://127.0.0.1:$hostport" "$snippet" --wait 120 || status=$?
answered=$(date +%s%N)
case $status in 130 | 143) exit "$status" ;; esac # Ctrl-C or a kill, not the agent's answer
echo "exit status $status"
if [ "$status" != 3 ]; then
  echo "demo: the agent did not answer as the snippet says (exit status 3); the guest's console:" >&2
  cat "$work/console" "$work/boot.err" >&2
  exit 1
fi
echo "(the answer came $(((answered - started) / 1000000)) ms after irb boot started; this machine: kernel $(uname -r), hostname $(hostname))"

# What send.mjs reads: the agent's JSON (curl --data-binary CODE http://127.0.0.1:PORT/run does the same).
say "POST /run without send.mjs: the agent's JSON answer"
# shellcheck disable=SC2016 # the script is JavaScript, the snippet the guest's shell
node -e '
const [url, code] = process.argv.slice(1);
fetch(url, { method: "POST", body: code }).then(async (r) => process.stdout.write(`${r.status} ${await r.text()}`));
' "http://127.0.0.1:$hostport/run" 'echo "6*7 = $((6*7))"; echo oops >&2; exit 1'

say "the guest's console: its init and the agent"
grep -E '^(irb|agent)' "$work/console" || true

say "stopping the VM (irb boot stops QEMU)"
stop "$boot_pid"
boot_pid=
if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
  echo "demo: QEMU (pid $qemu_pid) is still running" >&2
  exit 1
fi
echo "QEMU${qemu_pid:+ (pid $qemu_pid)} has exited"

say "done: the host sent code to the agent in the microVM and got its answer ($out)"
