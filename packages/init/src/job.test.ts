import { describe, expect, it } from 'vitest';
import {
  applyJobConfigs,
  applyRunOverrides,
  decodeInitConfig,
  decodeJobConfig,
  encodeInitConfig,
  encodeJobConfig,
  JOB_CONFIG_DIR,
  JOB_CONFIG_MAGIC,
  jobConfigPath,
  type ProgramConfig,
  type RunOverrides,
} from './index.ts';

const shown = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1').replaceAll('\0', '|');
const thrown = (fn: () => unknown): { code?: string; message: string } => {
  try {
    fn();
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a throw');
};

describe('applyRunOverrides: docker run semantics at build time', () => {
  const image = {
    Entrypoint: ['python3', '-u'],
    Cmd: ['app.py'],
    Env: ['PATH=/usr/bin', 'MODE=prod'],
    WorkingDir: '/srv',
    User: 'app',
    Labels: { keep: 'me' },
  };

  it('--entrypoint replaces the Entrypoint and clears the Cmd', () => {
    expect(applyRunOverrides(image, { entrypoint: '/agent' })).toMatchObject({
      Entrypoint: ['/agent'],
      Cmd: [],
    });
  });

  it('--cmd replaces the Cmd and keeps the Entrypoint; with --entrypoint it follows the new one', () => {
    expect(applyRunOverrides(image, { cmd: ['other.py', '-v'] })).toMatchObject({
      Entrypoint: ['python3', '-u'],
      Cmd: ['other.py', '-v'],
    });
    expect(applyRunOverrides(image, { entrypoint: '/agent', cmd: ['--port', '8080'] })).toMatchObject({
      Entrypoint: ['/agent'],
      Cmd: ['--port', '8080'],
    });
  });

  it('--env adds a variable or replaces the one of its name in place', () => {
    expect(applyRunOverrides(image, { env: ['MODE=test', 'JOB=42', 'JOB=43'] }).Env).toEqual([
      'PATH=/usr/bin',
      'MODE=test',
      'JOB=43',
    ]);
    expect(applyRunOverrides<ProgramConfig>({}, { env: ['A=1'] }).Env).toEqual(['A=1']);
  });

  it('--workdir and --user replace theirs; the rest of the config and the input stay', () => {
    const out = applyRunOverrides(image, { workingDir: '/tmp', user: '1000:1000' });
    expect(out).toEqual({ ...image, WorkingDir: '/tmp', User: '1000:1000' });
    expect(image.User).toBe('app');
    expect(applyRunOverrides(undefined, {})).toEqual({});
  });

  it('refuses what the init could not apply, in one line', () => {
    const cases: Array<[RunOverrides, string, RegExp]> = [
      [{ entrypoint: '' }, 'IRB_OPTION_INVALID', /--entrypoint is empty/],
      [{ entrypoint: 'a\0b' }, 'IRB_OPTION_INVALID', /NUL/],
      [{ cmd: [] }, 'IRB_OPTION_INVALID', /--cmd has no words/],
      [{ cmd: ['x\0'] }, 'IRB_OPTION_INVALID', /NUL/],
      [{ env: ['NOVALUE'] }, 'IRB_ENV_INVALID', /--env "NOVALUE" is not NAME=VALUE/],
      [{ env: ['=x'] }, 'IRB_ENV_INVALID', /not NAME=VALUE/],
      [{ env: ['A=\0'] }, 'IRB_ENV_INVALID', /NUL/],
      [{ workingDir: 'rel' }, 'IRB_WORKDIR_INVALID', /--workdir "rel" is not absolute/],
      [{ user: '' }, 'IRB_USER_INVALID', /--user ""/],
      [{ user: 'a:b:c' }, 'IRB_USER_INVALID', /UID\[:GID\] or NAME\[:GROUP\]/],
      [{ user: 'app:' }, 'IRB_USER_INVALID', /not UID/],
      [{ user: 'my user' }, 'IRB_USER_INVALID', /not UID/],
      [{ user: '4294967296' }, 'IRB_USER_INVALID', /4294967295/],
      [{ user: '1:4294967296' }, 'IRB_USER_INVALID', /4294967295/],
    ];
    for (const [overrides, code, message] of cases) {
      for (const fn of [() => applyRunOverrides({}, overrides), () => encodeJobConfig(overrides)]) {
        const error = thrown(fn);
        expect(error.code, JSON.stringify(overrides)).toBe(code);
        expect(error.message).toMatch(message);
        expect(error.message).not.toContain('\n');
      }
    }
    for (const user of ['0', '1000:1000', 'app', 'app:staff', 'app:1000', '1000:staff', '4294967295'])
      expect(() => encodeJobConfig({ user })).not.toThrow();
  });
});

describe('job files', () => {
  it('are tagged fields after irb-job/1, only what is set, in a fixed order', () => {
    expect(JOB_CONFIG_MAGIC).toBe('irb-job/1');
    expect(JOB_CONFIG_DIR).toBe('/irb/job.d');
    expect(shown(encodeJobConfig({}))).toBe('irb-job/1|');
    expect(
      shown(
        encodeJobConfig({
          user: 'app:staff',
          workingDir: '/w',
          env: ['JOB=7', 'TOKEN=a=b'],
          cmd: ['x', ''],
          entrypoint: '/agent',
        }),
      ),
    ).toBe('irb-job/1|p/agent|cx|c|eJOB=7|eTOKEN=a=b|w/w|Uapp:staff|');
  });

  it('read back to the same overrides, and refuse what the init refuses', () => {
    const overrides = {
      entrypoint: '/agent',
      cmd: ['a b', 'é'],
      env: ['X=1'],
      workingDir: '/w',
      user: '5:6',
    };
    expect(decodeJobConfig(encodeJobConfig(overrides))).toEqual(overrides);
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(() => decodeJobConfig(bytes('irb-job/1\0eX=1'))).toThrow(/truncated/);
    expect(() => decodeJobConfig(bytes('irb-init/1\0a/x\0'))).toThrow(/does not start with irb-job\/1/);
    expect(() => decodeJobConfig(bytes('irb-job/1\0a/x\0'))).toThrow(/unknown field/);
    expect(() => decodeJobConfig(bytes('irb-job/1\0eNOVALUE\0'))).toThrow(/NAME=VALUE/);
    expect(() => decodeJobConfig(bytes('irb-job/1\0wrel\0'))).toThrow(/not absolute/);
  });

  it('are named so that a later append sorts after an earlier one', () => {
    expect(jobConfigPath(0)).toBe('/irb/job.d/00000000000000000000.conf');
    expect(jobConfigPath(45_000_123)).toBe('/irb/job.d/00000000000045000123.conf');
    const names = [9, 10, 1_000_000, 99].map(jobConfigPath);
    expect([...names].sort()).toEqual([9, 10, 99, 1_000_000].map(jobConfigPath));
    expect(thrown(() => jobConfigPath(-1)).code).toBe('IRB_OPTION_INVALID');
    expect(thrown(() => jobConfigPath(1.5)).code).toBe('IRB_OPTION_INVALID');
  });

  it('apply over init.conf in order, each changing only what it names', () => {
    const base = decodeInitConfig(
      encodeInitConfig({
        argv: ['python3', '-u', 'app.py'],
        entrypointLength: 2,
        env: ['PATH=/bin', 'MODE=prod'],
        workingDir: '/srv',
        uid: 1000,
        gid: 1000,
        groups: [27],
        homeFromUser: true,
      }),
    );
    expect(base).toMatchObject({ entrypointLength: 2, homeFromUser: true });
    const text = (s: string[]) => s;
    // --cmd keeps the Entrypoint.
    expect(applyJobConfigs(base, [{ cmd: ['job.py'] }])).toMatchObject({
      argv: text(['python3', '-u', 'job.py']),
      entrypointLength: 2,
    });
    // Two appends: the agent becomes the program, then a job adds its variables; later wins per field.
    const agent: RunOverrides = { entrypoint: '/agent', cmd: ['--port', '8080'], env: ['MODE=agent'] };
    const job: RunOverrides = { env: ['JOB=1', 'MODE=job'], workingDir: '/tmp', user: 'nobody' };
    expect(applyJobConfigs(base, [agent, job])).toEqual({
      argv: ['/agent', '--port', '8080'],
      entrypointLength: 1,
      env: ['PATH=/bin', 'MODE=job', 'JOB=1'],
      workingDir: '/tmp',
      user: 'nobody',
      uid: 1000,
      gid: 1000,
      groups: [27],
    });
    // A later --cmd replaces the Cmd of an earlier --entrypoint, not the entrypoint itself.
    expect(applyJobConfigs(base, [agent, { cmd: ['--port', '9090'] }]).argv).toEqual([
      '/agent',
      '--port',
      '9090',
    ]);
    // Without E (an older parameter file), all of argv is the Cmd.
    const old = decodeInitConfig(encodeInitConfig({ argv: ['a', 'b'] }));
    expect(applyJobConfigs(old, [{ cmd: ['c'] }]).argv).toEqual(['c']);
    expect(applyJobConfigs(old, [])).toMatchObject({ argv: ['a', 'b'], env: [], workingDir: '/' });
  });
});
