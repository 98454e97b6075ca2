import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isIrbError } from '@irb/errors';
import { staticInitBinary, staticInitPath } from '@irb/init';
import type { ContainerConfig } from '@irb/registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeRootfs, type Node } from '../test/fake-rootfs.ts';
import { DEFAULT_PATH, INIT_HELPER_PATH, planInit, renderRunSection } from './init.ts';
import { shellJoin, shellQuote } from './shell.ts';

const run = promisify(execFile);

const busyboxTree: Record<string, Node> = {
  '/bin': { type: 'directory' },
  '/bin/busybox': { type: 'file' },
  '/bin/sh': { type: 'symlink', target: 'busybox' },
  '/bin/mount': { type: 'symlink', target: '/bin/busybox' },
  '/bin/mkdir': { type: 'symlink', target: 'busybox' },
  '/bin/setpriv': { type: 'symlink', target: 'busybox' },
  '/etc': { type: 'directory' },
  '/etc/passwd': {
    type: 'file',
    text: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n',
  },
  '/etc/group': { type: 'file', text: 'root:x:0:\napp:x:1000:\nvideo:x:44:app,other\naudio:x:29:app\n' },
};

describe('shellQuote', () => {
  it('round-trips awkward words through a real shell', async () => {
    const words = ['plain', '', 'two words', "it's", '$HOME `id` $(id)', 'a\nb', '*', '\\', '"q"', '-n', 'é'];
    const { stdout } = await run('busybox', ['sh', '-c', `printf '%s\\0' ${shellJoin(words)}`]);
    expect(stdout.split('\0').slice(0, -1)).toEqual(words);
    expect(shellQuote('a b')).toBe("'a b'");
  });
});

describe('planInit', () => {
  it('refuses an image without /bin/sh and names `init`', async () => {
    const err = await planInit(fakeRootfs({ '/app': { type: 'file' } }), { Cmd: ['/app'] }).catch((e) => e);
    expect(isIrbError(err) && err.code).toBe('IRB_IMAGE_NO_SHELL');
    expect(String(err.message)).toContain('set `init`');
  });

  it('refuses a dangling /bin/sh symlink', async () => {
    const err = await planInit(
      fakeRootfs({ '/bin': { type: 'directory' }, '/bin/sh': { type: 'symlink', target: 'dash' } }),
      {
        Cmd: ['x'],
      },
    ).catch((e) => e);
    expect(err.code).toBe('IRB_IMAGE_NO_SHELL');
  });

  it('refuses an image without a command', async () => {
    const err = await planInit(fakeRootfs(busyboxTree), {}).catch((e) => e);
    expect(err.code).toBe('IRB_IMAGE_NO_COMMAND');
  });

  it('uses the busybox applet when mount is only inside busybox', async () => {
    const tree = { ...busyboxTree };
    delete tree['/bin/mount'];
    const plan = await planInit(fakeRootfs(tree), { Cmd: ['true'] });
    expect(plan.script).toContain('/bin/busybox mount -t');
  });

  it('needs a real user switch tool: busybox setpriv cannot change uid', async () => {
    const err = await planInit(fakeRootfs(busyboxTree), { Cmd: ['id'], User: 'app' }).catch((e) => e);
    expect(err.code).toBe('IRB_IMAGE_NO_USER_SWITCH');
    const withSetpriv = {
      ...busyboxTree,
      '/usr': { type: 'directory' },
      '/usr/bin': { type: 'directory' },
    } as Record<string, Node>;
    withSetpriv['/usr/bin/setpriv'] = { type: 'file' };
    delete withSetpriv['/bin/setpriv'];
    const plan = await planInit(fakeRootfs(withSetpriv), { Cmd: ['id'], User: 'app' });
    expect(plan.userSwitch?.argv).toEqual([
      '/usr/bin/setpriv',
      '--reuid=1000',
      '--regid=1000',
      '--groups=29,44',
      '--',
    ]);
    expect(plan.env).toContain('HOME=/home/app');
  });

  it('switches with su-exec using ids resolved from the image at build time', async () => {
    const tree = {
      ...busyboxTree,
      '/sbin': { type: 'directory' },
      '/sbin/su-exec': { type: 'file' },
    } as Record<string, Node>;
    const plan = await planInit(fakeRootfs(tree), { Cmd: ['id'], User: 'app:video' });
    expect(plan.userSwitch?.argv).toEqual(['/sbin/su-exec', '1000:44']);
    const numeric = await planInit(fakeRootfs(tree), { Cmd: ['id'], User: '4242' });
    expect(numeric.userSwitch?.argv).toEqual(['/sbin/su-exec', '4242:0']);
    expect(numeric.env).toContain('HOME=/');
  });

  it('fails clearly for a user name the image does not know', async () => {
    const err = await planInit(fakeRootfs(busyboxTree), { Cmd: ['id'], User: 'nobody2' }).catch((e) => e);
    expect(err.code).toBe('IRB_USER_UNKNOWN');
    expect(err.message).toContain('nobody2');
  });

  it('lists the mount points and WorkingDir the image lacks, parents first', async () => {
    const plan = await planInit(fakeRootfs(busyboxTree), { Cmd: ['true'], WorkingDir: '/srv/app/./data' });
    expect(plan.directories).toEqual([
      '/proc',
      '/sys',
      '/dev',
      '/run',
      '/tmp',
      '/srv',
      '/srv/app',
      '/srv/app/data',
    ]);
    expect(plan.workingDir).toBe('/srv/app/./data');
  });

  it('produces a script busybox sh and dash parse', async () => {
    const plan = await planInit(fakeRootfs(busyboxTree), {
      Entrypoint: ['/bin/echo', "it's"],
      Cmd: ['$(reboot)'],
      Env: ['A=1'],
    });
    expect(plan.script.startsWith('#!/bin/sh\n')).toBe(true);
    await run('busybox', ['sh', '-n', '-c', plan.script]);
    await run('sh', ['-n', '-c', plan.script]);
  });
});

describe("planInit with irb's helper (x86_64, aarch64)", () => {
  it('runs the program through the helper: user, groups, Entrypoint length, HOME and odd names as options', async () => {
    const plan = await planInit(
      fakeRootfs(busyboxTree),
      { Entrypoint: ['python3', '-u'], Cmd: ['app.py'], User: 'app', Env: ['my.var=1', 'A=2'] },
      { architecture: 'amd64' },
    );
    // busybox's setpriv cannot change uid, and no other tool is needed: the helper switches.
    expect(plan.userSwitch?.tool).toBe(INIT_HELPER_PATH);
    expect(plan.helper).toEqual({ path: '/irb/init', arch: 'x86_64', binary: staticInitBinary('x86_64') });
    expect(plan.script).toContain(
      "(echo 'irb: exec' 2>/dev/null >/dev/kmsg; exec /irb/init exec -u 1000 -g 1000 -G 29 -G 44 -E 2 -H -e my.var=1 -- python3 -u app.py)",
    );
    expect(plan.script).toContain('\n/irb/init setup\n');
    expect(plan.script).not.toContain('link set lo up');
    expect(plan.script).not.toContain('/irb/job.d');
    const arm = await planInit(
      fakeRootfs(busyboxTree),
      { Cmd: ['true'], Env: ['HOME=/x'] },
      { architecture: 'arm64' },
    );
    expect(arm.helper?.arch).toBe('aarch64');
    expect(arm.userSwitch).toBeUndefined();
    expect(arm.script).toContain('; exec /irb/init exec -- true)');
  });

  it('passes the modules, the baked network and the wait to setup, checked at build time', async () => {
    const plan = await planInit(
      fakeRootfs(busyboxTree),
      { Cmd: ['true'] },
      {
        architecture: 'amd64',
        modules: [
          '/lib/modules/6.1.0/kernel/net/core/failover.ko',
          '/lib/modules/6.1.0/kernel/drivers/net/virtio_net.ko',
        ],
        net: { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: ['10.0.2.3'] },
        netWaitMs: 2000,
      },
    );
    expect(plan.script).toContain(
      '\n/irb/init setup -m /lib/modules/6.1.0/kernel/net/core/failover.ko -m /lib/modules/6.1.0/kernel/drivers/net/virtio_net.ko -n 10.0.2.15::10.0.2.2:255.255.255.0:::off:10.0.2.3 -w 2000\n',
    );
    // The setup runs after the hostname and before the program.
    expect(plan.script.indexOf('/proc/sys/kernel/hostname')).toBeLessThan(
      plan.script.indexOf('/irb/init setup'),
    );
    expect(plan.script.indexOf('/irb/init setup')).toBeLessThan(plan.script.indexOf('/irb/init exec'));
    await run('busybox', ['sh', '-n', '-c', plan.script]);
    const refused = async (options: Parameters<typeof planInit>[2], code: string, message: RegExp) => {
      const err = await planInit(fakeRootfs(busyboxTree), { Cmd: ['true'] }, options).catch((e) => e);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    };
    await refused(
      { architecture: 's390x', modules: ['/m.ko'] },
      'IRB_OPTION_INVALID',
      /helper, which exists for x86_64 and aarch64, not for s390x/,
    );
    await refused({ net: '10.0.0.2::::::off' }, 'IRB_OPTION_INVALID', /not for an unknown architecture/);
    await refused(
      { architecture: 'amd64', modules: ['m.ko'] },
      'IRB_OPTION_INVALID',
      /"m.ko" is not absolute/,
    );
    await refused({ architecture: 'amd64', net: 'dhcp' }, 'IRB_NET_INVALID', /no static address/);
    await refused({ architecture: 'amd64', netWaitMs: 1.5 }, 'IRB_OPTION_INVALID', /netWaitMs 1.5/);
  });

  it('without a helper, says on the console that job files are not applied', async () => {
    const plan = await planInit(fakeRootfs(busyboxTree), { Cmd: ['true'] }, { architecture: 's390x' });
    expect(plan.helper).toBeUndefined();
    expect(plan.script).toContain(
      "[ -d /irb/job.d ] && echo 'irb: warning: /irb/job.d is not applied: this architecture has no irb init helper' >&2",
    );
  });
});

describe('the generated program section under a real shell', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-init-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function runSection(config: ContainerConfig): Promise<{ stdout: string; stderr: string }> {
    const plan = await planInit(fakeRootfs(busyboxTree), config);
    const section = renderRunSection({
      exports: plan.env.filter((kv) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(kv)),
      workingDir: plan.workingDir,
      runArgv: plan.argv,
    });
    // HOME and TERM stand for what the kernel passes to init; they must not leak into the program.
    return run('busybox', ['sh', '-c', section], {
      env: { HOME: '/', TERM: 'linux', PATH: process.env.PATH },
    });
  }

  it("runs Entrypoint + Cmd with exactly the config's Env, in WorkingDir, and reports the exit status", async () => {
    const prog = join(dir, 'prog');
    await writeFile(
      prog,
      '#!/bin/sh\nprintf "cwd=%s\\n" "$(pwd)"\nfor a in "$@"; do printf "arg=[%s]\\n" "$a"; done\nenv | LC_ALL=C sort | sed "s/^/env:/"\nexit 7\n',
      { mode: 0o755 },
    );
    const { stdout } = await runSection({
      Entrypoint: [prog, 'first arg'],
      Cmd: ["it's", '$(echo no)', 'a\nb', ''],
      Env: ['PATH=/usr/bin:/bin', 'GREETING=hello world', "QUOTE=it's", 'EMPTY=', 'GREETING=later wins'],
      WorkingDir: dir,
    });
    expect(stdout).toContain(`cwd=${dir}\n`);
    expect(stdout).toContain("arg=[first arg]\narg=[it's]\narg=[$(echo no)]\narg=[a\nb]\narg=[]\n");
    const env = stdout
      .split('\n')
      .filter((l) => l.startsWith('env:'))
      .map((l) => l.slice(4))
      .filter((l) => l !== 'PWD=' + dir && !l.startsWith('SHLVL=') && !l.startsWith('_='));
    expect(env).toEqual([
      'EMPTY=',
      'GREETING=later wins',
      'HOME=/root',
      'HOSTNAME=irb',
      'PATH=/usr/bin:/bin',
      "QUOTE=it's",
    ]);
    expect(stdout.trimEnd().endsWith('irb: exit status 7')).toBe(true);
  });

  it('defaults PATH, keeps exec semantics for builtins, and reports a missing program as 127', async () => {
    const { stdout } = await runSection({ Cmd: ['printenv', 'PATH'] });
    expect(stdout).toBe(`${DEFAULT_PATH}\nirb: exit status 0\n`);
    const missing = await runSection({ Cmd: ['/no/such/program'] });
    expect(missing.stdout).toBe('irb: exit status 127\n');
  });

  // The helper is irb's static init binary: on an x86_64 host it runs as a plain process.
  it.skipIf(process.arch !== 'x64')(
    'runs the program through the real helper with the env sh cannot export',
    async () => {
      // The program's argv, then its environment as `env` (not a shell, which drops odd names) sees it.
      const viaHelper = async (config: ContainerConfig) => {
        const plan = await planInit(fakeRootfs(busyboxTree), config, { architecture: 'amd64' });
        const section = renderRunSection({
          exports: plan.env.filter((kv) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(kv)),
          workingDir: plan.workingDir,
          runArgv: plan.runArgv.map((w) => (w === INIT_HELPER_PATH ? staticInitPath('x86_64') : w)),
        });
        return (await run('busybox', ['sh', '-c', section], { env: { HOME: '/', TERM: 'linux' } })).stdout;
      };
      const Env = ['PATH=/usr/bin:/bin', 'odd.name=x y', 'B=2'];
      const args = await viaHelper({
        Entrypoint: ['printf'],
        Cmd: ['arg=[%s]\\n', 'a b', ''],
        Env,
        WorkingDir: dir,
      });
      expect(args).toBe('arg=[a b]\narg=[]\nirb: exit status 0\n');
      const env = await viaHelper({ Entrypoint: ['env'], Env, WorkingDir: dir });
      expect(
        env
          .split('\n')
          .filter((l) => l !== `PWD=${dir}` && !l.startsWith('SHLVL=') && !l.startsWith('_=') && l !== '')
          .sort(),
      ).toEqual([
        'B=2',
        'HOME=/root',
        'HOSTNAME=irb',
        'PATH=/usr/bin:/bin',
        'irb: exit status 0',
        'odd.name=x y',
      ]);
      const missing = await viaHelper({ Cmd: ['no-such-program'], Env });
      expect(missing).toBe('irb: exit status 127\n');
    },
  );

  it('reports a WorkingDir it cannot enter', async () => {
    const out = await runSection({ Cmd: ['true'], WorkingDir: join(dir, 'missing') });
    expect(out.stdout).toBe('irb: exit status 126\n');
    expect(out.stderr).toContain('cannot change to WorkingDir');
  });
});
