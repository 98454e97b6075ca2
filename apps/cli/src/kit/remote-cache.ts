/** `--cache-from` / `--cache-to`: the remote build cache of `irb build` (see `buildWithRemoteCache`). */
import { UsageError } from './usage.ts';

/** The parseArgs table of the two flags. */
export const REMOTE_CACHE_FLAGS = {
  'cache-from': { type: 'string' },
  'cache-to': { type: 'string' },
} as const;

/** The repositories a build looks itself up in and pushes itself to. */
export interface RemoteCacheArgs {
  cacheFrom?: string;
  cacheTo?: string;
}

/** Reads the two flags; both want a registry repository and a file to write (not `-o -`). */
export function remoteCacheArgs(values: Record<string, unknown>, output: string): RemoteCacheArgs {
  const out: RemoteCacheArgs = {};
  for (const [flag, key] of [
    ['cache-from', 'cacheFrom'],
    ['cache-to', 'cacheTo'],
  ] as const) {
    const value = values[flag];
    if (value === undefined) continue;
    const text = String(value);
    if (!/^[^/\s]+\/[^\s@]+$/.test(text)) {
      throw new UsageError(
        `--${flag} wants a registry repository (host/repo, e.g. ghcr.io/acme/irb-cache), not "${text}"`,
      );
    }
    out[key] = text;
  }
  if ((out.cacheFrom !== undefined || out.cacheTo !== undefined) && output === '-') {
    throw new UsageError('--cache-from and --cache-to need -o FILE, not -o -');
  }
  return out;
}
