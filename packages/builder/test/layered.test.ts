import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ArchiveEntry, InitramfsBuilder, listArchive } from '../src/index.ts';

/** A merged-/usr image: /bin is a symlink to usr/bin, /tmp is 1777, the program is /usr/bin/agent. */
describe('layered output: a base member and an overlay member', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let agent: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-layered-'));
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'file', path: 'usr/bin/agent', content: 'agent A', mode: 0o755 },
      { type: 'symlink', path: 'bin', target: 'usr/bin' },
      { type: 'file', path: 'etc/motd', content: 'hello' },
      { type: 'link', path: 'etc/motd.copy', target: 'etc/motd' },
      { type: 'directory', path: 'tmp/', mode: 0o1777 },
      { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
      { type: 'file', path: 'etc/group', content: 'root:x:0:\n' },
      { type: 'file', path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
    ]);
    await pushImage(
      registry,
      'lib/merged',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/agent'] } }),
    );
    image = `${registry.host}/lib/merged:v1`;
    agent = join(dir, 'agent');
    await writeFile(agent, 'agent B');
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const byMember = async (path: string) => {
    const members: ArchiveEntry[][] = [];
    for await (const e of listArchive(path)) {
      members[e.member] ??= [];
      members[e.member]?.push(e);
    }
    return members;
  };

  for (const compression of ['gzip', 'zstd', 'lz4', 'none'] as const) {
    it(`${compression}: the image in member 0, inject and /init in member 1, as irb ls lists them`, async () => {
      const out = join(dir, `out-${compression}`);
      const summary = await new InitramfsBuilder({
        image,
        compression,
        cache: false,
        inject: [`${agent}:/bin/agent`],
      }).build(out);
      const [base, overlay, more] = await byMember(out);
      expect(more).toBeUndefined();
      const names = (m: ArchiveEntry[] | undefined) => (m ?? []).map((e) => `${e.type} ${e.name}`);
      // The base is the image, untouched, plus /dev/console; no /init, no injected file.
      expect(names(base)).toEqual(
        expect.arrayContaining(['symlink bin', 'file usr/bin/agent', 'directory dev', 'char dev/console']),
      );
      expect(names(base)).not.toContain('file init');
      // The overlay: /bin/agent went through the base's symlink; no `bin`, `usr` or `usr/bin` entry
      // (a directory entry would replace the symlink, or rewrite the directory's mode); /tmp is not
      // re-emitted (it would lose its 1777); the mount points the image lacks are.
      expect(names(overlay).sort()).toEqual(
        [
          'directory irb',
          'directory proc',
          'directory run',
          'directory sys',
          'file init',
          'file irb/init.conf',
          'file usr/bin/agent',
        ].sort(),
      );
      expect(summary.entries).toBe((base?.length ?? 0) + (overlay?.length ?? 0));
      // Same inputs, same bytes.
      const again = join(dir, `again-${compression}`);
      await new InitramfsBuilder({ image, compression, cache: false, inject: [`${agent}:/bin/agent`] }).build(
        again,
      );
      const { readFile } = await import('node:fs/promises');
      expect(Buffer.compare(await readFile(out), await readFile(again))).toBe(0);
    });
  }

  it('injects a host tree through the base symlinks, and over a file with a directory', async () => {
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'bin'), { recursive: true });
    await mkdir(join(tree, 'etc', 'hosts'), { recursive: true });
    await writeFile(join(tree, 'bin', 'tool'), 'tool');
    await writeFile(join(tree, 'etc', 'hosts', 'x'), 'x');
    const out = join(dir, 'tree.cpio');
    await new InitramfsBuilder({ image, compression: 'none', cache: false, inject: [`${tree}:/`] }).build(
      out,
    );
    const [, overlay] = await byMember(out);
    const names = (overlay ?? []).map((e) => `${e.type} ${e.name}`);
    expect(names).toContain('file usr/bin/tool');
    expect(names).toContain('directory etc/hosts');
    expect(names).toContain('file etc/hosts/x');
    expect(names.filter((n) => n.endsWith(' bin') || n.endsWith(' etc') || n.endsWith(' usr/bin'))).toEqual(
      [],
    );
  });

  it('replaces one name of a hard-linked file, not the file (an entry of another type unlinks the name first)', async () => {
    const out = join(dir, 'motd.cpio');
    await new InitramfsBuilder({
      image,
      compression: 'none',
      cache: false,
      inject: [`${agent}:/etc/motd`],
    }).build(out);
    const [, overlay] = await byMember(out);
    const motd = (overlay ?? []).filter((e) => e.name === 'etc/motd').map((e) => e.type);
    expect(motd).toEqual(['symlink', 'file']);
    // /usr/bin/agent has one name: written over in place, no extra entry.
    const plain = join(dir, 'plain.cpio');
    await new InitramfsBuilder({
      image,
      compression: 'none',
      cache: false,
      inject: [`${agent}:/bin/agent`],
    }).build(plain);
    const [, second] = await byMember(plain);
    expect((second ?? []).filter((e) => e.name === 'usr/bin/agent').map((e) => e.type)).toEqual(['file']);
  });

  it('refuses a file where the base has a directory, naming the inject', async () => {
    const err = await new InitramfsBuilder({ image, cache: false, inject: [`${agent}:/tmp`] })
      .build(join(dir, 'refused'))
      .catch((e) => e);
    expect(err.code).toBe('IRB_INJECT_DEST_INVALID');
    expect(err.message).toBe(
      `\`inject\` ${agent}:/tmp puts a file at /tmp, where the image has a directory; an overlay member cannot replace a directory (the kernel removes only empty ones): choose a path below it`,
    );
  });
});

describe('the output cache', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-output-cache-'));
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'symlink', path: 'bin', target: 'usr/bin' },
      { type: 'file', path: 'usr/lib/big', content: 'y'.repeat(300_000) },
      {
        type: 'file',
        path: 'etc/passwd',
        content: 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n',
      },
      { type: 'file', path: 'etc/group', content: 'root:x:0:\napp:x:1000:\n' },
    ]);
    await pushImage(
      registry,
      'lib/cached',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['agent'], User: 'app' } }),
    );
    image = `${registry.host}/lib/cached:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reuses the base member: same bytes as a cold build, no layer read; a changed agent changes only the overlay', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const cacheDir = join(dir, 'cache');
    const agentA = join(dir, 'agent-a');
    const agentB = join(dir, 'agent-b');
    await writeFile(agentA, 'agent A');
    await writeFile(agentB, 'agent B, longer');
    const build = async (agent: string, name: string, cache = true) => {
      const events: string[] = [];
      const out = join(dir, name);
      const summary = await new InitramfsBuilder({
        image,
        compression: 'zstd',
        cacheDir,
        cache,
        inject: [`${agent}:/bin/agent`],
        onProgress: (e) => events.push(e.type === 'blob' ? `blob ${e.digest} ${e.phase}` : e.type),
      }).build(out);
      return { bytes: await readFile(out), events, summary, out };
    };
    const cold = await build(agentA, 'cold', false);
    // `cache: false` neither reads nor writes the output cache.
    await expect(readdir(join(cacheDir, 'output'))).rejects.toThrow(/ENOENT/);
    const first = await build(agentA, 'first');
    expect(first.events).toContain('index');
    const outputs = await readdir(join(cacheDir, 'output'));
    const kinds = (names: string[]) => names.map((n) => n.replace(/^[0-9a-f]{64}/, 'KEY')).sort();
    // The base member and its tree, the overlay member and its description.
    expect(kinds(outputs)).toEqual(['KEY.base', 'KEY.meta', 'KEY.overlay', 'KEY.tree']);
    const hit = await build(agentA, 'hit');
    expect(hit.events).not.toContain('index');
    // An unchanged rebuild packs and compresses nothing: both members come from the cache.
    expect(hit.events).not.toContain('compress');
    expect(hit.events).not.toContain('pack');
    expect(hit.events).toContain('done');
    // Nothing downloaded (the manifest is revalidated; the config comes from the blob cache).
    expect(hit.events.filter((e) => e.startsWith('blob') && !e.endsWith(' cache'))).toEqual([]);
    expect(Buffer.compare(hit.bytes, cold.bytes)).toBe(0);
    expect(Buffer.compare(first.bytes, cold.bytes)).toBe(0);
    const { durationMs: _a, output: _b, ...hitSummary } = hit.summary;
    const { durationMs: _c, output: _d, ...coldSummary } = cold.summary;
    expect(hitSummary).toEqual(coldSummary);
    // A new agent: the same base member bytes, another overlay; equal to a cold build of it.
    const changed = await build(agentB, 'changed');
    const changedCold = await build(agentB, 'changed-cold', false);
    expect(Buffer.compare(changed.bytes, changedCold.bytes)).toBe(0);
    const baseBytes = await readFile(
      join(cacheDir, 'output', outputs.find((n) => n.endsWith('.base')) as string),
    );
    expect(Buffer.compare(changed.bytes.subarray(0, baseBytes.byteLength), baseBytes)).toBe(0);
    const [, overlay] = await (async () => {
      const members: string[][] = [];
      for await (const e of listArchive(changed.out)) {
        members[e.member] ??= [];
        members[e.member]?.push(e.name);
      }
      return members;
    })();
    expect(overlay).toContain('usr/bin/agent');
    // The stream of a hit is the same bytes.
    const stream = new InitramfsBuilder({
      image,
      compression: 'zstd',
      cacheDir,
      inject: [`${agentA}:/bin/agent`],
    }).stream();
    const chunks: Uint8Array[] = [];
    for await (const c of stream) chunks.push(c);
    expect(Buffer.compare(Buffer.concat(chunks), cold.bytes)).toBe(0);
    // `irb cache ls` sees the entries, a prune to 0 removes them, and the next build is a miss again.
    const { listCache, pruneCache } = await import('../src/index.ts');
    const listed = await listCache(cacheDir);
    // One base (member and tree) and two overlays (agents A and B, member and description each).
    expect(listed.filter((e) => e.kind === 'output')).toHaveLength(6);
    await pruneCache(cacheDir, { maxBytes: 0 });
    expect((await readdir(join(cacheDir, 'output'))).filter((n) => !n.startsWith('.'))).toEqual([]);
    const again = await build(agentA, 'again');
    expect(again.events).toContain('index');
    expect(Buffer.compare(again.bytes, cold.bytes)).toBe(0);
  });

  it('concurrent builds of one key all finish with the same bytes and leave one entry, no temp file', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const cacheDir = join(dir, 'concurrent');
    const agent = join(dir, 'agent-c');
    await writeFile(agent, 'agent');
    const outs = [0, 1, 2, 3].map((i) => join(dir, `c${i}`));
    await Promise.all(
      outs.map((out) =>
        new InitramfsBuilder({ image, compression: 'zstd', cacheDir, inject: [`${agent}:/bin/agent`] }).build(
          out,
        ),
      ),
    );
    const bytes = await Promise.all(outs.map((o) => readFile(o)));
    for (const b of bytes) expect(Buffer.compare(b, bytes[0] as Buffer)).toBe(0);
    expect(
      (await readdir(join(cacheDir, 'output'))).map((n) => n.replace(/^[0-9a-f]{64}/, 'KEY')).sort(),
    ).toEqual(['KEY.base', 'KEY.meta', 'KEY.overlay', 'KEY.tree']);
  });

  it('an unchanged rebuild leaves an output that already holds its bytes alone, and rewrites any other', async () => {
    const { lstat, readdir, readFile, symlink, unlink, utimes } = await import('node:fs/promises');
    const cacheDir = join(dir, 'same-output');
    const agent = join(dir, 'agent-s');
    await writeFile(agent, 'agent S');
    const options = { image, compression: 'gzip' as const, cacheDir, inject: [`${agent}:/bin/agent`] };
    const out = join(dir, 'same.cpio.gz');
    const build = () => new InitramfsBuilder(options).build(out);
    await build();
    const expected = await readFile(out);
    const old = new Date('2020-01-01T00:00:00Z');
    await utimes(out, old, old);
    const before = await lstat(out, { bigint: true });
    const record = async () => {
      const names = await readdir(join(cacheDir, 'output'));
      const name = names.find((n) => n.endsWith('.out'));
      return name === undefined ? undefined : join(cacheDir, 'output', name);
    };
    expect(await record()).toBeUndefined();
    // Run 2 compares the bytes, finds them equal, and records what it saw; run 3 trusts that.
    for (const _ of [2, 3]) {
      const again = await build();
      const after = await lstat(out, { bigint: true });
      // Not written, not even touched: same inode, same times.
      expect(after.ino).toBe(before.ino);
      expect(after.mtimeNs).toBe(before.mtimeNs);
      expect(after.ctimeNs).toBe(before.ctimeNs);
      expect(again.compressedBytes).toBe(expected.byteLength);
      expect(again.output).toBe(out);
    }
    const recordPath = (await record()) as string;
    expect(JSON.parse(await readFile(recordPath, 'utf8'))).toMatchObject({
      path: out,
      size: String(expected.byteLength),
    });
    // One byte changed, same size and mtime (ctime moves anyway): compared, and rewritten.
    const damaged = Buffer.from(expected);
    damaged.writeUInt8(damaged.readUInt8(damaged.byteLength - 100) ^ 0xff, damaged.byteLength - 100);
    await writeFile(out, damaged);
    await utimes(out, old, old);
    const damagedIno = (await lstat(out)).ino;
    await build();
    expect(Buffer.compare(await readFile(out), expected)).toBe(0);
    expect((await lstat(out)).ino).not.toBe(damagedIno);
    // A record made in the same clock tick as the file's last change is not trusted: a change in
    // that tick could have left ctime as it was. Forge one over a damaged file to see it compared.
    await writeFile(out, damaged);
    const st = await lstat(out, { bigint: true });
    const forged = (soonAfterMs: number) =>
      writeFile(
        recordPath,
        JSON.stringify({
          path: out,
          dev: String(st.dev),
          ino: String(st.ino),
          size: String(st.size),
          mtimeNs: String(st.mtimeNs),
          ctimeNs: String(st.ctimeNs),
          seenAtMs: Number(st.ctimeNs / 1_000_000n) + soonAfterMs,
        }),
      );
    await forged(1);
    await build();
    expect(Buffer.compare(await readFile(out), expected)).toBe(0);
    // The same record, made well after the change, is trusted (which is why a damaged file with
    // a forged record would stay: the record is only ever written after a byte comparison).
    await writeFile(out, damaged);
    const st2 = await lstat(out, { bigint: true });
    await writeFile(
      recordPath,
      JSON.stringify({
        path: out,
        dev: String(st2.dev),
        ino: String(st2.ino),
        size: String(st2.size),
        mtimeNs: String(st2.mtimeNs),
        ctimeNs: String(st2.ctimeNs),
        seenAtMs: Number(st2.ctimeNs / 1_000_000n) + 1000,
      }),
    );
    await build();
    expect(Buffer.compare(await readFile(out), damaged)).toBe(0);
    // A symlink to a file with the right bytes is replaced by the file, as any build does.
    const elsewhere = join(dir, 'same-elsewhere');
    await writeFile(elsewhere, expected);
    await unlink(out);
    await symlink(elsewhere, out);
    await build();
    expect((await lstat(out)).isFile()).toBe(true);
    expect(Buffer.compare(await readFile(out), expected)).toBe(0);
  });

  it('an overlay whose description is damaged, or whose member is gone, is packed again', async () => {
    const { readFile, readdir, unlink } = await import('node:fs/promises');
    const cacheDir = join(dir, 'overlay-miss');
    const agent = join(dir, 'agent-o');
    await writeFile(agent, 'agent O');
    const options = { image, compression: 'zstd' as const, cacheDir, inject: [`${agent}:/bin/agent`] };
    const run = async (name: string) => {
      const events: string[] = [];
      await new InitramfsBuilder({ ...options, onProgress: (e) => events.push(e.type) }).build(
        join(dir, name),
      );
      return { events, bytes: await readFile(join(dir, name)) };
    };
    const first = await run('o1');
    const out = join(cacheDir, 'output');
    const named = async (ext: string) =>
      join(out, (await readdir(out)).find((n) => n.endsWith(ext)) as string);
    await writeFile(await named('.meta'), '{"v":1,"stats":');
    const damaged = await run('o2');
    expect(damaged.events).not.toContain('index');
    expect(damaged.events).toContain('compress');
    expect(Buffer.compare(damaged.bytes, first.bytes)).toBe(0);
    await unlink(await named('.overlay'));
    const gone = await run('o3');
    expect(gone.events).toContain('compress');
    expect(Buffer.compare(gone.bytes, first.bytes)).toBe(0);
    const cached = await run('o4');
    expect(cached.events).not.toContain('compress');
    expect(Buffer.compare(cached.bytes, first.bytes)).toBe(0);
  });

  it('treats a damaged tree file as a miss', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const cacheDir = join(dir, 'damaged');
    const agent = join(dir, 'agent-d');
    await writeFile(agent, 'agent');
    const options = { image, compression: 'gzip' as const, cacheDir, inject: [`${agent}:/bin/agent`] };
    await new InitramfsBuilder(options).build(join(dir, 'd1'));
    const tree = (await readdir(join(cacheDir, 'output'))).find((n) => n.endsWith('.tree')) as string;
    await writeFile(join(cacheDir, 'output', tree), 'garbage');
    const events: string[] = [];
    await new InitramfsBuilder({ ...options, onProgress: (e) => events.push(e.type) }).build(join(dir, 'd2'));
    expect(events).toContain('index');
    expect(Buffer.compare(await readFile(join(dir, 'd1')), await readFile(join(dir, 'd2')))).toBe(0);
  });
});

/** Alpine's way: /bin/sh → /bin/busybox, and a directory link with an absolute target. */
describe('absolute symlink targets', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-absolute-'));
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'bin/' },
      { type: 'file', path: 'bin/busybox', content: 'busybox', mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
      { type: 'directory', path: 'srv/app/' },
      { type: 'directory', path: 'opt/' },
      { type: 'symlink', path: 'opt/app', target: '/srv/app' },
    ]);
    await pushImage(
      registry,
      'lib/absolute',
      'v1',
      buildImage({ layers: [layer], runtime: { Env: ['PATH=/bin'], Cmd: ['sh', '-c', 'true'] } }),
    );
    image = `${registry.host}/lib/absolute:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('restart at the root: the program is found and an inject lands where the link leads, cold and on a cached base', async () => {
    const agent = join(dir, 'agent');
    await writeFile(agent, 'agent');
    for (const [name, cacheDir] of [
      ['cold', join(dir, 'cache')],
      ['cached', join(dir, 'cache')],
    ] as const) {
      const out = join(dir, name);
      const summary = await new InitramfsBuilder({
        image,
        cacheDir,
        compression: 'none',
        inject: [`${agent}:/opt/app/agent`],
      }).build(out);
      expect(summary.warnings, name).toEqual([]);
      const overlay: string[] = [];
      for await (const e of listArchive(out)) if (e.member === 1) overlay.push(`${e.type} ${e.name}`);
      expect(overlay, name).toContain('file srv/app/agent');
      expect(
        overlay.filter((n) => n.includes('opt')),
        name,
      ).toEqual([]);
    }
  });
});
