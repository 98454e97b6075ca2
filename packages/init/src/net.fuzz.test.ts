import { arch } from 'node:os';
import { fuzzTestTimeout, onlyIrbErrors, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cIpReading, tsIpReading } from '../test/ip-reading.ts';
import { formatKernelIp, parseKernelIp, parseNetOption, readKernelIp } from './net.ts';

/*
 * The `ip=` and `--net` parsers over hostile values: they return a reading or throw
 * IRB_NET_INVALID in one line; the init's C parser reads every value exactly as the TypeScript
 * one does (on an x86_64 host, where the init runs as a plain process); and what --net parses,
 * formatKernelIp writes as an `ip=` value both parsers read back as the same static network.
 */

const octet = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.constantFrom('256', '999', '00', '012', '1a', '', '-1'),
);
const ipv4 = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '0.0.0.0',
      '10.0.2.15',
      '10.0.2.2',
      '127.0.0.1',
      '128.0.0.1',
      '191.255.255.255',
      '192.0.0.1',
      '223.255.255.1',
      '224.0.0.1',
      '255.255.255.255',
      '255.255.255.0',
      '255.255.0.0',
      '255.0.255.0',
      '128.0.0.0',
      '1.2.3',
      '1.2.3.4.5',
      ' 1.2.3.4',
      '1.2.3.4/24',
    ),
  },
);
const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer({ min: 55, max: 70 }).map((n) => 'h'.repeat(n)),
  fc.integer({ min: 13, max: 17 }).map((n) => 'e'.repeat(n)),
  fc.constantFrom(
    'vm.example.org',
    'box.',
    '.lan',
    'eth0',
    'a/b',
    'ünï',
    'h'.repeat(64),
    `${'h'.repeat(64)}.${'d'.repeat(65)}`,
  ),
);
const autoconf = fc.constantFrom(
  '',
  'off',
  'none',
  'on',
  'any',
  'dhcp',
  'dhcp6',
  'bootp',
  'rarp',
  'both',
  'static',
  'OFF',
);
const field = [ipv4, ipv4, ipv4, ipv4, text, text, autoconf, ipv4, ipv4, ipv4].map((a) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: a },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  ),
);

const dotted = (n: number) => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

/** A network that should pass: a unicast client, its prefix, a gateway on its network, name servers. */
const network = fc
  .record({
    client: fc.integer({ min: 0x0100_0000, max: 0xdfff_fffe }),
    prefix: fc.integer({ min: 1, max: 32 }),
    host: fc.nat(),
    dns: fc.array(fc.integer({ min: 1, max: 0xffff_ffff }), { maxLength: 2 }),
    device: fc.option(fc.constantFrom('eth0', 'ens3', 'e'.repeat(15)), { nil: undefined }),
    gateway: fc.boolean(),
  })
  .map((r) => {
    const mask = r.prefix === 0 ? 0 : 2 ** 32 - 2 ** (32 - r.prefix);
    const net = Math.floor(r.client / 2 ** (32 - r.prefix)) * 2 ** (32 - r.prefix);
    const gateway = net + (r.host % 2 ** (32 - r.prefix));
    return {
      client: dotted(r.client),
      prefix: r.prefix,
      mask: dotted(mask),
      gateway: r.gateway && gateway !== r.client ? dotted(gateway) : undefined,
      dns: r.dns.map(dotted),
      device: r.device,
    };
  });

/** `ip=` values: ten fields of plausible and broken parts, or fewer, or more, or a keyword. */
const ipValue = fc
  .oneof(
    {
      weight: 8,
      arbitrary: fc
        .tuple(
          fc.tuple(...field),
          fc.integer({ min: 1, max: 12 }),
          fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
        )
        .map(([fields, n, extra]) => [...fields.slice(0, n), ...(n > 10 ? extra : [])].join(':')),
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(network, text, autoconf)
        .map(([n, host, auto]) =>
          [n.client, '', n.gateway ?? '', n.mask, host, n.device ?? '', auto, ...n.dns].join(':'),
        ),
    },
    { weight: 1, arbitrary: fc.constantFrom('', 'off', 'none', 'dhcp', 'on', 'any', 'both', 'dhcp,1,abc') },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  )
  // An argv word cannot hold a NUL; the kernel command line cannot either.
  .map((value) => value.replaceAll('\0', ''));

/** `--net` values: a CIDR and options, plausible and broken. */
const netValue = fc
  .oneof(
    network.map((n) =>
      [
        `${n.client}/${n.prefix}`,
        ...(n.gateway ? [`gw=${n.gateway}`] : []),
        ...n.dns.map((d) => `dns=${d}`),
        ...(n.device ? [`dev=${n.device}`] : []),
      ].join(','),
    ),
    fc
      .tuple(
        fc.oneof(
          fc
            .tuple(
              ipv4,
              fc.oneof(fc.integer({ min: 0, max: 33 }).map(String), fc.constantFrom('', '08', '100', 'x')),
            )
            .map(([a, p]) => `${a}/${p}`),
          fc.string({ maxLength: 12 }),
        ),
        fc.array(
          fc.oneof(
            ipv4.map((ip) => `gw=${ip}`),
            ipv4.map((ip) => `dns=${ip}`),
            text.map((name) => `dev=${name}`),
            fc.string({ maxLength: 6 }),
          ),
          { maxLength: 4 },
        ),
      )
      .map(([cidr, options]) => [cidr, ...options].join(',')),
  )
  .map((value) => value.replaceAll('\0', ''));

const onX64 = arch() === 'x64';

describe('ip= and --net parsers under fuzzing', () => {
  it(
    'parseKernelIp reads any value or throws IRB_NET_INVALID; readKernelIp agrees with it',
    async () => {
      await runFuzz(
        'init: ip= values',
        ipValue,
        async (value) => {
          const read = readKernelIp(value);
          const error = await onlyIrbErrors(() => {
            const config = parseKernelIp(value);
            if (
              config.kind === 'static' &&
              !(Number.isInteger(config.prefix) && (config.prefix ?? -1) >= 1 && (config.prefix ?? 33) <= 32)
            ) {
              throw new Error(`a static reading with prefix ${config.prefix}`);
            }
          }, ['IRB_NET_INVALID']);
          expect(error === undefined).toBe('config' in read);
        },
        { runs: 1000 },
      );
    },
    fuzzTestTimeout(),
  );

  it.skipIf(!onX64)(
    "the init's C parser reads every ip= value as the TypeScript one does",
    async () => {
      await runFuzz(
        'init: ip= values, C against TypeScript',
        ipValue,
        (value) => {
          expect(cIpReading(value)).toEqual(tsIpReading(value));
        },
        { runs: 300 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'what --net parses, formatKernelIp writes as an ip= value that reads back as the same network (in C too)',
    async () => {
      await runFuzz(
        'init: --net round-trip',
        netValue,
        async (spec) => {
          await onlyIrbErrors(() => {
            const net = parseNetOption(spec);
            const value = formatKernelIp(net);
            const config = parseKernelIp(value);
            expect(config).toMatchObject({
              kind: 'static',
              address: net.address,
              prefix: net.prefix,
              dns: [...(net.dns ?? [])],
            });
            expect(config.gateway).toBe(net.gateway);
            expect(config.device).toBe(net.device);
            if (onX64) expect(cIpReading(value)).toEqual(tsIpReading(value));
          }, ['IRB_NET_INVALID']);
        },
        { runs: 400 },
      );
    },
    fuzzTestTimeout(),
  );
});
