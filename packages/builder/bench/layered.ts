// Layered output: how long an unchanged rebuild, a rebuild after the agent changed and an
// `irb append` take, against a full build with a warm blob cache, on the Debian + python3 fixture
// pushed to a local registry, `-c zstd`, a 1 MB injected agent. Every row runs the CLI as a
// process (start included) and is also given as a ratio to `node -e 0`, run just before each sample.
//
//   pnpm turbo run build --filter @irb/cli...   # the CLI from apps/cli/dist
//   node --conditions=@irb/source packages/builder/bench/layered.ts [--runs N] [--in-process-runs N]
//     [--in-process-only]   # skip the CLI rows (the BASE is still built once by the CLI)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { trailerMember } from '@irb/compress/framing';
import { ensureDebianPythonImage, pushOciLayout, startRegistry } from '@irb/test-utils';
import { appendOverlay } from '../src/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    'in-process-runs': { type: 'string', default: '21' },
    'in-process-only': { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const inProcessRuns = Number(values['in-process-runs']);
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
  // Each sample is paired with a `node -e 0` run right before it, and the ratio is the median of
  // the pairs' ratios: on a machine whose load drifts, both sides of a pair see the same load.
  const row = async (name: string, argv: string[], before?: () => Promise<void>, env?: NodeJS.ProcessEnv) => {
    if (values['in-process-only']) return undefined;
    const samples: Array<{ ms: number; cpuMs: number; rssKb: number; ratio: number }> = [];
    for (let i = 0; i < runs; i++) {
      await before?.();
      const floor = time(['node', '-e', '0']);
      const sample = time(argv, env);
      samples.push({ ...sample, ratio: sample.ms / floor.ms });
    }
    return {
      name,
      ms: median(samples.map((s) => s.ms)),
      ratio: median(samples.map((s) => s.ratio)),
      cpuMs: median(samples.map((s) => s.cpuMs)),
      rssKb: Math.max(...samples.map((s) => s.rssKb)),
    };
  };

  // Fill the blob and layer index caches (untimed).
  time(['node', bin, ...build]);
  const rows: Array<{ name: string; ms: number; ratio: number; cpuMs: number; rssKb: number }> = [];
  const push = (r: (typeof rows)[number] | undefined) => {
    if (r) rows.push(r);
  };
  push(await row('node -e 0', ['node', '-e', '0']));
  push(await row('irb --help', ['node', bin, '--help']));
  push(
    await row('full build, warm blob cache (output cache emptied)', ['node', bin, ...build], () =>
      rm(join(cache, 'output'), { recursive: true, force: true }),
    ),
  );
  time(['node', bin, ...build]);
  // The same command again: both members come from the output cache, and the output already
  // holds exactly those bytes (compared), so the file is left alone.
  push(await row('unchanged rebuild, same output file (already up to date)', ['node', bin, ...build]));
  // The output removed before each run (untimed): the base member is copied, the overlay appended.
  push(
    await row('unchanged rebuild, output removed first (members copied)', ['node', bin, ...build], () =>
      rm(out, { force: true }),
    ),
  );
  push(await row('rebuild after the agent changed', ['node', bin, ...build], newAgent));
  const base = join(work, 'base.cpio.zst');
  await copyFile(out, base);
  const appended = join(work, 'appended.cpio.zst');
  push(
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
  push(await row('cp BASE (the copy append starts with)', ['cp', base, join(work, 'copy')]));

  // In process, warm (each step run once untimed first): what append costs beyond copying BASE,
  // and the new member alone for every compression, written to a file and streamed.
  const inProcess: Array<{ name: string; ms: number; cpuMs: number }> = [];
  const measure = async (name: string, fn: () => Promise<unknown>, before?: () => Promise<unknown>) => {
    await fn();
    const xs: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < inProcessRuns; i++) {
      await before?.();
      const c = process.cpuUsage();
      const t = performance.now();
      await fn();
      xs.push(performance.now() - t);
      const d = process.cpuUsage(c);
      cpu.push((d.user + d.system) / 1000);
    }
    inProcess.push({ name, ms: median(xs), cpuMs: median(cpu) });
  };
  const inject = [`${agent}:/usr/local/bin/agent`];
  // To a new file each time, as append writes its temporary file: overwriting would add the
  // freeing of the previous copy's blocks.
  const copy = join(work, 'copy');
  const noCopy = () => rm(copy, { force: true });
  await measure('fs.copyFile of BASE alone', () => copyFile(base, copy), noCopy);
  // What the atomic write adds to the copy itself: the copied bytes reach the disk before the rename.
  await measure(
    'fs.copyFile of BASE, then fsync',
    async () => {
      await copyFile(base, copy);
      const handle = await open(copy, 'r+');
      await handle.sync();
      await handle.close();
    },
    noCopy,
  );
  await measure(
    'appendOverlay onto BASE to a new file, -c zstd (copy of BASE and its fsync included)',
    () => appendOverlay(base, inject, { output: appended, compression: 'zstd' }),
    () => rm(appended, { force: true }),
  );
  // The rename then also drops the previous output: the file system frees its blocks.
  await measure('the same, replacing the previous output', () =>
    appendOverlay(base, inject, { output: appended, compression: 'zstd' }),
  );
  // What append learns of BASE (its tree, for placing the member): read once per content, then
  // kept in the output cache. Each run on a fresh cache directory: the first append onto an
  // archive it has not seen; onto a copy of it (another inode: hashed, not decoded).
  const treeCache = join(work, 'tree-cache');
  const onto = (archive: string) => () =>
    appendOverlay(archive, inject, {
      output: appended,
      compression: 'zstd',
      cacheDir: treeCache,
    });
  await measure(
    "appendOverlay onto a BASE not seen before (BASE's tree read and stored) to a new file, -c zstd",
    onto(base),
    async () => {
      await rm(treeCache, { recursive: true, force: true });
      await rm(appended, { force: true });
    },
  );
  const copied = join(work, 'copied-base');
  await copyFile(base, copied);
  await measure(
    'the same onto a new copy of a BASE seen before (hashed, not decoded)',
    onto(copied),
    async () => {
      await rm(copied, { force: true });
      await copyFile(base, copied);
      await rm(appended, { force: true });
    },
  );
  // The member alone: the same files appended to a BASE that is only a trailer member (an empty
  // archive in irb's layout, 44 to 124 bytes), so that copying BASE costs nothing; BASE's tree
  // comes from the cache, as on every append but the first onto a file.
  for (const compression of ['zstd', 'gzip', 'lz4', 'none'] as const) {
    const tiny = join(work, `tiny-base-${compression}`);
    await writeFile(tiny, trailerMember(compression));
    await measure(`new member alone, -c ${compression}, to a file (fsync, rename)`, () =>
      appendOverlay(tiny, inject, { output: appended, compression }),
    );
    await measure(`new member alone, -c ${compression}, streamed`, async () => {
      for await (const _ of appendOverlay(tiny, inject, { compression })) {
        // drained
      }
    });
  }

  const baseSize = (await stat(base)).size;
  console.log(
    `Debian bookworm + python3 from a local registry, -c zstd, 1 MiB agent, ${runs} runs (median), ${new Date().toISOString().slice(0, 10)}; BASE ${(baseSize / 2 ** 20).toFixed(1)} MiB\n`,
  );
  const nodeCpu = rows[0]?.cpuMs || 1;
  if (rows.length > 0)
    console.log(
      '| step | wall (ms) | × node -e 0 (median of pairs) | CPU (ms) | CPU × node -e 0 | peak RSS (MiB) |',
    );
  if (rows.length > 0) console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const cells = [
      r.name,
      r.ms.toFixed(0),
      r.ratio.toFixed(1),
      r.cpuMs.toFixed(0),
      (r.cpuMs / nodeCpu).toFixed(1),
    ];
    console.log(`| ${cells.join(' | ')} | ${(r.rssKb / 1024).toFixed(0)} |`);
  }
  console.log(`\nIn process (warm, median of ${inProcessRuns}):\n`);
  console.log('| step | wall (ms) | CPU (ms) |');
  console.log('| --- | ---: | ---: |');
  for (const r of inProcess) console.log(`| ${r.name} | ${r.ms.toFixed(1)} | ${r.cpuMs.toFixed(1)} |`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
