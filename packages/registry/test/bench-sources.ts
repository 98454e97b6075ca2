/**
 * Measures the local image sources on the cached ~1 GB synthetic image:
 * `node --conditions=@irb/source packages/registry/test/bench-sources.ts [sizeBytes]`.
 * Prints a table: time to open, time to stream and verify every layer, throughput, peak RSS.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureSyntheticImage } from '@irb/test-utils';
import { openDockerArchive, openOciLayout } from '../src/index.ts';
import type { Image } from '../src/types.ts';

const run = promisify(execFile);

interface Row {
  source: string;
  openMs: number;
  streamMs: number;
  bytes: number;
}

async function measure(source: string, open: () => Promise<Image>): Promise<Row> {
  const t0 = performance.now();
  const image = await open();
  const layers = await image.layers();
  const t1 = performance.now();
  let bytes = 0;
  for (const layer of layers) for await (const chunk of layer.open()) bytes += chunk.byteLength;
  const t2 = performance.now();
  return { source, openMs: t1 - t0, streamMs: t2 - t1, bytes };
}

async function main() {
  const sizeBytes = Number(process.argv[2] ?? 1_000_000_000);
  const synthetic = await ensureSyntheticImage({ sizeBytes });
  const tmp = await mkdtemp(join(tmpdir(), 'irb-bench-sources-'));
  try {
    const archive = join(tmp, 'image.tar');
    const t = performance.now();
    await run('skopeo', ['copy', '--quiet', synthetic.ref, `docker-archive:${archive}:bench/synthetic:1`]);
    const skopeoMs = performance.now() - t;
    const archiveBytes = (await stat(archive)).size;
    const shaStart = performance.now();
    await run('sha256sum', [archive]);
    const shaMs = performance.now() - shaStart;

    const rows: Row[] = [];
    rows.push(
      await measure('oci layout (gzip layers)', () =>
        openOciLayout(synthetic.layoutDir, { tag: synthetic.tag }),
      ),
    );
    rows.push(await measure('docker-archive (tar layers)', () => openDockerArchive(archive)));
    rows.push(await measure('docker-archive, again', () => openDockerArchive(archive)));

    const mib = (n: number) => n / (1 << 20);
    console.log(`image: ${synthetic.ref}; docker-archive ${mib(archiveBytes).toFixed(0)} MiB`);
    console.log(
      `reference: skopeo copy oci → docker-archive ${(skopeoMs / 1000).toFixed(1)} s; sha256sum of the archive ${(shaMs / 1000).toFixed(2)} s (${(mib(archiveBytes) / (shaMs / 1000)).toFixed(0)} MiB/s)`,
    );
    console.log('| source | open (index + config) | stream + verify all layers | MiB | MiB/s |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      console.log(
        `| ${r.source} | ${(r.openMs / 1000).toFixed(2)} s | ${(r.streamMs / 1000).toFixed(2)} s | ${mib(r.bytes).toFixed(0)} | ${(mib(r.bytes) / (r.streamMs / 1000)).toFixed(0)} |`,
      );
    }
    console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
