import { ANALYZE_HELP } from './analyze-command.ts';
import { APPEND_HELP } from './append-command.ts';
import { CACHE_HELP } from './cache-command.ts';
import { FLEET_HELP } from './fleet-command.ts';
import { slimPresetLines } from './slim-options.ts';
import { TRACE_HELP } from './trace-command.ts';

/** Help texts, one per command; kept beside the parser so flags and docs stay in step. */
export const HELP: Record<string, string> = {
  ...FLEET_HELP,
  analyze: ANALYZE_HELP,
  trace: TRACE_HELP,
  append: APPEND_HELP,
  main: `irb — turn an OCI/Docker image into a bootable Linux initramfs

Usage:
  irb build IMAGE [options]      build an initramfs from an image
  irb append BASE -o OUT --inject SRC:DEST  add a member with files to a built initramfs
  irb inspect IMAGE              show an image's digest, platforms, config and layers
  irb list-layers IMAGE          list an image's layers with digests and sizes
  irb ls ARCHIVE|-               list an initramfs (compressed, concatenated members too)
  irb analyze IMAGE|ARCHIVE|-    where the bytes are, and what --slim would save
  irb boot ARCHIVE [-- ARGS]     boot an initramfs in QEMU and stream the console
                                 (--timeline: when each boot phase was reached)
  irb trace IMAGE -o TRACE.json  record what the program uses (for build --keep-only)
  irb cache ls|prune             list or trim the blob, layer index and output caches
  irb push ARCHIVE REF           store an initramfs in an OCI registry
  irb pull REF -o FILE           fetch one (or: irb pull --for IMAGE -o FILE)

IMAGE is a registry reference (alpine, host:5000/app:1, name@sha256:…),
oci:DIR[:TAG] (an OCI image layout) or docker-archive:FILE (a docker save tarball).

Options:
  -h, --help      help for irb or a command (irb build --help)
  -v, --version   print the version (with --verbose: Node, QEMU, KVM, zstd backend)

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (SIGINT),
143 terminated (SIGTERM); irb boot exits with the guest program's status.`,
  build: `Usage: irb build IMAGE [options]

Pulls IMAGE (no Docker daemon needed), applies its layers, adds an /init and
injected files, and writes a compressed CPIO newc archive the kernel boots.

Output:
  -o, --output FILE            default initramfs.cpio.gz (.zst for zstd, .lz4 for lz4, .cpio for none);
                               a .gz, .zst, .lz4 or .cpio ending picks the compression (a
                               contradicting -c is refused); - writes the archive to stdout
                               and the summary to stderr (with --json: only the JSON)
  -c, --compression NAME       gzip (default), zstd, lz4 (the kernel's legacy format) or none:
                               lz4 unpacks fastest; zstd is small and quick to unpack; none
                               skips decompression but has the most bytes to load; gzip
                               boots on every kernel but unpacks slowest
      --level N                gzip 1-9 (default 6), zstd 1-19 (default 3), lz4 1
      --threads N              compression threads (default: all cores)
Image:
      --platform OS/ARCH[/V]   platform of a multi-platform image (default linux/amd64);
                               an architecture alone (arm64) means linux/ARCH
      --insecure-registry HOST use plain HTTP for HOST (localhost always may); repeatable
      --keychain MODULE[#EXPORT]  credentials from your own auth package (a file or an
                               installed package exporting createKeychain()); asked before
                               IRB_AUTH_* and Docker/Podman config; repeatable
      --cache-dir DIR          blob cache (default $IRB_CACHE_DIR or ~/.cache/irb/blobs); the
                               layer index goes beside it (DIR-index, or ~/.cache/irb/index)
      --no-cache               do not read or write the blob cache
      --cache-from REPO        remote build cache: on a hit (tag irb-<build key> in REPO)
                               pull the archive instead of building
      --cache-to REPO          push the result to REPO under irb-<build key>
Contents:
      --inject SRC:DEST        copy host file or directory SRC to DEST (an absolute path) in
                               the image; repeatable
      --exclude GLOB           leave out paths matching GLOB (*, **, ?; anchored at /); repeatable
      --slim PRESET[,PRESET]   leave out well-known dead weight; repeatable; all = every preset:
${slimPresetLines('                                 ').join('\n')}
      --keep-only TRACE.json   keep only what a traced run used (irb trace writes the file),
                               their parent directories, /etc/passwd and /etc/group;
                               repeatable (traces are merged)
      --keep GLOB              with --keep-only: keep GLOB too (what the trace could not see:
                               stat-only checks, code paths the run did not take); repeatable
      --init FILE              use FILE as /init instead of the generated one
      --replace-init           replace an /init the image already has
      --keep-init              boot the image's own /init (no /init is generated)
      --init-kind auto|static|sh  the generated /init: irb's static program (x86_64,
                               aarch64; needs nothing in the image) or a POSIX sh script
                               (needs /bin/sh and mount); auto (default): static if irb
                               has it for the image's architecture, else sh
      --on-exit poweroff|reboot  how the generated /init ends the VM (default poweroff;
                               reboot for Firecracker, which ignores power-off)
      --allow-arch-mismatch    build even when the program the generated /init runs is
                               an ELF file for another architecture than the image's
                               (it would fail at boot with 126): a warning, not an error
Output control:
      --json                   print the summary as JSON on stdout (stderr with -o -)
  -q, --quiet                  no progress and no summary
      --verbose                more detail; with errors, the cause chain and stack

Without --init, irb generates an /init (its static program, or a POSIX sh script
with --init-kind sh) that mounts /proc, /sys, /dev
(+ /dev/pts, /dev/shm), /run and /tmp, sets the config's Env, WorkingDir and User,
runs Entrypoint + Cmd, prints "irb: exit status N" and powers the VM off.`,
  inspect: `Usage: irb inspect IMAGE [--platform OS/ARCH[/V]] [--insecure-registry HOST]... [--keychain MODULE]... [--json]

Shows the manifest digest, the platforms of a multi-platform image, the config
(Entrypoint, Cmd, Env, WorkingDir, User) and the layers with their sizes. --json
uses the keys of build --json: manifestDigest, configDigest, indexDigest.`,
  'list-layers': `Usage: irb list-layers IMAGE [--platform OS/ARCH[/V]] [--insecure-registry HOST]... [--keychain MODULE]... [--json]

Lists the layers of IMAGE, base first: digest, media type, size, diff id.`,
  ls: `Usage: irb ls ARCHIVE|- [--json]

Lists an initramfs like lsinitramfs -l: mode, owner, size, mtime, name and link
target, over gzip/zstd/plain members concatenated in one file. - reads the
archive from stdin (irb build IMAGE -o - | irb ls -).`,
  boot: `Usage: irb boot ARCHIVE [options] [-- KERNEL_ARGS...]

Boots ARCHIVE in QEMU for the architecture of its /init (x86_64: microvm with KVM
when usable, otherwise software emulation on the pc machine; aarch64: virt) and
streams the console to stdout.

  --kernel PATH      kernel image: bzImage, arm64 Image, EFI zboot or ELF vmlinux (default:
                     $IRB_KERNEL_X86_64 / $IRB_KERNEL_AARCH64, else $IRB_KERNEL, else
                     the newest /boot/vmlinuz-*, else the one scripts/ensure-env.sh
                     unpacked in ~/.cache/irb/kernel or kernel-aarch64)
  -m, --memory MB    guest RAM (default: what the archive needs to unpack + 256, at
                     least 512)
  --timeout S        give up after S seconds (default 120)
  --expect TEXT      succeed as soon as TEXT appears on the console; fail if it never does
  --timeline         do not stream the console; print when each phase was reached
                     (kernel unpack start, unpacked, /init, program exec, first line, VM
                     end, wall), in ms on the guest's clock, with a bar per phase
  --runs N           with --timeline: boot N times and print each phase's median
  --json             with --timeline: one JSON object, a field per phase in ms
  -q, --quiet        do not stream the console
  --verbose          also print the QEMU command line

Console input: on a terminal, keys go to the guest (Ctrl-C too); Ctrl-A x stops
the VM (exit 130), Ctrl-A Ctrl-A sends Ctrl-A. Piped stdin is sent to the console
once the kernel has started /init.

Exits with N when a generated /init reports "irb: exit status N" (0 when the guest
program succeeded), 0 when TEXT appeared or the guest powered off by itself, 1 on
a kernel panic, too little memory, a timeout or a missing TEXT.`,
  cache: CACHE_HELP,
};
