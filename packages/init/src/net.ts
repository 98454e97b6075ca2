import { IrbError } from '@irb/errors';

/**
 * The guest network as the kernel's `ip=` argument describes it
 * (`ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>`,
 * Documentation/admin-guide/nfs/nfsroot.rst), read with the rules of irb's init (`c/net.h`).
 */
export interface KernelIpConfig {
  /**
   * `static`: a client address was given, so the init configures the device; `off`: no
   * configuration (`ip=off`, `none`, empty, or no client with autoconf `off`); `dynamic`:
   * DHCP, BOOTP or RARP was asked for, which irb's init does not do (it says so on the console).
   */
  kind: 'static' | 'off' | 'dynamic';
  /** The client address (static only). */
  address?: string;
  /** The netmask's prefix length: given, or the address's class (A /8, B /16, C /24) as the kernel guesses. */
  prefix?: number;
  /** The netmask in dotted form. */
  netmask?: string;
  /** The default route's gateway, on the client's network. */
  gateway?: string;
  /** dns0 and dns1, the ones given, in order: /etc/resolv.conf's nameservers. */
  dns: string[];
  /** The hostname field up to its first `.` (set in every kind, as the kernel does). */
  hostname?: string;
  /** The hostname field after its first `.`: the NIS domain name (`setdomainname`). */
  domain?: string;
  /** The device; without it the first device that is not `lo`, in name order. */
  device?: string;
  /** The server field (checked, not used: it is for an NFS root). */
  server?: string;
  /** The ntp0 field (checked, not used). */
  ntp?: string;
}

/** `--net`'s value, parsed: what the builder bakes into the init for platforms that pass no `ip=`. */
export interface NetConfig {
  /** The guest's IPv4 address. */
  address: string;
  /** Prefix length of its network, 1 … 32. */
  prefix: number;
  /** The default route's gateway, on that network. */
  gateway?: string;
  /** Up to two name servers, for /etc/resolv.conf. */
  dns?: readonly string[];
  /** The device to configure. Default: the first that is not `lo`. */
  device?: string;
}

/** How long the init waits for the network device to appear, by default (ms). */
export const NET_WAIT_MS_DEFAULT = 5000;

/** A field of `ip=` that the init refuses, and why (the same words as the init's console line). */
export interface KernelIpProblem {
  field: (typeof IP_FIELDS)[number];
  text: string;
  why: string;
}

const IP_FIELDS = [
  'client',
  'server',
  'gateway',
  'netmask',
  'hostname',
  'device',
  'autoconf',
  'dns0',
  'dns1',
  'ntp0',
] as const;

const DYNAMIC = /^(on|any|dhcp.*|bootp|rarp|both)$/s;

/** Four decimal bytes `a.b.c.d` as a number, or `undefined`. */
function ipv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  if (bytes.some((b) => b > 255)) return undefined;
  return bytes.reduce((v, b) => v * 256 + b, 0);
}

function dotted(value: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join('.');
}

/** The prefix length of a contiguous netmask, or -1. */
function maskPrefix(mask: number): number {
  const bits = mask.toString(2).padStart(32, '0');
  const n = bits.indexOf('0') < 0 ? 32 : bits.indexOf('0');
  return bits.slice(n).includes('1') ? -1 : n;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffff_ffff - (2 ** (32 - prefix) - 1)) >>> 0;
}

/** Same network under `mask` (numbers above 2^31 keep their sign out of the bitwise ops). */
function sameNetwork(a: number, b: number, mask: number): boolean {
  return ((a ^ b) & mask) >>> 0 === 0;
}

/**
 * Reads an `ip=` value (without `ip=`) as irb's init does, without throwing: the config, or the
 * field it refuses. See {@link parseKernelIp}.
 */
export function readKernelIp(value: string): { config: KernelIpConfig } | { problem: KernelIpProblem } {
  if (value === '' || value === 'off' || value === 'none') return { config: { kind: 'off', dns: [] } };
  if (DYNAMIC.test(value)) return { config: { kind: 'dynamic', dns: [] } };
  const config: KernelIpConfig = { kind: 'static', dns: [] };
  const bad = (num: number, text: string, why: string) => ({
    problem: { field: IP_FIELDS[num] as KernelIpProblem['field'], text, why },
  });
  const fields = value.split(':').slice(0, 10);
  let client = 0;
  let gateway = 0;
  let mask = 0;
  let gatewayText = '';
  let autoconf = '';
  const dns: (number | undefined)[] = [undefined, undefined];
  for (const [num, text] of fields.entries()) {
    if (text === '') continue;
    let address = 0;
    if (num <= 3 || num >= 7) {
      const parsed = ipv4(text);
      if (parsed === undefined) return bad(num, text, 'is not an IPv4 address a.b.c.d');
      if (parsed === 0) continue; // 0.0.0.0: not given, as for the kernel
      address = parsed;
    }
    switch (num) {
      case 0:
        if (address >= 0xe000_0000) return bad(num, text, 'is not a unicast address');
        client = address;
        break;
      case 1:
        config.server = text;
        break;
      case 2:
        gateway = address;
        gatewayText = text;
        break;
      case 3:
        if (maskPrefix(address) < 0) return bad(num, text, 'is not a contiguous netmask');
        mask = address;
        break;
      case 4: {
        const dot = text.indexOf('.');
        const host = dot < 0 ? text : text.slice(0, dot);
        const domain = dot < 0 ? undefined : text.slice(dot + 1);
        if (utf8Length(host) > 64 || (domain !== undefined && utf8Length(domain) > 64)) {
          return bad(num, host, "is longer than the kernel's 64 bytes");
        }
        if (host !== '') config.hostname = host;
        if (domain !== undefined) config.domain = domain;
        break;
      }
      case 5:
        if (utf8Length(text) > 15 || text.includes('/')) {
          return bad(num, text, 'is not a network device name (at most 15 bytes, no /)');
        }
        config.device = text;
        break;
      case 6:
        if (text !== 'off' && text !== 'none' && !DYNAMIC.test(text)) {
          return bad(num, text, 'is not off, none, on, any, dhcp, bootp, rarp or both');
        }
        autoconf = text;
        break;
      case 7:
      case 8:
        dns[num - 7] = address;
        break;
      default:
        config.ntp = text;
    }
  }
  config.dns = dns.filter((d): d is number => d !== undefined).map(dotted);
  if (client === 0) {
    return { config: { ...config, kind: autoconf === 'off' || autoconf === 'none' ? 'off' : 'dynamic' } };
  }
  // The kernel's guess without a netmask: the address's class.
  if (mask === 0)
    mask = client < 0x8000_0000 ? 0xff00_0000 : client < 0xc000_0000 ? 0xffff_0000 : 0xffff_ff00;
  if (gateway !== 0 && !sameNetwork(gateway, client, mask)) {
    return bad(2, gatewayText, "is not on the client's network");
  }
  config.address = dotted(client);
  config.prefix = maskPrefix(mask);
  config.netmask = dotted(mask);
  if (gateway !== 0) config.gateway = dotted(gateway);
  return { config };
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * Parses an `ip=` value (what follows `ip=` on the kernel command line) with the rules of irb's
 * init: every field optional, 0.0.0.0 counts as empty, fields after the tenth are ignored, a
 * missing netmask is the client address's class; an address is four decimal bytes (no CIDR), a
 * netmask contiguous, the gateway on the client's network.
 *
 * @throws IrbError `IRB_NET_INVALID`, one line naming the field.
 */
export function parseKernelIp(value: string): KernelIpConfig {
  const read = readKernelIp(value);
  if ('config' in read) return read.config;
  const { field, text, why } = read.problem;
  throw new IrbError(
    'IRB_NET_INVALID',
    `ip=${value}: ${field} "${text}" ${why}; the syntax is ip=<client>::<gateway>:<netmask>::<device>:off:<dns0>:<dns1>`,
  );
}

/**
 * Parses `--net CIDR[,gw=IP][,dns=IP][,dns=IP][,dev=NAME]` (e.g. `10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3`).
 *
 * @throws IrbError `IRB_NET_INVALID`, one line saying what is wrong and what to write.
 */
export function parseNetOption(spec: string): NetConfig {
  const fail = (why: string): never => {
    throw new IrbError(
      'IRB_NET_INVALID',
      `--net ${spec}: ${why}; write CIDR[,gw=IP][,dns=IP][,dev=NAME], e.g. 10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3`,
    );
  };
  const [cidr = '', ...options] = spec.split(',');
  const m = /^([^/]*)\/(\d{1,2})$/.exec(cidr);
  if (!m) fail(`"${cidr}" is not an address with a prefix length (a.b.c.d/N)`);
  const address = ipv4(m?.[1] ?? '');
  const prefix = Number(m?.[2]);
  if (address === undefined) fail(`"${m?.[1]}" is not an IPv4 address a.b.c.d`);
  if (prefix < 1 || prefix > 32) fail(`the prefix length ${prefix} is not 1 to 32`);
  const client = address as number;
  if (client === 0 || client >= 0xe000_0000) fail(`${m?.[1]} is not a unicast address`);
  const net: NetConfig = { address: dotted(client), prefix };
  const dns: string[] = [];
  for (const option of options) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? '' : option.slice(eq + 1);
    if (key === 'gw' || key === 'dns') {
      const ip = ipv4(value);
      if (ip === undefined || ip === 0) fail(`${key}=${value} is not an IPv4 address a.b.c.d`);
      if (key === 'dns') {
        if (dns.length === 2) fail('more than two dns= (the kernel syntax has dns0 and dns1)');
        dns.push(dotted(ip as number));
        continue;
      }
      if (net.gateway !== undefined) fail('gw= is given twice');
      if (!sameNetwork(ip as number, client, maskOf(prefix)) || ip === client) {
        fail(`the gateway ${value} is not another address on ${cidr}`);
      }
      net.gateway = dotted(ip as number);
    } else if (key === 'dev') {
      if (net.device !== undefined) fail('dev= is given twice');
      if (value === '' || utf8Length(value) > 15 || value.includes('/') || value.includes(':')) {
        fail(`dev=${value} is not a network device name (1 to 15 bytes, no / or :)`);
      }
      net.device = value;
    } else {
      fail(`"${option}" is not gw=IP, dns=IP or dev=NAME`);
    }
  }
  if (dns.length > 0) net.dns = dns;
  return net;
}

/**
 * The `ip=` value for a {@link NetConfig} (static, autoconf `off`): what the builder bakes into
 * the init, and what `irb boot --net` can pass on the kernel command line.
 */
export function formatKernelIp(net: NetConfig): string {
  const fields = [
    net.address,
    '',
    net.gateway ?? '',
    dotted(maskOf(net.prefix)),
    '',
    net.device ?? '',
    'off',
    ...(net.dns ?? []).slice(0, 2),
  ];
  const value = fields.join(':');
  // Checked like any ip= value: a NetConfig built by hand meets the same rules as --net.
  const read = readKernelIp(value);
  if (!('config' in read) || read.config.kind !== 'static' || net.prefix < 1 || net.prefix > 32) {
    const why =
      'problem' in read ? `${read.problem.field} ${read.problem.why}` : 'it is not a static address';
    throw new IrbError('IRB_NET_INVALID', `network ${JSON.stringify(net)} is not valid (${why}); fix it`);
  }
  return value;
}

/**
 * The `ip=` value to bake into an init for `net` (a {@link NetConfig}, or an `ip=` value), which
 * must be a static address: that is all the init configures.
 *
 * @throws IrbError `IRB_NET_INVALID`.
 */
export function staticIpValue(net: NetConfig | string): string {
  const value = typeof net === 'string' ? net : formatKernelIp(net);
  if (parseKernelIp(value).kind !== 'static') {
    throw new IrbError(
      'IRB_NET_INVALID',
      `network "${value}" configures no static address, which is all the init does; give CIDR[,gw=IP][,dns=IP]`,
    );
  }
  return value;
}
