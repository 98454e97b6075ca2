/**
 * Where a registry's content can be fetched: its mirrors (from options and
 * `IRB_REGISTRY_MIRRORS`), then the registry itself. Parsing and validating mirror URLs lives
 * here; what to do when one endpoint fails belongs to the callers (manifests, blobs).
 */
import { IrbError } from '@irb/errors';
import { redactUrl } from './redact.ts';
import { normalizeRegistry, type Reference } from './reference.ts';

/** One place to send requests for a repository: a mirror or the registry itself. */
export interface Endpoint {
  /** Registry name given to keychains (`docker.io`, or the mirror's host). */
  registry: string;
  /** `scheme://host[:port]` plus an optional path prefix; no trailing slash. Empty for the registry. */
  base: string;
  /** Host for scheme decisions (`host[:port]`). */
  host: string;
  mirror: boolean;
  /** Scheme fixed by configuration (mirror URL) or `undefined` to negotiate. */
  scheme: 'https' | 'http' | undefined;
}

/** Parses `IRB_REGISTRY_MIRRORS` (`docker.io=https://a,docker.io=https://b,ghcr.io=https://c`). */
export function parseMirrorsEnv(value: string | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!value) return out;
  for (const entry of value.split(/[,;\s]+/)) {
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `IRB_REGISTRY_MIRRORS entry "${entry}" is not registry=URL (e.g. docker.io=https://mirror.example)`,
      );
    }
    const registry = entry.slice(0, eq);
    const url = entry.slice(eq + 1);
    const list = out[registry] ?? [];
    list.push(url);
    out[registry] = list;
  }
  return out;
}

/** Checks a mirror URL and turns it into an endpoint; throws `IRB_OPTION_INVALID` saying what is wrong. */
export function mirrorEndpoint(registry: string, raw: string): Endpoint {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror "${redactUrl(raw)}" for ${registry} is not a URL; write it as https://host[:port][/prefix]`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror ${redactUrl(raw)} for ${registry} must be an http(s) URL`,
    );
  }
  if (url.username || url.password) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror ${redactUrl(raw)} for ${registry} has credentials in its URL; supply them through a keychain in \`keychains\` instead`,
    );
  }
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
  return {
    registry: url.host,
    base: `${url.protocol}//${url.host}${path}`,
    host: url.host,
    mirror: true,
    scheme: url.protocol === 'https:' ? 'https' : 'http',
  };
}

/**
 * The mirror table of one client: `IRB_REGISTRY_MIRRORS` first, then the `mirrors` option,
 * with Docker Hub's alias names folded into `docker.io` (references always say `docker.io`).
 * Every URL is validated up front, so a typo fails when the client is made, not mid-pull.
 */
export class Mirrors {
  readonly #table: Record<string, string[]>;

  constructor(options: Record<string, string[]> = {}, envValue = process.env.IRB_REGISTRY_MIRRORS) {
    const table: Record<string, string[]> = {};
    const add = (registry: string, urls: readonly string[]) => {
      const key = normalizeRegistry(registry);
      table[key] = [...(table[key] ?? []), ...urls];
    };
    for (const [registry, urls] of Object.entries(parseMirrorsEnv(envValue))) add(registry, urls);
    for (const [registry, urls] of Object.entries(options)) add(registry, urls);
    for (const [registry, urls] of Object.entries(table))
      for (const url of urls) mirrorEndpoint(registry, url);
    this.#table = table;
  }

  /** Where to fetch `ref` from, in order: each mirror, then the registry itself. */
  endpoints(ref: Reference): Endpoint[] {
    const mirrors = (this.#table[ref.registry] ?? []).map((url) => mirrorEndpoint(ref.registry, url));
    return [
      ...mirrors,
      { registry: ref.registry, base: '', host: ref.apiHost, mirror: false, scheme: undefined },
    ];
  }
}
