import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImage,
  buildIndex,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
  type TarSpec,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitramfsBuilder } from '../src/index.ts';

const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
/** Debian's busybox-static (x86_64) and the arm64 one the environment script fetches. */
const X86_BUSYBOX = '/bin/busybox';
const ARM_BUSYBOX = join(cache, 'irb', 'aarch64', 'bin', 'busybox');

/** A busybox image: /bin/busybox, /bin/sh → busybox (absolute, as Alpine has it), a script /app/run. */
async function busyboxLayer(busybox: Uint8Array): Promise<Uint8Array> {
  const entries: TarSpec[] = [
    { type: 'directory', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
    { type: 'symlink', path: 'bin/mount', target: 'busybox' },
    { type: 'directory', path: 'app/' },
    { type: 'file', path: 'app/run', content: '#!/bin/sh\necho run\n', mode: 0o755 },
  ];
  return buildTar(entries);
}

// A multi-platform image whose arm64 variant carries the x86_64 busybox (a broken image build):
// building it for arm64 used to succeed and fail only at boot, with 126.
describe('the program is checked against the image platform at build time', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let good: string;
  let script: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-arch-check-'));
    registry = await startRegistry();
    const x86 = await busyboxLayer(await readFile(X86_BUSYBOX));
    const arm = await busyboxLayer(await readFile(ARM_BUSYBOX));
    const variant = (layer: Uint8Array, architecture: string, Cmd = ['sh', '-c', 'echo hi']) =>
      buildImage({
        layers: [layer],
        runtime: { Env: ['PATH=/usr/local/bin:/bin'], Cmd },
        platform: { os: 'linux', architecture },
      });
    await pushImage(
      registry,
      'arch/broken',
      'v1',
      buildIndex([variant(x86, 'amd64'), variant(x86, 'arm64')]),
    );
    await pushImage(registry, 'arch/good', 'v1', buildIndex([variant(x86, 'amd64'), variant(arm, 'arm64')]));
    await pushImage(registry, 'arch/script', 'v1', buildIndex([variant(x86, 'arm64', ['/app/run'])]));
    image = `${registry.host}/arch/broken:v1`;
    good = `${registry.host}/arch/good:v1`;
    script = `${registry.host}/arch/script:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const build = (options: Partial<ConstructorParameters<typeof InitramfsBuilder>[0]>, name: string) =>
    new InitramfsBuilder({ image, cache: false, ...options }).build(join(dir, name));
  const refusal = async (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error) => error,
    );

  const shell =
    'the image\'s command "sh" (/bin/sh → /bin/busybox) is built for amd64, but the image is arm64: the arm64 kernel cannot run it (exit 126 at boot)';

  it('refuses an arm64 build whose program is an x86_64 ELF, for the static init and the shell script', async () => {
    const error = await refusal(build({ platform: 'linux/arm64' }, 'static'));
    expect(error?.code).toBe('IRB_IMAGE_ARCH_MISMATCH');
    expect(error?.message).toBe(
      `${shell}; build another \`platform\` of the image or fix the image, or set \`allowArchMismatch\` to build anyway`,
    );
    // The script's shell is what the kernel runs first.
    const sh = await refusal(build({ platform: 'linux/arm64', initKind: 'sh' }, 'sh'));
    expect(sh?.code).toBe('IRB_IMAGE_ARCH_MISMATCH');
    expect(sh?.message).toMatch(
      /^the image's shell "\/bin\/sh" \(\/bin\/busybox\) is built for amd64, but the image is arm64/,
    );
  });

  it('builds with `allowArchMismatch`, the mismatch a warning; the amd64 variant and a good arm64 image have none', async () => {
    const allowed = await build({ platform: 'linux/arm64', allowArchMismatch: true }, 'allowed');
    expect(allowed.warnings).toEqual([`${shell}; built anyway, as \`allowArchMismatch\` is set`]);
    expect((await build({ platform: 'linux/amd64' }, 'amd64')).warnings).toEqual([]);
    expect((await build({ image: good, platform: 'linux/arm64' }, 'good')).warnings).toEqual([]);
    expect(
      (await build({ image: good, platform: 'linux/arm64', initKind: 'sh' }, 'good-sh')).warnings,
    ).toEqual([]);
  });

  it("checks a script's interpreter, and a program an inject brings", async () => {
    const run = await refusal(build({ image: script, platform: 'linux/arm64' }, 'script'));
    expect(run?.message).toMatch(
      /^the image's command "\/app\/run" is a script for \/bin\/sh \(\/bin\/busybox\), which is built for amd64, but the image is arm64/,
    );
    // The good image's arm64 busybox, with an x86_64 one injected where PATH finds `sh` first.
    const agent = await refusal(
      build({ image: good, platform: 'linux/arm64', inject: [`${X86_BUSYBOX}:/usr/local/bin/sh`] }, 'agent'),
    );
    expect(agent?.message).toMatch(/^the image's command "sh" \(\/usr\/local\/bin\/sh\) is built for amd64/);
    // The right one injected into the broken image: fine.
    const fine = await build(
      { platform: 'linux/arm64', inject: [`${ARM_BUSYBOX}:/usr/local/bin/sh`] },
      'fine',
    );
    expect(fine.warnings).toEqual([]);
  });

  it('on a cached base too: the base keeps what the check reads of its executables', async () => {
    const cacheDir = join(dir, 'cache');
    const first = await build(
      { platform: 'linux/arm64', allowArchMismatch: true, cache: true, cacheDir },
      'c1',
    );
    expect(first.warnings).toHaveLength(1);
    // Another overlay on the same base (no layer read): still refused without the flag.
    const events: string[] = [];
    const again = await refusal(
      build(
        {
          platform: 'linux/arm64',
          cache: true,
          cacheDir,
          hostname: 'other',
          onProgress: (e) => events.push(e.type),
        },
        'c2',
      ),
    );
    expect(events).not.toContain('index');
    expect(again?.code).toBe('IRB_IMAGE_ARCH_MISMATCH');
  });
});
