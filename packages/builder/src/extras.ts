import type { CpioEntry } from '@irb/cpio';

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function normalized(path: string | Uint8Array): string | undefined {
  if (typeof path !== 'string') return undefined;
  const p = path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return p === '.' ? '' : p;
}

/**
 * The entries that give the kernel a `/dev/console` when the image has none: without it the
 * kernel starts `/init` with no stdin/stdout/stderr, and nothing is ever seen. `hasDev` says
 * whether `/dev` exists (in the image or among `planned` extras).
 */
export function consoleEntries(hasConsole: boolean, hasDev: boolean): CpioEntry[] {
  if (hasConsole) return [];
  return [
    ...(hasDev ? [] : [{ type: 'directory', path: 'dev', mode: 0o755 } as const]),
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
  ];
}

/**
 * Splices entries the image lacks (mount points, WorkingDir, /dev/console) into the rootfs stream,
 * each right after its parent so the kernel, which never creates missing parents, can make it.
 */
export async function* withExtras(
  source: AsyncIterable<CpioEntry>,
  extras: readonly CpioEntry[],
): AsyncGenerator<CpioEntry> {
  const names = new Set(extras.map((e) => normalized(e.path)));
  const pending = new Map<string, CpioEntry[]>();
  const atRoot: CpioEntry[] = [];
  for (const extra of extras) {
    // Anchor each extra at its nearest ancestor that the image has; extras keep their (parents-first) order.
    let anchor = parentOf(normalized(extra.path)!);
    while (anchor !== '' && names.has(anchor)) anchor = parentOf(anchor);
    if (anchor === '') atRoot.push(extra);
    else pending.set(anchor, [...(pending.get(anchor) ?? []), extra]);
  }
  let rootDone = false;
  for await (const entry of source) {
    const path = normalized(entry.path);
    if (!rootDone && path !== '') {
      rootDone = true;
      yield* atRoot;
    }
    yield entry;
    if (rootDone === false && path === '') {
      rootDone = true;
      yield* atRoot;
    }
    if (path !== undefined && entry.type === 'directory') {
      const children = pending.get(path);
      if (children) {
        pending.delete(path);
        yield* children;
      }
    }
  }
  if (!rootDone) yield* atRoot;
}
