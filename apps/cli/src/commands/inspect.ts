/**
 * `irb inspect IMAGE`: an image's digest, platforms, config and layers, and the initramfs
 * artifacts attached to it (see `inspectImage` in @irb/builder).
 */
import type { AttachedInitramfs, ImageInspection } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { toSourceOptions } from '../kit/source.ts';
import { type ImageArgs, layerRows, parseImageArgs } from './list-layers.ts';

export const name = 'inspect';
export const synopsis = 'inspect IMAGE';
export const summary = "show an image's digest, platforms, config and layers";
export const help = `Usage: irb inspect IMAGE [--platform OS/ARCH[/V]] [--insecure-registry HOST]... [--keychain MODULE]... [--json] [--verbose]

Shows the manifest digest, the platforms of a multi-platform image, the config
(Entrypoint, Cmd, Env, WorkingDir, User) and the layers with their sizes. --json
uses the keys of build --json: manifestDigest, configDigest, indexDigest.
--verbose adds the error code and the cause chain to an error.`;

export const parse = parseImageArgs;

export async function run(args: ImageArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { inspectImage } = await builder();
  const info = await inspectImage(args.image, await toSourceOptions(args, signal));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(inspectionJson(info), null, 2)}\n`);
    return EXIT.ok;
  }
  io.stdout.write(`${[...inspectionText(info), ...attachedInitramfsLines(info.initramfs)].join('\n')}\n`);
  return EXIT.ok;
}

/**
 * The `inspect --json` document, in the vocabulary of `build --json`: `manifestDigest`,
 * `configDigest`, `indexDigest`. The config carries what the text shows, with the defaults a
 * runtime applies filled in (`User` root, `WorkingDir` /, no `Env`, no `Entrypoint`/`Cmd`).
 */
export function inspectionJson(info: ImageInspection): Record<string, unknown> {
  const c = info.config;
  return {
    image: info.image,
    manifestDigest: info.digest,
    ...(info.indexDigest ? { indexDigest: info.indexDigest } : {}),
    platforms: info.platforms.map((p) => ({ platform: p.platform, manifestDigest: p.digest })),
    platform: info.platform,
    configDigest: info.configDigest,
    config: {
      ...c,
      Entrypoint: c.Entrypoint ?? null,
      Cmd: c.Cmd ?? null,
      WorkingDir: c.WorkingDir || '/',
      User: c.User || 'root',
      Env: c.Env ?? [],
    },
    ...(info.created ? { created: info.created } : {}),
    layers: info.layers,
    ...(info.initramfs ? { initramfs: info.initramfs } : {}),
  };
}

function inspectionText(info: ImageInspection): string[] {
  const lines = [`image     ${info.image}`, `manifest  ${info.digest}`];
  if (info.indexDigest) lines.push(`index     ${info.indexDigest}`);
  if (info.platforms.length > 0) {
    lines.push('platforms');
    for (const p of info.platforms) {
      lines.push(`  ${p.platform === info.platform ? '*' : ' '} ${p.platform.padEnd(20)} ${p.digest}`);
    }
  }
  lines.push(`platform  ${info.platform}`, `config    ${info.configDigest}`);
  const c = info.config;
  const json = (v: unknown) => (v === undefined || v === null ? '—' : JSON.stringify(v));
  lines.push(
    `  Entrypoint  ${json(c.Entrypoint)}`,
    `  Cmd         ${json(c.Cmd)}`,
    `  WorkingDir  ${c.WorkingDir || '/'}`,
    `  User        ${c.User || 'root'}`,
    `  Env`,
    ...(c.Env ?? []).map((e) => `    ${e}`),
  );
  lines.push(`layers    ${info.layers.length}, ${formatBytes(info.layers.reduce((n, l) => n + l.size, 0))}`);
  lines.push(...layerRows(info.layers).map((l) => `  ${l}`));
  return lines;
}

/** The `irb inspect` lines for initramfs artifacts attached to the image (none: no lines). */
export function attachedInitramfsLines(attached: readonly AttachedInitramfs[] | undefined): string[] {
  if (!attached || attached.length === 0) return [];
  return [
    `initramfs ${attached.length} attached (irb pull --for IMAGE -o FILE)`,
    ...table(
      attached.map((a) => [
        a.platform ?? '—',
        a.compression ?? '—',
        a.digest,
        a.via === 'api' ? 'referrers API' : 'tag fallback',
      ]),
    ).map((l) => `  ${l}`),
  ];
}
