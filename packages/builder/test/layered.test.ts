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
    for await (const e of listArchive(path)) (members[e.member] ??= []).push(e);
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
