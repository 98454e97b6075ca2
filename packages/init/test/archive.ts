import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { moduleFiles } from '@irb/test-utils';
import { encodeInitConfig, type InitArch, type StaticInitConfig, staticInitBinary } from '../src/index.ts';

/** Options of {@link writeStaticInitArchive}. */
export interface StaticInitArchive {
  arch: InitArch;
  /** The parameters; `undefined` leaves /irb/init.conf out. */
  config: StaticInitConfig | undefined;
  /** A static busybox for the guest's architecture, stored as /bin/busybox (no applet links). */
  busybox: Uint8Array;
  /** Further directories to create (archive paths, parents first), e.g. the working directory. */
  directories?: { path: string; mode: number; uid?: number; gid?: number }[];
  /** Further entries, after everything else (parents first). */
  extra?: CpioEntry[];
}

/**
 * Writes an uncompressed initramfs holding only the static init, its parameter file,
 * /dev/console and busybox as the test program: no shell, no mount, no /proc, /sys or /tmp
 * directories, so whatever the program finds there the init made.
 */
export async function writeStaticInitArchive(
  dir: string,
  name: string,
  spec: StaticInitArchive,
): Promise<string> {
  const init = staticInitBinary(spec.arch);
  const entries: CpioEntry[] = [{ type: 'file', path: 'init', mode: 0o755, size: init.length, body: init }];
  if (spec.config) {
    const conf = encodeInitConfig(spec.config);
    entries.push(
      { type: 'directory', path: 'irb', mode: 0o755 },
      { type: 'file', path: 'irb/init.conf', mode: 0o600, size: conf.length, body: conf },
    );
  }
  entries.push(
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'directory', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size: spec.busybox.length, body: spec.busybox },
    ...(spec.directories ?? []).map((d): CpioEntry => ({ type: 'directory', ...d })),
    ...(spec.extra ?? []),
  );
  const path = join(dir, name);
  await pipeline(Readable.from(packCpio(entries)), createWriteStream(path));
  return path;
}

/** The lines of console output that start with `prefix`, prefix removed. */
export function linesWith(output: string, prefix: string): string[] {
  // The kernel shares the serial console: a late message (a TSC calibration, …) can land in the
  // middle of a program's line. Its text, up to its newline, is cut out before splitting.
  return output
    .replace(/\[\s*\d+\.\d+\] [^\n]*\n/g, '')
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

/** Lowercase hex of bytes, as `od -An -tx1 -v | tr -d ' \n'` prints them. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** NUL-terminated strings, as /proc/PID/cmdline and /proc/PID/environ hold them. */
export function nulList(items: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = items.map((i) => (typeof i === 'string' ? new TextEncoder().encode(i) : i));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length + 1;
  }
  return out;
}

/**
 * The kernel's "Run /init as init process" time and the init's `irb: init` / `irb: exec` markers,
 * in seconds. The markers are stated in the kernel log's clock, so they fall after the kernel's line.
 */
export function bootMarks(output: string): { runInit?: number; init?: number; exec?: number } {
  const num = (m: RegExpExecArray | null): number | undefined =>
    m?.[1] === undefined ? undefined : Number(m[1]);
  return {
    runInit: num(/^\[\s*(\d+\.\d+)\] Run \/init as init process$/m.exec(output)),
    init: num(/^irb: init (\d+\.\d{6})$/m.exec(output)),
    exec: num(/^irb: exec (\d+\.\d{6})$/m.exec(output)),
  };
}

/** A regular file entry with these bytes. */
export function fileEntry(
  path: string,
  body: Uint8Array | string,
  mode = 0o644,
  uid = 0,
  gid = 0,
): CpioEntry {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { type: 'file', path, mode, uid, gid, size: bytes.length, body: bytes };
}

/** Kernel module files (see moduleFiles) as archive entries, and their paths in the guest. */
export async function moduleEntries(
  modulesDir: string,
  release: string,
  files: readonly string[],
): Promise<{ entries: CpioEntry[]; paths: string[] }> {
  const found = await moduleFiles(modulesDir, release, files);
  return {
    entries: [
      ...found.directories.map((path): CpioEntry => ({ type: 'directory', path, mode: 0o755 })),
      ...found.files.map((f) => fileEntry(f.path, f.body)),
    ],
    paths: found.paths,
  };
}
