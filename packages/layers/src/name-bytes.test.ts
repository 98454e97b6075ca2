import { packCpio, readCpio } from '@irb/cpio';
import { buildTar, type TarSpec } from '@irb/test-utils';
import { describe, expect, it } from 'vitest';
import { layerOf } from '../test/helpers.ts';
import { indexLayers } from './index.ts';

/*
 * Names, link targets and PAX values are bytes: every byte value except NUL and '/' must reach
 * the cpio exactly as the tar holds it, however the tar spells the name (ustar field, GNU long
 * name or long link record, PAX path or linkpath). 0x80–0x9F is where a windows-1252 decode
 * (what `new TextDecoder('latin1')` really is) rewrites bytes, so it is covered byte by byte.
 */

const enc = new TextEncoder();
const cat = (...parts: Array<string | Uint8Array | number[]>): Uint8Array =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...enc.encode(p)] : [...p])));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const BYTES = Array.from({ length: 255 }, (_, i) => i + 1).filter((b) => b !== 0x2f);

interface Expected {
  type: 'file' | 'symlink';
  target?: Uint8Array;
  /** For hard links: the name whose inode this name shares. */
  sameInodeAs?: Uint8Array;
}

/** One layer where every byte value appears in each kind of name, plus what the cpio must hold. */
function fixture(): { specs: TarSpec[]; expected: Map<string, Expected> } {
  const specs: TarSpec[] = [];
  const expected = new Map<string, Expected>();
  const long = (c: string) => c.repeat(110);
  for (const b of BYTES) {
    const tag = b.toString(16).padStart(2, '0');
    // ustar name field, symlink target and hard-link target (all under 100 bytes).
    const file = cat('f/', [b], 'x', [b]);
    specs.push({ type: 'file', path: file, content: tag });
    expected.set(hex(file), { type: 'file' });
    const symTarget = cat('t', [b], '/', [b]);
    specs.push({ type: 'symlink', path: `s/${tag}`, target: symTarget });
    expected.set(hex(cat(`s/${tag}`)), { type: 'symlink', target: symTarget });
    specs.push({ type: 'link', path: `h/${tag}`, target: file });
    expected.set(hex(cat(`h/${tag}`)), { type: 'file', sameInodeAs: file });

    // GNU long name (`L`) and long link target (`K`) records.
    const gnuFile = cat('g/', long('L'), [b]);
    specs.push({ type: 'file', path: gnuFile, content: tag, longNames: 'gnu' });
    expected.set(hex(gnuFile), { type: 'file' });
    const gnuTarget = cat(long('T'), [b]);
    specs.push({ type: 'symlink', path: `gs/${tag}`, target: gnuTarget, longNames: 'gnu' });
    expected.set(hex(cat(`gs/${tag}`)), { type: 'symlink', target: gnuTarget });
    specs.push({ type: 'link', path: `gh/${tag}`, target: gnuFile, longNames: 'gnu' });
    expected.set(hex(cat(`gh/${tag}`)), { type: 'file', sameInodeAs: gnuFile });

    // PAX `path` and `linkpath` records.
    const paxFile = cat('p/', long('P'), [b]);
    specs.push({ type: 'file', path: paxFile, content: tag, longNames: 'pax' });
    expected.set(hex(paxFile), { type: 'file' });
    const paxTarget = cat(long('Q'), [b]);
    specs.push({ type: 'symlink', path: `ps/${tag}`, target: paxTarget, longNames: 'pax' });
    expected.set(hex(cat(`ps/${tag}`)), { type: 'symlink', target: paxTarget });
    specs.push({ type: 'link', path: `ph/${tag}`, target: paxFile, longNames: 'pax' });
    expected.set(hex(cat(`ph/${tag}`)), { type: 'file', sameInodeAs: paxFile });
  }
  return { specs, expected };
}

describe('every byte value of a name survives into the cpio', () => {
  it('in ustar names, symlink and hard-link targets, GNU long names and PAX path/linkpath', async () => {
    const { specs, expected } = fixture();
    const rootfs = await indexLayers([layerOf(await buildTar(specs), undefined, 4096)]);
    const found = new Map<string, { type: string; target?: string; ino: number; body?: string }>();
    for await (const entry of readCpio(packCpio(rootfs.entries()))) {
      const body = entry.type === 'file' ? Buffer.from(await entry.bytes()).toString() : undefined;
      found.set(hex(entry.nameBytes), {
        type: entry.type,
        ino: entry.ino,
        ...(entry.targetBytes ? { target: hex(entry.targetBytes) } : {}),
        ...(body !== undefined ? { body } : {}),
      });
    }
    const wrong: string[] = [];
    for (const [name, want] of expected) {
      const got = found.get(name);
      const ok =
        got !== undefined &&
        got.type === want.type &&
        (want.target === undefined || got.target === hex(want.target)) &&
        (want.sameInodeAs === undefined || found.get(hex(want.sameInodeAs))?.ino === got.ino);
      if (!ok) wrong.push(`${name}: ${JSON.stringify(got)}`);
    }
    expect(wrong).toEqual([]);
    // Nothing else but the synthesized parent directories and the root.
    const extra = [...found.keys()].filter((name) => !expected.has(name));
    expect(extra.map((h) => Buffer.from(h, 'hex').toString()).sort()).toEqual(
      ['.', 'f', 'g', 'gh', 'gs', 'h', 'p', 'ph', 'ps', 's'].sort(),
    );
  });

  it('in lookup() and readFile() paths given as bytes', async () => {
    const { specs } = fixture();
    const rootfs = await indexLayers([layerOf(await buildTar(specs), undefined, 65_536)]);
    for (const b of [0x80, 0x81, 0x8d, 0x8f, 0x90, 0x9d, 0x9f, 0xe9, 0xff]) {
      const file = cat('f/', [b], 'x', [b]);
      expect(rootfs.lookup(file)?.path).toEqual(file);
      expect(Buffer.from((await rootfs.readFile(cat(`h/${b.toString(16)}`))) ?? []).toString()).toBe(
        b.toString(16),
      );
    }
  });
});
