import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildTar } from '@irb/test-utils';
import {
  applyEdits,
  byteEdits,
  fuzzTestTimeout,
  onlyIrbErrors,
  runFuzz,
  tarSpecs,
} from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { openDockerArchive } from '../src/sources/docker-archive.ts';
import { damaged, type Json, jsonDamage } from './fuzz-images.ts';

/*
 * docker-archive: sources over hostile `docker save` files: the legacy layout and docker 25's
 * blobs/ names, a manifest.json and a config damaged like a hostile tool would, layers plain or
 * gzip, the whole tar damaged byte by byte. Opening, reading the config and streaming every
 * layer (verified against its digest) ends, or fails with a catalogued IRB code in one line.
 */

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const encoder = new TextEncoder();

/** `damage` in one case of four: most archives keep most parts intact, so the damage meets a parser. */
const sometimes = <T>(damage: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: damage });

const archive = fc.record({
  layers: fc.array(fc.tuple(tarSpecs, fc.boolean()), { maxLength: 2 }),
  blobNames: fc.boolean(),
  manifestDamage: sometimes(jsonDamage),
  configDamage: sometimes(jsonDamage),
  edits: sometimes(byteEdits),
  tag: fc.option(fc.constantFrom('example/app:v1', 'docker.io/example/app:v1', '@0', '@1', 'other:tag'), {
    nil: undefined,
  }),
});

/** A docker save archive of the drawn layers, manifest.json and config, damaged as drawn. */
async function dockerSave(a: typeof archive extends fc.Arbitrary<infer T> ? T : never): Promise<Uint8Array> {
  const tars = await Promise.all(a.layers.map(([specs]) => buildTar(specs)));
  const blobs = tars.map((tar, i) => (a.layers[i]?.[1] ? new Uint8Array(gzipSync(tar)) : tar));
  let config: Json = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha256(t)}`) },
  };
  if (a.configDamage) config = damaged(config, a.configDamage);
  const configBytes = encoder.encode(JSON.stringify(config));
  const configName = a.blobNames ? `blobs/sha256/${sha256(configBytes)}` : `${sha256(configBytes)}.json`;
  const layerNames = blobs.map((b, i) => (a.blobNames ? `blobs/sha256/${sha256(b)}` : `${i}/layer.tar`));
  let manifest: Json = [{ Config: configName, RepoTags: ['example/app:v1'], Layers: layerNames }];
  if (a.manifestDamage) manifest = damaged(manifest, a.manifestDamage);
  const tar = await buildTar([
    { type: 'file', path: 'manifest.json', content: JSON.stringify(manifest) },
    { type: 'file', path: configName, content: configBytes },
    ...blobs.map((content, i) => ({ type: 'file' as const, path: layerNames[i] as string, content })),
  ]);
  return a.edits ? applyEdits(tar, a.edits) : tar;
}

describe('docker-archive under fuzzing', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'irb-fuzz-docker-archive-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it(
    'a damaged docker save archive opens and streams its layers, or fails with a catalogued IRB code',
    async () => {
      let n = 0;
      await runFuzz(
        'registry: docker save archives',
        archive,
        async (a) => {
          const file = join(root, `${n++}.tar`);
          await writeFile(file, await dockerSave(a));
          try {
            await onlyIrbErrors(async () => {
              const image = await openDockerArchive(file, {
                platform: 'linux/amd64',
                ...(a.tag !== undefined && { tag: a.tag }),
              });
              await image.config();
              for (const layer of await image.layers()) for await (const _ of layer.open()) void _;
            });
          } finally {
            await rm(file, { force: true });
          }
        },
        { runs: 400 },
      );
    },
    fuzzTestTimeout(),
  );
});
