import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../src/fixture-cache.ts';
import { detectDebianMirror, ensureDebianPythonImage, ensureSyntheticImage } from '../src/index.ts';

const run = promisify(execFile);
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'irb-fixtures-test-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('buildOnce', () => {
  it('builds once when two callers ask at the same time, and reuses the result', async () => {
    const cacheDir = join(scratch, 'once');
    let builds = 0;
    const build = async (dir: string) => {
      builds++;
      await sleep(200);
      await import('node:fs/promises').then((fs) => fs.writeFile(join(dir, 'x'), 'built'));
    };
    const [a, b] = await Promise.all([
      buildOnce('k', build, { cacheDir }),
      buildOnce('k', build, { cacheDir }),
    ]);
    expect(a).toBe(b);
    expect(await readFile(join(a, 'x'), 'utf8')).toBe('built');
    await buildOnce('k', build, { cacheDir });
    expect(builds).toBe(1);
  });

  it('leaves nothing behind when the build fails', async () => {
    const cacheDir = join(scratch, 'fail');
    await expect(
      buildOnce(
        'k',
        async () => {
          throw new Error('boom');
        },
        { cacheDir },
      ),
    ).rejects.toThrow('boom');
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(cacheDir)).toEqual([]);
  });
});

describe('detectDebianMirror', () => {
  /** A private apt configuration directory (the machine's own is never touched). */
  async function aptDir(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(scratch, name);
    await mkdir(join(dir, 'sources.list.d'), { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return dir;
  }

  it('takes the first enabled bookworm source: sources.list, then sources.list.d in name order', async () => {
    const dir = await aptDir('apt-a', {
      'sources.list.d/a.sources': [
        '# disabled first',
        'Enabled: no',
        'Types: deb',
        'URIs: http://disabled.invalid/debian',
        'Suites: bookworm',
        '',
        'Types: deb-src deb',
        '# a comment inside the stanza',
        'URIs:',
        ' http://folded.invalid/debian',
        'Suites: bookworm-security bookworm',
        'Components: main',
      ].join('\n'),
      'sources.list.d/0-security.list':
        'deb http://security.invalid/debian-security bookworm-security main\n',
      'sources.list.d/z.list.disabled': 'deb http://ignored.invalid/debian bookworm main\n',
    });
    expect(await detectDebianMirror({ aptDir: dir, env: {} })).toBe('http://folded.invalid/debian');
    await writeFile(
      join(dir, 'sources.list'),
      '# deb http://commented.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one-line.invalid/debian bookworm main\n',
    );
    expect(await detectDebianMirror({ aptDir: dir, env: {} })).toBe('http://one-line.invalid/debian');
    expect(
      await detectDebianMirror({ aptDir: dir, env: { IRB_DEBIAN_MIRROR: 'http://env.invalid/d' } }),
    ).toBe('http://env.invalid/d');
  });

  it('with no bookworm source and no IRB_DEBIAN_MIRROR it fails saying what to set', async () => {
    const dir = await aptDir('apt-none', {
      'sources.list.d/other.list': 'deb http://other.invalid/ubuntu noble main\n',
    });
    await expect(detectDebianMirror({ aptDir: dir, env: {} })).rejects.toThrow(
      /^no Debian bookworm source in .*apt-none\/sources\.list or .*apt-none\/sources\.list\.d\/\*\.list\|\*\.sources; set IRB_DEBIAN_MIRROR/,
    );
    await expect(detectDebianMirror({ aptDir: join(scratch, 'missing'), env: {} })).rejects.toThrow(
      /set IRB_DEBIAN_MIRROR/,
    );
  });
});

describe('ensureSyntheticImage', () => {
  it('is deterministic and readable by skopeo and umoci', async () => {
    const a = await ensureSyntheticImage({ sizeBytes: 6_000_000, layers: 2, cacheDir: join(scratch, 'a') });
    const b = await ensureSyntheticImage({ sizeBytes: 6_000_000, layers: 2, cacheDir: join(scratch, 'b') });
    expect(await readFile(join(a.layoutDir, 'index.json'), 'utf8')).toBe(
      await readFile(join(b.layoutDir, 'index.json'), 'utf8'),
    );
    expect(a.contentBytes).toBe(6_000_000);
    expect(a.layers).toBe(3);
    const inspect = JSON.parse((await run('skopeo', ['inspect', a.ref])).stdout) as {
      Layers: string[];
    };
    expect(inspect.Layers).toHaveLength(3);
    const bundle = join(scratch, 'bundle');
    await run('umoci', ['unpack', '--image', `${a.layoutDir}:${a.tag}`, bundle]);
    const { stdout } = await run('sh', ['-c', `find ${bundle}/rootfs/data -type f -printf '%s\\n'`]);
    const sizes = stdout.trim().split('\n').map(Number);
    expect(sizes).toHaveLength(a.files);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(a.contentBytes);
    expect((await lstat(join(bundle, 'rootfs/bin/sh'))).isSymbolicLink()).toBe(true);
  });
});

// Needs root, debootstrap and the Debian mirror; cached after the first run (~1 min).
describe.skipIf(process.getuid?.() !== 0)('ensureDebianPythonImage', () => {
  it('has the three layers, the whiteouts, opaque dirs and hard links it promises', async () => {
    const image = await ensureDebianPythonImage();
    const bundle = join(scratch, 'debian');
    await run('umoci', ['unpack', '--image', `${image.layoutDir}:${image.tag}`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[]; cwd: string; env: string[] };
    };
    expect(config.process.args).toEqual([...image.entrypoint, ...image.cmd]);
    expect(config.process.cwd).toBe(image.workingDir);
    for (const path of image.layer3.whiteouts) {
      if (path === image.layer3.survivingLink?.removed) continue;
      await expect(lstat(join(rootfs, path))).rejects.toThrow();
    }
    for (const path of image.layer3.keptInOpaque)
      expect((await stat(join(rootfs, path))).isDirectory()).toBe(true);
    const lists = await import('node:fs/promises').then((fs) =>
      fs.readdir(join(rootfs, 'var/lib/apt/lists')),
    );
    expect(lists).toEqual(['partial']);
    for (const [name, first] of image.layer3.hardLinks) {
      expect((await stat(join(rootfs, name))).ino).toBe((await stat(join(rootfs, first))).ino);
    }
    if (image.layer3.survivingLink) {
      expect((await lstat(join(rootfs, image.layer3.survivingLink.removed))).isSymbolicLink()).toBe(true);
      expect((await stat(join(rootfs, image.layer3.survivingLink.survivor))).size).toBeGreaterThan(1_000_000);
    }
    expect((await stat(join(rootfs, image.layer3.userOwnedDir))).uid).toBe(1000);
    const { stdout } = await run('/usr/sbin/chroot', [rootfs, ...image.entrypoint, ...image.cmd], {
      env: { PATH: '/usr/bin:/bin', IRB_FIXTURE: 'debian-python' },
    });
    expect(stdout).toContain(image.marker);
  }, 600_000);
});
