import { fuzzTestTimeout, onlyIrbErrors, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDigest } from './digest.ts';
import { isIndexMediaType, layerCompression } from './media-types.ts';
import { formatPlatform, parsePlatform } from './platform.ts';
import { formatReference, parseReference } from './reference.ts';

/*
 * The parsers of what a user types or a document names: image references, platforms, digests,
 * media types. Any string parses or fails with its own IRB code in one line, and what parses
 * formats to a string that parses to the same value.
 */

const part = fc.oneof(
  fc.stringMatching(/^[a-z0-9]+([._-][a-z0-9]+)*$/),
  fc.constantFrom(
    'localhost',
    'localhost:5000',
    '127.0.0.1:5000',
    '[::1]:5000',
    'ghcr.io',
    'docker.io',
    'index.docker.io',
    'Upper',
    'a..b',
    '-x',
    '',
  ),
  fc.string({ maxLength: 8 }),
);
const digest = fc.oneof(
  fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
  fc.constantFrom('sha256:', 'sha256:ABC', 'sha512:00', 'md5:0', ':', 'sha256'),
  fc.string({ maxLength: 12 }),
);
const reference = fc
  .tuple(
    fc.array(part, { minLength: 1, maxLength: 4 }),
    fc.option(
      fc.oneof(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/), fc.string({ maxLength: 6 })),
      { nil: undefined },
    ),
    fc.option(digest, { nil: undefined }),
  )
  .map(
    ([parts, tag, d]) =>
      `${parts.join('/')}${tag === undefined ? '' : `:${tag}`}${d === undefined ? '' : `@${d}`}`,
  );

const platform = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('linux', 'Linux', 'windows', ''),
      fc.constantFrom(
        'amd64',
        'x86_64',
        'x86-64',
        'arm64',
        'aarch64',
        'arm',
        'armhf',
        'armel',
        'i386',
        '386',
        'riscv64',
        '',
      ),
      fc.option(fc.constantFrom('v5', 'v6', 'v7', '7', 'v8', '8', 'v8.0', 'v9', '9.0', 'V7', ''), {
        nil: undefined,
      }),
    )
    .map(([os, arch, variant]) => [os, arch, ...(variant === undefined ? [] : [variant])].join('/')),
  fc.string({ maxLength: 16 }),
);

describe('references, platforms, digests and media types under fuzzing', () => {
  it(
    'parseReference takes any string or throws IRB_REFERENCE_INVALID; what it takes formats to itself',
    async () => {
      await runFuzz(
        'registry: references',
        fc.oneof(reference, fc.string({ maxLength: 40 })),
        async (input) => {
          await onlyIrbErrors(() => {
            const ref = parseReference(input);
            const again = parseReference(formatReference(ref));
            expect(again).toEqual(ref);
          }, ['IRB_REFERENCE_INVALID']);
        },
        { runs: 1000 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'parsePlatform takes any string or throws IRB_PLATFORM_INVALID; formatPlatform of what it takes parses to the same',
    async () => {
      await runFuzz(
        'registry: platforms',
        platform,
        async (input) => {
          await onlyIrbErrors(() => {
            const parsed = parsePlatform(input);
            expect(parsePlatform(formatPlatform(parsed))).toEqual(parsed);
          }, ['IRB_PLATFORM_INVALID']);
        },
        { runs: 1000 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'parseDigest takes any string or throws IRB_DIGEST_INVALID; media type checks never throw',
    async () => {
      await runFuzz(
        'registry: digests and media types',
        fc.tuple(digest, fc.string({ maxLength: 60 })),
        async ([d, mediaType]) => {
          await onlyIrbErrors(() => {
            const { algorithm, hex } = parseDigest(d);
            expect(`${algorithm}:${hex}`).toBe(d);
          }, ['IRB_DIGEST_INVALID']);
          isIndexMediaType(mediaType);
          layerCompression(mediaType);
        },
        { runs: 1000 },
      );
    },
    fuzzTestTimeout(),
  );
});
