import { applyEdits, byteEdits, fuzzTestTimeout, onlyIrbErrors, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeInitConfig, encodeInitConfig, INIT_CONFIG_MAGIC, type StaticInitConfig } from './config.ts';
import { decodeJobConfig, encodeJobConfig, JOB_CONFIG_MAGIC, type RunOverrides } from './job.ts';

/*
 * The init's parameter file (init.conf) and job files: what the encoders accept decodes to the
 * same values (byte for byte), what they refuse is refused with a catalogued IRB code in one
 * line, and the decoders, which read with the init's own rules, take any bytes: a file, or
 * IRB_OPTION_INVALID.
 */

const encoder = new TextEncoder();
const bytesOf = (value: string | Uint8Array) => (typeof value === 'string' ? encoder.encode(value) : value);

/** Well-formed text (any code point; lone surrogates have no UTF-8 form) or bytes, NUL now and then. */
const word = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 10 }).map((b) => b.map((x) => (x === 0 ? 0x41 : x))) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a\0b', '=', 'A=', '/', 'x'.repeat(300)) },
);
const envEntry = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/), word)
      .map(([k, v]) =>
        typeof v === 'string' ? `${k}=${v}` : Uint8Array.from([...encoder.encode(`${k}=`), ...v]),
      ),
  },
  { weight: 1, arbitrary: word },
);
/** Bytes without NUL, or well-formed text without NUL. */
const clean = word.filter((w) => !bytesOf(w).includes(0));

/** A config the encoder should take: every field within its rules. */
const validConfig: fc.Arbitrary<StaticInitConfig> = fc.record(
  {
    argv: fc
      .tuple(
        clean.filter((w) => bytesOf(w).length > 0),
        fc.array(clean, { maxLength: 3 }),
      )
      .map(([first, rest]) => [first, ...rest]),
    env: fc.array(
      envEntry.filter((e) => !bytesOf(e).includes(0) && bytesOf(e).indexOf(0x3d) > 0),
      { maxLength: 4 },
    ),
    workingDir: clean.map((w) => (typeof w === 'string' ? `/${w}` : Uint8Array.from([0x2f, ...w]))),
    uid: fc.nat(),
    gid: fc.nat(70_000),
    groups: fc.array(fc.nat(70_000), { maxLength: 3 }),
    hostname: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/),
    onExit: fc.constantFrom('poweroff' as const, 'reboot' as const),
    trace: fc.boolean(),
    stopAfterSeconds: fc.nat(100_000),
    modules: fc.array(
      clean.map((w) => (typeof w === 'string' ? `/lib/${w}.ko` : Uint8Array.from([0x2f, ...w]))),
      { maxLength: 3 },
    ),
    net: fc.oneof(
      fc.constantFrom('10.0.2.15::10.0.2.2:255.255.255.0::eth0:off', '192.168.1.2'),
      fc.record({
        address: fc.constantFrom('10.0.2.15', '192.168.1.2'),
        prefix: fc.integer({ min: 1, max: 32 }),
      }),
    ),
    netWaitMs: fc.nat(60_000),
    entrypointLength: fc.nat(1),
    homeFromUser: fc.boolean(),
  },
  { requiredKeys: ['argv'] },
);

/** One field the encoder must refuse. */
const broken: fc.Arbitrary<Partial<StaticInitConfig>> = fc.constantFrom<Partial<StaticInitConfig>>(
  { argv: [] },
  { argv: [''] },
  { argv: ['a\0b'] },
  { env: ['NOEQUALS'] },
  { env: ['=value'] },
  { env: ['A=\0'] },
  { workingDir: 'relative' },
  { uid: -1 },
  { gid: 2 ** 32 },
  { groups: [1.5] },
  { hostname: '-bad_host' },
  { hostname: 'h'.repeat(64) },
  { net: 'dhcp' },
  { net: '10.0.2.15/24' },
  { net: { address: '10.0.2.15', prefix: 33 } },
  { modules: ['relative.ko'] },
  { entrypointLength: 99 },
  { onExit: 'halt' as 'reboot' },
  { netWaitMs: -5 },
);

const initConfig: fc.Arbitrary<StaticInitConfig> = fc
  .tuple(validConfig, fc.option(broken, { freq: 3 }))
  .map(([config, bad]) => ({ ...config, ...bad }));

const INIT_CODES = [
  'IRB_OPTION_INVALID',
  'IRB_ENV_INVALID',
  'IRB_WORKDIR_INVALID',
  'IRB_HOSTNAME_INVALID',
  'IRB_NET_INVALID',
];

const overrides: fc.Arbitrary<RunOverrides> = fc.record(
  {
    entrypoint: fc.string({ maxLength: 12 }),
    cmd: fc.array(fc.string({ unit: 'binary', maxLength: 8 }), { maxLength: 3 }),
    env: fc.array(
      fc.oneof(
        fc
          .tuple(fc.stringMatching(/^[A-Z_]{1,6}$/), fc.string({ maxLength: 8 }))
          .map(([k, v]) => `${k}=${v}`),
        fc.string({ maxLength: 6 }),
      ),
      { maxLength: 3 },
    ),
    workingDir: fc.oneof(
      fc.string({ maxLength: 10 }).map((s) => `/${s}`),
      fc.string({ maxLength: 6 }),
    ),
    user: fc.oneof(
      fc.constantFrom('root', '1000', '1000:1000', 'app:staff', '4294967296', 'a b', ':', ''),
      fc.string({ maxLength: 8 }),
    ),
  },
  { requiredKeys: [] },
);

describe('init.conf and job files under fuzzing', () => {
  it(
    'encodeInitConfig accepts a config that decodes to the same values, or refuses it with a catalogued IRB code',
    async () => {
      await runFuzz(
        'init: init.conf round-trip',
        initConfig,
        async (config) => {
          let bytes: Uint8Array | undefined;
          await onlyIrbErrors(() => {
            bytes = encodeInitConfig(config);
          }, INIT_CODES);
          if (bytes === undefined) return;
          const back = decodeInitConfig(bytes);
          expect(back.argv).toEqual(config.argv.map(bytesOf));
          expect(back.env).toEqual((config.env ?? []).map(bytesOf));
          expect(back.workingDir).toEqual(bytesOf(config.workingDir ?? '/'));
          expect(back.modules).toEqual((config.modules ?? []).map(bytesOf));
          expect(back).toMatchObject({
            uid: config.uid ?? 0,
            gid: config.gid ?? 0,
            groups: config.groups ?? [],
            hostname: config.hostname ?? 'irb',
            onExit: config.onExit ?? 'poweroff',
            trace: config.trace ?? false,
            stopAfterSeconds: config.stopAfterSeconds ?? 0,
            netWaitMs: config.netWaitMs ?? 5000,
            entrypointLength: config.entrypointLength ?? 0,
            homeFromUser: config.homeFromUser ?? false,
          });
          expect(back.net === undefined).toBe(config.net === undefined);
        },
        { runs: 600 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'encodeJobConfig accepts overrides that decode to the same overrides, or refuses them with a catalogued IRB code',
    async () => {
      await runFuzz(
        'init: job file round-trip',
        overrides,
        async (job) => {
          let bytes: Uint8Array | undefined;
          await onlyIrbErrors(() => {
            bytes = encodeJobConfig(job);
          }, ['IRB_OPTION_INVALID', 'IRB_ENV_INVALID', 'IRB_WORKDIR_INVALID', 'IRB_USER_INVALID']);
          if (bytes === undefined) return;
          // An empty env list writes nothing, as no list does.
          const { env, ...rest } = job;
          expect(decodeJobConfig(bytes)).toEqual(env?.length ? job : rest);
        },
        { runs: 600 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'the decoders take any bytes: a file, or IRB_OPTION_INVALID',
    async () => {
      const value = fc.oneof(
        fc.uint8Array({ maxLength: 12 }),
        fc
          .constantFrom(
            '0',
            '1',
            '4294967295',
            '4294967296',
            'poweroff',
            'reboot',
            '/x',
            'A=1',
            'root',
            '1000:1000',
          )
          .map((t) => encoder.encode(t)),
      );
      const field = fc.tuple(fc.constantFrom(...'aaewugGhxtTEHmnNpcceU?'.split('')), value);
      const file = (magic: string) =>
        fc.array(field, { maxLength: 6 }).map((fields) => {
          const parts = [
            encoder.encode(magic),
            ...fields.map(([tag, value]) => Uint8Array.from([tag.charCodeAt(0), ...value])),
          ];
          return Uint8Array.from(parts.flatMap((p) => [...p, 0]));
        });
      await runFuzz(
        'init: decoders on hostile bytes',
        fc.tuple(
          fc.oneof(file(INIT_CONFIG_MAGIC), file(JOB_CONFIG_MAGIC), fc.uint8Array({ maxLength: 40 })),
          fc.option(byteEdits, { nil: undefined }),
        ),
        async ([bytes, edits]) => {
          const input = edits ? applyEdits(bytes, edits) : bytes;
          await onlyIrbErrors(() => decodeInitConfig(input), ['IRB_OPTION_INVALID']);
          await onlyIrbErrors(() => decodeJobConfig(input), ['IRB_OPTION_INVALID']);
        },
        { runs: 600 },
      );
    },
    fuzzTestTimeout(),
  );
});
