import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundledFile, builtinsByGetter, bundleCli, packageOf, START_EXTERNALS } from '../bundle.ts';
import { busyboxLayer, repoRoot, runProgram } from './harness.ts';

const run = promisify(execFile);
const cliDir = join(repoRoot, 'apps/cli');

/** Deterministic bytes that deflate barely shrinks (xorshift32), so gzip's worker threads start. */
function noise(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

// The CLI ships as a bundle (bundle.ts). These check what a bundle can get wrong and the sources
// cannot: files the packages find beside their own modules, side effects a bundler may drop, and
// imports that must resolve from node_modules. `IRB_TEST_CLI=dist` runs every other CLI test
// against the built bundle too.
describe('the bundled CLI (dist/bin.js)', () => {
  let registry: StartedRegistry;
  let out: string;
  let files: BundledFile[];
  let bundledBin: string;
  let image: string;
  const sourceCli = (args: string[]) =>
    runProgram(process.execPath, ['--conditions=@irb/source', join(cliDir, 'src/bin.ts'), ...args]);
  const bundledCli = (args: string[]) => runProgram(process.execPath, [bundledBin, ...args]);

  beforeAll(async () => {
    // Inside the CLI's own node_modules, so that the bundle resolves its dependencies as dist/ does.
    const parent = join(cliDir, 'node_modules', '.cache');
    await mkdir(parent, { recursive: true });
    out = await mkdtemp(join(parent, 'bundle-test-'));
    files = await bundleCli(out);
    bundledBin = join(out, 'bin.js');
    registry = await startRegistry();
    // Large enough (12 MiB of noise) for gzip's deflate workers, which load a file of their own.
    const layer = await busyboxLayer([
      { type: 'directory', path: 'data/' },
      { type: 'file', path: 'data/noise', content: noise(12 * 2 ** 20, 23) },
      { type: 'file', path: 'data/text', content: 'the bundle and the sources agree\n'.repeat(4096) },
    ]);
    const extra = await buildTar([{ type: 'file', path: 'etc/motd', content: 'second layer\n' }]);
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    await pushImage(registry, 'bundle/app', 'v1', buildImage({ layers: [layer, extra], runtime }));
    image = `${registry.host}/bundle/app:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    if (out) await rm(out, { recursive: true, force: true });
  });

  it("imports nothing but its own files, Node's modules and the CLI's dependencies", async () => {
    const pkg = JSON.parse(await readFile(join(cliDir, 'package.json'), 'utf8'));
    const dependencies = new Set(Object.keys(pkg.dependencies));
    const names = new Set(files.map((f) => f.fileName));
    expect(names.has('bin.js')).toBe(true);
    for (const file of files) {
      for (const specifier of file.imports) {
        const ok = names.has(specifier) || isBuiltin(specifier) || dependencies.has(packageOf(specifier));
        expect(ok, `${file.fileName} imports ${specifier}`).toBe(true);
      }
    }
    // The packages that find files beside their own modules are not bundled.
    const imported = new Set(files.flatMap((f) => f.imports).map(packageOf));
    expect(imported.has('@irb/compress')).toBe(true);
    // @irb/init is bundled: it finds its binaries through its package name (the builds below use them).
    expect(imported.has('@irb/init')).toBe(false);
    // The entry stays small and free of static imports from the packages (see src/bin.ts).
    const entry = files.find((f) => f.fileName === 'bin.js')!;
    expect(entry.imports.filter((i) => !names.has(i) && !isBuiltin(i))).toEqual([]);
    expect(pkg.bin.irb).toBe('./dist/bin.js');
  });

  it('starts from three chunks that load none of the machinery a run may not need', async () => {
    const names = new Set(files.map((f) => f.fileName));
    const byName = new Map(files.map((f) => [f.fileName, f]));
    const start = ['entry', 'cli', 'library'].map((group) => {
      const found = files.filter((f) => f.fileName.startsWith(`chunks/${group}-`));
      expect(found, group).toHaveLength(1);
      return found[0]!;
    });
    // Everything the three chunks load with them, following static imports through the bundle.
    const seen = new Set<string>();
    const outside = new Set<string>();
    const todo = start.map((f) => f.fileName);
    for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
      if (seen.has(next)) continue;
      seen.add(next);
      for (const specifier of byName.get(next)?.staticImports ?? []) {
        if (names.has(specifier)) todo.push(specifier);
        else if (!isBuiltin(specifier)) outside.add(specifier);
      }
    }
    // What every build loads anyway; never a compressor, the CPIO reader, the layer machinery.
    const allowed = ['@irb/compress/framing', '@irb/compress/types', '@irb/cpio/epoch', '@irb/errors'];
    expect([...START_EXTERNALS].sort()).toEqual(allowed);
    for (const specifier of outside) expect(allowed, specifier).toContain(specifier);
    expect(outside.has('@irb/errors')).toBe(true);
    // Node's modules are taken from the module object, not through an ESM namespace.
    for (const file of start) {
      const text = await readFile(join(out, file.fileName), 'utf8');
      expect(text, file.fileName).not.toMatch(/^import [^;]* from "node:/m);
    }
  });

  it('takes named imports of Node modules with process.getBuiltinModule, line for line', () => {
    const code = [
      'import { a, b as c } from "node:fs";',
      'import { createHash as h } from "node:crypto";',
      'import * as path from "node:path";',
      'import { x } from "./other.js";',
      'const y = 1;',
    ].join('\n');
    expect(builtinsByGetter(code).split('\n')).toEqual([
      'const { a, b: c } = process.getBuiltinModule("node:fs");',
      'const { createHash: h } = process.getBuiltinModule("node:crypto");',
      'import * as path from "node:path";',
      'import { x } from "./other.js";',
      'const y = 1;',
    ]);
  });

  it("keeps run.ts's side effects: --version prints, --version --verbose finds zstd-napi as the sources do", async () => {
    const pkg = JSON.parse(await readFile(join(cliDir, 'package.json'), 'utf8'));
    const plain = await bundledCli(['--version']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe(`irb ${pkg.version}\n`);
    const env = { IRB_ACCEL: 'tcg' };
    const [bundled, source] = await Promise.all([
      runProgram(process.execPath, [bundledBin, '--version', '--verbose'], { env }),
      runProgram(
        process.execPath,
        ['--conditions=@irb/source', join(cliDir, 'src/bin.ts'), '--version', '--verbose'],
        {
          env,
        },
      ),
    ]);
    expect(bundled.code, bundled.stderr).toBe(0);
    expect(bundled.stdout).toBe(source.stdout);
    expect(bundled.stdout).toMatch(/^zstd {6}zstd-napi$/m);
  });

  it('builds the same bytes as the sources for gzip, zstd, lz4 and none', async () => {
    for (const compression of ['gzip', 'zstd', 'lz4', 'none']) {
      const fromSource = join(out, `source.${compression}`);
      const fromBundle = join(out, `bundle.${compression}`);
      const common = [
        'build',
        image,
        '-c',
        compression,
        '--insecure-registry',
        registry.host,
        '--no-cache',
        '-q',
      ];
      const [a, b] = await Promise.all([
        sourceCli([...common, '-o', fromSource]),
        bundledCli([...common, '-o', fromBundle]),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const [x, y] = await Promise.all([readFile(fromSource), readFile(fromBundle)]);
      expect(x.length).toBeGreaterThan(2 ** 20);
      expect(Buffer.compare(x, y), compression).toBe(0);
    }
  });

  it('on an old Node, the bundled bin says which Node it needs in one line', async () => {
    const oldNode = '/usr/bin/node';
    if (!existsSync(oldNode)) return;
    const { stdout: found } = await run(oldNode, ['--version']);
    const [major = 0, minor = 0] = found.trim().slice(1).split('.').map(Number);
    if (major > 22 || (major === 22 && minor >= 19)) return;
    const result = await runProgram(oldNode, [bundledBin, '--help']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^irb needs Node >= 22\.19, found v[\d.]+; install Node 22\.19 or newer .*\n$/,
    );
  });
});
