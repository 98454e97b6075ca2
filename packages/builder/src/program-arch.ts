import { elfHeader } from '@irb/boot/arch';
import { SIGNATURE_BYTES } from './base-tree.ts';
import { ociArchitecture, runsOn } from './elf-platform.ts';
import type { InitRootfsView } from './init.ts';

/*
 * The image's program against the image's platform, at build time: an arm64 variant of a
 * multi-platform image that carries an x86_64 busybox builds fine and fails only at boot, with
 * 126 (exec format error). What is checked is what the kernel will exec: the program, found
 * as the init finds it (PATH, symlinks), when it is an ELF file; for a `#!` script, the
 * interpreter its first line names (one level, as the kernel allows a script's interpreter to
 * be a script only so far, and irb does not guess beyond).
 */

/** One program the init will exec: how the message names it, and where the init finds it. */
export interface ExecutedProgram {
  /** The image's command, or the shell that runs the generated script. */
  role: 'command' | 'shell';
  /** How to name it: the command's first word, or `/bin/sh`. */
  name: string;
  /** Where the init finds it (absolute, in the image), before symlinks. */
  path: string;
}

/**
 * Why the kernel of the image's `architecture` (OCI: `amd64`, `arm64`, …) cannot run one of
 * `programs`, or `undefined` when each runs or irb cannot tell (not an ELF file, an unknown
 * machine, a view that cannot read file heads). One sentence, without the advice.
 */
export async function archMismatch(
  view: InitRootfsView,
  programs: readonly ExecutedProgram[],
  architecture: string,
): Promise<string | undefined> {
  const readHead = view.readHead?.bind(view);
  if (!readHead) return undefined;
  const machineOf = async (path: string) => {
    const found = await view.stat(path);
    if (found?.type !== 'file') return undefined;
    const head = await readHead(found.path, SIGNATURE_BYTES);
    return head && { real: found.path, head };
  };
  for (const program of programs) {
    const found = await machineOf(program.path);
    if (!found) continue;
    // Where it was found and where its symlinks lead, when the name does not say.
    const places = [...new Set([program.path, found.real])].filter((p) => p !== program.name);
    const named = `the image's ${program.role} ${JSON.stringify(program.name)}${places.length > 0 ? ` (${places.join(' → ')})` : ''}`;
    let elf = elfHeader(found.head);
    let what = named;
    if (!elf) {
      const interpreter = /^#![ \t]*([^ \t\n]+)/.exec(new TextDecoder().decode(found.head))?.[1];
      if (interpreter === undefined || !interpreter.startsWith('/')) continue;
      const script = await machineOf(interpreter);
      elf = script && elfHeader(script.head);
      if (!script || !elf) continue;
      what = `${named} is a script for ${interpreter}${script.real !== interpreter ? ` (${script.real})` : ''}, which`;
    }
    if (runsOn(elf, architecture) !== false) continue;
    const built = ociArchitecture(elf) as string;
    return `${what} is built for ${built}, but the image is ${architecture}: the ${architecture} kernel cannot run it (exit 126 at boot)`;
  }
  return undefined;
}
