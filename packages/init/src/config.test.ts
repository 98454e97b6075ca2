import { describe, expect, it } from 'vitest';
import {
  decodeInitConfig,
  encodeInitConfig,
  INIT_CONFIG_MAGIC,
  INIT_CONFIG_MAX_BYTES,
  INIT_CONFIG_PATH,
} from './index.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** The file as text with NULs shown as `|`, for exact layout checks. */
const shown = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1').replaceAll('\0', '|');

describe('encodeInitConfig', () => {
  it('writes NUL-terminated tagged fields after the magic, in a fixed order', () => {
    const bytes = encodeInitConfig({
      argv: ['/app', 'two words'],
      env: ['PATH=/bin', 'A=1'],
      workingDir: '/work',
      uid: 1000,
      gid: 1001,
      groups: [27, 1000],
      hostname: 'vm-1',
      onExit: 'reboot',
    });
    expect(shown(bytes)).toBe(
      'irb-init/1|a/app|atwo words|ePATH=/bin|eA=1|w/work|u1000|g1001|G27|G1000|hvm-1|xreboot|',
    );
    expect(INIT_CONFIG_PATH).toBe('/irb/init.conf');
    expect(INIT_CONFIG_MAGIC).toBe('irb-init/1');
  });

  it('fills the defaults: no env, /, root, no groups, hostname irb, power off', () => {
    expect(shown(encodeInitConfig({ argv: ['/app'] }))).toBe('irb-init/1|a/app|w/|u0|g0|hirb|xpoweroff|');
  });

  it('carries any byte but NUL unchanged, and empty arguments', () => {
    const odd = new Uint8Array([0x41, 0x3d, 0xff, 0x80, 0x9f, 0x0a, 0x09, 0x01]); // A=<bytes>
    const argv = [text('/bin/prog'), new Uint8Array(0), new Uint8Array([0xc3, 0x28, 0x0a])];
    const workingDir = new Uint8Array([0x2f, 0xe9, 0x20, 0x78]); // "/é x" in latin1
    const bytes = encodeInitConfig({ argv, env: [odd, 'EMPTY=', 'my.name-x=a=b'], workingDir });
    const back = decodeInitConfig(bytes);
    expect(back.argv).toEqual(argv.map((a) => new Uint8Array(a)));
    expect(back.env).toEqual([odd, text('EMPTY='), text('my.name-x=a=b')]);
    expect(back.workingDir).toEqual(workingDir);
    expect(back).toMatchObject({ uid: 0, gid: 0, groups: [], hostname: 'irb', onExit: 'poweroff' });
  });

  it('writes the fields since trace only when set, after the others', () => {
    const bytes = encodeInitConfig({
      argv: ['python3', '-u', 'app.py'],
      entrypointLength: 2,
      homeFromUser: true,
      modules: ['/lib/modules/6.1.0/kernel/net/core/failover.ko', '/lib/modules/6.1.0/x/virtio_net.ko.xz'],
      net: { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: ['10.0.2.3'] },
      netWaitMs: 2000,
    });
    expect(shown(bytes)).toBe(
      'irb-init/1|apython3|a-u|aapp.py|w/|u0|g0|hirb|xpoweroff|E2|H1|' +
        'm/lib/modules/6.1.0/kernel/net/core/failover.ko|m/lib/modules/6.1.0/x/virtio_net.ko.xz|' +
        'n10.0.2.15::10.0.2.2:255.255.255.0:::off:10.0.2.3|N2000|',
    );
    const back = decodeInitConfig(bytes);
    expect(back).toMatchObject({
      entrypointLength: 2,
      homeFromUser: true,
      net: '10.0.2.15::10.0.2.2:255.255.255.0:::off:10.0.2.3',
      netWaitMs: 2000,
    });
    expect(back.modules.map((m) => new TextDecoder().decode(m))).toEqual([
      '/lib/modules/6.1.0/kernel/net/core/failover.ko',
      '/lib/modules/6.1.0/x/virtio_net.ko.xz',
    ]);
    // A static ip= value is taken as it is; without these options the bytes are the old ones.
    expect(shown(encodeInitConfig({ argv: ['/a'], net: '10.0.0.2::::::off' }))).toContain(
      '|n10.0.0.2::::::off|',
    );
    expect(decodeInitConfig(encodeInitConfig({ argv: ['/a'] }))).toMatchObject({
      modules: [],
      netWaitMs: 5000,
      entrypointLength: 0,
      homeFromUser: false,
    });
    expect(decodeInitConfig(encodeInitConfig({ argv: ['/a'] })).net).toBeUndefined();
  });

  it('gives the same bytes for the same config', () => {
    const config = { argv: ['a', 'b'], env: ['X=1'], uid: 5, gid: 6, groups: [7] };
    expect(encodeInitConfig(config)).toEqual(encodeInitConfig({ ...config }));
  });

  it('round-trips the largest ids', () => {
    const back = decodeInitConfig(
      encodeInitConfig({ argv: ['x'], uid: 4294967295, gid: 0, groups: [4294967294] }),
    );
    expect(back).toMatchObject({ uid: 4294967295, gid: 0, groups: [4294967294] });
  });

  it('refuses what the init could not run, each with one clear line', () => {
    const bad = (config: Parameters<typeof encodeInitConfig>[0], code: string, message: RegExp): void => {
      let thrown: unknown;
      try {
        encodeInitConfig(config);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toMatchObject({ code });
      expect((thrown as Error).message).toMatch(message);
      expect((thrown as Error).message).not.toContain('\n');
    };
    bad({ argv: [] }, 'IRB_OPTION_INVALID', /argv is empty/);
    bad({ argv: [''] }, 'IRB_OPTION_INVALID', /argv is empty/);
    bad({ argv: ['a\0b'] }, 'IRB_OPTION_INVALID', /NUL/);
    bad({ argv: ['a'], env: ['NOVALUE'] }, 'IRB_ENV_INVALID', /NAME=value/);
    bad({ argv: ['a'], env: ['=x'] }, 'IRB_ENV_INVALID', /NAME=value/);
    bad({ argv: ['a'], env: ['A=\0'] }, 'IRB_ENV_INVALID', /NUL/);
    bad({ argv: ['a'], workingDir: 'relative' }, 'IRB_WORKDIR_INVALID', /not absolute/);
    bad({ argv: ['a'], uid: -1 }, 'IRB_OPTION_INVALID', /uid -1/);
    bad({ argv: ['a'], gid: 1.5 }, 'IRB_OPTION_INVALID', /gid 1.5/);
    bad({ argv: ['a'], groups: [2 ** 32] }, 'IRB_OPTION_INVALID', /group 4294967296/);
    bad({ argv: ['a'], hostname: 'bad host' }, 'IRB_HOSTNAME_INVALID', /not a valid hostname/);
    bad({ argv: ['a'], onExit: 'halt' as 'reboot' }, 'IRB_OPTION_INVALID', /poweroff or reboot/);
    bad({ argv: ['a', 'x'.repeat(INIT_CONFIG_MAX_BYTES)] }, 'IRB_OPTION_INVALID', /more than the init reads/);
    bad(
      { argv: ['a'], entrypointLength: 2 },
      'IRB_OPTION_INVALID',
      /entrypointLength 2 is more than the 1 argv/,
    );
    bad(
      { argv: ['a'], modules: ['virtio.ko'] },
      'IRB_OPTION_INVALID',
      /module path "virtio.ko" is not absolute/,
    );
    bad({ argv: ['a'], modules: ['/x\0.ko'] }, 'IRB_OPTION_INVALID', /NUL/);
    bad({ argv: ['a'], net: 'dhcp' }, 'IRB_NET_INVALID', /configures no static address/);
    bad({ argv: ['a'], net: '10.0.0.1/8' }, 'IRB_NET_INVALID', /client "10.0.0.1\/8" is not an IPv4 address/);
    bad({ argv: ['a'], net: { address: '10.0.0.1', prefix: 40 } }, 'IRB_NET_INVALID', /not valid/);
    bad({ argv: ['a'], netWaitMs: -5 }, 'IRB_OPTION_INVALID', /netWaitMs -5/);
  });
});

describe('decodeInitConfig', () => {
  it('refuses files the init refuses', () => {
    const bad = (bytes: Uint8Array, message: RegExp): void =>
      expect(() => decodeInitConfig(bytes)).toThrow(message);
    bad(new Uint8Array(0), /empty/);
    bad(text('irb-init/1\0a/x'), /truncated/);
    bad(text('irb-init/2\0a/x\0'), /does not start with irb-init\/1/);
    bad(text('irb-init/1\0w/\0'), /no argv/);
    bad(text('irb-init/1\0a/x\0zwhat\0'), /unknown field/);
    bad(text('irb-init/1\0a/x\0u-1\0'), /bad id/);
    bad(text('irb-init/1\0a/x\0xhalt\0'), /unknown exit action/);
    bad(text('irb-init/1\0a/x\0Ex\0'), /bad id/);
    bad(text('irb-init/1\0a/x\0N-1\0'), /bad id/);
  });

  // Found by the fuzz harness: the value went into the message raw, a newline and all.
  it('shows a bad value escaped, so the message stays one line', () => {
    expect(() => decodeInitConfig(text('irb-init/1\0a/x\0G\n\0'))).toThrow(
      'static init parameter file has a bad id "\\n"; rebuild it with encodeInitConfig',
    );
    expect(() => decodeInitConfig(text('irb-init/1\0a/x\0xoff\r\n\0'))).toThrow(
      'static init parameter file has an unknown exit action "off\\r\\n"; rebuild it with encodeInitConfig',
    );
  });
});
