import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTar, type TarSpec } from '@irb/test-utils';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const repoRoot = join(here, '..', '..', '..');
const bin = join(here, '..', 'src', 'bin.ts');

/** What a CLI run produced. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes, for binary output (`-o -`). */
  stdoutBytes: Uint8Array;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Called with each stderr chunk; return true to send SIGINT to the process. */
  interruptWhen?: (stderr: string) => boolean;
  timeoutMs?: number;
}

/** Runs the real CLI as `pnpm irb` does: a separate Node process on the TypeScript sources. */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@irb/source', bin, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, IRB_CACHE_DIR: undefined, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    let interrupted = false;
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!interrupted && options.interruptWhen?.(stderr)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      resolve({ code, signal, stdout: bytes.toString(), stdoutBytes: bytes, stderr });
    });
  });
}

/** Files in `dir`, to check that nothing (not even a temporary file) was left behind. */
export async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** Applets the test images link to busybox. */
const APPLETS = [
  'sh',
  'mount',
  'mkdir',
  'ln',
  'cat',
  'echo',
  'id',
  'pwd',
  'env',
  'su',
  'sleep',
  'poweroff',
  'ls',
  'uname',
];

/**
 * A real busybox root filesystem layer: Debian's static busybox, applet symlinks, /etc/passwd
 * and /etc/group with an unprivileged user `app` (uid 1000, groups app and video).
 */
export async function busyboxLayer(extra: TarSpec[] = []): Promise<Uint8Array> {
  const busybox = new Uint8Array(await readFile('/bin/busybox'));
  const entries: TarSpec[] = [
    { type: 'directory', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...APPLETS.map((a): TarSpec => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'directory', path: 'etc/' },
    {
      type: 'file',
      path: 'etc/passwd',
      content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n',
    },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\nvideo:x:44:app\napp:x:1000:\n' },
    { type: 'directory', path: 'root/', mode: 0o700 },
    { type: 'directory', path: 'home/' },
    { type: 'directory', path: 'home/app/', uid: 1000, gid: 1000 },
    ...extra,
  ];
  return buildTar(entries);
}
