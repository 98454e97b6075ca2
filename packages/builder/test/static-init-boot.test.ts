import { execFile } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  buildImage,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
  type TarSpec,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootInitramfs, findKernel, InitramfsBuilder } from '../src/index.ts';

const run = promisify(execFile);
const BOOT = 300_000;

// Images with no shell and no mount: irb's static init is the only way they boot.
describe('images without a shell boot with the static init', () => {
  let registry: StartedRegistry;
  let dir: string;
  let kernel: string;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await mkdtemp(join(tmpdir(), 'irb-static-'));
    kernel = await findKernel();
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'one static binary and nothing else: user, cwd, argv, env and /proc as the config says',
    async () => {
      const busybox = await readFile('/bin/busybox');
      const tar = await buildTar([{ type: 'file', path: 'busybox', mode: 0o755, content: busybox }]);
      const script = [
        'echo "who=$(/busybox id -u):$(/busybox id -g) groups=$(/busybox id -G)"',
        'echo "cwd=$(/busybox pwd)"',
        'echo "arg=$0 $1"',
        'echo "foo=$FOO"',
        '/busybox test -r /proc/self/status && echo proc=mounted',
        'exit 3',
      ].join('; ');
      const image = buildImage({
        layers: [tar],
        runtime: {
          User: '1000:1000',
          WorkingDir: '/work',
          Env: ['FOO=bar  baz', 'PATH=/'],
          Entrypoint: ['/busybox', 'sh', '-c', script],
          Cmd: ['first', 'second'],
        },
      });
      await pushImage(registry, 'scratch/one', 'v1', image);
      const out = join(dir, 'one.cpio');
      const summary = await new InitramfsBuilder({
        image: `${registry.host}/scratch/one:v1`,
        compression: 'none',
        cache: false,
      }).build(out);
      expect(summary).toMatchObject({ init: 'generated', initKind: 'static', warnings: [] });
      // The archive is the binary plus a few KiB: the init, its parameters, a few directories.
      expect((await stat(out)).size - busybox.length).toBeLessThan(32 * 1024);

      const boot = await bootInitramfs({ kernel, initramfs: out, stopOnMatch: false, timeoutMs: BOOT });
      expect(boot.output).toContain('who=1000:1000 groups=1000');
      expect(boot.output).toContain('cwd=/work');
      expect(boot.output).toContain('arg=first second');
      expect(boot.output).toContain('foo=bar  baz');
      expect(boot.output).toContain('proc=mounted');
      expect(boot.output).toContain('irb: exit status 3');
      expect(boot.exitCode).toBe(0);
    },
    BOOT,
  );

  it(
    'a distroless-like image: a dynamic binary and its libraries, no shell',
    async () => {
      // /usr/bin/printenv and what ld.so loads for it, at the paths the host has them.
      const { stdout } = await run('ldd', ['/usr/bin/printenv']);
      const libs = [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1] as string);
      expect(libs.length).toBeGreaterThan(0);
      const entries: TarSpec[] = [];
      const dirs = new Set<string>();
      for (const path of ['/usr/bin/printenv', ...libs]) {
        const parts = path.split('/').filter(Boolean);
        for (let i = 1; i < parts.length; i++) {
          const d = parts.slice(0, i).join('/');
          if (!dirs.has(d)) entries.push({ type: 'directory', path: d });
          dirs.add(d);
        }
        const content = await readFile(await realpath(path));
        entries.push({ type: 'file', path: parts.join('/'), mode: 0o755, content });
      }
      const image = buildImage({
        layers: [await buildTar(entries)],
        runtime: { Env: ['GREETING=distroless ok'], Cmd: ['printenv', 'GREETING'] },
      });
      await pushImage(registry, 'scratch/distroless', 'v1', image);
      const out = join(dir, 'distroless.cpio.gz');
      const summary = await new InitramfsBuilder({
        image: `${registry.host}/scratch/distroless:v1`,
        cache: false,
      }).build(out);
      expect(summary).toMatchObject({ initKind: 'static', warnings: [] });
      const boot = await bootInitramfs({ kernel, initramfs: out, stopOnMatch: false, timeoutMs: BOOT });
      expect(boot.output).toMatch(/^distroless ok$/m);
      expect(boot.output).toContain('irb: exit status 0');
    },
    BOOT,
  );
});
