#!/usr/bin/env node
/**
 * `pnpm bench`: irb against the classic `skopeo | umoci | find | sort | cpio | gzip` pipeline and
 * against the floor (what any tool must at least spend: decompressing the image's layers, then
 * compressing the archive), side by side, in one run on this machine. Prints a markdown table; `--out FILE` also writes it into FILE between
 * `<!-- bench:start -->` and `<!-- bench:end -->` (hand-written text around the markers is kept).
 *
 * Usage: pnpm bench [--runs N] [--quick] [--only gzip|zstd] [--big-size BYTES] [--skip-big] [--skip-rust]
 *                   [--cli dist|source] [--no-build] [--no-irb] [--out FILE]
 *        pnpm bench --profile DIR [--only gzip|zstd]   (CPU profiles of irb cold and warm, no table)
 *        pnpm bench --before DIR [--before-label TEXT]   (adds the built CLI of another checkout, DIR,
 *                   as "irb before" rows, interleaved with the others: a before/after in one run)
 *
 * Measured, never asserted: the targets of issue 6 are printed next to the results as PASS/MISS.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ensureDebianPythonImage,
  ensureDebianRustImage,
  ensureSyntheticImage,
  pushOciLayout,
} from '../packages/test-utils/src/index.ts';
import { type StartedRegistry, startRegistry } from '../packages/test-utils/src/registry-server.ts';
import {
  type Compression,
  fmtSeconds,
  log,
  type Options,
  type Row,
  renderReport,
  type Sample,
  writeOut,
} from './bench-report.ts';

/** The large real image of the memory rows. */
const RUST_WORKLOAD = 'Debian + rustc/cargo';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TIME = '/usr/bin/time';

function usage(message: string): never {
  process.stderr.write(
    `bench: ${message}\nusage: pnpm bench [--runs N] [--quick] [--only gzip|zstd] [--big-size BYTES] [--skip-big] [--skip-rust]\n` +
      '                  [--cli dist|source] [--no-build] [--profile DIR] [--out FILE] [--before DIR [--before-label TEXT]]\n',
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string' },
        quick: { type: 'boolean' },
        only: { type: 'string' },
        'big-size': { type: 'string' },
        'skip-big': { type: 'boolean' },
        'skip-rust': { type: 'boolean' },
        cli: { type: 'string' },
        'no-build': { type: 'boolean' },
        'no-irb': { type: 'boolean' },
        profile: { type: 'string' },
        out: { type: 'string' },
        before: { type: 'string' },
        'before-label': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
  if (v.help) usage('help');
  const quick = v.quick === true;
  const runs = v.runs === undefined ? (quick ? 1 : 3) : Number(v.runs);
  if (!Number.isInteger(runs) || runs < 1) usage('--runs must be a positive integer');
  const only = v.only === undefined ? (['gzip', 'zstd'] as Compression[]) : [v.only as Compression];
  if (!only.every((c) => c === 'gzip' || c === 'zstd')) usage('--only must be gzip or zstd');
  const bigSize = v['big-size'] === undefined ? 1_000_000_000 : Number(v['big-size']);
  if (!(bigSize > 0)) usage('--big-size must be a positive number of bytes');
  const distBin = join(ROOT, 'apps/cli/dist/bin.js');
  const cli = (v.cli as string | undefined) ?? (v['no-build'] && !existsSync(distBin) ? 'source' : 'dist');
  if (cli !== 'dist' && cli !== 'source') usage('--cli must be dist or source');
  const options: Options = {
    runs,
    only,
    bigSize,
    skipBig: v['skip-big'] === true,
    skipRust: v['skip-rust'] === true,
    cli,
    build: !v['no-build'] && !v['no-irb'],
    quick,
    noIrb: v['no-irb'] === true,
    beforeLabel: typeof v['before-label'] === 'string' ? v['before-label'] : 'before',
  };
  if (typeof v.before === 'string') options.before = resolve(v.before);
  if (typeof v.profile === 'string') options.profileDir = resolve(v.profile);
  if (typeof v.out === 'string') options.out = resolve(v.out);
  return options;
}

/** Runs a command, stderr passed through (progress of builds), failing loudly. */
async function run(
  command: string,
  args: string[],
  options: { cwd?: string; quiet?: boolean } = {},
): Promise<string> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    stdio: ['ignore', 'pipe', options.quiet ? 'pipe' : 'inherit'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}\n${err}`);
  return out;
}

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Times a bash script whose stages are wrapped in `T NAME cmd…` (GNU time writing the stage's
 * max RSS to a file). Wall time is measured here, around the whole script, so it includes
 * process start-up (Node's included, for irb).
 */
async function timeScript(work: string, body: string, output: string): Promise<Sample> {
  const rssDir = await mkdtemp(join(work, 'rss-'));
  const script = [
    'set -euo pipefail',
    `T() { local n=$1; shift; ${TIME} -f '%e %M %U %S' -o ${shellQuote(rssDir)}/"$n" "$@"; }`,
    body,
  ].join('\n');
  const started = performance.now();
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'], cwd: work });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-6000);
  });
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`benchmark step failed (exit ${code}):\n${body}\n${err.trimEnd()}`);
  let rssKb = 0;
  let cpuSeconds = 0;
  const stages = new Map<string, { seconds: number; rssKb: number }>();
  for (const name of (await readdir(rssDir)).sort()) {
    const text = await readFile(join(rssDir, name), 'utf8');
    const [seconds, kb, user, system] = (text.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
    if (seconds === undefined || kb === undefined || !Number.isFinite(kb)) continue;
    rssKb = Math.max(rssKb, kb);
    cpuSeconds += (user ?? 0) + (system ?? 0);
    stages.set(name, { seconds, rssKb: kb });
  }
  await rm(rssDir, { recursive: true, force: true });
  const outputBytes = (await stat(output)).size;
  const outputSha256 = await sha256File(output);
  return { wallMs, rssKb, cpuSeconds, stages, outputBytes, outputSha256 };
}

const COMPRESSORS: Record<
  Compression,
  { classic: string[]; parallel: string; floor: string; level: number }
> = {
  gzip: { classic: ['gzip -6', 'pigz -6'], parallel: 'pigz -6', floor: 'pigz -6', level: 6 },
  zstd: { classic: ['zstd -3 -T0 -q'], parallel: 'zstd -3 -T0 -q', floor: 'zstd -3 -T0 -q', level: 3 },
};

const DECOMPRESS: Record<Compression, string> = { gzip: 'gzip -dc', zstd: 'zstd -dcq' };

/** The fastest decompressor of a layer blob by its media type (pigz for gzip, as the floor rows use). */
function layerDecompressor(mediaType: string): string {
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.zstd')) return 'zstd -dcq';
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.gzip')) return 'pigz -dc';
  return 'cat';
}

/**
 * The layer blobs of the layout's only image, each with the command that decompresses it: what
 * the floor's decompression step reads (from the page cache, like a warm blob cache).
 */
async function layerBlobs(layoutDir: string): Promise<Array<{ path: string; decompress: string }>> {
  const blob = (digest: string) => join(layoutDir, 'blobs', ...digest.split(':'));
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string }>;
  };
  const first = index.manifests[0];
  if (!first) throw new Error(`${layoutDir} has no image`);
  const manifest = JSON.parse(await readFile(blob(first.digest), 'utf8')) as {
    layers: Array<{ digest: string; mediaType: string }>;
  };
  return manifest.layers.map((l) => ({ path: blob(l.digest), decompress: layerDecompressor(l.mediaType) }));
}

async function countEntries(path: string, compression: Compression): Promise<number> {
  const out = await run(
    'bash',
    ['-c', `${DECOMPRESS[compression]} ${shellQuote(path)} | cpio -it --quiet | wc -l`],
    {
      quiet: true,
    },
  );
  return Number.parseInt(out.trim(), 10);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const loadAtStart = loadavg();
  if (loadAtStart[0]! > cpus().length) {
    log(
      `warning: load average ${loadAtStart[0]!.toFixed(1)} on ${cpus().length} cores; timings will be noisy`,
    );
  }
  if (process.getuid?.() !== 0) log('warning: not root; the Debian fixture and umoci unpack need root');
  for (const tool of ['skopeo', 'umoci', 'cpio', 'pigz', 'zstd', 'gzip']) {
    await run('bash', ['-c', `command -v ${tool}`], { quiet: true }).catch(() => {
      throw new Error(`${tool} is missing: run \`. scripts/ensure-env.sh\` (installs the Debian packages)`);
    });
  }
  if (!existsSync(TIME))
    throw new Error(`${TIME} is missing: apt-get install time (or run scripts/ensure-env.sh)`);

  if (options.cli === 'dist' && options.build) {
    log('building the CLI (pnpm turbo run build --filter @irb/cli...)');
    await run('pnpm', ['turbo', 'run', 'build', '--filter=@irb/cli...', '--output-logs=errors-only']);
  }
  const cliArgs =
    options.cli === 'dist'
      ? [join(ROOT, 'apps/cli/dist/bin.js')]
      : ['--conditions=@irb/source', join(ROOT, 'apps/cli/src/bin.ts')];
  if (!options.noIrb && !existsSync(cliArgs.at(-1)!))
    throw new Error(`${cliArgs.at(-1)} does not exist: run pnpm build`);
  const beforeArgs = options.before ? [join(options.before, 'apps/cli/dist/bin.js')] : undefined;
  if (beforeArgs && !existsSync(beforeArgs[0]!))
    throw new Error(`${beforeArgs[0]} does not exist: build that checkout's CLI first`);

  log('fixtures: Debian bookworm + python3 (built once, cached)');
  const debian = await ensureDebianPythonImage();
  const big =
    options.skipBig || options.noIrb ? undefined : await ensureSyntheticImage({ sizeBytes: options.bigSize });
  if (!options.skipRust && !options.noIrb)
    log('fixtures: Debian bookworm + rustc/cargo (built once, cached)');
  const rust = options.skipRust || options.noIrb ? undefined : await ensureDebianRustImage();

  const work = await mkdtemp(join(tmpdir(), 'irb-bench-'));
  let registry: StartedRegistry | undefined;
  const cleanup = async () => {
    await registry?.stop().catch(() => {});
    await rm(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().finally(() => process.exit(130));
  });
  try {
    registry = await startRegistry();
    const host = registry.host;
    log(`registry at ${host}; pushing fixtures`);
    const debianRef = await pushOciLayout({
      layoutDir: debian.layoutDir,
      tag: debian.tag,
      registry: host,
      repository: 'bench/debian-python',
    });
    const bigRef = big
      ? await pushOciLayout({
          layoutDir: big.layoutDir,
          tag: big.tag,
          registry: host,
          repository: 'bench/synthetic',
        })
      : undefined;
    const rustRef = rust
      ? await pushOciLayout({
          layoutDir: rust.layoutDir,
          tag: rust.tag,
          registry: host,
          repository: 'bench/debian-rustc',
        })
      : undefined;

    const irbCommand = (
      ref: string,
      compression: Compression,
      out: string,
      cache: string,
      cli: string[] = cliArgs,
    ) =>
      `T irb node ${cli.map(shellQuote).join(' ')} build ${shellQuote(ref)} -o ${shellQuote(out)}` +
      ` -c ${compression} --level ${COMPRESSORS[compression].level} --insecure-registry ${host}` +
      ` --cache-dir ${shellQuote(cache)} --quiet`;
    const classicBody = (ref: string, compressor: string, out: string, dir: string) =>
      [
        `T skopeo skopeo copy --quiet --src-tls-verify=false docker://${ref} oci:${dir}/oci:bench`,
        `T umoci umoci unpack --image ${dir}/oci:bench ${dir}/bundle >/dev/null`,
        `cd ${dir}/bundle/rootfs`,
        `T find find . | T sort sort | T cpio cpio -o -H newc --quiet | T compress ${compressor} > ${shellQuote(out)}`,
      ].join('\n');

    if (options.profileDir) {
      // Profiling only: sampled timings are skewed by the profiler, so no table from this run.
      await profile(options, cliArgs, debianRef, host, work);
      return;
    }

    // The floor's input: the classic pipeline's uncompressed cpio of the same image, made once.
    log('making the uncompressed cpio for the floor rows');
    const floorDir = join(work, 'floor');
    await mkdir(floorDir);
    const floorCpio = join(work, 'floor.cpio');
    await timeScript(work, classicBody(debianRef, 'cat', floorCpio, floorDir), floorCpio);
    const cpioBytes = (await stat(floorCpio)).size;
    const cpioEntries = Number.parseInt(
      (
        await run('bash', ['-c', `cpio -it --quiet < ${shellQuote(floorCpio)} | wc -l`], { quiet: true })
      ).trim(),
      10,
    );
    await rm(floorDir, { recursive: true, force: true });
    // Every layer decompressed at once (to nowhere), as a tool reading them in parallel would.
    const blobs = await layerBlobs(debian.layoutDir);
    const decompressLayers = `T decompress bash -c ${shellQuote(`${blobs.map((b) => `${b.decompress} ${shellQuote(b.path)} >/dev/null &`).join(' ')} wait`)}`;

    // Runs are interleaved (run 1 of every row, then run 2 of every row, …) so that load from
    // other processes on a shared machine spreads over all rows instead of skewing one.
    const scratch = async (prefix: string) => mkdtemp(join(work, prefix));
    // `fixedOut`: the row writes this file every run (kept between runs) instead of a new one.
    const plans: Array<{ row: Row; body: (out: string) => Promise<string>; fixedOut?: string }> = [];
    const plan = (row: Omit<Row, 'samples'>, body: (out: string) => Promise<string>, fixedOut?: string) => {
      plans.push({ row: { ...row, samples: [] }, body, ...(fixedOut ? { fixedOut } : {}) });
    };
    // The CLIs measured: this checkout's, and the one of `--before` (rows "irb before").
    const clis: Array<{
      args: string[];
      label: string;
      cold: Row['kind'];
      warm: Row['kind'];
      rebuild: Row['kind'];
    }> = [];
    if (!options.noIrb) {
      clis.push({ args: cliArgs, label: 'irb', cold: 'irb-cold', warm: 'irb-warm', rebuild: 'irb-rebuild' });
    }
    if (!options.noIrb && beforeArgs) {
      clis.push({
        args: beforeArgs,
        label: `irb ${options.beforeLabel}`,
        cold: 'before-cold',
        warm: 'before-warm',
        rebuild: 'before-rebuild',
      });
    }
    // One cache per CLI serves its warm rows: blobs, layer indexes and the output cache, which
    // holds members per compression. Filled untimed, once per compression, so every timed warm
    // run is the same unchanged rebuild. Its output stays: the rebuild rows build into it again,
    // already up to date.
    const warmCaches = new Map<string, string>();
    const rebuildOuts = new Map<string, string>();
    for (const [index, cli] of clis.entries()) {
      const warmCache = await scratch('cache-warm-');
      warmCaches.set(cli.label, warmCache);
      for (const compression of options.only) {
        const warmOut = join(work, `rebuild-${index}.${compression}`);
        rebuildOuts.set(`${cli.label}/${compression}`, warmOut);
        await timeScript(work, irbCommand(debianRef, compression, warmOut, warmCache, cli.args), warmOut);
      }
    }
    const name = 'Debian + python3';
    for (const compression of options.only) {
      const c = COMPRESSORS[compression];
      // A bare Node start, run just before the warm rows in every round: an unchanged rebuild's
      // "× node -e 0" is the median of its run-by-run ratios to it (issue 23's 3× target).
      if (clis.length > 0) {
        plan({ workload: name, compression, name: 'node -e 0', kind: 'node' }, async (out) =>
          [`T node node -e 0`, `: > ${shellQuote(out)}`].join('\n'),
        );
      }
      for (const cli of clis) {
        const cache = warmCaches.get(cli.label) as string;
        plan(
          { workload: name, compression, name: `${cli.label}, cold cache`, kind: cli.cold },
          async (out) => {
            const fresh = await scratch('cache-cold-');
            return `${irbCommand(debianRef, compression, out, fresh, cli.args)}\nrm -rf ${shellQuote(fresh)}`;
          },
        );
        plan({ workload: name, compression, name: `${cli.label}, warm cache`, kind: cli.warm }, async (out) =>
          irbCommand(debianRef, compression, out, cache, cli.args),
        );
        const rebuildOut = rebuildOuts.get(`${cli.label}/${compression}`) as string;
        plan(
          {
            workload: name,
            compression,
            name: `${cli.label}, unchanged rebuild, output up to date`,
            kind: cli.rebuild,
          },
          async (out) => irbCommand(debianRef, compression, out, cache, cli.args),
          rebuildOut,
        );
      }
      for (const compressor of c.classic) {
        const kind = compressor === c.parallel ? 'classic-parallel' : 'classic';
        const label = `classic: skopeo → umoci → find | sort | cpio → ${compressor.replace(' -q', '')}`;
        plan({ workload: name, compression, name: label, kind }, async (out) => {
          const dir = await scratch('classic-');
          return `${classicBody(debianRef, compressor, out, dir)}\ncd /\nrm -rf ${shellQuote(dir)}`;
        });
      }
      const compressor = c.floor.replace(' -q', '');
      const decompressors = [...new Set(blobs.map((b) => b.decompress.replace(/q$/, '')))].join(', ');
      plan(
        {
          workload: name,
          compression,
          name: `floor: ${decompressors} of the layers, in parallel`,
          kind: 'floor-decompress',
        },
        async (out) => `${decompressLayers}\n: > ${shellQuote(out)}`,
      );
      plan(
        { workload: name, compression, name: `floor: ${compressor} < cpio`, kind: 'floor-compress' },
        async (out) => `T compress ${c.floor} < ${shellQuote(floorCpio)} > ${shellQuote(out)}`,
      );
      plan(
        { workload: name, compression, name: `floor: both, one after the other`, kind: 'floor' },
        async (out) =>
          `${decompressLayers}\nT compress ${c.floor} < ${shellQuote(floorCpio)} > ${shellQuote(out)}`,
      );
    }
    if (rustRef) {
      for (const compression of options.only) {
        for (const cli of clis) {
          plan(
            { workload: RUST_WORKLOAD, compression, name: `${cli.label}, cold cache`, kind: cli.cold },
            async (out) => {
              const fresh = await scratch('cache-rust-');
              return `${irbCommand(rustRef, compression, out, fresh, cli.args)}\nrm -rf ${shellQuote(fresh)}`;
            },
          );
        }
      }
    }
    if (big && bigRef) {
      plan(
        {
          workload: `synthetic ${(big.contentBytes / 1e9).toFixed(2)} GB`,
          compression: 'gzip',
          name: 'irb, cold cache',
          kind: 'irb-cold',
        },
        async (out) => {
          const fresh = await scratch('cache-big-');
          return `${irbCommand(bigRef, 'gzip', out, fresh)}\nrm -rf ${shellQuote(fresh)}`;
        },
      );
    }
    for (let i = 0; i < options.runs; i++) {
      for (const [index, { row, body, fixedOut }] of plans.entries()) {
        const out = fixedOut ?? join(work, `out-${index}-${i}`);
        const sample = await timeScript(work, await body(out), out);
        if (i === 0 && row.kind !== 'floor-decompress' && row.kind !== 'node')
          row.entries = await countEntries(out, row.compression);
        row.samples.push(sample);
        if (!fixedOut) await rm(out, { force: true });
        log(
          `${row.workload} ${row.compression} ${row.name} run ${i + 1}/${options.runs}: ${fmtSeconds(sample.wallMs)}`,
        );
      }
    }
    for (const cache of warmCaches.values()) await rm(cache, { recursive: true, force: true });
    const rows = plans
      .map((p) => p.row)
      .filter((row) => !row.workload.startsWith('synthetic') && row.workload !== RUST_WORKLOAD);
    const memoryRows = plans.map((p) => p.row).filter((row) => row.workload.startsWith('synthetic'));
    const rustRows = plans.map((p) => p.row).filter((row) => row.workload === RUST_WORKLOAD);

    const report = renderReport(options, rows, memoryRows, rustRows, {
      cpioBytes,
      cpioEntries,
      debianBlobs: await layoutBlobBytes(debian.layoutDir),
      bigContent: big?.contentBytes,
      bigBlobs: big ? await layoutBlobBytes(big.layoutDir) : undefined,
      rustBlobs: rust ? await layoutBlobBytes(rust.layoutDir) : undefined,
      commit: (await run('git', ['rev-parse', '--short', 'HEAD'], { quiet: true })).trim(),
      loadAtStart,
    });
    process.stdout.write(report);
    if (options.out) await writeOut(options.out, report);
  } finally {
    await cleanup();
  }
}

async function layoutBlobBytes(layoutDir: string): Promise<number> {
  let total = 0;
  const dir = join(layoutDir, 'blobs', 'sha256');
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** Top self-time functions of each .cpuprofile (main thread and each worker) in DIR. */
async function summarizeProfiles(dir: string): Promise<string> {
  const lines: string[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(await readFile(join(dir, name), 'utf8')) as {
      nodes: ProfileNode[];
      samples: number[];
      timeDeltas: number[];
      startTime: number;
      endTime: number;
    };
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const self = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const delta = profile.timeDeltas[i] ?? 0;
      total += delta;
      if (!node) return;
      const frame = node.callFrame;
      const where = frame.url
        ? `${frame.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '')}:${frame.lineNumber + 1}`
        : '';
      const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
      self.set(key, (self.get(key) ?? 0) + delta);
    });
    lines.push(`  ${name}: ${(total / 1000).toFixed(0)} ms sampled`);
    for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      lines.push(
        `    ${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`,
      );
    }
  }
  return lines.join('\n');
}

async function profile(
  options: Options,
  cliArgs: string[],
  ref: string,
  host: string,
  work: string,
): Promise<void> {
  const base = options.profileDir!;
  for (const compression of options.only) {
    for (const temperature of ['cold', 'warm'] as const) {
      const dir = join(base, `${compression}-${temperature}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      const cache = await mkdtemp(join(work, 'profile-cache-'));
      const out = join(work, 'profile-out');
      const irb = (extra: string[]) => [
        ...extra,
        ...cliArgs,
        'build',
        ref,
        '-o',
        out,
        '-c',
        compression,
        '--level',
        String(COMPRESSORS[compression].level),
        '--insecure-registry',
        host,
        '--cache-dir',
        cache,
        '--quiet',
      ];
      if (temperature === 'warm') await run('node', irb([]), { quiet: true });
      const started = performance.now();
      await run('node', irb(['--cpu-prof', '--cpu-prof-dir', dir]), { quiet: true });
      log(`profiled ${compression} ${temperature}: ${fmtSeconds(performance.now() - started)} → ${dir}`);
      await rm(cache, { recursive: true, force: true });
      await rm(out, { force: true });
      process.stdout.write(`\nCPU profile, irb ${compression} ${temperature} cache (self time):\n`);
      process.stdout.write(`${await summarizeProfiles(dir)}\n`);
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
