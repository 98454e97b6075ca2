import { describe, expect, it } from 'vitest';
import { moduleClosure, resolveRequest } from './closure.ts';
import { parseModulesDep, parseModulesSoftdep } from './indexes.ts';
import type { ModuleInfo } from './modinfo.ts';
import { type DepmodFiles, indexFromDepmod, indexFromModinfo, lookupModule } from './module-index.ts';

const R = '1.0-test';
const tree = (files: Partial<DepmodFiles> & { dep: string }) => indexFromDepmod(R, files);
const closure = (files: Partial<DepmodFiles> & { dep: string }, words: string[], softdeps = true) => {
  const index = tree(files);
  return moduleClosure(index, resolveRequest(index, words, 'test tree').roots, 'test tree', { softdeps });
};
const thrown = (f: () => unknown): { code?: string; message?: string } => {
  try {
    f();
  } catch (error) {
    return error as { code?: string; message?: string };
  }
  return {};
};

describe('modules.dep', () => {
  it('parses lines, comments, empty dependency lists and absolute paths of old depmod', () => {
    const text = [
      '# comment',
      'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko',
      '',
      `/lib/modules/${R}/kernel/net/core/failover.ko:`,
      'kernel/x.ko.xz:   kernel/y.ko.zst  ',
    ].join('\n');
    expect(parseModulesDep(text, R)).toEqual([
      {
        path: 'kernel/drivers/net/virtio_net.ko',
        deps: ['kernel/drivers/net/net_failover.ko', 'kernel/net/core/failover.ko'],
      },
      { path: 'kernel/net/core/failover.ko', deps: [] },
      { path: 'kernel/x.ko.xz', deps: ['kernel/y.ko.zst'] },
    ]);
  });

  it('indexes modules by name, with - and _ alike', () => {
    const index = tree({ dep: 'kernel/virtio-rng.ko.xz: kernel/virtio.ko\nkernel/virtio.ko:\n' });
    expect([...index.modules.keys()]).toEqual(['virtio_rng', 'virtio']);
    expect(index.modules.get('virtio_rng')).toEqual({
      name: 'virtio_rng',
      path: 'kernel/virtio-rng.ko.xz',
      deps: ['virtio'],
    });
    expect(lookupModule(index, 'virtio-rng')).toEqual({ kind: 'module', names: ['virtio_rng'] });
    expect(lookupModule(index, 'virtio_rng')).toEqual({ kind: 'module', names: ['virtio_rng'] });
  });
});

describe('closure and load order', () => {
  const dep = [
    'kernel/a.ko: kernel/b.ko kernel/c.ko',
    'kernel/b.ko: kernel/c.ko',
    'kernel/c.ko:',
    'kernel/z.ko: kernel/c.ko',
    'kernel/lone.ko:',
  ].join('\n');

  it('puts every module after what it needs, whatever order the list has', () => {
    const one = closure({ dep }, ['a', 'z']);
    expect(one.order).toEqual(['c', 'b', 'a', 'z']);
    expect(closure({ dep }, ['z', 'a']).order).toEqual(one.order);
    expect(Object.fromEntries(one.reasons)).toEqual({
      a: 'requested',
      b: 'dependency',
      c: 'dependency',
      z: 'requested',
    });
    expect(closure({ dep }, ['lone']).order).toEqual(['lone']);
  });

  it('gives the same order from direct dependencies (modinfo) as from modules.dep, which lists them all', () => {
    // a needs c and z directly, z needs b: modules.dep lists b, c, z for a.
    const transitive = tree({
      dep: 'kernel/a.ko: kernel/b.ko kernel/c.ko kernel/z.ko\nkernel/z.ko: kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\n',
    });
    const info = (depends: string[]): ModuleInfo => ({
      depends,
      aliases: [],
      softdeps: { pre: [], post: [] },
    });
    const direct = indexFromModinfo(R, [
      { path: 'kernel/a.ko', info: info(['c', 'z']) },
      { path: 'kernel/z.ko', info: info(['b']) },
      { path: 'kernel/b.ko', info: info([]) },
      { path: 'kernel/c.ko', info: info([]) },
    ]);
    const roots = new Map([['a', 'requested' as const]]);
    const a = moduleClosure(transitive, roots, 't').order;
    expect(a).toEqual(['b', 'c', 'z', 'a']);
    expect(moduleClosure(direct, roots, 't').order).toEqual(a);
  });

  it('refuses a cycle in one line that names it', () => {
    const e = thrown(() =>
      closure({ dep: 'kernel/x.ko: kernel/y.ko\nkernel/y.ko: kernel/x.ko\nkernel/w.ko: kernel/x.ko\n' }, [
        'w',
      ]),
    );
    expect(e.code).toBe('IRB_KMOD_DEPENDENCY_CYCLE');
    expect(e.message).toMatch(/\(x → y → x\)/);
    expect(e.message).not.toContain('\n');
  });

  it('refuses a dependency that is neither a module nor builtin, naming both', () => {
    const e = thrown(() => closure({ dep: 'kernel/d.ko: kernel/gone.ko\n' }, ['d']));
    expect(e.code).toBe('IRB_KMOD_FILE_MISSING');
    expect(e.message).toMatch(/^d needs gone, which test tree \(1\.0-test\) has neither/);
  });

  it('skips builtin modules: asked for, or depended on', () => {
    const files = {
      dep: 'kernel/d.ko: kernel/bi.ko\n',
      builtin: 'kernel/fs/bi.ko\nkernel/drivers/virtio/virtio.ko\n',
    };
    const c = closure(files, ['d', 'virtio']);
    expect(c.order).toEqual(['d']);
    expect(c.builtin).toEqual(['bi', 'virtio']);
    const index = tree(files);
    expect(resolveRequest(index, ['virtio'], 't').requests).toEqual([
      { request: 'virtio', kind: 'builtin', modules: ['virtio'] },
    ]);
  });
});

describe('aliases', () => {
  const files = {
    dep: 'kernel/overlay.ko:\nkernel/virtio_net.ko:\nkernel/crc32c_generic.ko:\nkernel/crc32c-intel.ko:\n',
    alias: [
      'alias fs-overlay overlay',
      'alias virtio:d00000001v* virtio_net',
      'alias crypto-crc32c crc32c_generic',
      'alias crypto-crc32c crc32c_intel',
      'alias pci:v00001AF4d0000[1-2]*sv* virtio_net',
    ].join('\n'),
    builtinModinfo: new TextEncoder().encode('ext4.alias=fs-ext4\0ext4.file=fs/ext4/ext4\0'),
  };

  it('finds modules by an alias pattern as written, or by a modalias the patterns match', () => {
    const index = tree(files);
    expect(lookupModule(index, 'fs-overlay')).toEqual({ kind: 'alias', names: ['overlay'] });
    expect(lookupModule(index, 'fs_overlay')).toEqual({ kind: 'alias', names: ['overlay'] });
    expect(lookupModule(index, 'virtio:d00000001v*')).toEqual({ kind: 'alias', names: ['virtio_net'] });
    expect(lookupModule(index, 'virtio:d00000001v00001AF4')).toEqual({
      kind: 'alias',
      names: ['virtio_net'],
    });
    expect(lookupModule(index, 'pci:v00001AF4d00001000sv00001AF4')).toEqual({
      kind: 'alias',
      names: ['virtio_net'],
    });
    expect(lookupModule(index, 'pci:v00001AF4d00003000sv00001AF4')).toBeUndefined();
    expect(lookupModule(index, 'virtio:d00000002v00001AF4')).toBeUndefined();
  });

  it('loads every module an alias names, and knows aliases of builtin modules', () => {
    const index = tree(files);
    expect(lookupModule(index, 'crypto-crc32c')).toEqual({
      kind: 'alias',
      names: ['crc32c_generic', 'crc32c_intel'],
    });
    expect(lookupModule(index, 'fs-ext4')).toEqual({ kind: 'builtin', names: ['ext4'] });
    expect(index.builtin.has('ext4')).toBe(true);
  });
});

describe('soft dependencies', () => {
  const files = {
    dep: 'kernel/ext4.ko: kernel/jbd2.ko\nkernel/jbd2.ko:\nkernel/crc32c_generic.ko:\nkernel/devintf.ko:\nkernel/handler.ko:\n',
    alias: 'alias crypto-crc32c crc32c_generic\n',
    softdep: [
      'softdep ext4 pre: crypto-crc32c',
      'softdep jbd2 pre: crypto-crc32c nothing-here',
      'softdep handler post: devintf',
      'softdep devintf pre: handler',
      'softdep cifs gcm',
    ].join('\n'),
  };

  it('parses pre: and post:, ignoring words before them as kmod does', () => {
    expect(Object.fromEntries(parseModulesSoftdep(files.softdep))).toEqual({
      ext4: { pre: ['crypto-crc32c'], post: [] },
      jbd2: { pre: ['crypto-crc32c', 'nothing-here'], post: [] },
      handler: { pre: [], post: ['devintf'] },
      devintf: { pre: ['handler'], post: [] },
      cifs: { pre: [], post: [] },
    });
  });

  it('loads pre: before and post: after, through aliases; a missing one is skipped and reported', () => {
    const c = closure(files, ['ext4', 'handler']);
    expect(c.order).toEqual(['crc32c_generic', 'handler', 'devintf', 'jbd2', 'ext4']);
    expect(c.reasons.get('crc32c_generic')).toBe('softdep');
    expect(c.missingSoftdeps).toEqual(['nothing-here']);
    expect(closure(files, ['ext4'], false).order).toEqual(['jbd2', 'ext4']);
  });

  it('lets hard dependencies decide when soft ones would make a cycle', () => {
    const c = closure({ dep: 'kernel/m.ko: kernel/n.ko\nkernel/n.ko:\n', softdep: 'softdep n pre: m\n' }, [
      'm',
    ]);
    expect(c.order).toEqual(['n', 'm']);
  });
});

describe('presets and unknown names', () => {
  const dep = [
    'kernel/virtio_net.ko: kernel/virtio.ko kernel/virtio_ring.ko',
    'kernel/virtio.ko: kernel/virtio_ring.ko',
    'kernel/virtio_ring.ko:',
    'kernel/virtio_pci.ko: kernel/virtio.ko kernel/virtio_ring.ko',
  ].join('\n');

  it('adds the transports the kernel has as modules; one it lacks is left out', () => {
    const index = tree({ dep, builtin: '' });
    const request = resolveRequest(index, ['net'], 't');
    expect(request.requests).toEqual([
      { request: 'net', kind: 'preset', modules: ['virtio_net', 'virtio_pci'] },
    ]);
    expect(Object.fromEntries(request.roots)).toEqual({ virtio_net: 'requested', virtio_pci: 'transport' });
    expect(moduleClosure(index, request.roots, 't').order).toEqual([
      'virtio_ring',
      'virtio',
      'virtio_net',
      'virtio_pci',
    ]);
  });

  it('refuses a preset whose device driver the kernel lacks', () => {
    const e = thrown(() => resolveRequest(tree({ dep }), ['blk'], 'my tree'));
    expect(e.code).toBe('IRB_KMOD_MODULE_UNKNOWN');
    expect(e.message).toMatch(/^preset blk needs virtio_blk, which my tree \(1\.0-test\) has neither/);
  });

  it('answers an unknown name with the nearest modules and presets, in one line', () => {
    const index = tree({ dep });
    const e = thrown(() => resolveRequest(index, ['virtio_nett'], 'my tree'));
    expect(e.code).toBe('IRB_KMOD_MODULE_UNKNOWN');
    expect(e.message).toBe(
      '"virtio_nett" is no module, alias or preset of my tree (1.0-test); did you mean virtio_net? (presets: net, vsock, console, blk, fs)',
    );
    expect(thrown(() => resolveRequest(index, ['vsok'], 't')).message).toContain('did you mean vsock?');
    // The preset and the module of its name are suggested once.
    const withVsock = tree({ dep: `${dep}\nkernel/vsock.ko:` });
    expect(thrown(() => resolveRequest(withVsock, ['vsok'], 't')).message).toContain('did you mean vsock?');
    expect(thrown(() => resolveRequest(index, ['qqqqqqq'], 't')).message).toContain('list it with modinfo');
  });
});
