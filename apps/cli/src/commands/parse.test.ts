import { describe, expect, it } from 'vitest';
import { compressionFromName, defaultOutput } from '../kit/compression.ts';
import { normalizePlatform } from '../kit/options.ts';
import { didYouMean } from '../kit/usage.ts';
import { main } from '../main.ts';
import { COMMAND_NAMES, loadCommand } from './index.ts';

/** What the command `argv[0]` parses the rest of `argv` to. */
async function parse(argv: string[]): Promise<unknown> {
  const [name = '', ...rest] = argv;
  const command = loadCommand(name);
  if (!command) throw new Error(`no command ${name}`);
  return (await command).parse(rest);
}

/** Runs irb on `argv`; the usage error it prints (exit 2), without the pointer to --help. */
async function usage(argv: string[]): Promise<string> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (t) => (stdout += String(t)) },
    stderr: { write: (t) => (stderr += String(t)) },
  });
  // With --json the error is a JSON document on stdout instead of a line on stderr.
  const line = stdout.startsWith('{') ? `irb: error: ${JSON.parse(stdout).error.message}\n` : stderr;
  const message = /^irb: error: (.*); see "irb( \S+)? --help"\n$/s.exec(line)?.[1];
  if (code !== 2 || message === undefined)
    throw new Error(`no usage error for ${argv.join(' ')}: ${code} ${stdout}${stderr}`);
  return message;
}

describe('parseCli', async () => {
  it('parses a full build command', async () => {
    const args = await parse([
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
      '--slim',
      'docs,locales',
      '--slim',
      'docs',
      '--keep-only',
      'a.json',
      '--keep-only',
      'b.json',
      '--keep',
      '/etc/ssl/**',
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
      initKind: 'auto',
      exclude: ['/usr/share/doc/**'],
      slim: ['docs', 'locales'],
      keepOnly: ['a.json', 'b.json'],
      keep: ['/etc/ssl/**'],
      noCache: true,
      insecureRegistries: ['reg.lan:5000'],
      keychains: ['@acme/irb-auth#createVault'],
      json: true,
      quiet: false,
      verbose: false,
    });
  });

  it('picks the output name from the compression', async () => {
    expect(await parse(['build', 'alpine'])).toMatchObject({
      output: 'initramfs.cpio.gz',
      compression: 'gzip',
    });
    expect(await parse(['build', 'alpine', '-c', 'zstd'])).toMatchObject({ output: 'initramfs.cpio.zst' });
    expect(await parse(['build', 'alpine', '-c', 'none'])).toMatchObject({ output: 'initramfs.cpio' });
    expect(defaultOutput('gzip')).toBe('initramfs.cpio.gz');
  });

  it('refuses bad flags with a message naming the problem', async () => {
    expect(await usage(['build'])).toBe('missing IMAGE');
    expect(await usage(['build', 'a', 'b'])).toContain('unexpected argument "b"');
    expect(await usage(['build', 'a', '--frobnicate'])).toBe('unknown option "--frobnicate"');
    expect(await usage(['build', 'a', '-c', 'xz'])).toBe('-c must be gzip, zstd, lz4 or none, not "xz"');
    expect(await usage(['build', 'a', '-c', 'lz4', '--level', '2'])).toBe(
      '--level 2: lz4 has one level (1); leave --level out',
    );
    expect(await parse(['build', 'a', '-c', 'lz4', '--level', '1'])).toMatchObject({ level: 1 });
    expect(await usage(['build', 'a', '--level', '10'])).toContain(
      '--level must be a whole number from 1 to 9',
    );
    expect(await usage(['build', 'a', '-c', 'zstd', '--level', 'x'])).toContain('from 1 to 19');
    expect(await usage(['build', 'a', '-c', 'none', '--level', '1'])).toContain('does not apply');
    expect(await usage(['build', 'a', '--cache-dir', 'd', '--no-cache'])).toContain('exclude each other');
    expect(await usage(['build', 'a', '--inject', 'nocolon'])).toContain('SRC:DEST');
    expect(await usage(['build', 'a', '--on-exit', 'halt'])).toContain(
      '--on-exit must be poweroff or reboot',
    );
    expect(await usage(['build', 'a', '--keep-init', '--init', 'x'])).toContain('--keep-init');
    expect(await usage(['build', 'a', '--init-kind', 'busybox'])).toBe(
      '--init-kind must be auto, static or sh, not "busybox"',
    );
    expect(await usage(['build', 'a', '--init-kind', 'sh', '--init', 'x'])).toContain('it excludes --init');
    expect(await parse(['build', 'a', '--init-kind', 'sh'])).toMatchObject({ initKind: 'sh' });
    // The library's rule: only a kind other than auto chooses the generated /init.
    expect(await parse(['build', 'a', '--init-kind', 'auto', '--init', 'x'])).toMatchObject({ init: 'x' });
    expect(await usage(['build', 'a', '--init-kind', 'static', '--keep-init'])).toContain(
      'it excludes --keep-init',
    );
    expect(await usage(['build', 'a', '--keep-init', '--replace-init'])).toBe(
      '--keep-init excludes --replace-init and --init',
    );
    expect(await usage(['build', 'a', '--inject', ':/x'])).toContain('SRC:DEST');
    expect(await usage(['build', 'a', '--inject', 'x:usr/x'])).toBe(
      '--inject x:usr/x: DEST must be an absolute path in the image, e.g. x:/usr/x',
    );
    expect(await usage(['trace', 'a', '--inject', 'x:'])).toContain('SRC:DEST');
    expect(await usage(['build', 'a', '--level'])).toBe('--level needs a value');
    expect(await usage(['build', 'a', '--platform', 'linux'])).toContain('--platform wants os/arch');
    expect(await usage(['inspect', 'a', '--platform', 'a/b/c/d'])).toContain('--platform wants os/arch');
    expect(await usage(['frob'])).toBe(`unknown command "frob" (commands: ${COMMAND_NAMES.join(', ')})`);
    expect(await usage(['boot'])).toBe('missing ARCHIVE');
    expect(await usage(['boot', 'a', '--memory', '12'])).toContain('--memory must be a whole number from 64');
    expect(await usage(['boot', 'a', '--timeout', '-1'])).toBe(
      '--timeout must be a positive number of seconds, not "-1"',
    );
  });

  it("says node:util's parse errors in one line of its own", async () => {
    expect(await usage(['build', 'a', '--inject'])).toBe('--inject needs a value');
    expect(await usage(['build', 'a', '-o'])).toBe('-o/--output needs a value');
    expect(await usage(['build', 'a', '--json=1'])).toBe('--json takes no value');
    expect(await usage(['build', 'a', '-o', '-x'])).toBe(
      '-o/--output needs a value; "-x" looks like an option (if it is the value, write --output=-x)',
    );
    expect(await usage(['boot', 'a', '-m', '-5'])).toBe(
      '--memory must be a whole number from 64 to 1048576, not "-5"',
    );
    expect(await usage(['trace', 'a', '--timeout', '-1'])).toBe(
      '--timeout must be a whole number from 1 to 86400, not "-1"',
    );
    expect(await usage(['cache'])).toBe('missing the action: ls, prune, clear or path');
    expect(await usage(['cache', 'clear', '--max-size', '1G'])).toBe('unknown option "--max-size"');
    expect(await usage(['cache', 'path', 'extra'])).toBe('unexpected argument "extra"');
    expect(await usage(['cache', 'clean'])).toBe('unknown cache action "clean" (did you mean "clear"?)');
    expect(await parse(['cache', 'clear', '--cache-dir', 'd', '--json'])).toMatchObject({
      action: 'clear',
      cacheDir: 'd',
      json: true,
    });
    expect(await parse(['cache', 'path'])).toMatchObject({ action: 'path', json: false });
  });

  it('suggests the closest command or flag for a typo', async () => {
    expect(await usage(['buld', 'alpine'])).toBe('unknown command "buld" (did you mean "build"?)');
    expect(await usage(['inpsect', 'alpine'])).toBe('unknown command "inpsect" (did you mean "inspect"?)');
    expect(await usage(['--verison'])).toBe('unknown option "--verison" (did you mean --version?)');
    expect(await usage(['build', 'a', '--cach-dir', 'd'])).toBe(
      'unknown option "--cach-dir" (did you mean --cache-dir?)',
    );
    expect(await usage(['build', 'a', '--no-cach'])).toBe(
      'unknown option "--no-cach" (did you mean --no-cache?)',
    );
    expect(await usage(['build', 'a', '--insecure', 'h'])).toBe(
      'unknown option "--insecure" (did you mean --insecure-registry?)',
    );
    expect(await usage(['boot', 'a', '--memroy', '512'])).toBe(
      'unknown option "--memroy" (did you mean --memory?)',
    );
    expect(didYouMean('zzzzzz', ['build', 'boot'])).toBeUndefined();
  });

  it('reads an architecture alone as linux/ARCH, as docker does', async () => {
    expect(await parse(['build', 'a', '--platform', 'arm64'])).toMatchObject({ platform: 'linux/arm64' });
    expect(await parse(['inspect', 'a', '--platform', 'arm64/v8'])).toMatchObject({
      platform: 'linux/arm64/v8',
    });
    expect(await parse(['inspect', 'a', '--platform', 'linux/amd64'])).toMatchObject({
      platform: 'linux/amd64',
    });
    expect(normalizePlatform('windows/amd64')).toBe('windows/amd64');
    expect(await usage(['build', 'a', '--platform', 'sparc'])).toContain(
      '--platform wants os/arch[/variant]',
    );
  });

  it('infers the compression from a known -o ending, and refuses a contradiction', async () => {
    expect(await parse(['build', 'a', '-o', 'x.cpio.zst'])).toMatchObject({ compression: 'zstd' });
    expect(await parse(['build', 'a', '-o', 'x.ZSTD'])).toMatchObject({ compression: 'zstd' });
    expect(await parse(['build', 'a', '-o', 'x.cpio.gz'])).toMatchObject({ compression: 'gzip' });
    expect(await parse(['build', 'a', '-o', 'x.cpio'])).toMatchObject({ compression: 'none' });
    expect(await parse(['build', 'a', '-o', 'initrd.img'])).toMatchObject({ compression: 'gzip' });
    expect(await parse(['build', 'a', '-o', 'initrd.img', '-c', 'zstd'])).toMatchObject({
      compression: 'zstd',
    });
    expect(await parse(['build', 'a', '-o', '-', '-c', 'zstd'])).toMatchObject({
      output: '-',
      compression: 'zstd',
    });
    expect(await parse(['build', 'a', '-o', 'x.zst', '-c', 'zstd'])).toMatchObject({ compression: 'zstd' });
    expect(await usage(['build', 'a', '-o', 'x.cpio.zst', '-c', 'gzip'])).toBe(
      '-o x.cpio.zst names zstd but -c gzip was given; drop -c or rename the output',
    );
    expect(await usage(['build', 'a', '-o', 'x.cpio', '-c', 'gzip'])).toContain(
      'names a plain cpio but -c gzip',
    );
    expect(await parse(['build', 'a', '-o', 'x.cpio.lz4'])).toMatchObject({ compression: 'lz4' });
    expect(await parse(['build', 'a', '-c', 'lz4'])).toMatchObject({ output: 'initramfs.cpio.lz4' });
    expect(await usage(['build', 'a', '-o', 'x.cpio.xz'])).toBe(
      '-o x.cpio.xz: irb does not write xz; name the file .gz, .zst, .lz4 or .cpio',
    );
    // The level range follows the inferred compression (zstd goes to 19, gzip to 9).
    expect(await parse(['build', 'a', '-o', 'x.cpio.zst', '--level', '12'])).toMatchObject({ level: 12 });
    expect(compressionFromName('a.tar.xz')).toEqual({ foreign: 'xz' });
    expect(compressionFromName('a.GZ')).toEqual({ writes: 'gzip' });
    expect(compressionFromName('initrd.img')).toBeUndefined();
  });

  it('refuses an append output named for another compression, as build does', async () => {
    expect(await usage(['append', 'b', '-o', 'x.cpio.lz4', '-c', 'gzip', '--inject', 'a:/a'])).toBe(
      '-o x.cpio.lz4 names lz4 but -c gzip was given; drop -c or rename the output',
    );
    expect(await usage(['append', 'b', '-o', 'x.cpio.xz', '--inject', 'a:/a'])).toBe(
      '-o x.cpio.xz: irb does not write xz; name the file .gz, .zst, .lz4 or .cpio',
    );
    expect(
      await parse(['append', 'b', '-o', 'x.cpio.zst', '--inject', 'a:/a', '--level', '12']),
    ).toMatchObject({
      compression: 'zstd',
      level: 12,
    });
    expect(await parse(['append', 'b', '-o', 'x.img', '--inject', 'a:/a'])).not.toHaveProperty('compression');
    expect(await usage(['append', 'b', '-o', 'x', '--inject', 'a:/a', '--level', '5'])).toMatch(
      /^--level needs -c/,
    );
    expect(await usage(['append', 'b', '-o', 'x', '--inject', 'a:/a', '-c', 'lz4', '--level', '3'])).toBe(
      '--level 3: lz4 has one level (1); leave --level out',
    );
    expect(await usage(['append', 'b', '-o', 'x', '--inject'])).toBe('--inject needs a value');
    expect(await usage(['pull', 'r', '-o', 'x.cpio.bz2'])).toBe(
      '-o x.cpio.bz2: irb does not write bzip2; name the file .gz, .zst, .lz4 or .cpio',
    );
    expect(await parse(['pull', 'r', '-o', 'x.cpio.gz'])).toMatchObject({ compression: 'gzip' });
  });

  it('refuses a relative --inject DEST', async () => {
    expect(await usage(['build', 'a', '--inject', 'agent:usr/bin/agent'])).toBe(
      '--inject agent:usr/bin/agent: DEST must be an absolute path in the image, e.g. agent:/usr/bin/agent',
    );
  });

  it('--timeout none boots without a time limit', async () => {
    expect(await parse(['boot', 'x.cpio.gz', '--timeout', 'none'])).toMatchObject({
      timeoutS: Number.POSITIVE_INFINITY,
    });
    expect(await usage(['boot', 'a', '--timeout', 'never'])).toBe(
      '--timeout must be a positive number of seconds, not "never"',
    );
  });

  it('passes everything after -- to the kernel', async () => {
    expect(
      await parse(['boot', 'x.cpio.gz', '--expect', 'ok', '--timeout', '30', '--', 'quiet', '--x']),
    ).toEqual({
      archive: 'x.cpio.gz',
      expect: 'ok',
      timeoutS: 30,
      kernelArgs: ['quiet', '--x'],
      net: false,
      forwards: [],
      timeline: false,
      runs: 1,
      json: false,
      quiet: false,
      verbose: false,
    });
  });

  it('reads --slim presets (all, commas, repeats) and refuses unknown ones with a guess', async () => {
    expect(await parse(['build', 'a', '--slim', 'all'])).toMatchObject({
      slim: ['docs', 'locales', 'caches', 'devel'],
    });
    expect(await parse(['build', 'a', '--slim', 'caches, docs', '--slim', 'caches'])).toMatchObject({
      slim: ['caches', 'docs'],
    });
    expect(await usage(['build', 'a', '--slim', 'doc'])).toBe(
      'unknown slim preset "doc" (did you mean "docs"?)',
    );
    expect(await usage(['build', 'a', '--slim', 'python'])).toBe(
      'unknown slim preset "python" (presets: docs, locales, caches, devel, all)',
    );
    expect(await usage(['build', 'a', '--slim', ','])).toBe(
      '--slim needs a preset: docs, locales, caches, devel, all',
    );
    expect(await usage(['build', 'a', '--keep', '/etc/**'])).toMatch(
      /^--keep adds paths to what a trace keeps; give the trace with --keep-only/,
    );
    expect(await usage(['trace', 'a', '--slim', 'locale'])).toBe(
      'unknown slim preset "locale" (did you mean "locales"?)',
    );
  });

  it("reads boot --net and --forward, which implies --net; words after -- are the kernel's", async () => {
    expect(await parse(['boot', 'x.cpio', '--net'])).toMatchObject({ net: true, forwards: [] });
    expect(
      await parse(['boot', 'x.cpio', '--forward', '8080:80', '--forward=127.0.0.1:0:22', '--timeline']),
    ).toMatchObject({ net: true, forwards: ['8080:80', '127.0.0.1:0:22'], timeline: true });
    expect(await parse(['boot', 'x.cpio', '--', '--forward', '1:2'])).toMatchObject({
      net: false,
      forwards: [],
      kernelArgs: ['--forward', '1:2'],
    });
    expect(await usage(['boot', 'x.cpio', '--forward'])).toBe('--forward needs a value');
    expect(await usage(['boot', 'x.cpio', '--net=1'])).toBe('--net takes no value');
  });

  it('reads boot --timeline, --runs and --json, which go together', async () => {
    expect(await parse(['boot', 'x.cpio', '--timeline', '--runs', '5', '--json'])).toMatchObject({
      timeline: true,
      runs: 5,
      json: true,
    });
    expect(await usage(['boot', 'x.cpio', '--runs', '5'])).toBe(
      '--runs goes with --timeline (irb boot ARCHIVE --timeline --runs N)',
    );
    expect(await usage(['boot', 'x.cpio', '--json'])).toBe(
      '--json goes with --timeline (irb boot ARCHIVE --timeline --json)',
    );
    expect(await usage(['boot', 'x.cpio', '--timeline', '--runs', '0'])).toBe(
      '--runs must be a whole number from 1 to 100, not "0"',
    );
    expect(await usage(['boot', 'x.cpio', '--timeline', '--expect', 'hi'])).toBe(
      '--timeline boots until the guest powers off; it excludes --expect',
    );
  });

  it('reads irb trace and irb analyze', async () => {
    expect(await parse(['trace', 'app:1', '--timeout', '30', '--slim', 'docs'])).toMatchObject({
      image: 'app:1',
      output: 'trace.json',
      timeoutS: 30,
      slim: ['docs'],
    });
    expect(await usage(['trace', 'app:1', '--timeout', '1.5'])).toBe(
      '--timeout must be a whole number from 1 to 86400, not "1.5"',
    );
    expect(await usage(['trace', 'app:1', '-o', '-'])).toMatch(/^-o needs a file name/);
    expect(await usage(['trace', 'app:1', '--keep-only', 't.json'])).toBe('unknown option "--keep-only"');
    expect(await parse(['analyze', 'x.cpio.gz', '--top', '5', '--json'])).toMatchObject({
      target: 'x.cpio.gz',
      top: 5,
      json: true,
    });
    expect(await parse(['analyze', '-'])).toMatchObject({ target: '-' });
  });

  it('names --verbose in the help of every command that takes it', async () => {
    for (const name of COMMAND_NAMES) {
      const command = await loadCommand(name)!;
      const args = name === 'cache' ? ['ls', '--verbose'] : ['x', '--verbose'];
      const accepted = await parse([name, ...args]).then(
        () => true,
        (error: Error) => !/unknown option "--verbose"/.test(error.message),
      );
      expect(accepted, name).toBe(true);
      expect(command.help, name).toMatch(/--verbose/);
    }
  });

  it('answers help', async () => {
    expect(await parse(['build', '--help'])).toBe('help');
    expect(await parse(['ls', '-h'])).toBe('help');
    expect(await parse(['boot', 'x', '--', '-h'])).toMatchObject({ kernelArgs: ['-h'] });
  });
});
