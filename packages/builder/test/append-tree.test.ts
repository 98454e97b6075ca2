import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readArchiveTree } from '../src/archive-tree.ts';
import { appendOverlay, InitramfsBuilder, listArchive } from '../src/index.ts';

/**
 * `irb append` and `irb build` with the same `inject`s give the guest the same tree: an append
 * onto a build without them adds exactly what the build's overlay adds beyond its own /init.
 */
describe('append places files as build does', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let specs: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-append-tree-'));
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'directory', path: 'usr/lib/' },
      { type: 'symlink', path: 'bin', target: 'usr/bin' },
      { type: 'symlink', path: 'lib', target: '/usr/lib' },
      { type: 'directory', path: 'tmp/', mode: 0o1777 },
      { type: 'directory', path: 'etc/' },
      { type: 'file', path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
      { type: 'file', path: 'etc/motd', content: 'hello' },
      { type: 'link', path: 'etc/motd.copy', target: 'etc/motd' },
      { type: 'directory', path: 'srv/' },
      { type: 'directory', path: 'srv/data/', mode: 0o750 },
      { type: 'directory', path: 'opt/' },
    ]);
    await pushImage(
      registry,
      'lib/tree',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/agent'] } }),
    );
    image = `${registry.host}/lib/tree:v1`;
    const job = join(dir, 'job');
    await mkdir(join(job, 'sub', 'deep'), { recursive: true });
    await writeFile(join(job, 'top.txt'), 'top');
    await writeFile(join(job, 'sub', 'deep', 'x'), 'x');
    await symlink('top.txt', join(job, 'rel'));
    await symlink('/etc/hosts', join(job, 'sub', 'abs'));
    const agent = join(dir, 'agent');
    await writeFile(agent, 'agent', { mode: 0o755 });
    specs = [
      `${job}:/etc/job`, // a directory DEST the image lacks
      `${agent}:/bin/agent`, // through a relative symlink of the image
      `${agent}:/lib/agent.so`, // through an absolute one
      `${agent}:/new/deep/parent/agent`, // parents the image lacks
      `${job}:/tmp`, // into a directory the image has (1777 stays)
      `${job}:/srv/data`, // and one with mode 0750
      `${agent}:/etc/motd`, // over one name of a hard-linked file
      `${join(job, 'top.txt')}:/opt/`, // into a directory, keeping the name
    ];
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const member = async (path: string, index: number) => {
    const out: string[] = [];
    for await (const e of listArchive(path)) {
      if (e.member !== index) continue;
      out.push(
        `${e.type} ${e.name} ${e.mode.toString(8)} ${e.uid}:${e.gid}${e.target ? ` → ${e.target}` : ''}`,
      );
    }
    return out;
  };

  for (const compression of ['gzip', 'none'] as const) {
    it(`${compression}: the appended member is what the build's overlay adds, and the trees match`, async () => {
      const cacheDir = join(dir, `cache-${compression}`);
      const built = join(dir, `built-${compression}`);
      const plain = join(dir, `plain-${compression}`);
      const appended = join(dir, `appended-${compression}`);
      await new InitramfsBuilder({ image, compression, cacheDir, inject: specs }).build(built);
      await new InitramfsBuilder({ image, compression, cacheDir }).build(plain);
      await appendOverlay(plain, specs, { output: appended, cacheDir });

      const ownInit = new Set(await member(plain, 1));
      const added = (await member(built, 1)).filter((e) => !ownInit.has(e)).sort();
      const member2 = await member(appended, 2);
      expect(member2.sort()).toEqual(added);
      expect(member2).toEqual(
        expect.arrayContaining([
          'directory etc/job 755 0:0',
          'directory etc/job/sub 755 0:0',
          'directory etc/job/sub/deep 755 0:0',
          'file etc/job/top.txt 755 0:0',
          'symlink etc/job/rel 777 0:0 → top.txt',
          'symlink etc/job/sub/abs 777 0:0 → /etc/hosts',
          'file usr/bin/agent 755 0:0',
          'file usr/lib/agent.so 755 0:0',
          'directory new 755 0:0',
          'directory new/deep 755 0:0',
          'directory new/deep/parent 755 0:0',
          'file tmp/top.txt 755 0:0',
          'directory srv/data/sub 755 0:0',
          'symlink etc/motd 777 0:0 → .',
          'file etc/motd 755 0:0',
          'file opt/top.txt 755 0:0',
        ]),
      );
      // Directories the image has are not emitted again: their modes stay.
      expect(
        member2.filter((e) => /^directory (tmp|srv\/data|etc|usr\/lib|usr\/bin|bin|lib) /.test(e)),
      ).toEqual([]);
      const tree = async (path: string) =>
        Object.fromEntries([...(await readArchiveTree(path))].sort(([a], [b]) => (a < b ? -1 : 1)));
      const guest = await tree(appended);
      expect(guest).toEqual(await tree(built));
      expect(guest.tmp).toEqual({ type: 'directory', mode: 0o1777 });
      expect(guest['srv/data']).toEqual({ type: 'directory', mode: 0o750 });
    });
  }

  it('refuses a file where BASE has a directory, as build does', async () => {
    const plain = join(dir, 'plain-refuse');
    const cacheDir = join(dir, 'cache-refuse');
    await new InitramfsBuilder({ image, compression: 'zstd', cacheDir }).build(plain);
    const agent = join(dir, 'agent');
    const built = await new InitramfsBuilder({ image, cacheDir, inject: [`${agent}:/srv/data`] })
      .build(join(dir, 'refused-build'))
      .catch((e) => e);
    const appended = await appendOverlay(plain, [`${agent}:/srv/data`], {
      output: join(dir, 'refused-append'),
      cacheDir,
    }).catch((e) => e);
    expect(appended.code).toBe('IRB_INJECT_DEST_INVALID');
    expect(appended.message).toBe(built.message);
  });
});
