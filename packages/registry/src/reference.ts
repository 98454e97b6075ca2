import { IrbError } from '@irb/errors';
import { parseDigest } from './digest.ts';

/** A parsed, normalized image reference. */
export interface Reference {
  /** Registry as written by users and keychains: `docker.io`, `ghcr.io`, `localhost:5000`. */
  registry: string;
  /** Host[:port] the API is served on: `registry-1.docker.io` for Docker Hub, else `registry`. */
  apiHost: string;
  /** Repository path, lowercase: `library/alpine`, `a/b/c`. */
  repository: string;
  /** The tag; `latest` when neither tag nor digest was given. */
  tag?: string;
  /** The digest, when given; it wins over the tag for fetching. */
  digest?: string;
  /** What the registry is asked for: the digest if present, else the tag. */
  identifier: string;
}

/** Docker Hub's canonical registry name. */
export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API host. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

/**
 * Every name Docker Hub goes by: the canonical `docker.io`, the legacy index host
 * (`index.docker.io`, which `docker login` still writes as `https://index.docker.io/v1/`), the
 * API host and the old `registry.hub.docker.com`. The one list of them in irb.
 */
export const DOCKER_HUB_ALIASES: readonly string[] = Object.freeze([
  DOCKER_HUB,
  'index.docker.io',
  DOCKER_HUB_API,
  'registry.hub.docker.com',
]);

/**
 * Folds Docker Hub's alias names (any case) into `docker.io`; any other `host[:port]` is
 * returned unchanged. References, mirror tables and keychains all compare registries after this.
 */
export function normalizeRegistry(registry: string): string {
  return DOCKER_HUB_ALIASES.includes(registry.toLowerCase()) ? DOCKER_HUB : registry;
}

// The grammar of github.com/distribution/reference (regexp.go).
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const NAME_MAX = 255;

function invalid(input: string, why: string): IrbError {
  return new IrbError('IRB_REFERENCE_INVALID', `invalid image reference "${clip(input)}": ${why}`);
}

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Parses an image reference with Docker's normalization rules.
 *
 * - `alpine` → `docker.io/library/alpine:latest` (API host `registry-1.docker.io`)
 * - `user/app` → `docker.io/user/app:latest`; Docker Hub's other names (`index.docker.io/...`,
 *   `registry-1.docker.io/...`, `registry.hub.docker.com/...`) → `docker.io/...`
 * - the first path component is a registry when it contains `.` or `:` or is `localhost`
 *   (`localhost/app`, `localhost:5000/app`, `127.0.0.1:5000/a/b/c:tag`, `[::1]:5000/app`)
 * - `name@sha256:…` pins a digest; `name:tag@sha256:…` keeps both and the digest wins.
 *
 * Throws `IrbError('IRB_REFERENCE_INVALID')` saying what is wrong.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string' || input.length === 0) throw invalid(String(input), 'it is empty');
  if (input !== input.trim()) throw invalid(input, 'it has leading or trailing whitespace');
  if (/\s/.test(input)) throw invalid(input, 'it contains whitespace');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    throw invalid(
      input,
      'drop the URL scheme; write host[:port]/repository[:tag] (e.g. localhost:5000/app:1.0)',
    );
  }
  if (/^[a-f0-9]{64}$/.test(input)) {
    throw invalid(input, 'a bare 64-digit hex string is an image ID, not a reference; use name@sha256:<hex>');
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.length === 0)
      throw invalid(input, 'nothing follows "@"; expected a digest like sha256:<64 hex>');
    try {
      parseDigest(digest);
    } catch (error) {
      throw new IrbError(
        'IRB_REFERENCE_INVALID',
        `invalid image reference "${clip(input)}": ${(error as Error).message}`,
      );
    }
  }

  let tag: string | undefined;
  // A tag follows the last ':' only if no '/' comes after it (else the ':' is a port).
  const colon = rest.lastIndexOf(':');
  if (colon !== -1 && !rest.slice(colon).includes('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw invalid(
        input,
        tag.length === 0
          ? 'the tag after ":" is empty'
          : `tag "${clip(tag)}" is not valid (up to 128 of letters, digits, "_", "." and "-", not starting with "." or "-")`,
      );
    }
  }
  if (rest.length === 0) throw invalid(input, 'the repository name is missing');

  let registry: string;
  let remainder: string;
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  if (
    slash === -1 ||
    (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first.toLowerCase() === first)
  ) {
    registry = DOCKER_HUB;
    remainder = rest;
  } else {
    registry = first;
    remainder = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) {
      throw invalid(input, `"${clip(registry)}" is not a valid registry host[:port]`);
    }
  }
  registry = normalizeRegistry(registry);
  if (registry === DOCKER_HUB && !remainder.includes('/')) remainder = `library/${remainder}`;

  if (remainder.length === 0) throw invalid(input, 'the repository name is missing');
  if (remainder !== remainder.toLowerCase()) {
    // The name as typed, lowercased, with its tag and digest: an upper-case first component was
    // taken for a registry host, so the repository alone would drop it ("Kit/Entry" is not "entry").
    const suggestion = `${rest.toLowerCase()}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
    throw invalid(input, `repository names must be lowercase; did you mean "${suggestion}"?`);
  }
  for (const component of remainder.split('/')) {
    if (component.length === 0)
      throw invalid(input, 'the repository has an empty path component ("//" or a trailing "/")');
    if (!PATH_COMPONENT_RE.test(component)) {
      throw invalid(
        input,
        `"${clip(component)}" is not a valid repository component (lowercase letters, digits, separated by ".", "_", "__" or "-")`,
      );
    }
  }
  if (registry.length + 1 + remainder.length > NAME_MAX) {
    throw invalid(input, `the name is longer than ${NAME_MAX} characters`);
  }

  if (tag === undefined && digest === undefined) tag = 'latest';
  const reference: Reference = {
    registry,
    apiHost: registry === DOCKER_HUB ? DOCKER_HUB_API : registry,
    repository: remainder,
    identifier: digest ?? (tag as string),
  };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

/** The fully qualified form: `docker.io/library/alpine:latest`, `host/repo:tag@sha256:…`. */
export function formatReference(ref: Pick<Reference, 'registry' | 'repository' | 'tag' | 'digest'>): string {
  let out = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/** A copy of `ref` pinned to `digest` (tag kept for display). */
export function withDigest(ref: Reference, digest: string): Reference {
  parseDigest(digest);
  return { ...ref, digest, identifier: digest };
}

/** True for hosts irb may talk to over plain HTTP without being told: localhost and loopback addresses. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHostname(registry);
  return (
    host === 'localhost' ||
    host === '::1' ||
    /^127(?:\.\d{1,3}){3}$/.test(host) ||
    host.endsWith('.localhost')
  );
}

/** The hostname part of `host[:port]` (IPv6 without brackets). */
export function registryHostname(registry: string): string {
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    return registry.slice(1, end === -1 ? undefined : end).toLowerCase();
  }
  const colon = registry.lastIndexOf(':');
  return (colon === -1 ? registry : registry.slice(0, colon)).toLowerCase();
}
