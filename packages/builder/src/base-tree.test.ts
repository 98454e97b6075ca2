import type { CpioEntry } from '@irb/cpio';
import { describe, expect, it } from 'vitest';
import {
  type BaseNode,
  createTreeCollector,
  decodeBaseSnapshot,
  keyOfPath,
  resolvePath,
} from './base-tree.ts';

const header = {
  stats: { records: 1, unpackedBytes: 2, cpioBytes: 3, compressedBytes: 4 },
  configDigest: 'sha256:c',
  platform: 'linux/amd64',
  excluded: 5,
  filtered: 6,
  lostXattrs: [],
  config: { User: 'app' },
  architecture: 'amd64',
};

async function* stream(entries: CpioEntry[]): AsyncGenerator<CpioEntry> {
  yield* entries;
}

describe('the base tree snapshot', () => {
  it('round-trips names as bytes, kinds, modes, link targets and hard-link names; keeps the wanted bodies as they stream', async () => {
    const odd = Uint8Array.of(0x6e, 0xff, 0x80); // not UTF-8
    const passwd = new TextEncoder().encode('root:x:0:0::/root:/bin/sh\n');
    const collector = createTreeCollector(new Set(['etc/passwd', 'etc/group']));
    const seen: string[] = [];
    for await (const e of collector.tap(
      stream([
        { type: 'directory', path: '.', mode: 0o755 },
        { type: 'directory', path: 'tmp', mode: 0o1777 },
        { type: 'symlink', path: 'bin', target: 'usr/bin', mode: 0o777 },
        { type: 'file', path: odd, mode: 0o644, size: 0 },
        { type: 'file', path: 'a', mode: 0o755, size: 1, body: Uint8Array.of(1), links: ['b'] },
        {
          type: 'file',
          path: 'etc/passwd',
          mode: 0o644,
          size: passwd.byteLength,
          body: async function* () {
            yield passwd.subarray(0, 5);
            yield passwd.subarray(5);
          },
        },
      ]),
    )) {
      seen.push(String(e.path));
      // The writer reads each body: a function body is opened here, as packCpio would.
      if (e.type === 'file' && typeof e.body === 'function') for await (const _ of e.body());
    }
    expect(seen).toHaveLength(6);
    const decoded = decodeBaseSnapshot(collector.encode(header));
    expect(decoded?.header).toMatchObject({ ...header, files: { 'etc/passwd': expect.any(String) } });
    const tree = decoded!.tree;
    expect(tree.excluded).toBe(5);
    expect(tree.node('tmp')).toEqual({ type: 'directory', mode: 0o1777 });
    expect(tree.node('bin')).toEqual({ type: 'symlink', mode: 0o777, target: 'usr/bin' });
    expect(tree.node(keyOfPath(odd))).toEqual({ type: 'file', mode: 0o644 });
    expect(tree.node('a')).toEqual({ type: 'file', mode: 0o755, linked: true });
    expect(tree.node('b')).toEqual({ type: 'file', mode: 0o755, linked: true });
    expect(await tree.readFile('etc/passwd')).toEqual(passwd);
    expect(await tree.readFile('etc/group')).toBeUndefined();
    expect(decodeBaseSnapshot(new TextEncoder().encode('garbage'))).toBeUndefined();
  });
});

describe('a large snapshot', () => {
  it('finds every key through its index, the last record of a key winning, and nothing else', async () => {
    const entries: CpioEntry[] = [{ type: 'directory', path: '.', mode: 0o755 }];
    for (let i = 0; i < 5000; i++)
      entries.push({ type: 'file', path: `d/${i}`, mode: 0o600 + (i % 8), size: 0 });
    entries.push({ type: 'symlink', path: 'd/7', target: 'x/./y', mode: 0o777 });
    const collector = createTreeCollector();
    for await (const _ of collector.tap(stream(entries)));
    const tree = decodeBaseSnapshot(collector.encode(header))?.tree as NonNullable<
      ReturnType<typeof decodeBaseSnapshot>
    >['tree'];
    for (let i = 0; i < 5000; i++) {
      if (i !== 7) expect(tree.node(`d/${i}`)).toEqual({ type: 'file', mode: 0o600 + (i % 8) });
    }
    expect(tree.node('d/7')).toEqual({ type: 'symlink', mode: 0o777, target: 'x/./y' });
    expect(tree.node('d/5000')).toBeUndefined();
    expect(tree.node('d')).toBeUndefined();
    expect(tree.node('')).toEqual({ type: 'directory', mode: 0o755 });
  });
});

describe('resolvePath', () => {
  const nodes = new Map<string, BaseNode>([
    ['bin', { type: 'symlink', mode: 0o777, target: 'usr/bin' }],
    ['usr', { type: 'directory', mode: 0o755 }],
    ['usr/bin', { type: 'directory', mode: 0o755 }],
    ['usr/bin/sh', { type: 'symlink', mode: 0o777, target: '/usr/bin/dash' }],
    ['usr/bin/dash', { type: 'file', mode: 0o755 }],
    ['lib', { type: 'symlink', mode: 0o777, target: '../../usr/lib' }],
    ['loop', { type: 'symlink', mode: 0o777, target: 'loop' }],
  ]);
  const lookup = (k: string) => nodes.get(k);

  it('follows parents always and the last component on request, like the kernel', () => {
    expect(resolvePath(lookup, '/bin/agent', false)).toEqual({ key: 'usr/bin/agent', node: undefined });
    expect(resolvePath(lookup, 'bin/sh', false)).toMatchObject({
      key: 'usr/bin/sh',
      node: { type: 'symlink' },
    });
    expect(resolvePath(lookup, 'bin/sh', true)).toMatchObject({
      key: 'usr/bin/dash',
      node: { type: 'file' },
    });
    expect(resolvePath(lookup, 'bin', false).node?.type).toBe('symlink');
    expect(resolvePath(lookup, 'bin', true)).toMatchObject({ key: 'usr/bin', node: { type: 'directory' } });
    // `..` stops at the root.
    expect(resolvePath(lookup, 'lib/x.so', false).key).toBe('usr/lib/x.so');
    // A loop stops after 40 links instead of hanging.
    expect(resolvePath(lookup, 'loop', true).key).toBe('loop');
  });
});
