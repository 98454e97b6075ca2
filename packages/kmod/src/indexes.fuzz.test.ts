import { applyEdits, byteEdits, fuzzTestTimeout, onlyIrbErrors, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { moduleClosure, resolveRequest } from './closure.ts';
import { modinfoRecords, readModinfo } from './modinfo.ts';
import { indexFromDepmod } from './module-index.ts';

/*
 * Kernel module lists from a hostile tree: modules.dep, modules.alias, modules.softdep and
 * modules.builtin with cycles, dangling and duplicate entries, odd patterns and junk lines, and
 * module files whose ELF headers lie. Resolving any words over them ends in a load order where
 * every module comes after what it needs, or in an IRB_KMOD_* error in one line.
 */

const KMOD_CODES = [
  'IRB_KMOD_MODULE_UNKNOWN',
  'IRB_KMOD_FILE_MISSING',
  'IRB_KMOD_DEPENDENCY_CYCLE',
  'IRB_KMOD_MODULE_INVALID',
];

const moduleName = fc.constantFrom(
  'virtio',
  'virtio_ring',
  'virtio_pci',
  'virtio-net',
  'net_failover',
  'failover',
  'm0',
  'm1',
  'm2',
  'vsock',
  'ext4',
  'crc16',
);
const suffix = fc.constantFrom('.ko', '.ko.xz', '.ko.zst', '.ko.gz', '.o', '');
const path = fc
  .tuple(
    fc.constantFrom(
      'kernel/drivers/',
      'updates/',
      'extra/',
      '/lib/modules/6.1.0/kernel/',
      '',
      'kernel/x/../',
    ),
    moduleName,
    suffix,
  )
  .map(([dir, name, ext]) => `${dir}${name}${ext}`);
const pattern = fc.oneof(
  moduleName,
  fc.constantFrom(
    'virtio:d00000001v*',
    'pci:v00001AF4d*',
    '*',
    '?',
    '[',
    '[!a-z]*',
    '\\*',
    'fs-overlay',
    'net-pf-40',
    'a*b*c*d*e*f*',
  ),
  fc.string({ maxLength: 10 }),
);
const junk = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom('#', ':', ' : ', 'alias', 'softdep x', 'softdep x pre: post:', '\r', '\t'),
);

const depmod = fc.record({
  dep: fc
    .array(
      fc.oneof(
        {
          weight: 4,
          arbitrary: fc
            .tuple(path, fc.array(path, { maxLength: 4 }))
            .map(([p, deps]) => `${p}: ${deps.join(' ')}`),
        },
        { weight: 1, arbitrary: junk },
      ),
      { maxLength: 10 },
    )
    .map((l) => l.join('\n')),
  alias: fc
    .array(
      fc.oneof(
        fc.tuple(pattern, moduleName).map(([p, m]) => `alias ${p} ${m}`),
        junk,
      ),
      { maxLength: 6 },
    )
    .map((l) => l.join('\n')),
  softdep: fc
    .array(
      fc.oneof(
        fc
          .tuple(
            moduleName,
            fc.array(fc.oneof(fc.constantFrom('pre:', 'post:'), moduleName, pattern), { maxLength: 5 }),
          )
          .map(([m, w]) => `softdep ${m} ${w.join(' ')}`),
        junk,
      ),
      { maxLength: 4 },
    )
    .map((l) => l.join('\n')),
  builtin: fc.array(fc.oneof(path, junk), { maxLength: 3 }).map((l) => l.join('\n')),
});

const words = fc.array(
  fc.oneof(
    moduleName,
    pattern,
    fc.constantFrom('net', 'vsock', 'console', 'blk', 'fs', 'virtio:d00000001v00001AF4', ' '),
  ),
  { maxLength: 4 },
);

/** A minimal ELF64 (little or big endian) relocatable with a `.shstrtab` and a `.modinfo` section. */
function elf(records: string[], little: boolean): Uint8Array {
  const modinfo = new TextEncoder().encode(records.map((r) => `${r}\0`).join(''));
  const names = new TextEncoder().encode('\0.shstrtab\0.modinfo\0');
  const dataAt = 64;
  const namesAt = dataAt + modinfo.byteLength;
  const shoff = Math.ceil((namesAt + names.byteLength) / 8) * 8;
  const out = new Uint8Array(shoff + 3 * 64);
  const view = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, little ? 1 : 2, 1]);
  view.setUint16(16, 1, little);
  view.setBigUint64(0x28, BigInt(shoff), little);
  view.setUint16(0x3a, 64, little);
  view.setUint16(0x3c, 3, little);
  view.setUint16(0x3e, 1, little);
  out.set(modinfo, dataAt);
  out.set(names, namesAt);
  const section = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 64;
    view.setUint32(at, name, little);
    view.setBigUint64(at + 24, BigInt(offset), little);
    view.setBigUint64(at + 32, BigInt(size), little);
  };
  section(1, 1, namesAt, names.byteLength);
  section(2, 11, dataAt, modinfo.byteLength);
  return out;
}

describe('kernel module lists under fuzzing', () => {
  it(
    'any words over a hostile depmod tree give a load order that respects every dependency, or an IRB_KMOD code',
    async () => {
      await runFuzz(
        'kmod: depmod trees',
        fc.tuple(depmod, words, fc.boolean()),
        async ([files, list, softdeps]) => {
          const index = indexFromDepmod('6.1.0', files);
          await onlyIrbErrors(() => {
            const request = resolveRequest(index, list, 'the tree');
            const { order } = moduleClosure(index, request.roots, 'the tree', { softdeps });
            if (new Set(order).size !== order.length) throw new Error(`a module twice in ${order}`);
            for (const [i, name] of order.entries()) {
              for (const dep of index.modules.get(name)?.deps ?? []) {
                // A module naming itself (depmod never writes that) needs nothing before it.
                if (dep !== name && index.modules.has(dep) && !order.slice(0, i).includes(dep))
                  throw new Error(`${name} before its dependency ${dep}`);
              }
            }
          }, KMOD_CODES);
        },
        { runs: 500 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'a damaged module file gives its .modinfo records, or IRB_KMOD_MODULE_INVALID',
    async () => {
      const records = fc.array(
        fc.oneof(
          fc.constantFrom(
            'name=virtio_net',
            'vermagic=6.1.0-57-amd64 SMP mod_unload ',
            'depends=virtio,failover',
            'alias=virtio:d00000001v*',
            'softdep=pre: crc32c',
          ),
          fc.string({ maxLength: 12 }),
        ),
        { maxLength: 5 },
      );
      await runFuzz(
        'kmod: module ELF headers',
        fc.tuple(records, fc.boolean(), fc.option(byteEdits, { nil: undefined, freq: 4 })),
        async ([list, little, edits]) => {
          const bytes = edits ? applyEdits(elf(list, little), edits) : elf(list, little);
          await onlyIrbErrors(() => {
            modinfoRecords(bytes, 'm.ko');
            readModinfo(bytes, 'm.ko');
          }, ['IRB_KMOD_MODULE_INVALID']);
        },
        { runs: 500 },
      );
    },
    fuzzTestTimeout(),
  );
});
