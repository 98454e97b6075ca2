import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compress } from '@irb/compress';
import { type CpioEntry, packCpio } from '@irb/cpio';
import {
  decodeInitConfig,
  encodeInitConfig,
  encodeJobConfig,
  jobConfigPath,
  staticInitBinary,
} from '@irb/init';
import { fileEntry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeRootfs, type Node } from '../test/fake-rootfs.ts';
import { archiveConfig, decodeInitScript, shellWords } from './archive-config.ts';
import { planInit } from './init.ts';
import { shellJoin } from './shell.ts';

const busybox: Record<string, Node> = {
  '/bin': { type: 'directory' },
  '/bin/busybox': { type: 'file' },
  '/bin/sh': { type: 'symlink', target: 'busybox' },
  '/bin/mount': { type: 'symlink', target: 'busybox' },
  '/etc': { type: 'directory' },
  '/etc/passwd': {
    type: 'file',
    text: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n',
  },
  '/etc/group': { type: 'file', text: 'root:x:0:\napp:x:1000:\nvideo:x:44:app\n' },
  '/srv': { type: 'directory' },
};
const text = (b: Uint8Array[]) => b.map((x) => new TextDecoder().decode(x));

describe('shellWords', () => {
  it('reads back what shellJoin writes', () => {
    const words = ['plain', '', 'two words', "it's", '$HOME `id`', 'a\nb', '*', '\\', '"q"', '-n', 'é', "''"];
    expect(shellWords(shellJoin(words))).toEqual(words);
  });
});

describe('decodeInitScript', () => {
  it("reads the generated script's program, user, modules, network and exit back (with the helper)", async () => {
    const plan = await planInit(
      fakeRootfs(busybox),
      {
        Entrypoint: ['/bin/busybox', 'sh'],
        Cmd: ['-c', "echo it's $JOB"],
        Env: ['PATH=/bin', 'my.var=x y', 'MODE=a b'],
        WorkingDir: '/srv',
        User: 'app',
      },
      {
        architecture: 'amd64',
        hostname: 'guest',
        exitAction: 'reboot',
        modules: ['/usr/lib/modules/6.1/kernel/a.ko', '/usr/lib/modules/6.1/kernel/b c.ko'],
        net: '10.0.2.15:::255.255.255.0:::off',
        netWaitMs: 300,
      },
    );
    const decoded = decodeInitScript(plan.script);
    expect(decoded).toBeDefined();
    const d = decoded as NonNullable<typeof decoded>;
    expect(text(d.argv)).toEqual(['/bin/busybox', 'sh', '-c', "echo it's $JOB"]);
    expect(d.entrypointLength).toBe(2);
    expect(text(d.env).sort()).toEqual([...plan.env].sort());
    expect(new TextDecoder().decode(d.workingDir)).toBe('/srv');
    expect(d).toMatchObject({
      uid: 1000,
      gid: 1000,
      groups: [44],
      hostname: 'guest',
      onExit: 'reboot',
      net: '10.0.2.15:::255.255.255.0:::off',
      netWaitMs: 300,
      homeFromUser: true,
    });
    expect(text(d.modules)).toEqual([
      '/usr/lib/modules/6.1/kernel/a.ko',
      '/usr/lib/modules/6.1/kernel/b c.ko',
    ]);
  });

  it("without a helper, gives the words the script execs; another script is not irb's", async () => {
    const plan = await planInit(
      fakeRootfs(busybox),
      { Cmd: ['/bin/busybox', 'true'] },
      { architecture: 's390x' },
    );
    expect(text(decodeInitScript(plan.script)?.argv ?? [])).toEqual(['/bin/busybox', 'true']);
    expect(decodeInitScript('#!/bin/sh\nexec /app\n')).toBeUndefined();
    expect(decodeInitScript('')).toBeUndefined();
  });
});

describe('archiveConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Members as separate compressed streams, the later replacing what the earlier left. */
  const write = async (name: string, members: CpioEntry[][]) => {
    const path = join(dir, name);
    async function* all() {
      for (const [i, m] of members.entries()) {
        yield* compress(packCpio(m, { trailer: i === members.length - 1, device: { major: 0, minor: i } }), {
          format: 'zstd',
        });
      }
    }
    await pipeline(Readable.from(all()), createWriteStream(path));
    return path;
  };

  it('applies the job files of later members in name order over the parameter file', async () => {
    const conf = encodeInitConfig({
      argv: ['/agent', '--port', '8080'],
      entrypointLength: 1,
      env: ['PATH=/bin', 'MODE=base'],
      uid: 1000,
      gid: 1000,
      groups: [44],
      modules: ['/usr/lib/modules/6.1/kernel/a.ko'],
      net: '10.0.2.15:::255.255.255.0:::off',
      onExit: 'reboot',
    });
    expect(decodeInitConfig(conf).entrypointLength).toBe(1);
    const path = await write('static.cpio.zst', [
      [
        { type: 'directory', path: 'irb', mode: 0o755 },
        fileEntry('init', staticInitBinary('x86_64'), 0o755),
        fileEntry('irb/init.conf', conf, 0o600),
      ],
      [
        { type: 'directory', path: 'irb/job.d', mode: 0o755 },
        fileEntry(jobConfigPath(200).slice(1), encodeJobConfig({ env: ['JOB=2', 'MODE=job'], user: 'app' })),
        fileEntry(
          jobConfigPath(100).slice(1),
          encodeJobConfig({ cmd: ['--port', '9090'], modules: ['/m/b.ko'] }),
        ),
        fileEntry('irb/job.d/notes.txt', new TextEncoder().encode('not a job')),
      ],
    ]);
    const config = await archiveConfig(path);
    expect(config).toEqual({
      init: 'static',
      initArch: 'x86_64',
      entrypoint: ['/agent'],
      cmd: ['--port', '9090'],
      env: ['PATH=/bin', 'MODE=job', 'JOB=2'],
      workingDir: '/',
      user: 'app',
      groups: [],
      hostname: 'irb',
      exitAction: 'reboot',
      modules: ['/usr/lib/modules/6.1/kernel/a.ko', '/m/b.ko'],
      net: '10.0.2.15:::255.255.255.0:::off',
      netWaitMs: 5000,
      trace: false,
      jobs: [
        { path: jobConfigPath(100), cmd: ['--port', '9090'], modules: ['/m/b.ko'] },
        { path: jobConfigPath(200), env: ['JOB=2', 'MODE=job'], user: 'app' },
      ],
    });
  });

  it("says when /init is not irb's, or missing; refuses a job file the init would refuse", async () => {
    const other = await write('other.cpio.zst', [
      [fileEntry('init', new TextEncoder().encode('#!/bin/sh\nexec /app\n'), 0o755)],
    ]);
    expect(await archiveConfig(other)).toEqual({ init: 'other', jobs: [] });
    const none = await write('none.cpio.zst', [[{ type: 'directory', path: 'etc', mode: 0o755 }]]);
    expect(await archiveConfig(none)).toEqual({ init: 'none', jobs: [] });
    const bad = await write('bad.cpio.zst', [
      [fileEntry('irb/job.d/1.conf', new TextEncoder().encode('irb-job/1\0x\0'))],
    ]);
    const error = await archiveConfig(bad).catch((e) => e);
    expect(error.code).toBe('IRB_OPTION_INVALID');
    expect(error.message).toMatch(/\/irb\/job\.d\/1\.conf: job file has an unknown field/);
  });
});
