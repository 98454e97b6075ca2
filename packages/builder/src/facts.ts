/**
 * What a build's summary says beyond its counts, assembled once for both ways a build is made:
 * from the layers (the image's facts read now) and from a cached base member (the same facts as
 * its header stored them).
 */
import type { BuildModules } from './kernel-modules.ts';
import type { Overlay } from './overlay.ts';
import type { BuildPipelineOptions } from './pipeline.ts';
import type { Preflight } from './preflight.ts';

/** The facts a build pipeline reports (see `createBuildPipeline`). */
export type BuildFacts = BuildPipelineOptions['facts'];

/** What {@link buildFacts} assembles the summary's facts from. */
export interface BuildFactsInput {
  image: string;
  manifestDigest: string;
  /** The image member's facts: read from the layers, or from a cached base member's header. */
  base: Pick<BuildFacts, 'configDigest' | 'platform' | 'excluded' | 'filtered' | 'lostXattrs'>;
  /** The overlay as planned, or as its cached member describes it. */
  overlay: Pick<Overlay, 'init' | 'initKind' | 'command' | 'warnings'>;
  pre: Preflight;
  mods: BuildModules | undefined;
  /** What repairing a damaged cache entry said. */
  repairs: readonly string[];
}

/** The summary's facts of a build: the image's, the overlay's, the modules' and every warning. */
export function buildFacts(input: BuildFactsInput): BuildFacts {
  const { overlay, pre, mods, manifestDigest } = input;
  return {
    image: input.image,
    manifestDigest,
    ...input.base,
    init: overlay.init,
    ...(overlay.initKind ? { initKind: overlay.initKind } : {}),
    ...(overlay.command ? { command: overlay.command } : {}),
    ...(mods
      ? { modules: { release: mods.release, key: mods.key, names: mods.names, loadList: mods.loadList } }
      : {}),
    ...(pre.net !== undefined ? { net: pre.net } : {}),
    warnings: [
      ...traceWarnings(pre, manifestDigest),
      ...input.repairs,
      ...(mods?.warnings ?? []),
      ...overlay.warnings,
    ],
  };
}

/** A warning when the `keepOnly` traces were taken of another image than the one built. */
function traceWarnings(pre: Preflight, manifestDigest: string): string[] {
  const other = pre.keepOnly?.manifestDigests.filter((d) => d !== manifestDigest) ?? [];
  if (other.length === 0) return [];
  return [
    `\`keepOnly\` traces were taken of another image (${[...new Set(other)].join(', ')}, not ${manifestDigest}): what the program needs may have moved; trace this image again`,
  ];
}
