import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bootInitramfs } from '@irb/boot';
import { compress } from '@irb/compress';
import { packCpio } from '@irb/cpio';
import { buildTar, type TarSpec, whiteout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexLayers } from '../src/index.ts';
import { layerOf, MEDIA } from './helpers.ts';

/*
 * A layered rootfs booted by a real kernel under QEMU: the guest's busybox prints owners,
 * device numbers, link counts and modes as the kernel unpacked them from our archive.
 */

const GUEST_PATHS = [
  '/dev/console',
  '/dev/irbdev',
  '/dev/vdz',
  '/data/b',
  '/data/c',
  '/data/old',
  '/data/new',
  '/usr/bin/suid',
  '/usr/bin/sgid',
  '/tmp',
  '/owned',
  '/run/fifo',
  '/etc/link',
  '/lib/moved',
];

const INIT = `#!/bin/busybox sh
/bin/busybox stat -c 'STAT %n type=%F mode=%a uid=%u gid=%g nlink=%h rdev=%t:%T size=%s' ${GUEST_PATHS.join(' ')}
/bin/busybox cat /data/b /data/new /data/old /lib/moved
/bin/busybox echo
/bin/busybox test -e /data/a || /bin/busybox echo 'GONE /data/a'
/bin/busybox test -e /data/.wh.a || /bin/busybox echo 'NO-MARKER'
/bin/busybox readlink /etc/link | /bin/busybox sed 's/^/TARGET /'
/bin/busybox find /names -type f | /bin/busybox od -An -tx1 | /bin/busybox tr -s ' \n' ' ' | /bin/busybox sed 's/^/NAME-BYTES/'
/bin/busybox echo
/bin/busybox echo IRB-BOOT-DONE
/bin/busybox poweroff -f
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-layers-boot-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('booted under QEMU', () => {
  test('the kernel sees the owners, device numbers, link counts and modes the layers define', async () => {
    const busybox = new Uint8Array(await readFile('/bin/busybox'));
    const base: TarSpec[] = [
      { type: 'directory', path: 'bin' },
      { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
      { type: 'directory', path: 'dev' },
      { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
      { type: 'directory', path: 'data' },
      { type: 'file', path: 'data/a', content: 'linked data', mode: 0o640, uid: 1000, gid: 1000 },
      { type: 'link', path: 'data/b', target: 'data/a' },
      { type: 'file', path: 'data/old', content: 'old content', mode: 0o600 },
      { type: 'link', path: 'data/keeps-old', target: 'data/old' },
      { type: 'directory', path: 'usr/bin' },
      { type: 'directory', path: 'usr/lib' },
      { type: 'symlink', path: 'lib', target: 'usr/lib' },
    ];
    const upper: TarSpec[] = [
      whiteout('data/a'),
      { type: 'link', path: 'data/c', target: 'data/b' },
      { type: 'file', path: 'data/old', content: 'replaced', mode: 0o644 },
      { type: 'link', path: 'data/new', target: 'data/keeps-old' },
      { type: 'char', path: 'dev/irbdev', major: 10, minor: 237, mode: 0o640, uid: 7, gid: 8 },
      { type: 'block', path: 'dev/vdz', major: 254, minor: 25, mode: 0o660, gid: 6 },
      { type: 'file', path: 'usr/bin/suid', content: 's', mode: 0o4755 },
      { type: 'file', path: 'usr/bin/sgid', content: 'g', mode: 0o2711, gid: 50 },
      { type: 'directory', path: 'tmp', mode: 0o1777 },
      { type: 'file', path: 'owned', content: 'o', mode: 0o444, uid: 3_000_000, gid: 4_000_000_000 },
      { type: 'fifo', path: 'run/fifo', mode: 0o620, uid: 2 },
      { type: 'symlink', path: 'etc/link', target: '../data/c' },
      { type: 'file', path: 'lib/moved', content: 'via symlinked parent', mode: 0o644 },
      // "café" in latin-1: not UTF-8, must reach the guest byte for byte.
      { type: 'file', path: new Uint8Array([...new TextEncoder().encode('names/caf'), 0xe9]), content: 'x' },
    ];
    const layers = [
      layerOf(await buildTar(base, { compression: 'gzip' }), MEDIA.gzip, 65_536),
      layerOf(await buildTar(upper, { compression: 'zstd' }), MEDIA.zstd, 65_536),
    ];
    const rootfs = await indexLayers(layers);
    rootfs.inject('/init', { bytes: new TextEncoder().encode(INIT) });
    const initramfs = join(dir, 'initramfs.cpio.gz');
    await pipeline(
      Readable.from(compress(packCpio(rootfs.entries()), { format: 'gzip' })),
      createWriteStream(initramfs),
    );

    const result = await bootInitramfs({ initramfs, expect: 'IRB-BOOT-DONE', timeoutMs: 180_000 });
    expect(result.panicked, result.output).toBe(false);
    expect(result.matched, result.output).toBe(true);

    const stat = new Map<string, string>();
    for (const line of result.output.split('\n')) {
      const match = /^STAT (\S+) (.*)$/.exec(line.trim());
      if (match) stat.set(match[1] as string, match[2] as string);
    }
    // What the guest must see, derived from the rootfs model (which the other tests pin down).
    for (const path of GUEST_PATHS) {
      const info = rootfs.lookup(path);
      expect(info, path).toBeDefined();
      const kind = {
        file: 'regular file',
        directory: 'directory',
        symlink: 'symbolic link',
        char: 'character special file',
        block: 'block special file',
        fifo: 'fifo',
      }[info!.type];
      const rdev =
        info!.type === 'char' || info!.type === 'block'
          ? `${info!.rdevMajor!.toString(16)}:${info!.rdevMinor!.toString(16)}`
          : '0:0';
      // A directory's link count and size are the guest filesystem's business, not the archive's.
      const guest = stat
        .get(path)
        ?.replace(/ nlink=\d+(.*) size=\d+$/, (all, middle: string) =>
          info!.type === 'directory' ? ` nlink=-${middle} size=-` : all,
        );
      const size = info!.type === 'symlink' ? Buffer.byteLength(String(info!.target)) : info!.size;
      const nlink = info!.type === 'directory' ? '-' : info!.nlink;
      const expected = `type=${kind} mode=${info!.mode.toString(8)} uid=${info!.uid} gid=${info!.gid} nlink=${nlink} rdev=${rdev} size=${info!.type === 'directory' ? '-' : size}`;
      expect(guest, `${path} in:\n${result.output.slice(-3000)}`).toBe(expected);
    }
    // Spot checks against the layer definitions themselves.
    expect(stat.get('/data/b')).toContain('nlink=2 ');
    expect(stat.get('/data/new')).toContain('nlink=2 ');
    expect(stat.get('/dev/irbdev')).toBe(
      'type=character special file mode=640 uid=7 gid=8 nlink=1 rdev=a:ed size=0',
    );
    expect(stat.get('/owned')).toContain('uid=3000000 gid=4000000000');
    expect(stat.get('/usr/bin/suid')).toContain('mode=4755');
    expect(stat.get('/tmp')).toContain('mode=1777');
    expect(result.output).toContain('linked dataold contentreplacedvia symlinked parent');
    expect(result.output).toContain('GONE /data/a');
    expect(result.output).toContain('NO-MARKER');
    expect(result.output).toContain('TARGET ../data/c');
    expect(result.output).toContain('NAME-BYTES 2f 6e 61 6d 65 73 2f 63 61 66 e9 0a');
  });
});
