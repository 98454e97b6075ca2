import { readFile } from 'node:fs/promises';
import { IrbError } from '@irb/errors';

/**
 * What a traced run used: every file, directory and symlink of the image's root filesystem that
 * the program read, executed, mapped or followed. Written by `irb trace`, read by `keepOnly`.
 * Paths are absolute text; a path whose bytes are not UTF-8 is written `hex:<its bytes in hex>`.
 */
export interface BootTrace {
  irbTrace: 1;
  image: string;
  manifestDigest: string;
  platform: string;
  /** Entrypoint + Cmd as the init ran them. */
  argv: string[];
  /** The program's exit status, as the init reported it. */
  exitStatus?: number;
  /** The run was stopped after `timeoutSeconds` (a server that does not exit by itself). */
  stopped: boolean;
  files: string[];
  directories: string[];
  symlinks: string[];
  /** Devices, FIFOs and sockets. */
  other: string[];
}

/**
 * Reads a trace file and checks that it is one (version 1, with a file list). The lists may
 * still hold other than strings: a reader takes the strings and passes over the rest.
 *
 * @param what Names the option the file came from in messages, e.g. `` `keepOnly` ``.
 * @throws IrbError `IRB_INPUT_UNREADABLE` for a file that cannot be read, `IRB_OPTION_INVALID`
 *   for one that is not an irb trace.
 */
export async function readTraceFile(file: string, what: string): Promise<Partial<BootTrace>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `${what} ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); give the path of a trace written by irb trace`,
      { cause: error },
    );
  }
  let trace: Partial<BootTrace>;
  try {
    trace = JSON.parse(text) as Partial<BootTrace>;
  } catch (error) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${what} ${file} is not JSON; give a trace written by irb trace`,
      {
        cause: error,
      },
    );
  }
  if (trace.irbTrace !== 1 || !Array.isArray(trace.files)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${what} ${file} is not an irb trace (version 1); write one with irb trace`,
    );
  }
  return trace;
}
