/** What `irb build` prints: the summary as text or as the `--json` document. */
import type { BuildSummary } from '@irb/builder';
import { cliWording } from '../kit/errors.ts';
import { formatBytes, formatDuration, showWord, table } from '../kit/format.ts';

/**
 * The `--json` summary: stable keys, sizes in bytes, duration in milliseconds. Every key is
 * always there; what a summary does not know (a remote-cache hit on an artifact that recorded
 * none) is `null`.
 */
export function summaryJson(
  s: Pick<BuildSummary, 'output' | 'image'> &
    Partial<Omit<BuildSummary, 'compression'>> & { compression?: string },
): Record<string, unknown> {
  return {
    output: s.output,
    image: s.image,
    manifestDigest: s.manifestDigest ?? null,
    configDigest: s.configDigest ?? null,
    platform: s.platform ?? null,
    compression: s.compression ?? null,
    init: s.init ?? null,
    initKind: s.initKind ?? null,
    command: s.command ?? null,
    entries: s.entries ?? null,
    excluded: s.excluded ?? null,
    filtered: s.filtered ?? null,
    uncompressedBytes: s.uncompressedBytes ?? null,
    compressedBytes: s.compressedBytes ?? null,
    unpackedBytes: s.unpackedBytes ?? null,
    recommendedMemoryMiB: s.recommendedMemoryMiB ?? null,
    lostXattrs: s.lostXattrs ?? null,
    warnings: s.warnings?.map(cliWording) ?? null,
    durationMs: s.durationMs ?? null,
  };
}

/** The text summary: what was written, from what, how large, and what to boot it with. */
export function summaryText(s: BuildSummary): string[] {
  const rows = [
    ['image', `${s.image} (${s.platform})`],
    ['manifest', s.manifestDigest],
    ['config', s.configDigest],
    ['entries', `${s.entries}${leftOut(s)}, /init ${s.init}${s.initKind ? ` (${s.initKind})` : ''}`],
    ...(s.command ? [['command', s.command.map(showWord).join(' ')]] : []),
    [
      'size',
      `${formatBytes(s.uncompressedBytes)} cpio → ${formatBytes(s.compressedBytes)} ${s.compression}` +
        (s.uncompressedBytes > 0 && s.compression !== 'none'
          ? ` (${((100 * s.compressedBytes) / s.uncompressedBytes).toFixed(1)}%)`
          : ''),
    ],
    [
      'memory',
      `boot with at least ${s.recommendedMemoryMiB} MiB (mem=${s.recommendedMemoryMiB}M) to unpack ${formatBytes(s.unpackedBytes)}`,
    ],
    ['time', formatDuration(s.durationMs)],
  ];
  const lines = [`wrote ${s.output}`, ...table(rows).map((l) => `  ${l}`)];
  for (const w of s.warnings) lines.push(`  warning: ${cliWording(w)}`);
  if (s.lostXattrs.length > 0) {
    lines.push(`  warning: newc cannot store extended attributes; ${s.lostXattrs.length} files lost some:`);
    for (const x of s.lostXattrs.slice(0, 10)) lines.push(`    ${x.path}: ${x.names.join(', ')}`);
    if (s.lostXattrs.length > 10) lines.push(`    … and ${s.lostXattrs.length - 10} more (--json lists all)`);
  }
  return lines;
}

/** What the entries line says was left out: ` (3 excluded, 1200 filtered)`. */
function leftOut(s: BuildSummary): string {
  const parts = [
    ...(s.excluded ? [`${s.excluded} excluded`] : []),
    ...(s.filtered ? [`${s.filtered} left out by --slim/--keep-only`] : []),
  ];
  return parts.length ? ` (${parts.join(', ')})` : '';
}
