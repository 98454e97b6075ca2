import { IrbError } from '@irb/errors';
import type { Descriptor, ImageConfigFile, ImageIndex, Platform } from './types.ts';

/** The platform irb builds for when none is asked for. */
export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

/**
 * Normalizes a platform the way containerd does: `x86_64`/`x86-64` → `amd64`,
 * `aarch64` → `arm64`, `arm64/v8` → `arm64` (v8 is the baseline, so the variant is dropped),
 * `armhf` → `arm/v7`, `armel` → `arm/v6`, bare `arm` → `arm/v7`, `i386`/`i686` → `386`,
 * numeric variants get their `v` (`arm/7` → `arm/v7`). Os and architecture are lowercased.
 */
export function normalizePlatform(platform: Platform): Platform {
  const os = platform.os.toLowerCase();
  let architecture = platform.architecture.toLowerCase();
  let variant = platform.variant?.toLowerCase() || undefined;
  switch (architecture) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = undefined;
      break;
    case 'i386':
    case 'i686':
    case '386':
      architecture = '386';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = undefined;
      else if (variant === '9' || variant === '9.0' || variant === 'v9.0') variant = 'v9';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === undefined || variant === '7') variant = 'v7';
      else if (/^\d+$/.test(variant)) variant = `v${variant}`;
      break;
    default:
      break;
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/**
 * Parses `os/arch[/variant]` (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`) and normalizes it.
 * An empty or missing string gives {@link DEFAULT_PLATFORM}.
 */
export function parsePlatform(input: string | undefined): Platform {
  if (input === undefined || input.trim() === '') return { ...DEFAULT_PLATFORM };
  const parts = input.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9._-]+$/.test(p))) {
    throw new IrbError(
      'IRB_PLATFORM_INVALID',
      `invalid platform "${input}": expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
    );
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** `linux/arm64`, `linux/arm/v7`. */
export function formatPlatform(platform: Platform): string {
  const p = normalizePlatform(platform);
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * How well `have` satisfies `want` (both normalized): 0 = not at all, higher is better.
 * Exact match wins; a request without a variant takes any variant of the architecture
 * (preferring none); `arm/v7` also runs `arm/v6` and `arm/v5` images, as containerd allows.
 */
export function platformScore(have: Platform, want: Platform): number {
  const h = normalizePlatform(have);
  const w = normalizePlatform(want);
  if (h.os !== w.os || h.architecture !== w.architecture) return 0;
  if (h.variant === w.variant) return 100;
  if (w.variant === undefined) return 50;
  if (w.architecture === 'arm' && h.variant !== undefined) {
    const wv = Number(w.variant.slice(1));
    const hv = Number(h.variant.slice(1));
    if (Number.isFinite(wv) && Number.isFinite(hv) && hv < wv) return 10 + hv;
  }
  return 0;
}

/** True when an image built for `have` is what `want` asks for. */
export function platformMatches(have: Platform, want: Platform): boolean {
  return platformScore(have, want) > 0;
}

function isAttestation(descriptor: Descriptor): boolean {
  return (
    descriptor.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (descriptor.platform?.os === 'unknown' && descriptor.platform.architecture === 'unknown')
  );
}

/**
 * Picks the manifest for `want` from an index (best match, first in index order on ties).
 * Throws `IRB_PLATFORM_NOT_FOUND` listing the platforms the image has. Attestation
 * manifests (`unknown/unknown`) are never picked nor listed.
 */
export function selectManifest(
  index: ImageIndex,
  want: Platform = DEFAULT_PLATFORM,
  name = 'the image',
): Descriptor {
  let best: Descriptor | undefined;
  let bestScore = 0;
  for (const descriptor of index.manifests) {
    if (!descriptor.platform || isAttestation(descriptor)) continue;
    const score = platformScore(descriptor.platform, want);
    if (score > bestScore) {
      best = descriptor;
      bestScore = score;
    }
  }
  if (best) return best;
  const available = [
    ...new Set(
      index.manifests
        .filter((d) => d.platform && !isAttestation(d))
        .map((d) => formatPlatform(d.platform as Platform)),
    ),
  ];
  throw new IrbError(
    'IRB_PLATFORM_NOT_FOUND',
    `${name} has no ${formatPlatform(want)} image; it has ${
      available.length ? available.join(', ') : 'no platform-tagged manifests'
    }. Ask for one of those with the \`platform\` option`,
  );
}

/**
 * For single-platform images: throws `IRB_PLATFORM_NOT_FOUND` when the config's platform is
 * not the one asked for, so an amd64-only image is never silently used for an arm64 build.
 */
export function checkConfigPlatform(
  config: ImageConfigFile,
  want: Platform = DEFAULT_PLATFORM,
  name = 'the image',
): void {
  const have: Platform = { os: config.os ?? '', architecture: config.architecture ?? '' };
  if (config.variant) have.variant = config.variant;
  if (!have.os || !have.architecture) {
    throw new IrbError(
      'IRB_PLATFORM_NOT_FOUND',
      `${name} does not say its platform (config has no os/architecture), so it cannot be checked against ${formatPlatform(want)}`,
    );
  }
  if (!platformMatches(have, want)) {
    throw new IrbError(
      'IRB_PLATFORM_NOT_FOUND',
      `${name} is a single-platform ${formatPlatform(have)} image, not ${formatPlatform(want)}. Ask for ${formatPlatform(have)} with the \`platform\` option or use a multi-platform image`,
    );
  }
}
