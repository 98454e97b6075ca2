import { describe, expect, it } from 'vitest';
import { defaultOutput, parseCli, UsageError } from './args.ts';

function usage(argv: string[]): string {
  try {
    parseCli(argv);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`no usage error for ${argv.join(' ')}`);
}

describe('parseCli', () => {
  it('parses a full build command', () => {
    const args = parseCli([
      'build',
      'host:5000/app:1',
      '-o',
      'out.img',
      '-c',
      'zstd',
      '--level',
      '19',
      '--platform',
      'linux/arm64/v8',
      '--inject',
      'agent:/usr/bin/agent',
      '--inject',
      './etc:/etc/app',
      '--exclude',
      '/usr/share/doc/**',
      '--init',
      'init.sh',
      '--replace-init',
      '--on-exit',
      'reboot',
      '--no-cache',
      '--insecure-registry',
      'reg.lan:5000',
      '--keychain',
      '@acme/irb-auth#createVault',
      '--json',
    ]);
    expect(args).toEqual({
      command: 'build',
      image: 'host:5000/app:1',
      output: 'out.img',
      compression: 'zstd',
      level: 19,
      platform: 'linux/arm64/v8',
      inject: ['agent:/usr/bin/agent', './etc:/etc/app'],
      init: 'init.sh',
      replaceInit: true,
      keepInit: false,
      onExit: 'reboot',
      exclude: ['/usr/share/doc/**'],
      noCache: true,
      insecureRegistries: ['reg.lan:5000'],
      keychains: ['@acme/irb-auth#createVault'],
      json: true,
      quiet: false,
      verbose: false,
    });
  });

  it('picks the output name from the compression', () => {
    expect(parseCli(['build', 'alpine'])).toMatchObject({ output: 'initramfs.cpio.gz', compression: 'gzip' });
    expect(parseCli(['build', 'alpine', '-c', 'zstd'])).toMatchObject({ output: 'initramfs.cpio.zst' });
    expect(parseCli(['build', 'alpine', '-c', 'none'])).toMatchObject({ output: 'initramfs.cpio' });
    expect(defaultOutput('gzip')).toBe('initramfs.cpio.gz');
  });

  it('refuses bad flags with a message naming the problem', () => {
    expect(usage(['build'])).toBe('missing IMAGE');
    expect(usage(['build', 'a', 'b'])).toContain('unexpected argument "b"');
    expect(usage(['build', 'a', '--frobnicate'])).toContain("Unknown option '--frobnicate'");
    expect(usage(['build', 'a', '-c', 'lz4'])).toContain('-c must be gzip, zstd or none, not "lz4"');
    expect(usage(['build', 'a', '--level', '10'])).toContain('--level must be a whole number from 1 to 9');
    expect(usage(['build', 'a', '-c', 'zstd', '--level', 'x'])).toContain('from 1 to 19');
    expect(usage(['build', 'a', '-c', 'none', '--level', '1'])).toContain('does not apply');
    expect(usage(['build', 'a', '--cache-dir', 'd', '--no-cache'])).toContain('exclude each other');
    expect(usage(['build', 'a', '--inject', 'nocolon'])).toContain('SRC:DEST');
    expect(usage(['build', 'a', '--on-exit', 'halt'])).toContain('--on-exit must be poweroff or reboot');
    expect(usage(['build', 'a', '--keep-init', '--init', 'x'])).toContain('--keep-init');
    expect(usage(['build', 'a', '--level'])).toContain("Option '--level <value>' argument missing");
    expect(usage(['build', 'a', '--platform', 'linux'])).toContain('--platform wants os/arch');
    expect(usage(['inspect', 'a', '--platform', 'a/b/c/d'])).toContain('--platform wants os/arch');
    expect(usage(['frob'])).toContain('unknown command "frob"');
    expect(usage(['boot'])).toBe('missing ARCHIVE');
    expect(usage(['boot', 'a', '--memory', '12'])).toContain('--memory must be a whole number from 64');
    expect(usage(['boot', 'a', '--timeout', '-1'])).toContain('--timeout');
  });

  it('passes everything after -- to the kernel', () => {
    expect(
      parseCli(['boot', 'x.cpio.gz', '--expect', 'ok', '--timeout', '30', '--', 'quiet', '--x']),
    ).toEqual({
      command: 'boot',
      archive: 'x.cpio.gz',
      expect: 'ok',
      timeoutS: 30,
      kernelArgs: ['quiet', '--x'],
      quiet: false,
      verbose: false,
    });
  });

  it('answers help and version', () => {
    expect(parseCli([])).toEqual({ command: 'help' });
    expect(parseCli(['build', '--help'])).toEqual({ command: 'help', topic: 'build' });
    expect(parseCli(['ls', '-h'])).toEqual({ command: 'help', topic: 'ls' });
    expect(parseCli(['--version'])).toEqual({ command: 'version' });
  });
});
