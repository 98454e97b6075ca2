import { arch } from 'node:os';
import { thrown } from '@irb/test-utils';
import { describe, expect, it } from 'vitest';
import { cIpReading, tsIpReading } from '../test/ip-reading.ts';
import { formatKernelIp, parseKernelIp, parseNetOption, readKernelIp } from './net.ts';

describe('parseKernelIp: every field of ip=', () => {
  it('reads the full form: client, server, gateway, netmask, hostname.domain, device, autoconf, dns0, dns1, ntp0', () => {
    expect(
      parseKernelIp(
        '10.0.2.15:10.0.2.4:10.0.2.2:255.255.255.0:vm.example.org:eth1:off:10.0.2.3:1.1.1.1:10.0.2.5',
      ),
    ).toEqual({
      kind: 'static',
      address: '10.0.2.15',
      server: '10.0.2.4',
      gateway: '10.0.2.2',
      netmask: '255.255.255.0',
      prefix: 24,
      hostname: 'vm',
      domain: 'example.org',
      device: 'eth1',
      dns: ['10.0.2.3', '1.1.1.1'],
      ntp: '10.0.2.5',
    });
  });

  it("reads Firecracker's and irb boot's forms", () => {
    expect(parseKernelIp('172.16.0.2::172.16.0.1:255.255.255.252::eth0:off')).toEqual({
      kind: 'static',
      address: '172.16.0.2',
      gateway: '172.16.0.1',
      netmask: '255.255.255.252',
      prefix: 30,
      device: 'eth0',
      dns: [],
    });
    expect(parseKernelIp('10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3')).toMatchObject({
      kind: 'static',
      address: '10.0.2.15',
      prefix: 24,
      dns: ['10.0.2.3'],
    });
  });

  it('leaves out empty fields, 0.0.0.0 and fields past the tenth', () => {
    expect(parseKernelIp('10.1.2.3')).toEqual({
      kind: 'static',
      address: '10.1.2.3',
      netmask: '255.0.0.0',
      prefix: 8,
      dns: [],
    });
    expect(parseKernelIp('10.1.2.3:0.0.0.0:0.0.0.0:0.0.0.0::::0.0.0.0:10.0.0.9')).toMatchObject({
      prefix: 8,
      dns: ['10.0.0.9'],
    });
    expect(parseKernelIp('10.1.2.3:::::::::: whatever:is:here')).toMatchObject({ kind: 'static' });
    expect(parseKernelIp('10.1.2.3:::255.255.0.0:')).toMatchObject({ prefix: 16, netmask: '255.255.0.0' });
    expect(parseKernelIp('192.168.7.1::::h')).toMatchObject({ hostname: 'h' });
    expect(parseKernelIp('192.168.7.1::::h').domain).toBeUndefined();
    expect(parseKernelIp('192.168.7.1::::h.')).toMatchObject({ hostname: 'h', domain: '' });
  });

  it("guesses a missing netmask from the address's class, as the kernel does", () => {
    expect(parseKernelIp('10.0.0.1').prefix).toBe(8);
    expect(parseKernelIp('127.0.0.2').prefix).toBe(8);
    expect(parseKernelIp('128.0.0.1').prefix).toBe(16);
    expect(parseKernelIp('191.255.0.1').prefix).toBe(16);
    expect(parseKernelIp('192.0.0.1').prefix).toBe(24);
    expect(parseKernelIp('223.1.1.1').prefix).toBe(24);
  });

  it('accepts every contiguous netmask, /1 to /32', () => {
    for (let prefix = 1; prefix <= 32; prefix++) {
      const mask = (0xffff_ffff - (2 ** (32 - prefix) - 1)) >>> 0;
      const dotted = [24, 16, 8, 0].map((s) => (mask >>> s) & 255).join('.');
      expect(parseKernelIp(`10.0.0.1:::${dotted}`).prefix).toBe(prefix);
    }
  });

  it('tells off, dynamic and static apart like the kernel', () => {
    for (const off of ['', 'off', 'none', '::::host::off', ':::::eth0:none'])
      expect(parseKernelIp(off).kind, off).toBe('off');
    for (const dynamic of [
      'dhcp',
      'dhcp,1,abc',
      'bootp',
      'rarp',
      'both',
      'any',
      'on',
      ':::::eth0:dhcp',
      '::10.0.0.1',
    ])
      expect(parseKernelIp(dynamic).kind, dynamic).toBe('dynamic');
    // A client address is a static configuration whatever autoconf says (one device: the kernel agrees).
    for (const autoconf of ['', 'off', 'none', 'dhcp', 'any'])
      expect(parseKernelIp(`10.0.0.2::::::${autoconf}`).kind, autoconf).toBe('static');
    // The hostname is set in every kind, as the kernel sets it while parsing.
    expect(parseKernelIp('::::box.lan::off')).toEqual({
      kind: 'off',
      hostname: 'box',
      domain: 'lan',
      dns: [],
    });
  });

  it('refuses each bad field with one line naming it', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['10.0.2.15/24', 'client', /client "10.0.2.15\/24" is not an IPv4 address/],
      ['10.0.2', 'client', /not an IPv4 address/],
      ['10.0.2.256', 'client', /not an IPv4 address/],
      ['10.0.2.1.5', 'client', /not an IPv4 address/],
      ['0010.0.2.1', 'client', /not an IPv4 address/],
      ['a.b.c.d', 'client', /not an IPv4 address/],
      [' 10.0.2.1', 'client', /not an IPv4 address/],
      ['224.0.0.1', 'client', /not a unicast address/],
      ['255.255.255.255', 'client', /not a unicast address/],
      ['10.0.0.1:bad', 'server', /server "bad"/],
      ['10.0.0.1::10.0.0.', 'gateway', /gateway/],
      ['10.0.0.1::11.0.0.1', 'gateway', /gateway "11.0.0.1" is not on the client's network/],
      ['10.0.2.15::10.0.3.2:255.255.255.0', 'gateway', /not on the client's network/],
      ['10.0.0.1:::255.0.255.0', 'netmask', /not a contiguous netmask/],
      ['10.0.0.1:::24', 'netmask', /not an IPv4 address/],
      [`10.0.0.1::::${'h'.repeat(65)}`, 'hostname', /longer than the kernel's 64 bytes/],
      [`10.0.0.1::::h.${'d'.repeat(65)}`, 'hostname', /64 bytes/],
      ['10.0.0.1:::::averyveryverylongname', 'device', /not a network device name/],
      ['10.0.0.1:::::a/b', 'device', /not a network device name/],
      ['10.0.0.1::::::static', 'autoconf', /not off, none, on, any, dhcp, bootp, rarp or both/],
      ['10.0.0.1:::::::8.8.8', 'dns0', /dns0/],
      ['10.0.0.1::::::::dns', 'dns1', /dns1/],
      ['10.0.0.1:::::::::ntp', 'ntp0', /ntp0/],
    ];
    for (const [value, field, message] of cases) {
      const read = readKernelIp(value);
      expect('problem' in read && read.problem.field, value).toBe(field);
      const error = thrown(() => parseKernelIp(value));
      expect(error.code, value).toBe('IRB_NET_INVALID');
      expect(error.message, value).toMatch(message);
      expect(error.message).toContain(`ip=${value}: ${field}`);
      expect(error.message).not.toContain('\n');
    }
  });
});

describe('parseNetOption: --net CIDR[,gw=IP][,dns=IP][,dev=NAME]', () => {
  it('reads the address, the prefix and each option', () => {
    expect(parseNetOption('10.0.2.15/24')).toEqual({ address: '10.0.2.15', prefix: 24 });
    expect(parseNetOption('10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3,dns=1.1.1.1,dev=eth1')).toEqual({
      address: '10.0.2.15',
      prefix: 24,
      gateway: '10.0.2.2',
      dns: ['10.0.2.3', '1.1.1.1'],
      device: 'eth1',
    });
    expect(parseNetOption('192.168.1.9/32')).toEqual({ address: '192.168.1.9', prefix: 32 });
  });

  it('refuses bad input in one line that shows the syntax', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /"" is not an address with a prefix length/],
      ['10.0.2.15', /not an address with a prefix length/],
      ['10.0.2.15/', /not an address with a prefix length/],
      ['10.0.2.15/255.255.255.0', /not an address with a prefix length/],
      ['10.0.2/24', /"10.0.2" is not an IPv4 address/],
      ['10.0.2.15/0', /prefix length 0 is not 1 to 32/],
      ['10.0.2.15/33', /prefix length 33/],
      ['0.0.0.0/8', /not a unicast address/],
      ['239.1.1.1/8', /not a unicast address/],
      ['10.0.2.15/24,gw=10.0.3.1', /gateway 10.0.3.1 is not another address on 10.0.2.15\/24/],
      ['10.0.2.15/24,gw=10.0.2.15', /not another address/],
      ['10.0.2.15/24,gw=1', /gw=1 is not an IPv4 address/],
      ['10.0.2.15/24,gw=10.0.2.2,gw=10.0.2.3', /gw= is given twice/],
      ['10.0.2.15/24,dns=x', /dns=x is not an IPv4 address/],
      ['10.0.2.15/24,dns=0.0.0.0', /dns=0.0.0.0 is not an IPv4 address/],
      ['10.0.2.15/24,dns=1.1.1.1,dns=1.0.0.1,dns=8.8.8.8', /more than two dns=/],
      ['10.0.2.15/24,dev=', /dev= is not a network device name/],
      ['10.0.2.15/24,dev=a:b', /not a network device name/],
      ['10.0.2.15/24,dev=eth0,dev=eth1', /dev= is given twice/],
      ['10.0.2.15/24,mtu=1500', /"mtu=1500" is not gw=IP, dns=IP or dev=NAME/],
      ['10.0.2.15/24,', /"" is not gw=IP/],
    ];
    for (const [spec, message] of cases) {
      const error = thrown(() => parseNetOption(spec));
      expect(error.code, spec).toBe('IRB_NET_INVALID');
      expect(error.message, spec).toMatch(message);
      expect(error.message).toMatch(/^--net .*: .*; write CIDR\[,gw=IP\]\[,dns=IP\]\[,dev=NAME\], e\.g\. /);
      expect(error.message).not.toContain('\n');
    }
  });

  it('formats as a static ip= value that parses back to the same network', () => {
    const net = parseNetOption('10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3,dev=eth0');
    const value = formatKernelIp(net);
    expect(value).toBe('10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3');
    expect(parseKernelIp(value)).toMatchObject({
      kind: 'static',
      address: '10.0.2.15',
      prefix: 24,
      gateway: '10.0.2.2',
      dns: ['10.0.2.3'],
      device: 'eth0',
    });
    expect(formatKernelIp({ address: '10.9.8.7', prefix: 32 })).toBe('10.9.8.7:::255.255.255.255:::off');
    expect(thrown(() => formatKernelIp({ address: '10.0.0.1', prefix: 8, gateway: '11.0.0.1' })).code).toBe(
      'IRB_NET_INVALID',
    );
    expect(thrown(() => formatKernelIp({ address: '10.0.0.1', prefix: 0 })).code).toBe('IRB_NET_INVALID');
  });
});

// The init's C parser and this one read the same values the same way: the x86_64 binary runs on
// an x86_64 host as a plain process (not PID 1), where `init ip VALUE` prints its reading.
describe.skipIf(arch() !== 'x64')("the init's own parser (c/net.h) agrees", () => {
  it('on every value of these tests', () => {
    const values = [
      '10.0.2.15:10.0.2.4:10.0.2.2:255.255.255.0:vm.example.org:eth1:off:10.0.2.3:1.1.1.1:10.0.2.5',
      '172.16.0.2::172.16.0.1:255.255.255.252::eth0:off',
      '10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3',
      '10.1.2.3',
      '10.1.2.3:0.0.0.0:0.0.0.0:0.0.0.0::::0.0.0.0:10.0.0.9',
      '10.1.2.3:::::::10.0.0.8:10.0.0.9',
      '10.1.2.3:::::::10.0.0.8:',
      '10.1.2.3:::::::::: whatever:is:here',
      '192.168.7.1::::h.',
      '128.0.0.1',
      '223.1.1.1',
      '10.0.0.1:::255.255.255.255',
      '10.0.0.1:::128.0.0.0',
      '',
      'off',
      'none',
      '::::host::off',
      'dhcp',
      'dhcp,1,abc',
      'both',
      ':::::eth0:dhcp',
      '::10.0.0.1',
      '10.0.0.2::::::any',
      '::::box.lan::off',
      '10.0.2.15/24',
      '10.0.2.256',
      '0010.0.2.1',
      '224.0.0.1',
      '255.255.255.255',
      '10.0.0.1:bad',
      '10.0.0.1::11.0.0.1',
      '10.0.0.1:::255.0.255.0',
      `10.0.0.1::::${'h'.repeat(65)}`,
      `10.0.0.1::::${'h'.repeat(64)}`,
      '10.0.0.1:::::averyveryverylongname',
      '10.0.0.1:::::fifteen-bytes-x',
      '10.0.0.1:::::a/b',
      '10.0.0.1::::::static',
      '10.0.0.1:::::::8.8.8',
      '10.0.0.1::::::::dns',
      '10.0.0.1:::::::::ntp',
    ];
    for (const value of values) expect(cIpReading(value)).toEqual(tsIpReading(value));
  });
});
