import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type StartedFaultProxy,
  type StartedRegistry,
  startFaultProxy,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blobFromBytes,
  blobFromFile,
  createRegistryClient,
  createStaticKeychain,
  EMPTY_CONFIG_BYTES,
  INITRAMFS_ARTIFACT_TYPE,
  initramfsManifest,
  isInitramfsManifest,
  manifestBytes,
  OCI_MANIFEST,
  type RegistryClientOptions,
  referrerDescriptor,
  sha256Digest,
} from '../src/index.ts';

const fastRetry = { retries: 3, baseDelayMs: 5, maxDelayMs: 200 };
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

function client(options: RegistryClientOptions = {}) {
  const c = createRegistryClient({ retry: fastRetry, cache: false, ...options });
  cleanups.push(() => c.close());
  return c;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function randomBlob(size: number) {
  const bytes = new Uint8Array(randomBytes(size));
  const digest = sha256Digest(bytes);
  return {
    bytes,
    digest,
    blob: blobFromBytes(bytes, digest),
    descriptor: { mediaType: 'application/octet-stream', digest, size },
  };
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a rejection');
}

/** Pushes an initramfs artifact (empty config, one layer) and returns its manifest bytes and digest. */
async function pushArtifact(
  c: ReturnType<typeof client>,
  ref: string,
  layer: Uint8Array,
  subject?: { mediaType: string; digest: string; size: number },
) {
  const layerDigest = sha256Digest(layer);
  await c.pushBlob(ref, blobFromBytes(layer, layerDigest));
  await c.pushBlob(ref, blobFromBytes(EMPTY_CONFIG_BYTES, sha256Digest(EMPTY_CONFIG_BYTES)));
  const manifest = initramfsManifest({
    layer: { digest: layerDigest, size: layer.byteLength },
    compression: 'gzip',
    annotations: { 'dev.irb.platform': 'linux/amd64' },
    ...(subject ? { subject } : {}),
  });
  const bytes = manifestBytes(manifest);
  // Referrers go in by digest (no tag), as the OCI guidance says.
  const put = await c.pushManifest(subject ? `${ref}@${sha256Digest(bytes)}` : ref, bytes, OCI_MANIFEST);
  return { manifest, bytes, digest: put.digest, put };
}

describe('push to a plain registry', () => {
  let registry: StartedRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
    cleanups.push(() => registry.stop());
  });

  it('uploads monolithically, skips a blob that is there, and the bytes read back verified', async () => {
    const c = client();
    const { bytes, digest, blob, descriptor } = randomBlob(300_000);
    const ref = `${registry.host}/push/mono:x`;
    expect(await c.hasBlob(ref, digest)).toBe(false);
    expect(await c.pushBlob(ref, blob)).toBe('uploaded');
    expect(await c.hasBlob(ref, digest)).toBe(true);
    expect(await c.pushBlob(ref, blob)).toBe('exists');
    expect(Buffer.compare(await readAll(client().openBlob(ref, descriptor)), Buffer.from(bytes))).toBe(0);
  });

  it('uploads in chunks (PATCH with Content-Range), the last one short', async () => {
    const c = client();
    const dir = await mkdtemp(join(tmpdir(), 'irb-push-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { bytes, descriptor } = randomBlob(10_000);
    await writeFile(join(dir, 'blob'), bytes);
    const blob = await blobFromFile(join(dir, 'blob'));
    expect(blob.digest).toBe(descriptor.digest);
    const ref = `${registry.host}/push/chunked:x`;
    expect(await c.pushBlob(ref, blob, { chunkSize: 4096 })).toBe('uploaded');
    expect(Buffer.compare(await readAll(client().openBlob(ref, descriptor)), Buffer.from(bytes))).toBe(0);
  });

  it('mounts a blob from another repository instead of uploading it again', async () => {
    const { blob, bytes, descriptor } = randomBlob(50_000);
    await client().pushBlob(`${registry.host}/push/source:x`, blob);
    const c = client();
    expect(await c.pushBlob(`${registry.host}/push/target:x`, blob, { mountFrom: ['push/source'] })).toBe(
      'mounted',
    );
    expect(
      Buffer.compare(
        await readAll(client().openBlob(`${registry.host}/push/target:x`, descriptor)),
        Buffer.from(bytes),
      ),
    ).toBe(0);
    // The same client remembers where it pushed a blob and mounts from there on its own.
    expect(await c.pushBlob(`${registry.host}/push/third:x`, blob)).toBe('mounted');
  });

  it('falls back to an upload when the mount source lacks the blob', async () => {
    const { blob } = randomBlob(1000);
    expect(
      await client().pushBlob(`${registry.host}/push/m2:x`, blob, { mountFrom: ['push/nothing-here'] }),
    ).toBe('uploaded');
  });

  it('pushes an artifact manifest byte for byte; reading it needs `artifacts: true`', async () => {
    const c = client();
    const ref = `${registry.host}/push/artifact:v1`;
    const { bytes, digest, put } = await pushArtifact(c, ref, new Uint8Array(randomBytes(5000)));
    expect(put.subjectHandled).toBe(false);
    const fetched = await client().manifest(ref, { artifacts: true });
    expect(fetched.digest).toBe(digest);
    expect(Buffer.compare(Buffer.from(fetched.bytes), Buffer.from(bytes))).toBe(0);
    expect(isInitramfsManifest(fetched.json)).toBe(true);
    const refused = await rejection(client().image(ref));
    expect(refused.code).toBe('IRB_MANIFEST_UNSUPPORTED');
  });

  it('finds referrers through the tag-schema fallback (distribution 2.8 has no referrers API)', async () => {
    const c = client();
    const subjectRef = `${registry.host}/push/app:1`;
    const subject = await pushArtifact(c, subjectRef, new Uint8Array(randomBytes(100)));
    const subjectDescriptor = {
      mediaType: OCI_MANIFEST,
      digest: subject.digest,
      size: subject.bytes.byteLength,
    };
    expect((await c.referrers(subjectRef, subject.digest)).manifests).toEqual([]);
    const a = await pushArtifact(
      c,
      `${registry.host}/push/app`,
      new Uint8Array(randomBytes(200)),
      subjectDescriptor,
    );
    expect(a.manifest.subject?.digest).toBe(subject.digest);
    expect(a.put.subjectHandled).toBe(false);
    await c.attachReferrer(subjectRef, subject.digest, referrerDescriptor(a.manifest, a.bytes));
    const b = await pushArtifact(
      c,
      `${registry.host}/push/app`,
      new Uint8Array(randomBytes(300)),
      subjectDescriptor,
    );
    await c.attachReferrer(subjectRef, subject.digest, referrerDescriptor(b.manifest, b.bytes));
    // Attaching twice keeps one entry.
    await c.attachReferrer(subjectRef, subject.digest, referrerDescriptor(b.manifest, b.bytes));
    const found = await client().referrers(subjectRef, subject.digest, {
      artifactType: INITRAMFS_ARTIFACT_TYPE,
    });
    expect(found.via).toBe('tag');
    expect(found.manifests.map((m) => m.digest)).toEqual([a.digest, b.digest]);
    expect(found.manifests[0]?.annotations?.['dev.irb.platform']).toBe('linux/amd64');
    expect(
      (await client().referrers(subjectRef, subject.digest, { artifactType: 'application/other' })).manifests,
    ).toEqual([]);
  });
});

describe('interrupted uploads', () => {
  let registry: StartedRegistry;
  let proxy: StartedFaultProxy;
  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.url);
    cleanups.push(
      () => registry.stop(),
      () => proxy.stop(),
    );
  });

  it('a chunk that fails restarts the upload with a new session; the blob is whole', async () => {
    const { bytes, blob, descriptor } = randomBlob(20_000);
    proxy.clear();
    proxy.add({ method: 'PATCH', fault: { kind: 'status', status: 500 }, times: 1 });
    const start = proxy.requests.length;
    const ref = `${proxy.host}/faults/chunked:x`;
    expect(await client().pushBlob(ref, blob, { chunkSize: 8192 })).toBe('uploaded');
    const seen = proxy.requests.slice(start).map((r) => r.method);
    expect(seen.filter((m) => m === 'POST').length).toBe(2);
    expect(seen).toContain('DELETE');
    expect(
      Buffer.compare(
        await readAll(client().openBlob(`${registry.host}/faults/chunked:x`, descriptor)),
        Buffer.from(bytes),
      ),
    ).toBe(0);
  });

  it('a final PUT that fails restarts; a registry that keeps failing gives one clear error', async () => {
    const { blob } = randomBlob(5000);
    proxy.clear();
    proxy.add({ method: 'PUT', path: 'uploads', fault: { kind: 'status', status: 503 }, times: 1 });
    expect(await client().pushBlob(`${proxy.host}/faults/mono:x`, blob)).toBe('uploaded');
    proxy.clear();
    proxy.add({
      method: 'PUT',
      path: 'uploads',
      fault: { kind: 'status', status: 503 },
      times: Number.POSITIVE_INFINITY,
    });
    const failed = await rejection(client().pushBlob(`${proxy.host}/faults/mono2:x`, randomBlob(100).blob));
    expect(failed.code).toBe('IRB_REGISTRY_FAILED');
    expect(failed.message).toMatch(/503/);
    proxy.clear();
  });
  it('a manifest PUT answered MANIFEST_BLOB_UNKNOWN (a concurrent pusher mid-commit) is retried', async () => {
    proxy.clear();
    proxy.add({
      method: 'PUT',
      path: '/manifests/',
      fault: {
        kind: 'status',
        status: 400,
        body: JSON.stringify({
          errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry' }],
        }),
      },
      times: 2,
    });
    const c = client();
    const { digest } = await pushArtifact(
      c,
      `${proxy.host}/faults/race:v1`,
      new Uint8Array(randomBytes(100)),
    );
    expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).length).toBe(3);
    expect((await client().manifest(`${registry.host}/faults/race:v1`, { artifacts: true })).digest).toBe(
      digest,
    );
    proxy.add({
      method: 'PUT',
      path: '/manifests/',
      fault: {
        kind: 'status',
        status: 400,
        body: '{"errors":[{"code":"MANIFEST_INVALID","message":"bad"}]}',
      },
    });
    const failed = await rejection(
      pushArtifact(client(), `${proxy.host}/faults/race:v2`, new Uint8Array(randomBytes(10))),
    );
    expect(failed.code).toBe('IRB_REGISTRY_FAILED');
    expect(failed.message).toMatch(/400 pushing the manifest.*MANIFEST_INVALID/);
    proxy.clear();
  });
  it('referrers: an API answering HTML (GHCR redirects to its web UI) falls back to the tag; a tag that resolves to the subject (GitLab) means none', async () => {
    const c = client();
    const subjectRef = `${proxy.host}/faults/subject:1`;
    const subject = await pushArtifact(c, subjectRef, new Uint8Array(randomBytes(50)));
    const descriptor = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    const a = await pushArtifact(
      c,
      `${proxy.host}/faults/subject`,
      new Uint8Array(randomBytes(60)),
      descriptor,
    );
    await c.attachReferrer(subjectRef, subject.digest, referrerDescriptor(a.manifest, a.bytes));
    proxy.clear();
    proxy.add({
      method: 'GET',
      path: '/referrers/',
      fault: { kind: 'replace', headers: { 'content-type': 'text/html' }, body: '<html>packages</html>' },
    });
    const found = await client().referrers(subjectRef, subject.digest);
    expect(found.via).toBe('tag');
    expect(found.manifests.map((m) => m.digest)).toEqual([a.digest]);
    proxy.add({
      method: 'GET',
      path: `/manifests/sha256-`,
      fault: {
        kind: 'replace',
        headers: { 'content-type': OCI_MANIFEST, 'docker-content-digest': subject.digest },
        body: subject.bytes,
      },
    });
    expect((await client().referrers(subjectRef, subject.digest)).manifests).toEqual([]);
    proxy.clear();
  });
  it('a registry with the referrers API: its index is used (filtered here too), and OCI-Subject means handled', async () => {
    const subject = `sha256:${'c'.repeat(64)}`;
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: `sha256:${'1'.repeat(64)}`,
          size: 10,
          artifactType: INITRAMFS_ARTIFACT_TYPE,
        },
        {
          mediaType: OCI_MANIFEST,
          digest: `sha256:${'2'.repeat(64)}`,
          size: 10,
          artifactType: 'application/other',
        },
      ],
    };
    proxy.clear();
    proxy.add({
      method: 'GET',
      path: `/referrers/${subject}`,
      fault: {
        kind: 'replace',
        headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
        body: JSON.stringify(index),
      },
    });
    const found = await client().referrers(`${proxy.host}/faults/api`, subject, {
      artifactType: INITRAMFS_ARTIFACT_TYPE,
    });
    expect(found).toEqual({ via: 'api', manifests: [index.manifests[0]] });
    expect(proxy.requests.at(-1)?.path).toContain(
      `?artifactType=${encodeURIComponent(INITRAMFS_ARTIFACT_TYPE)}`,
    );
    const bytes = manifestBytes({ schemaVersion: 2, note: 'x' });
    proxy.add({
      method: 'PUT',
      path: '/manifests/',
      fault: {
        kind: 'replace',
        status: 201,
        headers: { 'oci-subject': subject, 'docker-content-digest': sha256Digest(bytes) },
        body: '',
      },
    });
    expect(
      (await client().pushManifest(`${proxy.host}/faults/api:x`, bytes, OCI_MANIFEST)).subjectHandled,
    ).toBe(true);
    proxy.clear();
  });
});

describe('push behind token auth', () => {
  let registry: StartedRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: { token: { readOnlyUsers: { reader: 'read-pass' } } } });
    cleanups.push(() => registry.stop());
  });

  it('asks for the push scope with the keychain credentials and pushes', async () => {
    const creds = registry.pushCredentials!;
    const c = client({
      keychains: [
        createStaticKeychain({
          [registry.host]: { kind: 'basic', username: creds.username, password: creds.password },
        }),
      ],
    });
    const { blob, descriptor } = randomBlob(2000);
    expect(await c.pushBlob(`${registry.host}/secure/app:1`, blob, { chunkSize: 1024 })).toBe('uploaded');
    const scopes = registry.tokenServer!.requests.flatMap((r) => r.scopes);
    expect(scopes).toContain('repository:secure/app:pull,push');
    expect(await c.hasBlob(`${registry.host}/secure/app:1`, descriptor.digest)).toBe(true);
  });

  it('a read-only token fails with a clear error naming the missing push permission', async () => {
    const c = client({
      keychains: [
        createStaticKeychain({
          [registry.host]: { kind: 'basic', username: 'reader', password: 'read-pass' },
        }),
      ],
    });
    const failed = await rejection(c.pushBlob(`${registry.host}/secure/app:1`, randomBlob(100).blob));
    expect(failed.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failed.message).toMatch(/lack push permission for secure\/app/);
    expect(failed.message).toContain('keychain "static"');
  });
});

describe('push behind basic auth (htpasswd)', () => {
  it('sends the keychain username/password and pushes; a wrong password is refused clearly', async () => {
    const registry = await startRegistry({ auth: { htpasswd: { user: 'ci', pass: 'ci-secret' } } });
    cleanups.push(() => registry.stop());
    const keychain = (password: string) => [
      createStaticKeychain({ [registry.host]: { kind: 'basic', username: 'ci', password } }),
    ];
    const { blob, bytes, descriptor } = randomBlob(3000);
    expect(
      await client({ keychains: keychain('ci-secret') }).pushBlob(`${registry.host}/basic/app:1`, blob),
    ).toBe('uploaded');
    const back = await readAll(
      client({ keychains: keychain('ci-secret') }).openBlob(`${registry.host}/basic/app:1`, descriptor),
    );
    expect(Buffer.compare(back, Buffer.from(bytes))).toBe(0);
    const wrong = await rejection(
      client({ keychains: keychain('nope') }).pushBlob(`${registry.host}/basic/app:1`, randomBlob(10).blob),
    );
    expect(wrong.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(wrong.message).not.toContain('nope');
  });
});
