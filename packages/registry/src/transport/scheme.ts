/**
 * Scheme negotiation: which of https and http to use for a registry host, and whether its
 * certificate is verified. HTTPS always comes first; plain HTTP is tried only for loopback hosts
 * and for registries listed in `insecureRegistries`, and only once the HTTPS attempt showed the
 * server speaks plain HTTP (or refused the connection).
 *
 * With a cache directory, what was learned is remembered there (`schemes`, one `host http`
 * line per host): the next process starts with plain HTTP for such a host instead of paying
 * for a TLS attempt (loading TLS and a failed handshake: ~30 ms of a cached rebuild). Only hosts
 * that may use plain HTTP anyway are ever remembered or looked up, and a remembered host that
 * fails in plain HTTP (a reset, or a 400: what a TLS server answers to plain HTTP) is forgotten
 * and tried with HTTPS first again.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { IrbError } from '@irb/errors';
import type { Endpoint } from '../mirrors.ts';
import type { Secrets } from '../redact.ts';
import { isLoopbackRegistry } from '../reference.ts';
import { errorCode, isCertificateError, isPlainHttpAnswer } from './http.ts';

/** What one request to an endpoint uses. */
export interface SchemeChoice {
  scheme: 'https' | 'http';
  /** True when falling back to plain HTTP is allowed for this host. */
  mayDowngrade: boolean;
  /** True for hosts listed as insecure: their certificate is not verified. */
  skipTlsVerify: boolean;
  /** True when plain HTTP comes from an earlier process's memory, not from this one's attempt. */
  remembered?: boolean;
}

/** The insecure-registry list and the scheme learned per host, for one client. */
export class Schemes {
  readonly #insecure: Set<string>;
  readonly #learned = new Map<string, 'https' | 'http'>();
  readonly #memoryFile: string | undefined;
  #remembered: Set<string> | undefined;

  /** `memoryFile`: where hosts learned to speak plain HTTP are remembered (none: not remembered). */
  constructor(insecureRegistries: readonly string[] = [], memoryFile?: string) {
    this.#memoryFile = memoryFile;
    // Accept what people paste: `http://host:5000/` means `host:5000`.
    this.#insecure = new Set(
      insecureRegistries.map((r) =>
        r
          .trim()
          .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
          .replace(/\/+$/, '')
          .toLowerCase(),
      ),
    );
  }

  /** True when `host` is listed in `insecureRegistries`. */
  isInsecure(host: string): boolean {
    return this.#insecure.has(host.toLowerCase());
  }

  /** The scheme to use for the next request to `endpoint`. */
  choose(endpoint: Endpoint): SchemeChoice {
    if (endpoint.scheme) return { scheme: endpoint.scheme, mayDowngrade: false, skipTlsVerify: false };
    const listed = this.isInsecure(endpoint.host) || this.isInsecure(endpoint.registry);
    const mayDowngrade = listed || isLoopbackRegistry(endpoint.host);
    const learned = this.#learned.get(endpoint.host);
    if (learned === undefined && mayDowngrade && this.#memory().has(endpoint.host)) {
      return { scheme: 'http', mayDowngrade, skipTlsVerify: listed, remembered: true };
    }
    return { scheme: learned ?? 'https', mayDowngrade, skipTlsVerify: listed };
  }

  /**
   * Judges an answer to a request sent in plain HTTP from memory: a 400 is what a TLS server
   * answers to plain HTTP, so the host is forgotten and `true` says to send again (with HTTPS).
   * Any other answer confirms the memory for this process.
   */
  onAnswer(endpoint: Endpoint, choice: SchemeChoice, status: number): boolean {
    if (!choice.remembered) return false;
    if (status === 400) {
      this.#forget(endpoint.host);
      return true;
    }
    this.#learned.set(endpoint.host, 'http');
    return false;
  }

  #memory(): Set<string> {
    if (this.#remembered === undefined) {
      this.#remembered = new Set();
      if (this.#memoryFile !== undefined) {
        try {
          for (const line of readFileSync(this.#memoryFile, 'utf8').split('\n')) {
            const [host, scheme] = line.split(' ');
            if (host && scheme === 'http') this.#remembered.add(host);
          }
        } catch {
          // No memory yet (or unreadable): start with HTTPS.
        }
      }
    }
    return this.#remembered;
  }

  /** Rewrites the memory file (best effort: a cache that cannot be written only costs a TLS attempt). */
  #save(): void {
    if (this.#memoryFile === undefined) return;
    const text = [...this.#memory()]
      .sort()
      .map((host) => `${host} http\n`)
      .join('');
    try {
      writeFileSync(this.#memoryFile, text, { mode: 0o600 });
    } catch {
      // Not remembered; the next process tries HTTPS first again.
    }
  }

  #remember(host: string): void {
    if (this.#memory().has(host)) return;
    this.#memory().add(host);
    this.#save();
  }

  #forget(host: string): void {
    this.#learned.delete(host);
    if (this.#memory().delete(host)) this.#save();
  }

  /**
   * Judges a failed send: returns `true` when the host was switched to plain HTTP and the
   * request should be sent again, throws the `IrbError` for TLS and plain-HTTP refusals, and
   * returns `false` for failures that are not about the scheme.
   */
  onSendError(endpoint: Endpoint, choice: SchemeChoice, error: unknown, secrets: Secrets): boolean {
    if (choice.remembered) {
      // Plain HTTP from memory failed: forget it and start again with HTTPS.
      this.#forget(endpoint.host);
      return true;
    }
    if (
      choice.scheme === 'https' &&
      (isPlainHttpAnswer(error) || (choice.mayDowngrade && errorCode(error) === 'ECONNREFUSED'))
    ) {
      if (choice.mayDowngrade && !this.#learned.has(endpoint.host)) {
        this.#learned.set(endpoint.host, 'http');
        this.#remember(endpoint.host);
        return true;
      }
      if (!choice.mayDowngrade) {
        throw new IrbError(
          'IRB_REGISTRY_INSECURE',
          `registry ${endpoint.host} answers in plain HTTP; irb uses plain HTTP only for localhost and the registries in \`insecureRegistries\`. If you trust the network, add it there: \`insecureRegistries: ['${endpoint.host}']\``,
          { cause: secrets.safeCause(error) },
        );
      }
    }
    if (isCertificateError(error)) {
      throw new IrbError(
        'IRB_TLS_FAILED',
        `the TLS certificate of ${endpoint.host} is not trusted (${errorCode(error)}); pass its CA certificate (PEM) in \`ca\` or set NODE_EXTRA_CA_CERTS=/path/ca.pem, or, if you accept the risk, add the registry to \`insecureRegistries\``,
        { cause: secrets.safeCause(error) },
      );
    }
    return false;
  }
}
