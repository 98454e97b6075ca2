/**
 * `irb config ARCHIVE|-`: what a built archive runs — its /init, the program with every job file
 * applied, the kernel modules and the network (see `archiveConfig` in @irb/builder).
 *
 * A command of its own rather than `irb ls --json`: `ls` lists entries, one JSON object each,
 * streamed; this decodes two kinds of files (the parameter file or the generated script, and the
 * job files) into one object, the program as the init will run it.
 */
import type { ArchiveConfig } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { showWord, table } from '../kit/format.ts';
import { archiveInput, bytesOf, type CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { type ArchiveArgs, parseArchiveArgs } from '../kit/options.ts';

/** Parsed `irb config`. */
export type ConfigArgs = ArchiveArgs;

export const name = 'config';
export const synopsis = 'config ARCHIVE|-';
export const summary = 'show what an archive runs: program, env, user, modules, network, jobs';
export const help = `Usage: irb config ARCHIVE|- [--json] [--verbose]

Shows what a built initramfs will run, read from the archive alone (every member,
as the kernel unpacks them): the kind of /init, the Entrypoint and Cmd, Env,
WorkingDir and User after the job files of irb append are applied (listed in the
order the init applies them), the kernel modules it loads and the network it
configures when the kernel command line has no ip=. - reads the archive from stdin.

A job's --user NAME is resolved at boot through the guest's /etc/passwd, so it is
shown as given. An /init irb did not generate is named "other": what it runs is
not known.

  --json      the same as one JSON object (the keys of archiveConfig in @irb/builder)
  --verbose   with errors, the error code and the cause chain`;

export function parse(argv: string[]): ConfigArgs | 'help' {
  return parseArchiveArgs(argv);
}

export async function run(args: ConfigArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const input = archiveInput(args.archive, io, 'config');
  const archive = typeof input === 'string' ? input : bytesOf(input);
  const { archiveConfig } = await builder();
  io.beforeWork?.();
  const config = await archiveConfig(archive, signal ? { signal } : {});
  if (args.json) io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
  else io.stdout.write(`${configText(config).join('\n')}\n`);
  return EXIT.ok;
}

/** Words as a shell would read them back (`'two words'`), or `(none)`. */
function words(list: readonly string[]): string {
  return list.length === 0 ? '(none)' : list.map(showWord).join(' ');
}

/** The text of `irb config`: one row per fact, lists one item a line. */
export function configText(c: ArchiveConfig): string[] {
  const rows: string[][] = [];
  const many = (label: string, items: readonly string[], none: string) => {
    if (items.length === 0) rows.push([label, none]);
    items.forEach((item, i) => {
      rows.push([i === 0 ? label : '', item]);
    });
  };
  if (c.init === 'static' || c.init === 'sh') {
    rows.push([
      'init',
      `${c.init === 'static' ? "irb's static init" : 'generated shell script'}${c.initArch ? ` (${c.initArch})` : ''}${c.trace ? ', tracing' : ''}`,
    ]);
    rows.push(['entrypoint', words(c.entrypoint)], ['cmd', words(c.cmd)]);
    many('env', c.env.map(showWord), '(none)');
    rows.push(['workdir', c.workingDir]);
    rows.push(['user', `${c.user}${c.groups.length > 0 ? ` (groups ${c.groups.join(',')})` : ''}`]);
    rows.push(['hostname', c.hostname], ['on exit', c.exitAction]);
    many('modules', c.modules, '(none)');
    rows.push([
      'net',
      c.net !== undefined
        ? `ip=${c.net} when the kernel command line has no ip=`
        : 'from the kernel command line (ip=) only',
    ]);
  } else {
    rows.push([
      'init',
      c.init === 'none' ? 'none (the archive has no /init)' : "other (not irb's generated /init)",
    ]);
  }
  many(
    'jobs',
    c.jobs.map((job) => {
      const { path, ...fields } = job;
      const parts = Object.entries(fields).map(([key, value]) =>
        Array.isArray(value) ? `${key} ${words(value)}` : `${key} ${showWord(String(value))}`,
      );
      return `${path}: ${parts.join('; ') || 'nothing'}`;
    }),
    '(none)',
  );
  return table(rows);
}
