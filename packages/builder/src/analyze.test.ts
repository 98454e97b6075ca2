import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import { describe, expect, it } from 'vitest';
import { analyzeEntries, fileKind } from './analyze.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const elf = (n: number) => {
  const b = new Uint8Array(n);
  b.set([0x7f, 0x45, 0x4c, 0x46]);
  b[10] = n & 0xff;
  return b;
};
const file = (path: string, body: Uint8Array, links?: string[]): CpioEntry => ({
  type: 'file',
  path,
  mode: 0o644,
  size: body.length,
  body,
  ...(links ? { links } : {}),
});

describe('analyzeEntries', () => {
  it('groups by directory and kind, finds the largest files, duplicates and preset savings', async () => {
    const same = bytes('x'.repeat(1000));
    const entries: CpioEntry[] = [
      { type: 'directory', path: 'usr', mode: 0o755 },
      { type: 'directory', path: 'usr/bin', mode: 0o755 },
      file('usr/bin/python3', elf(5000)),
      { type: 'directory', path: 'usr/lib', mode: 0o755 },
      file('usr/lib/libpython3.so.1.0', elf(7000)),
      file('usr/lib/os.py', bytes('import sys\n'.repeat(20))),
      { type: 'directory', path: 'usr/share', mode: 0o755 },
      { type: 'directory', path: 'usr/share/doc', mode: 0o755 },
      { type: 'directory', path: 'usr/share/doc/x', mode: 0o755 },
      file('usr/share/doc/x/README', same),
      file('usr/share/doc/x/copyright', bytes('MIT')),
      file('usr/share/doc/x/NEWS', same),
      // Hard links are one inode: not duplicates of each other.
      file('etc/a', bytes('y'.repeat(300)), ['etc/b']),
      { type: 'symlink', path: 'bin', mode: 0o777, target: 'usr/bin' },
      { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    ];
    const a = await analyzeEntries(readCpio(packCpio(entries)), { top: 3 });
    expect(a.files).toBe(7);
    expect(a.symlinks).toBe(1);
    expect(a.other).toBe(1);
    expect(a.totalBytes).toBe(5000 + 7000 + 220 + 1000 + 3 + 1000 + 300);
    expect(a.largest.map((l) => [l.path, l.kind])).toEqual([
      ['/usr/lib/libpython3.so.1.0', 'shared libraries'],
      ['/usr/bin/python3', 'executables'],
      ['/usr/share/doc/x/NEWS', 'docs'],
    ]);
    expect(a.byDirectory[0]).toEqual({ name: '/usr/lib', bytes: 7220, files: 2 });
    expect(a.byDirectory.find((g) => g.name === '/etc')).toEqual({ name: '/etc', bytes: 300, files: 1 });
    expect(a.byKind.find((g) => g.name === 'python sources')?.bytes).toBe(220);
    expect(a.duplicates).toEqual([
      { bytes: 1000, paths: ['/usr/share/doc/x/NEWS', '/usr/share/doc/x/README'], wastedBytes: 1000 },
    ]);
    expect(a.duplicateBytes).toBe(1000);
    expect(a.presets.find((p) => p.name === 'docs')).toMatchObject({ bytes: 2000, files: 2 });
    expect(a.presets.find((p) => p.name === 'locales')).toMatchObject({ bytes: 0, files: 0 });
  });

  it('counts a hard-linked file as freed only when every name goes', async () => {
    const entries: CpioEntry[] = [file('usr/share/man/a', bytes('z'.repeat(50)), ['usr/bin/a'])];
    const a = await analyzeEntries(readCpio(packCpio(entries)));
    expect(a.files).toBe(1);
    expect(a.presets.find((p) => p.name === 'docs')?.bytes).toBe(0);
  });
});

describe('fileKind', () => {
  it('tells kinds by path and magic', () => {
    const elfHead = new Uint8Array([0x7f, 0x45, 0x4c, 0x46]);
    expect(fileKind('/usr/lib/x86_64-linux-gnu/libc.so.6', elfHead)).toBe('shared libraries');
    expect(fileKind('/usr/bin/ls', elfHead)).toBe('executables');
    expect(fileKind('/usr/lib/libfoo.a', bytes('!<ar'))).toBe('static libraries');
    expect(fileKind('/usr/include/stdio.h', bytes('/*'))).toBe('headers');
    expect(fileKind('/usr/lib/python3/x/__pycache__/a.cpython-311.pyc', bytes('\xa7\r'))).toBe(
      'python bytecode',
    );
    expect(fileKind('/app/node_modules/a/index.js', bytes('mod'))).toBe('javascript');
    expect(fileKind('/usr/share/locale/de/LC_MESSAGES/x.mo', bytes('\xde'))).toBe('locales');
    expect(fileKind('/etc/passwd', bytes('root'))).toBe('other');
  });
});
