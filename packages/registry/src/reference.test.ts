import { describe, expect, it } from 'vitest';
import {
  DOCKER_HUB_ALIASES,
  formatReference,
  isLoopbackRegistry,
  normalizeRegistry,
  parseReference,
} from './reference.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['alpine:3.20', 'docker.io', 'registry-1.docker.io', 'library/alpine', '3.20', undefined],
    ['user/app', 'docker.io', 'registry-1.docker.io', 'user/app', 'latest', undefined],
    [
      'index.docker.io/library/busybox:1',
      'docker.io',
      'registry-1.docker.io',
      'library/busybox',
      '1',
      undefined,
    ],
    ['docker.io/busybox', 'docker.io', 'registry-1.docker.io', 'library/busybox', 'latest', undefined],
    ['localhost/app', 'localhost', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/a/b/c:tag', 'localhost:5000', 'localhost:5000', 'a/b/c', 'tag', undefined],
    ['127.0.0.1:5000/x', '127.0.0.1:5000', '127.0.0.1:5000', 'x', 'latest', undefined],
    ['[::1]:5000/x:1', '[::1]:5000', '[::1]:5000', 'x', '1', undefined],
    ['ghcr.io/o/r/s', 'ghcr.io', 'ghcr.io', 'o/r/s', 'latest', undefined],
    [`alpine@${D}`, 'docker.io', 'registry-1.docker.io', 'library/alpine', undefined, D],
    [`host.io:443/a:v1@${D}`, 'host.io:443', 'host.io:443', 'a', 'v1', D],
    ['a_b/c__d/e-f.g:T_1', 'docker.io', 'registry-1.docker.io', 'a_b/c__d/e-f.g', 'T_1', undefined],
  ])('%s', (input, registry, apiHost, repository, tag, digest) => {
    const ref = parseReference(input);
    expect(ref.registry).toBe(registry);
    expect(ref.apiHost).toBe(apiHost);
    expect(ref.repository).toBe(repository);
    expect(ref.tag).toBe(tag);
    expect(ref.digest).toBe(digest);
    expect(ref.identifier).toBe(digest ?? tag);
  });

  it('digest wins over tag and both are kept', () => {
    const ref = parseReference(`registry.example/app:1.0@${D}`);
    expect(ref.identifier).toBe(D);
    expect(formatReference(ref)).toBe(`registry.example/app:1.0@${D}`);
  });

  it.each([
    ['', /empty/],
    ['Alpine', /lowercase; did you mean "alpine"\?/],
    ['docker.io/Library/x', /lowercase; did you mean "docker.io\/library\/x"\?/],
    ['Kit/Entry:v1', /lowercase; did you mean "kit\/entry:v1"\?/],
    ['app:', /tag after ":" is empty/],
    ['app:-bad', /tag "-bad" is not valid/],
    ['app@sha256:abc', /64 lowercase hex/],
    ['app@md5:0123', /unsupported digest algorithm/],
    ['app@', /nothing follows "@"/],
    ['https://host/app', /drop the URL scheme/],
    ['a'.repeat(64).replace(/a/g, 'f'), /image ID/],
    ['host:5000/', /repository name is missing/],
    ['a//b', /empty path component/],
    ['a/b-/c', /not a valid repository component/],
    [' alpine', /whitespace/],
    ['x'.repeat(300), /longer than 255/],
    ['bad_host.com:99/x', /not a valid registry/],
  ])('refuses %j', (input, why) => {
    expect(() => parseReference(input)).toThrow(why);
    try {
      parseReference(input);
    } catch (error) {
      expect((error as { code: string }).code).toBe('IRB_REFERENCE_INVALID');
    }
  });

  it('knows loopback registries', () => {
    expect(isLoopbackRegistry('localhost:5000')).toBe(true);
    expect(isLoopbackRegistry('127.0.0.1:8080')).toBe(true);
    expect(isLoopbackRegistry('[::1]:5000')).toBe(true);
    expect(isLoopbackRegistry('registry.local:5000')).toBe(false);
    expect(isLoopbackRegistry('127.example.com')).toBe(false);
  });
});

describe('Docker Hub aliases', () => {
  it('normalizeRegistry folds every alias, in any case, into docker.io and leaves other hosts alone', () => {
    for (const alias of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']) {
      expect(DOCKER_HUB_ALIASES).toContain(alias);
      expect(normalizeRegistry(alias)).toBe('docker.io');
      expect(normalizeRegistry(alias.toUpperCase())).toBe('docker.io');
    }
    expect(normalizeRegistry('ghcr.io')).toBe('ghcr.io');
    expect(normalizeRegistry('Registry.Example:5000')).toBe('Registry.Example:5000');
    // look-alikes are other registries
    expect(normalizeRegistry('docker.io:443')).toBe('docker.io:443');
    expect(normalizeRegistry('mirror.docker.io')).toBe('mirror.docker.io');
  });

  it.each(DOCKER_HUB_ALIASES.map((alias) => [alias]))('%s/busybox is docker.io/library/busybox', (alias) => {
    const ref = parseReference(`${alias}/busybox:1`);
    expect(ref.registry).toBe('docker.io');
    expect(ref.apiHost).toBe('registry-1.docker.io');
    expect(ref.repository).toBe('library/busybox');
    expect(formatReference(ref)).toBe('docker.io/library/busybox:1');
  });
});
