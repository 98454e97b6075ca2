import { createWriteStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { moduleClosure, moduleFiles } from '@irb/test-utils';
import type { BootArch } from '../src/index.ts';

const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');

/** Where scripts/ensure-env.sh unpacks Debian's kernel of `arch`, its modules and a static busybox. */
export function debianKernel(arch: BootArch): { root: string; busybox: string } {
  return arch === 'x86_64'
    ? { root: join(cache, 'irb', 'kernel'), busybox: '/bin/busybox' }
    : {
        root: join(cache, 'irb', 'kernel-aarch64'),
        busybox: join(cache, 'irb', 'aarch64', 'bin', 'busybox'),
      };
}

/** Options of {@link netArchive}. */
export interface NetArchiveOptions {
  arch: BootArch;
  /** Modules to carry and insmod (with their dependencies), from this kernel's release. Default none. */
  modules?: readonly string[];
  /** Take the modules from this architecture's kernel instead (modules that do not fit). Default `arch`. */
  moduleArch?: BootArch;
  /** Changes a module's bytes (by its path in the archive) before it is packed (a patched vermagic). */
  patch?: (path: string, body: Uint8Array) => Uint8Array;
  /** Shell run once eth0 is configured (or found missing). */
  script: string;
}

/**
 * A hand-built initramfs: busybox, the network modules in modules.dep order, and an /init that
 * loads them, configures the `ip=` device with ifconfig and route (as irb's init does), prints
 * `irb: net: no device <dev> after <N> ms` when it never appears, then runs `script`.
 */
export async function netArchive(path: string, options: NetArchiveOptions): Promise<string> {
  const { busybox: busyboxPath } = debianKernel(options.arch);
  const { root } = debianKernel(options.moduleArch ?? options.arch);
  const [release] = await readdir(join(root, 'lib', 'modules'));
  if (release === undefined) throw new Error(`no modules in ${root}; run scripts/ensure-env.sh`);
  const tree = join(root, 'lib', 'modules', release);
  const modules = await moduleFiles(tree, release, await moduleClosure(tree, options.modules ?? []));
  const busybox = await readFile(busyboxPath);
  const applets = [
    'sh',
    'mount',
    'insmod',
    'ifconfig',
    'route',
    'sleep',
    'httpd',
    'mkdir',
    'cat',
    'echo',
    'nc',
    'poweroff',
    'tr',
    'sed',
  ];
  const init = new TextEncoder().encode(
    [
      '#!/bin/sh',
      'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev',
      `for m in ${modules.paths.join(' ')}; do insmod "$m" || echo "insmod $m failed"; done`,
      'for a in $(cat /proc/cmdline); do case $a in ip=*) IP="$a";; esac; done',
      'IP=$(echo "$IP" | sed s/^ip=//)',
      'IFS=: read client server gw mask host dev auto dns0 dns1 <<EOF',
      '$IP',
      'EOF',
      'n=0; while [ ! -e /sys/class/net/$dev ] && [ $n -lt 20 ]; do sleep 0.1; n=$((n+1)); done',
      'if [ -e /sys/class/net/$dev ]; then',
      '  ifconfig lo 127.0.0.1 up; ifconfig $dev $client netmask $mask up && route add default gw $gw',
      '  echo "irb: net: $dev $client"',
      'else',
      '  echo "irb: net: no device $dev after $((n*100)) ms"',
      'fi',
      options.script,
      '',
    ].join('\n'),
  );
  const entries: CpioEntry[] = [
    { type: 'directory', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size: busybox.length, body: busybox },
    ...applets.map((n): CpioEntry => ({ type: 'symlink', path: `bin/${n}`, mode: 0o777, target: 'busybox' })),
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'directory', path: 'proc', mode: 0o755 },
    { type: 'directory', path: 'sys', mode: 0o755 },
  ];
  entries.push(...modules.directories.map((path): CpioEntry => ({ type: 'directory', path, mode: 0o755 })));
  for (const { path, body: read } of modules.files) {
    const body = options.patch ? options.patch(path, read) : read;
    entries.push({ type: 'file', path, mode: 0o644, size: body.length, body });
  }
  entries.push({ type: 'file', path: 'init', mode: 0o755, size: init.length, body: init });
  await pipeline(Readable.from(packCpio(entries)), createWriteStream(path));
  return path;
}
