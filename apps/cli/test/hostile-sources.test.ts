import { mkdtemp, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTar,
  fifo,
  layoutBlobPath,
  rewriteLayoutManifest,
  sparseFile,
  writeOciLayout,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, filesIn, runCli } from './harness.ts';

/*
 * `oci:` and `docker-archive:` inputs as an attacker or an unlucky user leaves them, given to the
 * real CLI in its own process: a FIFO wedged irb (SIGTERM and SIGINT ignored, only SIGKILL ended
 * it), a blob symlinked to /dev/zero read forever, a 3 GiB sparse config was read whole. Each
 * must end by itself with one error line and exit 1; and a signal must end irb whatever it reads.
 */

const GiB = 2 ** 30;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-cli-hostile-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function layout(name: string, compression: 'gzip' | 'none' = 'gzip') {
  const dir = join(root, name);
  const tar = await buildTar([{ type: 'file', path: 'hello', content: 'hi\n' }]);
  const [entry] = await writeOciLayout(dir, [{ images: [{ layers: [tar], compression }] }]);
  return { dir, image: entry!.images[0]! };
}

/** `irb build SOURCE` into a fresh directory; the output directory must stay empty. */
async function build(source: string, options: Parameters<typeof runCli>[1] = {}): Promise<CliResult> {
  const out = await mkdtemp(join(root, 'out-'));
  const result = await runCli(
    ['build', source, '-o', join(out, 'initrd.cpio.gz'), '--cache-dir', join(root, 'cache')],
    { timeoutMs: 60_000, ...options },
  );
  expect(await filesIn(out)).toEqual([]);
  return result;
}

/** Exit 1 and exactly one error line, matching `message`. */
function failedOnce(result: CliResult, message: RegExp): void {
  expect(result.code, result.stderr).toBe(1);
  const errors = result.stderr.split('\n').filter((line) => line.startsWith('irb: error:'));
  expect(errors, result.stderr).toHaveLength(1);
  expect(errors[0]).toMatch(message);
}

describe('irb build on hostile oci: and docker-archive: inputs ends by itself, in one line', () => {
  it('an index.json that is a FIFO', async () => {
    const { dir } = await layout('fifo-index');
    await fifo(join(dir, 'index.json'));
    failedOnce(await build(`oci:${dir}`), /index\.json is a FIFO, not a regular file/);
  });

  it('a layer blob that is a FIFO', async () => {
    const { dir, image } = await layout('fifo-layer');
    await fifo(layoutBlobPath(dir, image.layerDigests[0]!));
    failedOnce(await build(`oci:${dir}`), /^irb: error: OCI layout blob .* is a FIFO, not a regular file/);
  });

  it('a layer blob symlinked to /dev/zero', async () => {
    const { dir, image } = await layout('dev-zero');
    const path = layoutBlobPath(dir, image.layerDigests[0]!);
    await unlink(path);
    await symlink('/dev/zero', path);
    failedOnce(await build(`oci:${dir}`), /is a character device, not a regular file/);
  });

  it('a 3 GiB sparse config, claimed by its descriptor or not', async () => {
    const claimed = await layout('config-bomb');
    await sparseFile(layoutBlobPath(claimed.dir, claimed.image.configDigest), 3 * GiB);
    await rewriteLayoutManifest(claimed.dir, claimed.image.manifestDigest, (m) => {
      m.config.size = 3 * GiB;
    });
    failedOnce(await build(`oci:${claimed.dir}`), /claims 3221225472 bytes, over the 64 MiB limit/);

    const lying = await layout('config-lie');
    await sparseFile(layoutBlobPath(lying.dir, lying.image.configDigest), 3 * GiB);
    failedOnce(await build(`oci:${lying.dir}`), /holds 3221225472 bytes, its descriptor says \d+/);
  });

  it('a docker archive that is a FIFO', async () => {
    const path = join(root, 'archive.tar');
    await fifo(path);
    failedOnce(await build(`docker-archive:${path}`), /docker archive .* is a FIFO, not a regular file/);
  });
});

describe('a signal ends irb while it reads a source', () => {
  // A 64 GiB layer (a hole on disk) of zeros, so a plain tar that ends at once and is then read to
  // its end for the digest: minutes of reading, unless the signal is heard.
  let big: string;
  beforeAll(async () => {
    const { dir, image } = await layout('endless', 'none');
    const digest = `sha256:${'ab'.repeat(32)}`;
    await sparseFile(layoutBlobPath(dir, digest), 64 * GiB);
    await rewriteLayoutManifest(dir, image.manifestDigest, (m) => {
      m.layers[0] = { ...m.layers[0]!, digest, size: 64 * GiB };
    });
    big = dir;
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s exits %i with one line, nothing written', async (signal, code) => {
    const result = await build(`oci:${big}`, {
      interruptWhen: (stderr) => stderr.includes('1 layers'),
      interruptSignal: signal,
    });
    expect(result.code, result.stderr).toBe(code);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('irb: interrupted; nothing was written');
  });
});
