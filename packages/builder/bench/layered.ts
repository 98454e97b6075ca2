// Layered output: how long an unchanged rebuild, a rebuild after the agent changed and an
// `irb append` take, against a full build with a warm blob cache, on the Debian + python3 fixture
// pushed to a local registry, `-c zstd`, a 1 MB injected agent. Every row runs the CLI as a
// process (start included) and is also given as a ratio to `node -e 0` measured in the same run.
//
//   pnpm turbo run build --filter @irb/cli...   # the CLI from apps/cli/dist
//   node --conditions=@irb/source packages/builder/bench/layered.ts [--runs N]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureDebianPythonImage, pushOciLayout, startRegistry } from '@irb/test-utils';
import { appendOverlay } from '../src/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const runs = Number(values.runs);
const bin = join(ROOT, 'apps/cli/dist/bin.js');
await stat(bin).catch(() => {
  throw new Error(`${bin} is missing: run pnpm turbo run build --filter @irb/cli... first`);
});

const work = await mkdtemp(join(tmpdir(), 'irb-bench-layered-'));
const registry = await startRegistry();
try {
  const debian = await ensureDebianPythonImage();
  const ref = await pushOciLayout({
    layoutDir: debian.layoutDir,
    tag: debian.tag,
    registry: registry.host,
    repository: 'bench/debian-python',
  });
  const cache = join(work, 'cache');
  const agent = join(work, 'agent');
  const out = join(work, 'out.cpio.zst');
  const newAgent = () => writeFile(agent, randomBytes(1024 * 1024));
  await newAgent();
  const build = [
    'build',
    ref,
    '-c',
    'zstd',
    '--cache-dir',
    cache,
    '--inject',
    `${agent}:/usr/local/bin/agent`,
    '-o',
    out,
    '-q',
  ];

  /** Wall time (ms), CPU time (ms, user + system) and peak RSS (KiB) of one process. */
  const time = (
    argv: string[],
    env: NodeJS.ProcessEnv = {},
  ): { ms: number; cpuMs: number; rssKb: number } => {
    const rssFile = join(work, 'rss');
    const started = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', rssFile, ...argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    const ms = performance.now() - started;
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed:\n${r.stderr}`);
    const [kb = 0, user = 0, system = 0] = spawnSync('tail', ['-1', rssFile], { encoding: 'utf8' })
      .stdout.trim()
      .split(' ')
      .map(Number);
    return { ms, cpuMs: (user + system) * 1000, rssKb: kb };
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const row = async (name: string, argv: string[], before?: () => Promise<void>, env?: NodeJS.ProcessEnv) => {
    const samples: Array<{ ms: number; cpuMs: number; rssKb: number }> = [];
    for (let i = 0; i < runs; i++) {
      await before?.();
      samples.push(time(argv, env));
    }
    return {
      name,
      ms: median(samples.map((s) => s.ms)),
      cpuMs: median(samples.map((s) => s.cpuMs)),
      rssKb: Math.max(...samples.map((s) => s.rssKb)),
    };
  };

  // Fill the blob and layer index caches (untimed).
  time(['node', bin, ...build]);
  const rows = [];
  rows.push(await row('node -e 0', ['node', '-e', '0']));
  rows.push(await row('irb --help', ['node', bin, '--help']));
  rows.push(
    await row('full build, warm blob cache (output cache emptied)', ['node', bin, ...build], () =>
      rm(`${cache}-output`, { recursive: true, force: true }),
    ),
  );
  time(['node', bin, ...build]);
  // The same command again: both members come from the output cache, and the output already
  // holds exactly those bytes (compared), so the file is left alone.
  rows.push(await row('unchanged rebuild, same output file (already up to date)', ['node', bin, ...build]));
  // The output removed before each run (untimed): the base member is copied, the overlay appended.
  rows.push(
    await row('unchanged rebuild, output removed first (members copied)', ['node', bin, ...build], () =>
      rm(out, { force: true }),
    ),
  );
  rows.push(await row('rebuild after the agent changed', ['node', bin, ...build], newAgent));
  const base = join(work, 'base.cpio.zst');
  await copyFile(out, base);
  const appended = join(work, 'appended.cpio.zst');
  rows.push(
    await row('irb append (1 MB agent onto the archive)', [
      'node',
      bin,
      'append',
      base,
      '-o',
      appended,
      '--inject',
      `${agent}:/usr/local/bin/agent`,
      '-c',
      'zstd',
    ]),
  );
  rows.push(await row('cp BASE (the copy append starts with)', ['cp', base, join(work, 'copy')]));

  // In process, warm: what append costs beyond copying BASE.
  const inProcess: Array<{ name: string; ms: number }> = [];
  const measure = async (name: string, fn: () => Promise<unknown>) => {
    await fn();
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await fn();
      xs.push(performance.now() - t);
    }
    inProcess.push({ name, ms: median(xs) });
  };
  await measure('appendOverlay to a file (copy of BASE included)', () =>
    appendOverlay(base, [`${agent}:/usr/local/bin/agent`], { output: appended, compression: 'zstd' }),
  );
  await measure('fs.copyFile of BASE alone', () => copyFile(base, join(work, 'copy')));
  // The member alone: the same files appended to a 4-byte BASE (just zstd's magic).
  const tiny = join(work, 'tiny-base.cpio.zst');
  await writeFile(tiny, (await readFile(base)).subarray(0, 4));
  await measure('appendOverlay to a 4-byte BASE (the new member alone)', () =>
    appendOverlay(tiny, [`${agent}:/usr/local/bin/agent`], { output: appended, compression: 'zstd' }),
  );

  const node = rows[0]?.ms ?? 1;
  const baseSize = (await stat(base)).size;
  console.log(
    `Debian bookworm + python3 from a local registry, -c zstd, 1 MiB agent, ${runs} runs (median), ${new Date().toISOString().slice(0, 10)}; BASE ${(baseSize / 2 ** 20).toFixed(1)} MiB\n`,
  );
  const nodeCpu = rows[0]?.cpuMs || 1;
  console.log('| step | wall (ms) | × node -e 0 | CPU (ms) | CPU × node -e 0 | peak RSS (MiB) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const cells = [
      r.name,
      r.ms.toFixed(0),
      (r.ms / node).toFixed(1),
      r.cpuMs.toFixed(0),
      (r.cpuMs / nodeCpu).toFixed(1),
    ];
    console.log(`| ${cells.join(' | ')} | ${(r.rssKb / 1024).toFixed(0)} |`);
  }
  console.log('\nIn process (warm, median):\n');
  console.log('| step | ms |');
  console.log('| --- | ---: |');
  for (const r of inProcess) console.log(`| ${r.name} | ${r.ms.toFixed(1)} |`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
