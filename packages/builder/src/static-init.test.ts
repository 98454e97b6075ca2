import { describe, expect, it } from 'vitest';
import type { InitRootfsView } from './init.ts';
import { dedupeEnv, findProgram, planStaticInit } from './static-init.ts';

const files = (paths: string[]): InitRootfsView => ({
  stat: async (p) => (paths.includes(p) ? { type: 'file', path: p } : undefined),
  readText: async () => undefined,
});

describe('static init planning', () => {
  it('keeps each variable once, at its first place, with its last value', () => {
    expect(dedupeEnv(['PATH=/a', 'X=1', 'PATH=/b', 'Y=', 'X=2'])).toEqual(['PATH=/b', 'X=2', 'Y=']);
  });

  it('finds the program like execvp: a path relative to WorkingDir, or along PATH', async () => {
    const view = files(['/usr/bin/python3', '/app/run', '/srv/tool']);
    const plan = (argv0: string, path = '/usr/local/bin:/usr/bin', workingDir = '/app') => ({
      argv: [argv0],
      env: [`PATH=${path}`],
      workingDir,
      user: { uid: 0, gid: 0, groups: [], home: '/root' },
      userSpec: '',
      hostname: 'irb',
      directories: [],
      entrypointLength: 0,
      homeFromUser: false,
    });
    expect(await findProgram(view, plan('python3'))).toBe('/usr/bin/python3');
    expect(await findProgram(view, plan('./run'))).toBe('/app/run');
    expect(await findProgram(view, plan('../srv/tool'))).toBe('/srv/tool');
    expect(await findProgram(view, plan('run', '.'))).toBe('/app/run');
    expect(await findProgram(view, plan('python3', '/opt/bin'))).toBeUndefined();
  });

  it('refuses an architecture irb has no init for, and encodes the parameters', async () => {
    await expect(planStaticInit(files(['/app']), { Cmd: ['/app'] }, 's390x')).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
      message: expect.stringMatching(/not for s390x; set `initKind` to 'sh'/),
    });
    const plan = await planStaticInit(
      files(['/app']),
      { Cmd: ['/app', 'x'], Env: ['PATH=/', 'PATH=/bin'] },
      'amd64',
      {
        exitAction: 'reboot',
        hostname: 'vm1',
      },
    );
    expect(plan).toMatchObject({ arch: 'x86_64', program: '/app', configPath: '/irb/init.conf' });
    expect(plan.run.env).toEqual(['PATH=/bin', 'HOSTNAME=vm1', 'HOME=/']);
    expect(plan.binary.subarray(0, 4)).toEqual(new Uint8Array([0x7f, 0x45, 0x4c, 0x46]));
  });
});
