import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesIn, runCli } from './harness.ts';

const run = promisify(execFile);

describe('irb push / irb pull against a real registry', () => {
  let registry: StartedRegistry;
  let tokens: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-cli-fleet-'));
    [registry, tokens] = await Promise.all([
      startRegistry(),
      startRegistry({ auth: { token: { readOnlyUsers: { reader: 'read-only-pass' } } } }),
    ]);
    const layer = await buildTar([
      { type: 'directory', path: 'bin/' },
      { type: 'file', path: 'bin/sh', content: '#!fake', mode: 0o755 },
      { type: 'symlink', path: 'bin/mount', target: 'sh' },
      { type: 'file', path: 'app', content: 'hello', mode: 0o755 },
    ]);
    const built = buildImage({ layers: [layer], runtime: { Cmd: ['/app'] } });
    await pushImage(registry, 'demo/app', 'v1', built);
    await pushImage(tokens, 'demo/app', 'v1', built);
    image = `${registry.host}/demo/app:v1`;
    const build = await runCli(['build', image, '-o', join(dir, 'app.cpio.gz'), '-q']);
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
  });

  afterAll(async () => {
    await Promise.all([registry?.stop(), tokens?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('push into the image repository, pull --for on a fresh cache, inspect lists it', async () => {
    const archive = join(dir, 'app.cpio.gz');
    const push = await runCli([
      'push',
      archive,
      `${registry.host}/demo/app`,
      '--source',
      image,
      '--annotation',
      'team=platform',
      '--json',
    ]);
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
    const pushed = JSON.parse(push.stdout) as {
      digest: string;
      subject: string;
      referrers: string;
      annotations: Record<string, string>;
    };
    expect(pushed.referrers).toBe('tag');
    expect(pushed.annotations.team).toBe('platform');

    const out = join(dir, 'pulled.cpio.gz');
    const pull = await runCli(['pull', '--for', image, '-o', out], {
      env: { IRB_CACHE_DIR: join(dir, 'fresh-cache') },
    });
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(pull.stdout).toContain('wrote');
    expect(Buffer.compare(await readFile(out), await readFile(archive))).toBe(0);

    const inspect = await runCli(['inspect', image]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/initramfs 1 attached/);
    expect(inspect.stdout).toContain(pushed.digest);
  });

  it('push by tag elsewhere and pull by reference; container tools refuse it as an image', async () => {
    const archive = join(dir, 'app.cpio.gz');
    const ref = `${registry.host}/fleet/initramfs:v1`;
    expect((await runCli(['push', archive, ref, '--source', image, '-q'])).code).toBe(0);
    const out = join(dir, 'byref.cpio.gz');
    const pull = await runCli(['pull', ref, '-o', out, '--platform', 'linux/amd64']);
    expect(pull.code).toBe(0);
    expect(Buffer.compare(await readFile(out), await readFile(archive))).toBe(0);
    // An output named for another compression is refused, as irb build refuses it, and not written.
    const misnamed = await runCli(['pull', ref, '-o', join(dir, 'byref.cpio.lz4')]);
    expect(misnamed.code).toBe(2);
    expect(misnamed.stderr).toMatch(
      /the archive is gzip-compressed, but the output .*byref\.cpio\.lz4 is named for lz4/,
    );
    expect(await filesIn(dir)).not.toContain('byref.cpio.lz4');
    // skopeo reads it as an artifact and refuses image-specific operations on it.
    const asImage = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]).then(
      () => 'inspected as an image',
      (error: { stderr?: string }) => error.stderr ?? '',
    );
    expect(asImage).toMatch(/artifact/);
    const raw = JSON.parse(
      (await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout,
    ) as { artifactType: string };
    expect(raw.artifactType).toBe('application/vnd.irb.initramfs.v1');
  });

  it('a read-only token cannot push: one clear line naming push permission, exit 1', async () => {
    const variable = `IRB_AUTH_${tokens.host.replace(/[.:]/g, '_')}`;
    const push = await runCli(['push', join(dir, 'app.cpio.gz'), `${tokens.host}/demo/app:initramfs`], {
      env: { [variable]: 'reader:read-only-pass', HOME: dir },
    });
    expect(push.code).toBe(1);
    expect(push.stderr.trim().split('\n')).toHaveLength(1);
    expect(push.stderr).toMatch(/lack push permission for demo\/app/);
    expect(push.stderr).not.toContain('read-only-pass');
    const creds = tokens.pushCredentials!;
    const ok = await runCli(['push', join(dir, 'app.cpio.gz'), `${tokens.host}/demo/app:initramfs`, '-q'], {
      env: { [variable]: `${creds.username}:${creds.password}`, HOME: dir },
    });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });

  it('usage mistakes and a missing initramfs leave nothing behind', async () => {
    const before = await filesIn(dir);
    expect((await runCli(['pull', '-o', join(dir, 'x')])).code).toBe(2);
    expect((await runCli(['pull', image, '--for', image, '-o', join(dir, 'x')])).code).toBe(2);
    expect((await runCli(['push', join(dir, 'app.cpio.gz')])).code).toBe(2);
    expect((await runCli(['push', 'a', 'b', '--annotation', 'novalue'])).code).toBe(2);
    // Values the library refuses are usage errors too: a reserved annotation, a push by digest
    // that nothing would refer to.
    const archive = join(dir, 'app.cpio.gz');
    const reserved = await runCli([
      'push',
      archive,
      `${registry.host}/x/y:t`,
      '--annotation',
      'dev.irb.version=9',
    ]);
    expect(reserved.code).toBe(2);
    expect(reserved.stderr).toMatch(/^irb: error: annotation dev\.irb\.version is set by irb itself/);
    const untagged = await runCli(['push', archive, `${registry.host}/x/y`]);
    expect(untagged.code).toBe(2);
    expect(untagged.stderr).toMatch(/names no tag/);
    // A platform that contradicts the archive (its /init is x86_64) is a bad value: exit 2, one line.
    const contradicted = await runCli([
      'push',
      archive,
      `${registry.host}/demo/app:arm`,
      '--platform',
      'linux/arm64',
    ]);
    expect(contradicted.code).toBe(2);
    expect(contradicted.stderr).toBe(
      `irb: error: --platform linux/arm64 contradicts ${archive}, whose /init is built for amd64; drop --platform (the archive's own is used) or push the arm64 archive\n`,
    );
    const notArtifact = await runCli(['pull', image, '-o', join(dir, 'x')]);
    expect(notArtifact.code).toBe(1);
    expect(notArtifact.stderr).toMatch(/container image, not an irb initramfs/);
    expect(await filesIn(dir)).toEqual(before);
  });

  it('20 parallel builds with --cache-from --cache-to and empty caches all end with identical bytes', async () => {
    const cacheRepo = `${registry.host}/ci/irb-cache`;
    const runs = await Promise.all(
      // Staggered starts: the first ones build and push while later ones look the key up, so
      // lookups meet pushes in flight (and every one of them starts with an empty cache).
      Array.from({ length: 20 }, async (_, i) =>
        new Promise((resolve) => setTimeout(resolve, i * 40)).then(() =>
          runCli(
            [
              'build',
              image,
              '-o',
              join(dir, `par-${i}.cpio.gz`),
              '--cache-from',
              cacheRepo,
              '--cache-to',
              cacheRepo,
              '--json',
            ],
            { env: { IRB_CACHE_DIR: join(dir, `par-cache-${i}`) }, timeoutMs: 600_000 },
          ),
        ),
      ),
    );
    for (const r of runs) {
      // A lookup that meets the registry mid-write may warn and build instead; nothing may fail.
      expect(r.stderr).not.toMatch(/irb: error/);
      expect(r.code).toBe(0);
    }
    const results = runs.map((r) => JSON.parse(r.stdout) as { cache: string; buildKey: string });
    expect(new Set(results.map((r) => r.buildKey)).size).toBe(1);
    const reference = await readFile(join(dir, 'par-0.cpio.gz'));
    for (let i = 1; i < 20; i++) {
      expect(Buffer.compare(await readFile(join(dir, `par-${i}.cpio.gz`)), reference), `par-${i}`).toBe(0);
    }
    // What the registry holds under the key is the same archive, and a later host hits it.
    const later = await runCli(
      ['build', image, '-o', join(dir, 'later.cpio.gz'), '--cache-from', cacheRepo, '--json'],
      { env: { IRB_CACHE_DIR: join(dir, 'later-cache') } },
    );
    expect(later.code).toBe(0);
    // A hit reports everything a miss does, with the values the build had.
    const hit = JSON.parse(later.stdout) as Record<string, unknown>;
    expect(hit.cache).toBe('hit');
    const miss = JSON.parse(runs.find((r) => JSON.parse(r.stdout).cache === 'miss')!.stdout) as Record<
      string,
      unknown
    >;
    // (`pushed` only with --cache-to, which the later host does not give.)
    for (const key of Object.keys(miss).filter((k) => k !== 'pushed')) expect(hit, key).toHaveProperty(key);
    for (const key of Object.keys(miss).filter(
      (k) => !['output', 'durationMs', 'cache', 'pushed'].includes(k),
    )) {
      expect(hit[key], key).toEqual(miss[key]);
    }
    expect(hit.entries).toBeGreaterThan(0);
    expect(Buffer.compare(await readFile(join(dir, 'later.cpio.gz')), reference)).toBe(0);
    const local = await runCli(['build', image, '-o', join(dir, 'plain.cpio.gz'), '-q', '--no-cache']);
    expect(local.code).toBe(0);
    expect(Buffer.compare(await readFile(join(dir, 'plain.cpio.gz')), reference)).toBe(0);
    expect(await readFile(join(dir, 'app.cpio.gz'))).toEqual(reference);
    console.log(
      `parallel: ${results.filter((r) => r.cache === 'hit').length} hits, ${results.filter((r) => r.cache === 'miss').length} builds, ${runs.filter((r) => /irb: warning/.test(r.stderr)).length} lookup warnings`,
    );
  }, 900_000);
});
