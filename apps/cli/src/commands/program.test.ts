import { describe, expect, it } from 'vitest';
import { main } from '../main.ts';
import { loadCommand } from './index.ts';

/** What the command `argv[0]` parses the rest of `argv` to. */
async function parse(argv: string[]): Promise<unknown> {
  const [name = '', ...rest] = argv;
  const command = await loadCommand(name);
  if (!command) throw new Error(`no command ${name}`);
  return command.parse(rest);
}

/** The usage error irb prints for `argv` (exit 2), without the pointer to --help. */
async function usage(argv: string[]): Promise<string> {
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: () => true },
    stderr: { write: (t) => (stderr += String(t)) },
  });
  const message = /^irb: error: (.*); see "irb( \S+)? --help"\n$/s.exec(stderr)?.[1];
  if (code !== 2 || message === undefined)
    throw new Error(`no usage error for ${argv.join(' ')}: ${code} ${stderr}`);
  return message;
}

describe('the program flags of build, trace and append', () => {
  it('parse to the library options; a --cmd word may start with -', async () => {
    const flags = [
      '--kernel-modules',
      '/lib/modules/6.1.0-57-amd64',
      '--modules',
      'net,vsock',
      '--modules',
      ' console ',
      '--net',
      '10.0.2.15/24,gw=10.0.2.2',
      '--entrypoint',
      '/usr/bin/agent',
      '--cmd',
      '--interpreter',
      '--cmd',
      'python3',
      '--env',
      'JOB=1',
      '--env',
      'TOKEN=a=b',
      '--workdir',
      '/srv',
      '--user',
      'app:staff',
    ];
    const expected = {
      kernelModules: '/lib/modules/6.1.0-57-amd64',
      modules: ['net', 'vsock', 'console'],
      net: '10.0.2.15/24,gw=10.0.2.2',
      entrypoint: '/usr/bin/agent',
      cmd: ['--interpreter', 'python3'],
      env: ['JOB=1', 'TOKEN=a=b'],
      workdir: '/srv',
      user: 'app:staff',
    };
    expect(await parse(['build', 'img', ...flags])).toMatchObject(expected);
    expect(await parse(['trace', 'img', ...flags])).toMatchObject(expected);
    expect(await parse(['append', 'base', '-o', 'out', ...flags])).toMatchObject(expected);
    // Only the word right after --cmd: the next flag is a flag again.
    expect(await parse(['build', 'img', '--cmd', '-v', '--json'])).toMatchObject({ cmd: ['-v'], json: true });
    expect(await parse(['build', 'img', '--cmd=--port'])).toMatchObject({ cmd: ['--port'] });
    expect(await parse(['build', 'img'])).not.toHaveProperty('cmd');
  });

  it('--max-entries and --max-unpacked (build, trace)', async () => {
    expect(await parse(['build', 'img', '--max-entries', '1000', '--max-unpacked', '2G'])).toMatchObject({
      maxEntries: 1000,
      maxUnpacked: '2G',
    });
    expect(await parse(['trace', 'img', '--max-entries', 'none'])).toMatchObject({
      maxEntries: Number.POSITIVE_INFINITY,
    });
  });

  it('refuse what the build would refuse, in one line, before anything is read', async () => {
    expect(await usage(['build', 'a', '--modules', 'net'])).toBe(
      "--modules needs --kernel-modules: the kernel's /lib/modules/<release> directory, its .deb, or an image that holds them",
    );
    expect(await usage(['build', 'a', '--kernel-modules', '/x'])).toMatch(
      /^--kernel-modules is set but --modules names nothing/,
    );
    expect(await usage(['build', 'a', '--kernel-modules', '/x', '--modules', 'net,,vsock'])).toBe(
      '--modules "net,,vsock" has an empty name; write names separated by commas (net,vsock)',
    );
    expect(await usage(['build', 'a', '--net', '10.0.2.15'])).toMatch(/^--net 10\.0\.2\.15: /);
    expect(await usage(['build', 'a', '--net', '10.0.2.15/24,gw=10.1.1.1'])).toMatch(/gw/);
    expect(await usage(['build', 'a', '--env', 'JOB'])).toBe(
      '--env "JOB" is not NAME=VALUE with a non-empty NAME; write --env NAME=VALUE',
    );
    expect(await usage(['build', 'a', '--workdir', 'srv'])).toMatch(/^--workdir "srv" is not absolute/);
    expect(await usage(['build', 'a', '--user', 'a:b:c'])).toMatch(/^--user "a:b:c" is not UID\[:GID\]/);
    expect(await usage(['build', 'a', '--entrypoint', ''])).toMatch(/^--entrypoint is empty/);
    expect(await usage(['build', 'a', '--cmd'])).toBe('--cmd needs a value');
    expect(await usage(['build', 'a', '--max-entries', '0'])).toMatch(
      /^--max-entries must be a whole number/,
    );
    expect(await usage(['trace', 'a', '--env', '=x'])).toMatch(/^--env "=x"/);
    expect(await usage(['append', 'b', '-o', 'o'])).toMatch(/^nothing to append/);
    expect(await usage(['append', 'b', '-o', 'o', '--init', 'i', '--env', 'A=1'])).toMatch(
      /^--init replaces BASE's \/init/,
    );
    expect(await usage(['append', 'b', '-o', 'o', '--modules', 'net'])).toMatch(
      /^--modules needs --kernel-modules/,
    );
    expect(await usage(['build', 'a', '--modlues', 'net'])).toBe(
      'unknown option "--modlues" (did you mean --modules?)',
    );
    expect(await usage(['config'])).toBe('missing ARCHIVE');
  });
});
