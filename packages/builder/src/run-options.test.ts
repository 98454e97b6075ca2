import { thrown } from '@irb/test-utils';
import { describe, expect, it } from 'vitest';
import { baseKey, buildKey, buildKeyInput, modulesMemberKey, overlayKey } from './build-key.ts';
import { modulesRequested, netValueOf, runOverridesOf } from './run-options.ts';
import type { InitramfsBuilderOptions } from './types.ts';

describe('the options that change how the program runs', () => {
  it("map to the init's overrides (`workdir` is `workingDir`; an empty env is none)", () => {
    expect(runOverridesOf({})).toEqual({});
    expect(runOverridesOf({ env: [] })).toEqual({});
    expect(
      runOverridesOf({
        entrypoint: '/usr/bin/agent',
        cmd: ['--interpreter', 'python3'],
        env: ['JOB=1'],
        workdir: '/srv',
        user: 'app:staff',
      }),
    ).toEqual({
      entrypoint: '/usr/bin/agent',
      cmd: ['--interpreter', 'python3'],
      env: ['JOB=1'],
      workingDir: '/srv',
      user: 'app:staff',
    });
  });

  it('are refused in one line naming the flag', () => {
    const cases: Array<[Parameters<typeof runOverridesOf>[0], string, RegExp]> = [
      [{ entrypoint: '' }, 'IRB_OPTION_INVALID', /^--entrypoint is empty/],
      [{ cmd: [] }, 'IRB_OPTION_INVALID', /^--cmd has no words/],
      [{ env: ['JOB'] }, 'IRB_ENV_INVALID', /^--env "JOB" is not NAME=VALUE/],
      [{ workdir: 'srv' }, 'IRB_WORKDIR_INVALID', /^--workdir "srv" is not absolute/],
      [{ user: 'a b' }, 'IRB_USER_INVALID', /^--user "a b" is not UID\[:GID\] or NAME\[:GROUP\]/],
    ];
    for (const [options, code, message] of cases) {
      const error = thrown(() => runOverridesOf(options));
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain('\n');
    }
  });

  it("read the network with the init's parser: one spelling per network, bad input in one line", () => {
    const value = '10.0.2.15::10.0.2.2:255.255.255.0:::off:10.0.2.3';
    expect(netValueOf({ net: '10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3' })).toBe(value);
    expect(netValueOf({ net: '10.0.2.15/24,dns=10.0.2.3,gw=10.0.2.2' })).toBe(value);
    expect(
      netValueOf({ net: { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: ['10.0.2.3'] } }),
    ).toBe(value);
    expect(netValueOf({})).toBeUndefined();
    for (const bad of ['10.0.2.15', '10.0.2.15/33', '10.0.2.15/24,gw=10.9.9.9', '10.0.2.15/24,via=1.2.3.4']) {
      const error = thrown(() => netValueOf({ net: bad }));
      expect(error.code, bad).toBe('IRB_NET_INVALID');
      expect(error.message).not.toContain('\n');
    }
  });

  it('need `kernelModules` and `modules` together', () => {
    expect(modulesRequested({})).toBe(false);
    expect(modulesRequested({ kernelModules: '/lib/modules/6.1', modules: ['net'] })).toBe(true);
    expect(thrown(() => modulesRequested({ modules: ['net'] })).message).toMatch(
      /^`modules` needs `kernelModules`/,
    );
    expect(thrown(() => modulesRequested({ kernelModules: '/x' })).message).toMatch(/names nothing to load/);
    expect(thrown(() => modulesRequested({ kernelModules: '/x', modules: [' '] })).code).toBe(
      'IRB_OPTION_INVALID',
    );
  });
});

describe('keys of builds with modules, a network and overrides', () => {
  const DIGEST = `sha256:${'b'.repeat(64)}`;
  const SET = `sha256:${'c'.repeat(64)}`;
  const o = (more: Partial<InitramfsBuilderOptions> = {}): InitramfsBuilderOptions => ({
    image: 'x',
    ...more,
  });

  it('leave the base key alone: a changed override, network or module set reuses the cached base', async () => {
    const base = await baseKey(o(), DIGEST);
    for (const more of [
      { entrypoint: '/agent', cmd: ['--port', '1'] },
      { env: ['JOB=1'] },
      { workdir: '/srv', user: '1000' },
      { net: '10.0.2.15/24' },
      { kernelModules: '/nowhere', modules: ['net'] },
    ]) {
      expect(await baseKey(o(more), DIGEST), JSON.stringify(more)).toBe(base);
    }
  });

  it('split the overlay and build keys: each override, the network and the module set count', async () => {
    const seen = new Set<string>();
    const variants: Array<[Partial<InitramfsBuilderOptions>, string | undefined]> = [
      [{}, undefined],
      [{ env: ['JOB=1'] }, undefined],
      [{ env: ['JOB=2'] }, undefined],
      [{ entrypoint: '/agent' }, undefined],
      [{ entrypoint: '/agent', cmd: ['a'] }, undefined],
      [{ workdir: '/srv' }, undefined],
      [{ user: '1000' }, undefined],
      [{ net: '10.0.2.15/24' }, undefined],
      [{ kernelModules: '/a', modules: ['net'] }, SET],
      [{ kernelModules: '/a', modules: ['net'] }, `sha256:${'d'.repeat(64)}`],
    ];
    for (const [more, modules] of variants) {
      const resolved = modules ? { modules } : {};
      const overlay = await overlayKey(o(more), 'base', 'amd64', resolved);
      const build = buildKey(await buildKeyInput(o(more), DIGEST, resolved));
      expect(seen.has(overlay), JSON.stringify(more)).toBe(false);
      expect(seen.has(build)).toBe(false);
      seen.add(overlay).add(build);
    }
  });

  it('name the modules by their set, not by where they were read; the network by its value', async () => {
    const a = await buildKeyInput(o({ kernelModules: '/lib/modules/6.1', modules: ['net'] }), DIGEST, {
      modules: SET,
    });
    const b = await buildKeyInput(
      o({ kernelModules: 'registry.example/kernel:6.1', modules: ['virtio_net', 'virtio_pci'] }),
      DIGEST,
      {
        modules: SET,
      },
    );
    expect(a.options.modules).toBe(SET);
    expect(a.options.kernelModules).toBeUndefined();
    expect(buildKey(a)).toBe(buildKey(b));
    const n1 = await buildKeyInput(o({ net: '10.0.2.15/24,gw=10.0.2.2' }), DIGEST);
    const n2 = await buildKeyInput(
      o({ net: { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' } }),
      DIGEST,
    );
    expect(n1.options.net).toBe('10.0.2.15::10.0.2.2:255.255.255.0:::off');
    expect(buildKey(n1)).toBe(buildKey(n2));
    expect(buildKey(await buildKeyInput(o({ env: [] }), DIGEST))).toBe(
      buildKey(await buildKeyInput(o(), DIGEST)),
    );
  });

  it('give the modules member a key of its own: the set, compression and level, nothing of the image', () => {
    const k = modulesMemberKey(SET, {});
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(modulesMemberKey(SET, { compression: 'gzip', level: 6 })).toBe(k);
    expect(modulesMemberKey(SET, { compression: 'zstd' })).not.toBe(k);
    expect(modulesMemberKey(SET, { level: 9 })).not.toBe(k);
    expect(modulesMemberKey(`sha256:${'e'.repeat(64)}`, {})).not.toBe(k);
  });
});
