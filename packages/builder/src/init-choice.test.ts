import { describe, expect, it } from 'vitest';
import type { InitRootfsView } from './init.ts';
import { chooseInit, globMatches, type OptionEffects } from './init-choice.ts';

/** A rootfs without /bin/sh (what is left after an option removed it). */
const noShell: InitRootfsView = {
  stat: async () => undefined,
  readText: async () => undefined,
};

const effects = (over: Partial<OptionEffects>): OptionEffects => ({
  exclude: [],
  excluded: 0,
  replaced: [],
  shellBefore: undefined,
  shellViaLink: false,
  ...over,
});

const choose = (e: OptionEffects, initKind: 'sh' | 'auto' = 'sh') =>
  chooseInit({
    options: { initKind },
    imageHasInit: false,
    injectsInit: false,
    view: noShell,
    config: { Cmd: ['/app'] },
    architecture: 'amd64',
    effects: e,
  }).catch((error) => error);

describe('globMatches (the exclude rules of @irb/layers)', () => {
  it('anchors at the root, and a matched directory covers what is below it', () => {
    expect(globMatches('/**', 'bin/sh')).toBe(true);
    expect(globMatches('bin', 'bin/sh')).toBe(true);
    expect(globMatches('/bin/', 'bin/sh')).toBe(true);
    expect(globMatches('/usr/**', 'bin/sh')).toBe(false);
    expect(globMatches('b?n/*', 'bin/sh')).toBe(true);
    expect(globMatches('**/sh', 'bin/sh')).toBe(true);
    expect(globMatches('bin/sh/x', 'bin/sh')).toBe(false);
    expect(globMatches('*.so', 'bin/sh')).toBe(false);
  });
});

describe('chooseInit blames the option that took /bin/sh away', () => {
  it('an exclude pattern that matches /bin/sh', async () => {
    const err = await choose(effects({ exclude: ['/usr/share/**', '/bin/**'], excluded: 3 }));
    expect(err.code).toBe('IRB_OPTION_INVALID');
    expect(err.message).toMatch(/^`exclude` pattern '\/bin\/\*\*' removed \/bin\/sh/);
  });

  it('an exclude pattern that removed what /bin/sh links to, only when a link is left', async () => {
    const linked = await choose(effects({ exclude: ['/usr/**'], excluded: 9, shellViaLink: true }));
    expect(linked.message).toMatch(/^`exclude` pattern '\/usr\/\*\*' removed/);
    // No link into /usr: the image itself has no shell, and the message says so.
    const own = await choose(effects({ exclude: ['/usr/**'], excluded: 9 }));
    expect(own.code).toBe('IRB_IMAGE_NO_SHELL');
    expect(own.message).toMatch(/^the image has no \/bin\/sh/);
  });

  it('an inject that replaced the directory holding the shell', async () => {
    const err = await choose(
      effects({
        shellBefore: { type: 'file', path: '/usr/bin/dash' },
        replaced: [{ spec: './tool:/usr/bin', dest: '/usr/bin', was: 'directory' }],
      }),
    );
    expect(err.message).toMatch(
      /^`inject` \.\/tool:\/usr\/bin replaced the image's directory \/usr\/bin with a file/,
    );
  });
});

describe('chooseInit with the static init warns when the program is missing', () => {
  it('names the exclude patterns that may have removed it', async () => {
    const choice = await choose(effects({ exclude: ['/**'], excluded: 40 }), 'auto');
    expect(choice).toMatchObject({ source: 'generated', kind: 'static' });
    expect(choice.warnings).toEqual([
      `the image's command "/app" is not in the archive, so the program will not start: \`exclude\` ('/**') removed 40 paths, perhaps it; narrow the patterns`,
    ]);
  });

  it('says the image lacks it when no option removed anything, and is silent when it is there', async () => {
    const choice = await choose(effects({}), 'auto');
    expect(choice.warnings[0]).toMatch(
      /^the image's command "\/app" is not in the archive.*; fix the image's Entrypoint\/Cmd/,
    );
    const found = await chooseInit({
      options: {},
      imageHasInit: false,
      injectsInit: false,
      view: {
        stat: async (p) => (p === '/app' ? { type: 'file', path: '/app' } : undefined),
        readText: async () => undefined,
      },
      config: { Cmd: ['/app'] },
      architecture: 'arm64',
      effects: effects({}),
    });
    expect(found).toMatchObject({ kind: 'static', warnings: [], plan: { arch: 'aarch64', program: '/app' } });
  });
});
