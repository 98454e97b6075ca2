import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  baseKey,
  buildCacheTag,
  buildKey,
  buildKeyInput,
  canonicalJson,
  contentDigest,
} from './build-key.ts';
import type { InitramfsBuilderOptions } from './types.ts';
import { BUILD_FORMAT_VERSION } from './version.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const key = async (options: Partial<InitramfsBuilderOptions>, digest = DIGEST) =>
  buildKey(await buildKeyInput({ image: 'x', ...options }, digest));

describe('buildKey', () => {
  let dir: string;
  const saved = process.env.SOURCE_DATE_EPOCH;
  beforeAll(async () => {
    delete process.env.SOURCE_DATE_EPOCH;
    dir = await mkdtemp(join(tmpdir(), 'irb-key-'));
    await writeFile(join(dir, 'agent'), 'agent v1');
    await mkdir(join(dir, 'tree/sub'), { recursive: true });
    await writeFile(join(dir, 'tree/sub/file'), 'data');
    await symlink('sub/file', join(dir, 'tree/link'));
    await writeFile(join(dir, 'a.trace.json'), '{"irbTrace":1,"files":["/usr/bin/python3"]}');
    await writeFile(join(dir, 'copy.trace.json'), '{"irbTrace":1,"files":["/usr/bin/python3"]}');
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('is 64 hex digits, and canonical JSON sorts keys and drops undefined', async () => {
    expect(await key({})).toMatch(/^[0-9a-f]{64}$/);
    expect(canonicalJson({ b: 1, a: [2, { d: undefined, c: 'x' }] })).toBe('{"a":[2,{"c":"x"}],"b":1}');
    expect(buildCacheTag('f'.repeat(64))).toBe(`irb-${'f'.repeat(64)}`);
    expect(BUILD_FORMAT_VERSION).toBeGreaterThan(0);
  });

  it('spelled-out defaults and options that cannot change the bytes give the same key', async () => {
    const base = await key({});
    expect(
      await key({
        image: 'another:tag',
        compression: 'gzip',
        level: 6,
        platform: 'linux/amd64',
        exitAction: 'poweroff',
        hostname: 'irb',
        initKind: 'auto',
        threads: 3,
        cache: false,
        cacheDir: '/elsewhere',
        insecureRegistries: ['h'],
        onProgress: () => {},
      }),
    ).toBe(base);
    expect(await key({ compression: 'zstd' })).toBe(await key({ compression: 'zstd', level: 3 }));
  });

  it('every option that changes the output changes the key', async () => {
    const variants: Array<Partial<InitramfsBuilderOptions>> = [
      {},
      { compression: 'zstd' },
      { compression: 'none' },
      { compression: 'lz4' },
      { initKind: 'sh' },
      { initKind: 'static' },
      { trace: true },
      { slim: ['docs'] },
      { keepOnly: [join(dir, 'a.trace.json')] },
      { keepOnly: [join(dir, 'a.trace.json')], keep: ['/etc/**'] },
      { level: 9 },
      { platform: 'linux/arm64' },
      { exclude: ['/usr/share/doc/**'] },
      { inject: [`${join(dir, 'agent')}:/usr/bin/agent`] },
      { inject: [`${join(dir, 'agent')}:/usr/bin/other`] },
      { init: join(dir, 'agent') },
      { replaceImageInit: true },
      { keepImageInit: true },
      { exitAction: 'reboot' },
      { hostname: 'vm' },
      { sourceDateEpoch: 1 },
    ];
    const keys = await Promise.all(variants.map((v) => key(v)));
    expect(new Set(keys).size).toBe(variants.length);
    expect(await key({}, `sha256:${'b'.repeat(64)}`)).not.toBe(keys[0]);
  });

  it('a trace counts by its content, not its path', async () => {
    expect(await key({ keepOnly: [join(dir, 'a.trace.json')] })).toBe(
      await key({ keepOnly: [join(dir, 'copy.trace.json')] }),
    );
  });

  it('SOURCE_DATE_EPOCH counts like the option', async () => {
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      expect(await key({})).toBe(await key({ sourceDateEpoch: 1_700_000_000 }));
    } finally {
      delete process.env.SOURCE_DATE_EPOCH;
    }
  });

  it('injected files count by content, not by path; a tree by names, modes, links and bytes', async () => {
    const copy = join(dir, 'copy-of-agent');
    await writeFile(copy, 'agent v1');
    expect(await key({ inject: [`${copy}:/usr/bin/agent`] })).toBe(
      await key({ inject: [`${join(dir, 'agent')}:/usr/bin/agent`] }),
    );
    const before = await contentDigest(join(dir, 'tree'));
    await writeFile(join(dir, 'tree/sub/file'), 'datA');
    expect(await contentDigest(join(dir, 'tree'))).not.toBe(before);
    await writeFile(copy, 'agent v2');
    expect(await key({ inject: [`${copy}:/usr/bin/agent`] })).not.toBe(
      await key({ inject: [`${join(dir, 'agent')}:/usr/bin/agent`] }),
    );
    await expect(contentDigest(join(dir, 'missing'))).rejects.toMatchObject({
      code: 'IRB_INJECT_SOURCE_UNREADABLE',
    });
  });
});

describe('baseKey (the local output cache)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-base-key-'));
    await writeFile(join(dir, 'a'), 'agent A');
    await writeFile(join(dir, 'b'), 'agent B');
    await writeFile(join(dir, 't.trace.json'), '{"irbTrace":1,"files":["/usr/bin/python3"]}');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const base = (options: Partial<InitramfsBuilderOptions>, digest = DIGEST) =>
    baseKey({ image: 'x', sourceDateEpoch: 1, ...options }, digest);

  it('ignores what only shapes the overlay: inject, init and how the init runs', async () => {
    const plain = await base({});
    expect(plain).toMatch(/^[0-9a-f]{64}$/);
    for (const o of [
      { inject: [`${join(dir, 'a')}:/usr/bin/agent`] },
      { inject: [`${join(dir, 'b')}:/usr/bin/agent`] },
      { init: join(dir, 'a') },
      { initKind: 'sh' as const, hostname: 'h', exitAction: 'reboot' as const },
      { replaceImageInit: true },
      { keepImageInit: true },
      { trace: true },
      { threads: 1, cacheDir: '/elsewhere' },
    ]) {
      expect(await base(o)).toBe(plain);
    }
    // Spelling defaults out changes nothing.
    expect(await base({ compression: 'gzip', level: 6, platform: 'linux/amd64' })).toBe(plain);
  });

  it('changes with the image and with every option that shapes the image files or the compression', async () => {
    const keys = await Promise.all([
      base({}),
      base({}, `sha256:${'b'.repeat(64)}`),
      base({ compression: 'zstd' }),
      base({ level: 9 }),
      base({ platform: 'linux/arm64' }),
      base({ exclude: ['/usr/share/doc/**'] }),
      base({ slim: ['docs'] }),
      base({ keepOnly: [join(dir, 't.trace.json')] }),
      base({ keep: ['/etc/**'] }),
      base({ sourceDateEpoch: 2 }),
    ]);
    expect(new Set(keys).size).toBe(keys.length);
    // And it never equals the whole build's key.
    expect(keys[0]).not.toBe(await key({ sourceDateEpoch: 1 }));
  });
});
