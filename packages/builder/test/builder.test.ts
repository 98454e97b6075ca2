import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeInitramfs } from '@irb/compress';
import { type CpioEntry, readCpio } from '@irb/cpio';
import { decodeInitConfig, staticInitBinary } from '@irb/init';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withExtras } from '../src/extras.ts';
import { type BuildProgressEvent, InitramfsBuilder, listArchive } from '../src/index.ts';
import { DEFAULT_PATH } from '../src/init.ts';

const run = promisify(execFile);

/**
 * The bytes of `name` as the kernel leaves it after unpacking every member in order (the last
 * member that has the name wins); `undefined` when no member has it.
 */
async function fileBytes(archive: string, name: string): Promise<Uint8Array> {
  let found: Uint8Array | undefined;
  const source = decodeInitramfs(createReadStream(archive) as AsyncIterable<Uint8Array>);
  for await (const e of readCpio(source)) {
    if (e.name === name) found = e.type === 'file' ? await e.bytes() : undefined;
  }
  return found ?? new Uint8Array(0);
}

async function fileFromArchive(archive: string, name: string): Promise<string> {
  return new TextDecoder().decode(await fileBytes(archive, name));
}

describe('InitramfsBuilder against a real registry', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let manifestDigest: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-builder-'));
    registry = await startRegistry();
    const base = await buildTar([
      { type: 'directory', path: 'bin/' },
      { type: 'file', path: 'bin/sh', content: '#!fake shell', mode: 0o755 },
      { type: 'symlink', path: 'bin/mount', target: 'sh' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'file', path: 'usr/bin/setpriv', content: 'fake', mode: 0o755 },
      {
        type: 'file',
        path: 'bin/ping',
        content: 'ping',
        mode: 0o4755,
        xattrs: { 'security.capability': 'x' },
      },
      { type: 'directory', path: 'etc/' },
      {
        type: 'file',
        path: 'etc/passwd',
        content: 'root:x:0:0::/root:/bin/sh\nsvc:x:500:500::/home/svc:/bin/sh\n',
      },
      { type: 'file', path: 'etc/group', content: 'root:x:0:\nsvc:x:500:\nextra:x:77:svc\n' },
      { type: 'file', path: 'big', content: 'x'.repeat(200_000) },
    ]);
    // The upper layer moves svc to uid 600: the generated /init must use the final passwd.
    const upper = await buildTar([
      {
        type: 'file',
        path: 'etc/passwd',
        content: 'root:x:0:0::/root:/bin/sh\nsvc:x:600:600::/srv/svc:/bin/sh\n',
      },
      { type: 'file', path: 'etc/.wh.group' },
      { type: 'file', path: 'etc/group', content: 'root:x:0:\nsvc:x:600:\nextra:x:78:svc\n' },
    ]);
    const built = buildImage({
      layers: [base, upper],
      runtime: {
        Entrypoint: ['/app'],
        Cmd: ['--flag'],
        User: 'svc',
        WorkingDir: '/srv/svc/work',
        Env: ['A=1'],
      },
    });
    manifestDigest = await pushImage(registry, 'lib/test', 'v1', built);
    image = `${registry.host}/lib/test:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds, reports what happened in order, and the summary matches the file', async () => {
    const events: BuildProgressEvent[] = [];
    const out = join(dir, 'a.cpio.zst');
    const summary = await new InitramfsBuilder({
      image,
      compression: 'zstd',
      cache: false,
      onProgress: (e) => events.push(e),
    }).build(out);
    expect(summary.manifestDigest).toBe(manifestDigest);
    expect(summary.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(summary.platform).toBe('linux/amd64');
    expect(summary.compressedBytes).toBe((await stat(out)).size);
    expect(summary.lostXattrs).toEqual([{ path: '/bin/ping', names: ['security.capability'] }]);
    const names: string[] = [];
    for await (const e of listArchive(out)) names.push(e.name);
    expect(summary.entries).toBe(names.length);
    expect(names).toContain('srv/svc/work');
    expect(names.indexOf('srv')).toBeLessThan(names.indexOf('srv/svc'));
    expect(names).toContain('dev/console');
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('resolve');
    // The config blob may report progress before the image is resolved; layers come after.
    expect(types.indexOf('resolved')).toBeLessThan(types.indexOf('index'));
    expect(types.at(-1)).toBe('done');
    expect(types.indexOf('index')).toBeLessThan(types.indexOf('compress'));
    expect(types.filter((t) => t === 'blob').length).toBeGreaterThan(0);

    // The default init is irb's static one: the binary, and its parameters resolved at build time.
    expect(summary.init).toBe('generated');
    expect(summary.initKind).toBe('static');
    expect(await fileBytes(out, 'init')).toEqual(staticInitBinary('x86_64'));
    const params = decodeInitConfig(await fileBytes(out, 'irb/init.conf'));
    expect(params).toMatchObject({ uid: 600, gid: 600, groups: [78], hostname: 'irb', onExit: 'poweroff' });
    expect(params.argv.map((a) => Buffer.from(a).toString())).toEqual(['/app', '--flag']);
    expect(params.env.map((a) => Buffer.from(a).toString())).toEqual([
      `PATH=${DEFAULT_PATH}`,
      'A=1',
      'HOSTNAME=irb',
      'HOME=/srv/svc',
    ]);
    expect(Buffer.from(params.workingDir).toString()).toBe('/srv/svc/work');
    // This test image has no /app: the build says the VM would not run it.
    expect(summary.warnings).toEqual([
      `the image's command "/app" is not in the archive, so the program will not start; fix the image's Entrypoint/Cmd, or add the program with \`inject\``,
    ]);

    const sh = join(dir, 'a-sh.cpio');
    const shSummary = await new InitramfsBuilder({
      image,
      compression: 'none',
      cache: false,
      initKind: 'sh',
    }).build(sh);
    expect(shSummary.initKind).toBe('sh');
    expect(shSummary.warnings).toEqual([]);
    const init = await fileFromArchive(sh, 'init');
    // On x86_64 the script runs the program through irb's static init as its helper, which
    // switches user (the image's setpriv is not needed) and applies /irb/job.d.
    expect(init).toContain('/irb/init setup\n');
    expect(init).toContain('exec /irb/init exec -u 600 -g 600 -G 78 -E 1 -H -- /app --flag)');
    expect(await fileBytes(sh, 'irb/init')).toEqual(staticInitBinary('x86_64'));
    expect(init).toContain('export HOME=/srv/svc');
    expect(init).toContain('if cd /srv/svc/work; then');
  });

  it('gives byte-identical output for the same inputs', async () => {
    const a = join(dir, 'd1.cpio.gz');
    const b = join(dir, 'd2.cpio.gz');
    await new InitramfsBuilder({ image, threads: 1 }).build(a);
    await new InitramfsBuilder({ image, threads: 2 }).build(b);
    expect(Buffer.compare(await readFile(a), await readFile(b))).toBe(0);
  });

  it('streams the same bytes as it writes, with the summary after the last byte', async () => {
    const file = join(dir, 's.cpio.gz');
    await new InitramfsBuilder({ image }).build(file);
    const stream = new InitramfsBuilder({ image }).stream();
    const parts: Uint8Array[] = [];
    for await (const chunk of stream) parts.push(chunk);
    const streamed = Buffer.concat(parts);
    expect(Buffer.compare(streamed, await readFile(file))).toBe(0);
    const summary = await stream.summary;
    expect(summary.output).toBe('-');
    expect(summary.compressedBytes).toBe(streamed.byteLength);

    const abandoned = new InitramfsBuilder({ image }).stream();
    for await (const _ of abandoned) break;
    await expect(abandoned.summary).rejects.toMatchObject({ code: 'IRB_STREAM_ABANDONED' });
  });

  it('an abort while packing leaves no file and no temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'abort-'));
    const controller = new AbortController();
    const err = await new InitramfsBuilder({
      image,
      compression: 'none',
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'resolved') controller.abort(new Error('user cancelled'));
      },
    })
      .build(join(sub, 'x.cpio'))
      .catch((e) => e);
    expect(err.message).toBe('user cancelled');
    expect(await readdir(sub)).toEqual([]);
  });

  it('an `inject` to /init counts as a custom init', async () => {
    const sub = await mkdtemp(join(dir, 'inj-'));
    const initFile = join(sub, 'my-init');
    await writeFile(initFile, '#!/bin/sh\necho mine\n');
    const out = join(sub, 'x.cpio');
    const summary = await new InitramfsBuilder({
      image,
      compression: 'none',
      inject: [`${initFile}:/init`],
    }).build(out);
    expect(summary.init).toBe('file');
    expect(await fileFromArchive(out, 'init')).toBe('#!/bin/sh\necho mine\n');
    const err = await new InitramfsBuilder({ image, inject: [`${initFile}:/init`], init: initFile })
      .build(join(sub, 'y'))
      .catch((e) => e);
    expect(err.code).toBe('IRB_OPTION_INVALID');
  });

  it('caches parsed layer headers in the cache; a warm rebuild gives the same bytes', async () => {
    const sub = await mkdtemp(join(dir, 'index-cache-'));
    const cacheDir = sub;
    const first = join(sub, 'first.cpio');
    await new InitramfsBuilder({ image, compression: 'none', cacheDir }).build(first);
    const index = await readdir(join(sub, 'index'));
    expect(index.filter((name) => name.endsWith('.idx'))).toHaveLength(2);
    const second = join(sub, 'second.cpio');
    await new InitramfsBuilder({ image, compression: 'none', cacheDir }).build(second);
    expect(Buffer.compare(await readFile(first), await readFile(second))).toBe(0);
    // Damaged entries are read around, not trusted.
    for (const name of index) await writeFile(join(sub, 'index', name), 'garbage');
    const third = join(sub, 'third.cpio');
    await new InitramfsBuilder({ image, compression: 'none', cacheDir }).build(third);
    expect(Buffer.compare(await readFile(first), await readFile(third))).toBe(0);

    const off = await mkdtemp(join(dir, 'no-cache-'));
    await new InitramfsBuilder({
      image,
      compression: 'none',
      cache: false,
      cacheDir: join(off, 'cache'),
    }).build(join(off, 'x.cpio'));
    expect(await readdir(off)).toEqual(['x.cpio']);
  });

  it('a cold build packs the bodies its index pass spooled: same bytes as reading the layers again, nothing left', async () => {
    const sub = await mkdtemp(join(dir, 'spool-'));
    const cacheDir = sub;
    const cold = join(sub, 'cold.cpio.gz');
    await new InitramfsBuilder({ image, cacheDir }).build(cold);
    // The spool files lived in the cache's spool area, without a name.
    expect(await readdir(join(cacheDir, 'spool'))).toEqual([]);
    expect(await readdir(join(cacheDir, 'tmp'))).toEqual([]);
    // Index cache hit, output cache miss: no spool, every body decompressed from its blob again.
    await rm(join(sub, 'output'), { recursive: true });
    const reread = join(sub, 'reread.cpio.gz');
    await new InitramfsBuilder({ image, cacheDir }).build(reread);
    expect(Buffer.compare(await readFile(cold), await readFile(reread))).toBe(0);

    // Without the cache the spool goes to the system's temp directory, and leaves it as it was.
    const before = (await readdir(tmpdir())).filter((name) => name.startsWith('.spool-'));
    const off = join(sub, 'off.cpio.gz');
    await new InitramfsBuilder({ image, cache: false }).build(off);
    expect(Buffer.compare(await readFile(cold), await readFile(off))).toBe(0);
    expect((await readdir(tmpdir())).filter((name) => name.startsWith('.spool-'))).toEqual(before);

    // A build that fails after the index pass releases the spools too.
    const failed = await new InitramfsBuilder({
      image,
      cacheDir: join(sub, 'again'),
      onProgress: (e) => {
        if (e.type === 'pack') throw new Error('stop packing');
      },
    })
      .build(join(sub, 'failed.cpio.gz'))
      .catch((e: unknown) => e);
    expect((failed as Error).message).toBe('stop packing');
    expect(await readdir(join(sub, 'again', 'spool'))).toEqual([]);
    expect(await readdir(join(sub, 'again', 'tmp'))).toEqual([]);
  });

  it('blames `exclude` and `inject`, not the image, when they take /bin/sh away', async () => {
    for (const pattern of ['/**', 'bin']) {
      const err = await new InitramfsBuilder({ image, cache: false, exclude: [pattern], initKind: 'sh' })
        .build(join(dir, 'excluded'))
        .catch((e) => e);
      expect(err.code).toBe('IRB_OPTION_INVALID');
      expect(err.message).toBe(
        `\`exclude\` pattern '${pattern}' removed /bin/sh (or what it links to), which the generated /init needs; ` +
          'narrow the pattern, or set `init` to a static init program',
      );
    }
    const agent = join(dir, 'agent');
    await writeFile(agent, 'agent');
    const err = await new InitramfsBuilder({ image, cache: false, inject: [`${agent}:/bin`], initKind: 'sh' })
      .build(join(dir, 'injected'))
      .catch((e) => e);
    // A later member cannot replace the image's /bin directory with a file: refused, naming the inject.
    expect(err.code).toBe('IRB_INJECT_DEST_INVALID');
    expect(err.message).toBe(
      `\`inject\` ${agent}:/bin puts a file at /bin, where the image has a directory; an overlay member cannot replace a directory (the kernel removes only empty ones): choose a path below it`,
    );
    // The static init needs no shell; the User's passwd entry went with '/**', and the message says so.
    const noUser = await new InitramfsBuilder({ image, cache: false, exclude: ['/**'] })
      .build(join(dir, 'excluded'))
      .catch((e) => e);
    expect(noUser.code).toBe('IRB_OPTION_INVALID');
    expect(noUser.message).toMatch(
      /^the image's User "svc" .*: `exclude` \('\/\*\*'\) removed \d+ paths, perhaps \/etc\/passwd or \/etc\/group; narrow the patterns$/,
    );
    // A pattern that leaves /bin/sh alone changes nothing about the init.
    const ok = await new InitramfsBuilder({ image, cache: false, exclude: ['/big'] }).build(join(dir, 'ok'));
    expect(ok.excluded).toBe(1);
    expect(await readdir(dir)).not.toContain('excluded');
  });

  it('writes into a FIFO in place, so a build can be piped without a temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'fifo-'));
    const fifo = join(sub, 'out');
    await run('mkfifo', [fifo]);
    const reader = run('sh', ['-c', `cat '${fifo}' | wc -c`]);
    const summary = await new InitramfsBuilder({ image, cache: false }).build(fifo);
    expect(Number((await reader).stdout.trim())).toBe(summary.compressedBytes);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(sub)).toEqual(['out']);
  });

  // Issue 15: `-o /dev/null` as root replaced the device with a regular file. A private node with
  // /dev/null's numbers stands in for it; as an unprivileged user (uid 65534) the build must work
  // too, although the node's directory is not writable for that user.
  it.skipIf(process.getuid?.() !== 0)(
    'writes into a character device in place, as root and as a user who cannot write its directory',
    async () => {
      const sub = await mkdtemp(join(dir, 'dev-'));
      const node = join(sub, 'null');
      await run('mknod', ['-m', '666', node, 'c', '1', '3']);
      const before = await lstat(node);
      await new InitramfsBuilder({ image, cache: false }).build(node);
      const script = `
        import { InitramfsBuilder } from ${JSON.stringify(join(import.meta.dirname, '../src/index.ts'))};
        const s = await new InitramfsBuilder({ image: ${JSON.stringify(image)}, cache: false }).build(${JSON.stringify(node)});
        console.log(s.compressedBytes);
      `;
      await chmod(dir, 0o755);
      await chmod(sub, 0o755);
      const { stdout } = await run(
        process.execPath,
        ['--conditions=@irb/source', '--input-type=module', '-e', script],
        { uid: 65534, gid: 65534, env: { ...process.env, HOME: sub } },
      );
      expect(Number(stdout.trim())).toBeGreaterThan(0);
      const after = await lstat(node);
      expect(after.isCharacterDevice()).toBe(true);
      expect([after.ino, after.rdev]).toEqual([before.ino, before.rdev]);
      expect(await readdir(sub)).toEqual(['null']);
    },
  );

  it('refuses bad options before any download', async () => {
    expect(() => new InitramfsBuilder({ image: '' })).toThrow(/needs an image/);
    const err = await new InitramfsBuilder({ image, inject: ['no-colon'] })
      .build(join(dir, 'n'))
      .catch((e) => e);
    expect(err.code).toBe('IRB_INJECT_SPEC_INVALID');
  });
});

describe('withExtras', () => {
  it('splices missing entries right after their nearest existing parent', async () => {
    const dirEntry = (path: string): CpioEntry => ({ type: 'directory', path, mode: 0o755 });
    async function* source(): AsyncGenerator<CpioEntry> {
      for (const p of ['.', 'dev', 'srv', 'usr', 'usr/bin']) yield dirEntry(p);
    }
    const extras: CpioEntry[] = [
      dirEntry('proc'),
      dirEntry('srv/app'),
      dirEntry('srv/app/data'),
      { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    ];
    const out: string[] = [];
    for await (const e of withExtras(source(), extras)) out.push(String(e.path));
    expect(out).toEqual([
      '.',
      'proc',
      'dev',
      'dev/console',
      'srv',
      'srv/app',
      'srv/app/data',
      'usr',
      'usr/bin',
    ]);
  });
});
