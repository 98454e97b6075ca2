import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzzTestTimeout, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticInitPath } from '../src/binary.ts';
import type { DecodedInitConfig } from '../src/config.ts';
import { applyJobConfigs, encodeJobConfig, type RunOverrides } from '../src/job.ts';

/*
 * Job files as the init itself applies them: the x86_64 init runs on this host in a chroot as
 * `init exec` (its shell-init helper: the same job-file code as PID 1), over a base program given
 * on its command line, and execs a static program that prints what it got. That must be what
 * applyJobConfigs says: argv, environment (exactly, in order), working directory, ids.
 * Needs root (chroot) and an x86_64 host; skipped elsewhere.
 */

const chroot = ['/usr/sbin/chroot', '/usr/bin/chroot', '/sbin/chroot'].find((path) => existsSync(path));
const canRun =
  arch() === 'x64' &&
  process.getuid?.() === 0 &&
  chroot !== undefined &&
  spawnSync('gcc', ['--version']).status === 0;
const encoder = new TextEncoder();
const hex = (text: string) => Buffer.from(encoder.encode(text)).toString('hex');

/** Directories the chroot has; `/missing` is one a job may name that it has not. */
const DIRS = ['/', '/tmp', '/srv/app', '/missing'];

const name = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,4}$/);
const word = fc.string({ unit: 'binary', maxLength: 8 }).map((w) => w.replaceAll('\0', ''));

const base = fc.record({
  argv: fc.array(word, { maxLength: 3 }).map((rest) => ['/bin/show', ...rest]),
  entrypointLength: fc.nat(2),
  env: fc
    .uniqueArray(fc.tuple(name, word), { selector: ([k]) => k, maxLength: 3 })
    .map((kv) => kv.map(([k, v]) => `${k}=${v}`)),
  uid: fc.nat(70_000),
  gid: fc.nat(70_000),
  groups: fc.uniqueArray(fc.nat(70_000), { maxLength: 3 }),
});

const job: fc.Arbitrary<RunOverrides> = fc.record(
  {
    entrypoint: fc.constantFrom('/bin/show', 'show'),
    cmd: fc.array(word, { minLength: 1, maxLength: 3 }),
    env: fc.array(
      fc.tuple(name, word).map(([k, v]) => `${k}=${v}`),
      { minLength: 1, maxLength: 3 },
    ),
    workingDir: fc.constantFrom(...DIRS),
  },
  { requiredKeys: [] },
);

/** The lines the printing program gives for what applyJobConfigs says the init runs. */
function expected(b: DecodedInitConfig, jobs: RunOverrides[]): { out: string; status: number } {
  const program = applyJobConfigs(b, jobs);
  if (program.workingDir === '/missing') return { out: '', status: 126 };
  // A Cmd that replaced the whole program (no Entrypoint) names one that is not there.
  if (program.argv[0] !== '/bin/show' && program.argv[0] !== 'show') return { out: '', status: 127 };
  const lines = [
    ...program.argv.map((a) => `a ${hex(a)}`),
    ...program.env.map((e) => `e ${hex(e)}`),
    `w ${hex(program.workingDir)}`,
    `u ${[program.uid, program.gid, ...[...program.groups].sort((x, y) => x - y)].join(' ')}`,
  ];
  return { out: `${lines.join('\n')}\n`, status: 0 };
}

describe.skipIf(!canRun)('job files applied by the init itself under fuzzing', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'irb-fuzz-jobs-'));
    // The program runs as the job's user, who must reach it.
    await chmod(root, 0o755);
    for (const dir of ['bin', 'tmp', 'srv/app', 'irb/job.d'])
      await mkdir(join(root, dir), { recursive: true });
    await copyFile(staticInitPath('x86_64'), join(root, 'init'));
    const built = spawnSync('gcc', [
      '-static',
      '-Os',
      '-o',
      join(root, 'bin/show'),
      join(import.meta.dirname, 'show-exec.c'),
    ]);
    if (built.status !== 0) throw new Error(`gcc failed: ${built.stderr}`);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it(
    'init exec runs what applyJobConfigs says',
    async () => {
      await runFuzz(
        'init: job files, C against TypeScript',
        fc.tuple(base, fc.array(job, { minLength: 1, maxLength: 3 })),
        async ([b, jobs]) => {
          const dir = join(root, 'irb/job.d');
          await rm(dir, { recursive: true, force: true });
          await mkdir(dir);
          for (const [i, j] of jobs.entries())
            await writeFile(join(dir, `${String(i).padStart(3, '0')}.conf`), encodeJobConfig(j));
          const decoded: DecodedInitConfig = {
            argv: b.argv.map((a) => encoder.encode(a)),
            env: b.env.map((e) => encoder.encode(e)),
            workingDir: encoder.encode('/'),
            uid: b.uid,
            gid: b.gid,
            groups: b.groups,
            hostname: 'irb',
            onExit: 'poweroff',
            trace: false,
            stopAfterSeconds: 0,
            modules: [],
            netWaitMs: 5000,
            entrypointLength: Math.min(b.entrypointLength, b.argv.length),
            homeFromUser: false,
          };
          const flags = [
            ...['-u', String(b.uid), '-g', String(b.gid), '-E', String(decoded.entrypointLength)],
            ...b.groups.flatMap((g) => ['-G', String(g)]),
            ...b.env.flatMap((e) => ['-e', e]),
          ];
          const run = spawnSync(chroot as string, [root, '/init', 'exec', ...flags, '--', ...b.argv], {
            env: {},
            encoding: 'utf8',
          });
          expect({ out: run.stdout, status: run.status }).toEqual(expected(decoded, jobs));
        },
        { runs: 150 },
      );
    },
    fuzzTestTimeout(),
  );
});
