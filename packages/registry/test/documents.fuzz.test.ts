import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzzTestTimeout, onlyIrbErrors, runFuzz } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { RegistryClient } from '../src/client.ts';
import { parseManifest } from '../src/manifest.ts';
import { checkConfigPlatform, parsePlatform, selectManifest } from '../src/platform.ts';
import { parseConfig } from '../src/sources/common.ts';
import { openOciLayout } from '../src/sources/oci-layout.ts';
import type { ImageIndex } from '../src/types.ts';
import { type Blob, imageDocs, type SerializedDocs, serialize } from './fuzz-images.ts';

/*
 * Manifest, index and config parsing over hostile documents: from bytes alone, through the
 * registry path (a loopback server answering what a hostile registry would), and through an OCI
 * layout directory. Every path ends in an image whose config and layers can be asked for, or
 * in an irb error with a catalogued code and one line; never a TypeError from a field of the
 * wrong type.
 */

const platforms = fc.constantFrom('linux/amd64', 'linux/arm64', 'linux/arm/v7', 'windows/amd64');

/** Everything a consumer asks of an opened image. */
async function use(image: { config(): Promise<unknown>; layers(): Promise<unknown[]> }): Promise<void> {
  await image.config();
  await image.layers();
}

describe('manifest, index and config parsing under fuzzing', () => {
  it(
    'parseManifest, selectManifest, parseConfig and checkConfigPlatform take any bytes',
    async () => {
      await runFuzz(
        'registry: documents from bytes',
        fc.tuple(
          fc.oneof(
            imageDocs,
            fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })),
          ),
          fc.constantFrom(
            undefined,
            'application/json',
            'application/vnd.oci.image.index.v1+json',
            'text/plain; charset=utf-8',
          ),
          platforms,
          fc.boolean(),
        ),
        async ([input, contentType, want, artifacts]) => {
          const docs: Partial<SerializedDocs> =
            'bytes' in input
              ? { manifest: { bytes: input.bytes, digest: 'sha256:0', mediaType: undefined } }
              : serialize(input);
          const platform = parsePlatform(want);
          for (const doc of [docs.index, docs.manifest]) {
            if (doc === undefined) continue;
            await onlyIrbErrors(() => {
              const parsed = parseManifest('fuzz', doc.bytes, doc.digest, contentType, { artifacts });
              if (parsed.isIndex) selectManifest(parsed.json as ImageIndex, platform, 'fuzz');
            });
          }
          const config = docs.config;
          if (config) {
            await onlyIrbErrors(() =>
              checkConfigPlatform(parseConfig(config.bytes, 'fuzz'), platform, 'fuzz'),
            );
          }
        },
        { runs: 500 },
      );
    },
    fuzzTestTimeout(),
  );

  describe('through a registry', () => {
    let server: Server;
    let host: string;
    /** What the registry serves now: path → blob. */
    let served = new Map<string, Blob>();

    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url === '/v2/')
          return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        const blob = served.get(req.url ?? '');
        if (!blob)
          return void res
            .writeHead(404, { 'content-type': 'application/json' })
            .end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        res.writeHead(200, {
          'content-type': blob.mediaType ?? 'application/json',
          'content-length': blob.bytes.byteLength,
          'docker-content-digest': blob.digest,
        });
        res.end(req.method === 'HEAD' ? undefined : blob.bytes);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it(
      'an image of damaged documents opens, or fails with a catalogued IRB code',
      async () => {
        await runFuzz(
          'registry: documents through a registry',
          fc.tuple(imageDocs, platforms),
          async ([docs, want]) => {
            const blobs = serialize(docs);
            const top = blobs.index ?? blobs.manifest;
            served = new Map([
              ['/v2/fuzz/image/manifests/latest', top],
              [`/v2/fuzz/image/manifests/${blobs.manifest.digest}`, blobs.manifest],
              [
                `/v2/fuzz/image/blobs/${blobs.config.digest}`,
                { ...blobs.config, mediaType: 'application/octet-stream' },
              ],
            ]);
            const client = new RegistryClient({ cache: false, retry: { retries: 0 }, readAhead: false });
            try {
              await onlyIrbErrors(async () =>
                use(await client.image(`${host}/fuzz/image:latest`, { platform: want })),
              );
            } finally {
              await client.close();
            }
          },
          { runs: 400 },
        );
      },
      fuzzTestTimeout(),
    );
  });

  describe('through an OCI layout', () => {
    let root: string;
    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'irb-fuzz-layout-'));
    });
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it(
      'a layout of damaged documents opens, or fails with a catalogued IRB code',
      async () => {
        let n = 0;
        await runFuzz(
          'registry: documents in an OCI layout',
          fc.tuple(imageDocs, platforms, fc.option(fc.constantFrom('latest', 'other'), { nil: undefined })),
          async ([docs, want, tag]) => {
            const blobs = serialize(docs);
            const dir = join(root, String(n++));
            await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
            for (const blob of [blobs.index, blobs.manifest, blobs.config]) {
              if (blob) await writeFile(join(dir, 'blobs', 'sha256', blob.digest.slice(7)), blob.bytes);
            }
            const top = blobs.index ?? blobs.manifest;
            const entry = {
              mediaType: top.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
              digest: top.digest,
              size: top.bytes.byteLength,
              annotations: { 'org.opencontainers.image.ref.name': 'latest' },
            };
            await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
            await writeFile(
              join(dir, 'index.json'),
              JSON.stringify({ schemaVersion: 2, manifests: [entry] }),
            );
            try {
              await onlyIrbErrors(async () =>
                use(await openOciLayout(dir, { platform: want, ...(tag !== undefined && { tag }) })),
              );
            } finally {
              await rm(dir, { recursive: true, force: true });
            }
          },
          { runs: 400 },
        );
      },
      fuzzTestTimeout(),
    );
  });
});
