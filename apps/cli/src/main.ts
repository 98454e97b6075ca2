/**
 * `irb`'s dispatcher: help, version, and the command the first word names (loaded only then, see
 * commands/index.ts). Every error ends here, as one line and an exit code.
 */
import { COMMAND_NAMES, loadCommand } from './commands/index.ts';
import type { Command } from './kit/command.ts';
import { describeError, EXIT } from './kit/errors.ts';
import type { CliIo } from './kit/io.ts';
import { didYouMean, UsageError } from './kit/usage.ts';

export type { CliInput, CliIo, CliStream } from './kit/io.ts';

/** Where the description of a command starts on its `irb --help` line. */
const SUMMARY_COLUMN = 33;

/** `irb --help`: the commands' own synopses and summaries between irb's header and footer. */
export async function mainHelp(): Promise<string> {
  const commands = await Promise.all(COMMAND_NAMES.map((name) => loadCommand(name)!));
  const lines = commands.flatMap((c) => {
    const head = `  irb ${c.synopsis}`;
    const [first, ...more] = c.summary.split('\n');
    return [
      `${head.padEnd(SUMMARY_COLUMN - 2)}  ${first}`,
      ...more.map((l) => `${' '.repeat(SUMMARY_COLUMN)}${l}`),
    ];
  });
  return `irb — turn an OCI/Docker image into a bootable Linux initramfs

Usage:
${lines.join('\n')}

IMAGE is a registry reference (alpine, host:5000/app:1, name@sha256:…),
oci:DIR[:TAG] (an OCI image layout) or docker-archive:FILE (a docker save tarball).

Options:
  -h, --help      help for irb or a command (irb build --help)
  -v, --version   print the version (with --verbose: Node, QEMU, KVM, zstd backend)

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (SIGINT),
143 terminated (SIGTERM); irb boot exits with the guest program's status.`;
}

/** The command `word` names; a usage error with a guess when there is none. */
function find(word: string): Promise<Command> {
  const found = loadCommand(word);
  if (found) return found;
  if (word.startsWith('-')) {
    const guess = didYouMean(word, ['--help', '--version', '-h', '-v']);
    throw new UsageError(`unknown option "${word}"${guess ? ` (did you mean ${guess}?)` : ''}`);
  }
  const guess = didYouMean(word, [...COMMAND_NAMES, 'help', 'version']);
  throw new UsageError(
    `unknown command "${word}" (${guess ? `did you mean "${guess}"?` : `commands: ${COMMAND_NAMES.join(', ')}`})`,
  );
}

/** `irb help [TOPIC]`. */
async function help(io: CliIo, topic: string | undefined): Promise<number> {
  if (topic === undefined) {
    io.stdout.write(`${await mainHelp()}\n`);
    return EXIT.ok;
  }
  const command = loadCommand(topic);
  if (command === undefined) {
    const guess = didYouMean(topic, COMMAND_NAMES);
    throw new UsageError(`no help for "${topic}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
  }
  io.stdout.write(`${(await command).help}\n`);
  return EXIT.ok;
}

/** Where `--json` sends a command's report: stdout, or stderr when the archive goes to stdout. */
type ReportStream = 'stdout' | 'stderr';

/**
 * Where a `--json` error goes when the arguments could not be read: the report's stream as far
 * as the words say (`-o -` puts the archive on stdout), or `undefined` without `--json`.
 */
function jsonStreamOf(argv: readonly string[]): ReportStream | undefined {
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (!own.includes('--json')) return undefined;
  const toStdout = own.some(
    (word, i) =>
      word === '--output=-' ||
      word === '-o-' ||
      ((word === '-o' || word === '--output') && own[i + 1] === '-'),
  );
  return toStdout ? 'stderr' : 'stdout';
}

/** Runs `irb` with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  let verbose = argv.includes('--verbose');
  let json = jsonStreamOf(argv);
  const [first, ...rest] = argv;
  let running: string | undefined;
  try {
    if (first === undefined || first === '-h' || first === '--help') return await help(io, undefined);
    if (first === 'help') return await help(io, rest[0]);
    if (first === '-v' || first === '--version' || first === 'version')
      return await (await import('./commands/version.ts')).printVersion(verbose, io);
    const command = await find(first);
    running = command.name;
    const args = command.parse(rest);
    if (args === 'help') {
      io.stdout.write(`${command.help}\n`);
      return EXIT.ok;
    }
    const report = args as { verbose?: unknown; json?: unknown };
    if ('verbose' in report) verbose = Boolean(report.verbose);
    json = report.json === true ? (command.reportsTo?.(args) ?? 'stdout') : undefined;
    return await command.run(args, io, signal);
  } catch (error) {
    const aborted = signal?.aborted && !(error instanceof UsageError);
    const failure = describeError(aborted ? signal?.reason : error, verbose, running);
    // With --json the error is JSON too, where the report would have gone, so a script reading
    // that stream gets one document either way.
    if (json)
      io[json].write(`${JSON.stringify({ error: { code: failure.code, message: failure.message } })}\n`);
    else io.stderr.write(`${failure.lines.join('\n')}\n`);
    return failure.exit;
  }
}
