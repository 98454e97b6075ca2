/** What the CLI talks to: its streams, in types a test can fill with collectors. */
import { UsageError } from './usage.ts';

/** A writable text stream (process.stdout in production, a collector in tests). */
export interface CliStream {
  /** Returns `false` when the caller should wait for `drain` (Node streams). */
  write(text: string | Uint8Array): unknown;
  once?(event: 'drain', listener: () => void): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A readable byte stream (process.stdin in production). */
export interface CliInput extends AsyncIterable<Uint8Array | string> {
  isTTY?: boolean;
  /** Terminal raw mode: keys arrive one by one, Ctrl-C as a byte rather than a signal. */
  setRawMode?(raw: boolean): unknown;
  /** Stops reading, so a pending read does not keep the process alive. */
  destroy?(): unknown;
}

/** What the CLI talks to. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  /** Read by `irb ls -` and forwarded to the guest by `irb boot`. Default: nothing. */
  stdin?: CliInput;
  /**
   * Called by a command that builds or reads archives once it has loaded the library, before the
   * work starts: process-wide settings only the work needs (run.ts tunes V8's heap there).
   */
  beforeWork?(): void;
}

/** Writes `chunk`, waiting for `drain` when the stream asks for it. */
export async function writeWithBackpressure(stream: CliStream, chunk: Uint8Array): Promise<void> {
  if (stream.write(chunk) === false && stream.once) {
    await new Promise<void>((resolve) => stream.once?.('drain', resolve));
  }
}

/** Bytes of a text-or-bytes stream (process.stdin yields Buffers unless an encoding was set). */
export async function* bytesOf(input: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  for await (const chunk of input) yield typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
}

/**
 * What a command that reads an archive (`irb ls`, `irb config`, `irb analyze`) reads: the path,
 * or for `-` the bytes of stdin, refused in one line when nothing is piped in.
 */
export function archiveInput(archive: string, io: CliIo, command: string): string | CliInput {
  if (archive !== '-') return archive;
  if (!io.stdin || io.stdin.isTTY) {
    throw new UsageError(
      `"-" reads the archive from stdin; pipe one in (irb build … -o - | irb ${command} -)`,
    );
  }
  return io.stdin;
}
