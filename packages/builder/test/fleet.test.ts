import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRegistryClient,
  INITRAMFS_ANNOTATIONS,
  INITRAMFS_ARTIFACT_TYPE,
  OCI_EMPTY,
} from '@irb/registry';
import {
  buildImage,
  buildIndex,
  buildTar,
  flipByte,
  pushImage,
  type StartedRegistry,
  startFaultProxy,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWithRemoteCache,
  findInitramfs,
  InitramfsBuilder,
  inspectImage,
  pullInitramfs,
  pushInitramfs,
} from '../src/index.ts';

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a rejection');
}

describe('pushInitramfs / pullInitramfs against a real registry', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let manifestDigest: string;
  let archive: string;
  let cacheDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-fleet-'));
    cacheDir = join(dir, 'cache');
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'bin/' },
      { type: 'file', path: 'bin/sh', content: '#!fake shell', mode: 0o755 },
      { type: 'symlink', path: 'bin/mount', target: 'sh' },
      { type: 'file', path: 'app', content: 'app', mode: 0o755 },
    ]);
    manifestDigest = await pushImage(
      registry,
      'fleet/app',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/app'] } }),
    );
    image = `${registry.host}/fleet/app:v1`;
    archive = join(dir, 'app.cpio.gz');
    await new InitramfsBuilder({ image, cache: false }).build(archive);
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('pushes an artifact that is not an image, with irb annotations, and pulls it back byte for byte', async () => {
    const pushed = await pushInitramfs(archive, `${registry.host}/fleet/initramfs:v1`, {
      source: image,
      annotations: { 'com.example.team': 'platform' },
      sourceDateEpoch: 1_700_000_000,
      buildKey: 'k'.repeat(64),
      cache: false,
    });
    expect(pushed.compression).toBe('gzip');
    expect(pushed.blob).toBe('uploaded');
    expect(pushed.tag).toBe('v1');
    expect(pushed.subject).toBeUndefined(); // another repository: no subject
    const m = pushed.manifest;
    expect(m.artifactType).toBe(INITRAMFS_ARTIFACT_TYPE);
    expect(m.config.mediaType).toBe(OCI_EMPTY);
    expect(m.layers[0]?.mediaType).toBe('application/vnd.irb.initramfs.layer.v1.cpio+gzip');
    expect(m.annotations).toMatchObject({
      [INITRAMFS_ANNOTATIONS.source]: image,
      [INITRAMFS_ANNOTATIONS.sourceDigest]: manifestDigest,
      [INITRAMFS_ANNOTATIONS.platform]: 'linux/amd64',
      [INITRAMFS_ANNOTATIONS.compression]: 'gzip',
      [INITRAMFS_ANNOTATIONS.buildKey]: 'k'.repeat(64),
      [INITRAMFS_ANNOTATIONS.created]: '2023-11-14T22:13:20Z',
      'com.example.team': 'platform',
    });
    expect(Number(m.annotations?.[INITRAMFS_ANNOTATIONS.recommendedMemoryMiB])).toBeGreaterThan(0);

    // A container tool's view: it is no image.
    const refused = await rejection(
      createRegistryClient({ cache: false }).image(`${registry.host}/fleet/initramfs:v1`),
    );
    expect(refused.code).toBe('IRB_MANIFEST_UNSUPPORTED');

    const out = join(dir, 'pulled.cpio.gz');
    const pulled = await pullInitramfs(`${registry.host}/fleet/initramfs:v1`, out, { cacheDir });
    expect(pulled.digest).toBe(pushed.digest);
    expect(pulled.platform).toBe('linux/amd64');
    expect(Buffer.compare(await readFile(out), await readFile(archive))).toBe(0);
    // An output meant for another compression is refused before anything is written.
    const misnamed = join(dir, 'pulled.cpio.zst');
    const refusedName = await rejection(
      pullInitramfs(`${registry.host}/fleet/initramfs:v1`, misnamed, { cacheDir, compression: 'zstd' }),
    );
    expect(refusedName.code).toBe('IRB_OPTION_INVALID');
    expect(refusedName.message).toMatch(
      /the archive is gzip-compressed, but the output .* is named for zstd/,
    );
    await expect(readFile(misnamed)).rejects.toThrow(/ENOENT/);
    // The cached copy of the archive goes bad: the next pull downloads it again, and succeeds.
    await flipByte(join(cacheDir, 'blobs', 'sha256', pulled.layer.digest.slice(7)));
    const repaired = join(dir, 'pulled-again.cpio.gz');
    await pullInitramfs(`${registry.host}/fleet/initramfs:v1`, repaired, { cacheDir });
    expect(Buffer.compare(await readFile(repaired), await readFile(archive))).toBe(0);
    // Pushing the same archive again uploads nothing and gives the same digest (reproducible).
    const again = await pushInitramfs(archive, `${registry.host}/fleet/initramfs:v1`, {
      source: image,
      annotations: { 'com.example.team': 'platform' },
      sourceDateEpoch: 1_700_000_000,
      buildKey: 'k'.repeat(64),
      cache: false,
    });
    expect(again.blob).toBe('exists');
    expect(again.digest).toBe(pushed.digest);
  });

  it('attaches to the source image (subject + tag-schema fallback); pull --for and inspect find it', async () => {
    const pushed = await pushInitramfs(archive, `${registry.host}/fleet/app`, {
      source: image,
      cache: false,
    });
    expect(pushed.subject).toBe(manifestDigest);
    expect(pushed.referrers).toBe('tag'); // distribution 2.8 has no referrers API
    expect(pushed.tag).toBeUndefined();
    const found = await findInitramfs(image, { cache: false });
    expect(found.map((f) => f.digest)).toEqual([pushed.digest]);
    const out = join(dir, 'for.cpio.gz');
    const pulled = await pullInitramfs({ for: image }, out, { cacheDir });
    expect(pulled.digest).toBe(pushed.digest);
    expect(Buffer.compare(await readFile(out), await readFile(archive))).toBe(0);
    const inspection = await inspectImage(image, { cache: false });
    expect(inspection.initramfs?.map((a) => a.digest)).toEqual([pushed.digest]);
  });

  it('chooses by platform when several are attached, and says which exist', async () => {
    const arm = buildImage({
      layers: [await buildTar([{ type: 'file', path: 'x', content: 'arm' }])],
      platform: { os: 'linux', architecture: 'arm64' },
    });
    const amd = buildImage({
      layers: [await buildTar([{ type: 'file', path: 'x', content: 'amd' }])],
      platform: { os: 'linux', architecture: 'amd64' },
    });
    await pushImage(registry, 'fleet/multi', 'v1', buildIndex([amd, arm]));
    const multi = `${registry.host}/fleet/multi:v1`;
    const armArchive = join(dir, 'multi-arm.cpio.gz');
    await new InitramfsBuilder({ image: multi, platform: 'linux/arm64', cache: false }).build(armArchive);
    const a = await pushInitramfs(archive, `${registry.host}/fleet/multi`, {
      source: multi,
      platform: 'linux/amd64',
      cache: false,
    });
    const b = await pushInitramfs(armArchive, `${registry.host}/fleet/multi`, {
      source: multi,
      platform: 'linux/arm64',
      annotations: { variant: 'arm' },
      cache: false,
    });
    expect(a.subject).not.toBe(b.subject); // each platform manifest has its own referrers
    const ambiguous = await rejection(pullInitramfs({ for: multi }, join(dir, 'x'), { cache: false }));
    expect(ambiguous.code).toBe('IRB_PLATFORM_REQUIRED');
    expect(ambiguous.message).toMatch(/linux\/amd64.*linux\/arm64|linux\/arm64.*linux\/amd64/);
    const out = join(dir, 'arm.cpio.gz');
    const pulled = await pullInitramfs({ for: multi }, out, { platform: 'linux/arm64', cache: false });
    expect(pulled.digest).toBe(b.digest);
    const none = await rejection(
      pullInitramfs({ for: multi }, out, { platform: 'linux/riscv64', cache: false }),
    );
    expect(none.code).toMatch(/IRB_(INITRAMFS|PLATFORM)_NOT_FOUND/);
  });

  it("labels an archive with its /init's platform, attaches it to that manifest of the source, and refuses a platform that contradicts it", async () => {
    const layers = [await buildTar([{ type: 'file', path: 'x', content: 'x' }])];
    const amd = buildImage({ layers, platform: { os: 'linux', architecture: 'amd64' } });
    const arm = buildImage({ layers, platform: { os: 'linux', architecture: 'arm64' } });
    await pushImage(registry, 'fleet/arch', 'v1', buildIndex([amd, arm]));
    const multi = `${registry.host}/fleet/arch:v1`;
    // Its /init is irb's static init for aarch64: a real arm64 ELF program.
    const armArchive = join(dir, 'arch-arm.cpio.lz4');
    await new InitramfsBuilder({
      image: multi,
      platform: 'linux/arm64',
      compression: 'lz4',
      cache: false,
    }).build(armArchive);
    const pushed = await pushInitramfs(armArchive, `${registry.host}/fleet/arch`, {
      source: multi,
      cache: false,
    });
    expect(pushed.manifest.annotations?.[INITRAMFS_ANNOTATIONS.platform]).toBe('linux/arm64');
    expect(pushed.subject).toBe(arm.manifest.digest);
    expect(pushed.manifest.annotations?.[INITRAMFS_ANNOTATIONS.sourceDigest]).toBe(arm.manifest.digest);
    // An amd64 host asking for the image's initramfs does not get the arm64 one.
    const forAmd = await rejection(
      pullInitramfs({ for: multi }, join(dir, 'amd.cpio'), { platform: 'linux/amd64', cache: false }),
    );
    expect(forAmd.code).toBe('IRB_INITRAMFS_NOT_FOUND');
    const forArm = await pullInitramfs({ for: multi }, join(dir, 'arm.cpio'), {
      platform: 'linux/arm64',
      cache: false,
    });
    expect(forArm.digest).toBe(pushed.digest);
    // Saying amd64 for it is refused, before anything is uploaded.
    const contradicted = await rejection(
      pushInitramfs(armArchive, `${registry.host}/fleet/arch:wrong`, {
        source: multi,
        platform: 'linux/amd64',
        cache: false,
      }),
    );
    expect(contradicted.code).toBe('IRB_PLATFORM_MISMATCH');
    expect(contradicted.message).toBe(
      `\`platform\` linux/amd64 contradicts ${armArchive}, whose /init is built for arm64; drop \`platform\` (the archive's own is used) or push the amd64 archive`,
    );
    // An archive whose /init is no ELF program (nor a script whose interpreter is one) cannot
    // tell: with a source, the platform must be given.
    const script = join(dir, 'init.sh');
    await writeFile(script, '#!/bin/sh\nexec /app\n');
    const unknown = join(dir, 'script-init.cpio.gz');
    await new InitramfsBuilder({ image, init: script, cache: false }).build(unknown);
    const required = await rejection(
      pushInitramfs(unknown, `${registry.host}/fleet/app:script`, { source: image, cache: false }),
    );
    expect(required.code).toBe('IRB_PLATFORM_REQUIRED');
    const given = await pushInitramfs(unknown, `${registry.host}/fleet/app:script`, {
      source: image,
      platform: 'linux/amd64',
      cache: false,
    });
    expect(given.manifest.annotations?.[INITRAMFS_ANNOTATIONS.platform]).toBe('linux/amd64');
  });

  it('refuses clearly: a container image pulled as an initramfs, no initramfs attached, a non-archive', async () => {
    const notArtifact = await rejection(pullInitramfs(image, join(dir, 'y'), { cache: false }));
    expect(notArtifact.code).toBe('IRB_INITRAMFS_NOT_FOUND');
    expect(notArtifact.message).toMatch(/container image.*`for`/);
    await pushImage(
      registry,
      'fleet/bare',
      'v1',
      buildImage({ layers: [await buildTar([{ type: 'file', path: 'z', content: 'z' }])] }),
    );
    const none = await rejection(
      pullInitramfs({ for: `${registry.host}/fleet/bare:v1` }, join(dir, 'y'), { cache: false }),
    );
    expect(none.code).toBe('IRB_INITRAMFS_NOT_FOUND');
    expect(none.message).toMatch(/no irb initramfs is attached/);
    const junk = join(dir, 'junk.bin');
    await writeFile(junk, 'not an archive at all');
    const bad = await rejection(pushInitramfs(junk, `${registry.host}/fleet/junk:v1`, { cache: false }));
    expect(bad.code).toBe('IRB_INITRAMFS_CORRUPT');
    const own = await rejection(
      pushInitramfs(archive, `${registry.host}/fleet/junk:v1`, {
        annotations: { [INITRAMFS_ANNOTATIONS.platform]: 'x' },
        cache: false,
      }),
    );
    expect(own.code).toBe('IRB_OPTION_INVALID');
    const dangling = await rejection(
      pushInitramfs(archive, `${registry.host}/fleet/loose`, { cache: false }),
    );
    expect(dangling.code).toBe('IRB_OPTION_INVALID');
    expect(dangling.message).toMatch(/names no tag/);
    // Nothing half-written is left where the outputs were asked for.
    expect((await readdir(dir)).filter((n) => n.startsWith('.') || n === 'y')).toEqual([]);
  });

  it('remote build cache: a miss builds and pushes, a hit on a fresh cache pulls the same bytes and no layer', async () => {
    const cacheRepo = `${registry.host}/fleet/irb-cache`;
    const cold = join(dir, 'cold.cpio.zst');
    const miss = await buildWithRemoteCache(
      { image, compression: 'zstd', cacheDir: join(dir, 'c-miss') },
      cold,
      {
        cacheFrom: cacheRepo,
        cacheTo: cacheRepo,
      },
    );
    expect(miss.cache).toBe('miss');
    expect(miss.lookupError).toBeUndefined();
    expect(miss.pushed?.manifest.annotations?.[INITRAMFS_ANNOTATIONS.buildKey]).toBe(miss.key);
    const freshCache = join(dir, 'c-hit');
    const warm = join(dir, 'warm.cpio.zst');
    const hit = await buildWithRemoteCache({ image, compression: 'zstd', cacheDir: freshCache }, warm, {
      cacheFrom: cacheRepo,
    });
    expect(hit.cache).toBe('hit');
    expect(hit.key).toBe(miss.key);
    // A hit reports the summary the build had: what the key decides, with its own output.
    const { output: _missOutput, durationMs: _missMs, ...built } = miss.summary!;
    expect(hit.summary).toMatchObject({ ...built, output: warm });
    expect(Buffer.compare(await readFile(warm), await readFile(cold))).toBe(0);
    // A plain local build gives the same bytes.
    const local = join(dir, 'local.cpio.zst');
    await new InitramfsBuilder({ image, compression: 'zstd', cache: false }).build(local);
    expect(Buffer.compare(await readFile(local), await readFile(warm))).toBe(0);
    // The fresh cache holds the image's manifest and config and the archive: no layer blob.
    const layers = (await inspectImage(image, { cache: false })).layers.map((l) => l.digest.slice(7));
    const cached = await readdir(join(freshCache, 'blobs', 'sha256'));
    expect(cached.filter((hex) => layers.includes(hex))).toEqual([]);
    expect(cached).toContain(hit.pulled?.layer.digest.slice(7));
    // Other options: another key, a miss.
    const other = await buildWithRemoteCache(
      { image, compression: 'zstd', level: 5, cache: false },
      join(dir, 'l5.cpio.zst'),
      {
        cacheFrom: cacheRepo,
      },
    );
    expect(other.cache).toBe('miss');
    expect(other.key).not.toBe(miss.key);
  });

  it('a pull whose download breaks resumes with a Range request and still writes the exact archive', async () => {
    const pushed = await pushInitramfs(archive, `${registry.host}/fleet/resume:v1`, { cache: false });
    const proxy = await startFaultProxy(registry.url, [
      {
        method: 'GET',
        path: `/blobs/${pushed.manifest.layers[0]?.digest}`,
        fault: { kind: 'reset', afterBytes: 300 },
      },
    ]);
    try {
      const out = join(dir, 'resumed.cpio.gz');
      const pulled = await pullInitramfs(`${proxy.host}/fleet/resume:v1`, out, {
        cacheDir: join(dir, 'resume-cache'),
      });
      expect(pulled.digest).toBe(pushed.digest);
      expect(Buffer.compare(await readFile(out), await readFile(archive))).toBe(0);
      const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      expect(blobGets.map((r) => r.fault ?? r.headers.range)).toEqual(['reset', 'bytes=300-']);
    } finally {
      await proxy.stop();
    }
  });
});
