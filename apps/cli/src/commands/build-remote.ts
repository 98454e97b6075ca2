/**
 * `irb build` with `--cache-from` / `--cache-to`: a hit pulls the archive the build key names
 * instead of building; a miss builds (and pushes with `--cache-to`). Loaded only for those flags.
 */
import type { InitramfsBuilderOptions } from '@irb/builder';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import type { RemoteCacheArgs } from '../kit/remote-cache.ts';
import type { ReportArgs } from '../kit/source.ts';
import { summaryJson, summaryText } from './build-report.ts';

/** Builds through the remote cache and prints like a build; returns the exit code. */
export async function buildCached(
  args: RemoteCacheArgs & Pick<ReportArgs, 'json' | 'quiet'> & { image: string; output: string },
  options: InitramfsBuilderOptions,
  io: CliIo,
  renderer: { finish(): void },
): Promise<number> {
  const remote = {
    ...(args.cacheFrom !== undefined ? { cacheFrom: args.cacheFrom } : {}),
    ...(args.cacheTo !== undefined ? { cacheTo: args.cacheTo } : {}),
  };
  const { buildWithRemoteCache } = await builder();
  let result: Awaited<ReturnType<typeof buildWithRemoteCache>>;
  try {
    result = await buildWithRemoteCache(options, args.output, remote);
  } finally {
    renderer.finish();
  }
  if (result.lookupError) {
    io.stderr.write(
      `irb: warning: could not look the build up in ${args.cacheFrom} (${result.lookupError.message.split('\n')[0]}); built it instead\n`,
    );
  }
  const pushed = result.pushed?.reference;
  const pulled = result.pulled;
  const memory = pulled?.annotations['dev.irb.memory.recommended-mib'];
  // A hit reports what a miss does: the summary its pusher recorded, else what the artifact says.
  const summary = result.summary ?? {
    output: args.output,
    image: args.image,
    manifestDigest: result.manifestDigest,
    ...(pulled?.platform ? { platform: pulled.platform } : {}),
    ...(pulled ? { compression: pulled.compression, compressedBytes: pulled.layer.size } : {}),
    ...(memory !== undefined ? { recommendedMemoryMiB: Number(memory) } : {}),
  };
  if (args.json) {
    const cache = pulled
      ? { cache: 'hit', buildKey: result.key, from: pulled.reference }
      : { cache: 'miss', buildKey: result.key };
    io.stdout.write(
      `${JSON.stringify({ ...summaryJson(summary), ...cache, ...(pushed ? { pushed } : {}) }, null, 2)}\n`,
    );
    return 0;
  }
  if (args.quiet) return 0;
  const how = `${pulled ? `hit, pulled ${pulled.reference}` : 'miss'}, key ${result.key}${pushed ? `; pushed ${pushed}` : ''}`;
  if (result.summary) {
    const lines = summaryText(result.summary);
    if (pulled) lines[0] += ' (remote cache hit, not built)';
    lines.push(`  cache    ${how}`);
    io.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }
  // A hit on an artifact that recorded no summary: what its manifest says.
  const rows = [
    ['image', `${args.image}${pulled?.platform ? ` (${pulled.platform})` : ''}`],
    ['manifest', result.manifestDigest],
    ['size', `${formatBytes(pulled?.layer.size ?? 0)} ${pulled?.compression}`],
    ['cache', how],
  ];
  if (memory) rows.push(['memory', `boot with at least ${memory} MiB (mem=${memory}M)`]);
  io.stdout.write(
    `wrote ${args.output} (remote cache hit, not built)\n${table(rows)
      .map((l) => `  ${l}`)
      .join('\n')}\n`,
  );
  return 0;
}
