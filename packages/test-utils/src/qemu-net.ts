import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';

/** The `lib/modules/<release>` directory beside a cached kernel (`…/boot/vmlinuz-<release>`). */
export async function kernelModulesDir(kernel: string): Promise<{ dir: string; release: string }> {
  const root = join(dirname(dirname(kernel)), 'lib', 'modules');
  const release = basename(kernel).replace(/^vmlinuz-/, '');
  const releases = await readdir(root);
  if (!releases.includes(release)) {
    throw new Error(
      `no modules for ${release} in ${root} (found ${releases.join(', ')}); run scripts/ensure-env.sh`,
    );
  }
  return { dir: join(root, release), release };
}

/**
 * Kernel module files (paths relative to `modulesDir`, as {@link moduleClosure} gives them) as
 * archive members at lib/modules/<release>/…: the directories they need (parents first), the
 * files with their bytes, and their absolute paths in the guest, in order.
 */
export async function moduleFiles(
  modulesDir: string,
  release: string,
  files: readonly string[],
): Promise<{ directories: string[]; files: Array<{ path: string; body: Uint8Array }>; paths: string[] }> {
  const directories: string[] = [];
  const out: Array<{ path: string; body: Uint8Array }> = [];
  for (const file of files) {
    const path = `lib/modules/${release}/${file}`;
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!directories.includes(dir)) directories.push(dir);
    }
    out.push({ path, body: new Uint8Array(await readFile(join(modulesDir, file))) });
  }
  return { directories, files: out, paths: out.map((f) => `/${f.path}`) };
}

/** A module's name as modprobe compares it: the file name without `.ko…`, `-` read as `_`. */
function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.\w+)?$/, '')
    .replaceAll('-', '_');
}

/**
 * The files to load for `names`, dependencies first, as paths relative to the modules directory,
 * read from its modules.dep (each line lists a module's whole dependency closure, the ones to
 * load first last). A name the kernel has built in (not in modules.dep) is skipped.
 */
export async function moduleClosure(modulesDir: string, names: readonly string[]): Promise<string[]> {
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of (await readFile(join(modulesDir, 'modules.dep'), 'utf8')).split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon);
    deps.set(moduleName(path), {
      path,
      deps: line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    });
  }
  const builtin = new Set(
    (await readFile(join(modulesDir, 'modules.builtin'), 'utf8')).split('\n').filter(Boolean).map(moduleName),
  );
  const order: string[] = [];
  const visit = (path: string): void => {
    if (order.includes(path)) return;
    const entry = deps.get(moduleName(path));
    for (const dep of [...(entry?.deps ?? [])].reverse()) visit(dep);
    order.push(path);
  };
  for (const name of names) {
    const entry = deps.get(name.replaceAll('-', '_'));
    if (entry) visit(entry.path);
    else if (!builtin.has(name.replaceAll('-', '_'))) throw new Error(`no module ${name} in ${modulesDir}`);
  }
  return order;
}

/**
 * Sends `message` to 127.0.0.1:`port` and resolves to everything the peer sent before closing.
 * Through QEMU's user network a connection is accepted before the guest listens (and then closed
 * empty), so an empty answer is retried until `deadline`.
 */
export async function exchange(port: number, message: string, deadline: number): Promise<string> {
  for (;;) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.write(message));
      socket.on('data', (chunk: string) => {
        data += chunk;
      });
      socket.on('error', () => resolve(''));
      socket.on('close', () => resolve(data));
      socket.setTimeout(20_000, () => socket.destroy());
    });
    if (answer !== '' || Date.now() > deadline) return answer;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A host client for a guest booted with a forward: see {@link talkWhenReady}. */
export interface GuestTalk {
  /** For the boot's `onStart`: takes the host port of the first forward. */
  onStart: (start: { forwards: readonly { hostPort: number }[] }) => void;
  /** For the boot's `onOutput`: once the console shows `ready`, the host connects. */
  onOutput: (text: string) => void;
  /** What the guest answered on the forwarded port ('' when the host never got an answer). */
  answer: () => Promise<string>;
}

/**
 * Talks to a guest through its first forward once its console shows `ready` (@irb/boot's
 * `bootInitramfs` with `net: { forwards }` boots it: hand it `onStart` and `onOutput`): sends
 * `message` and keeps what the guest answered, retrying an empty answer until `timeoutMs` passed.
 */
export function talkWhenReady(options: { ready: RegExp; message: string; timeoutMs: number }): GuestTalk {
  const deadline = Date.now() + options.timeoutMs;
  let port: number | undefined;
  let seen = '';
  let talking: Promise<string> | undefined;
  return {
    onStart: ({ forwards }) => {
      port = forwards[0]?.hostPort;
    },
    onOutput: (text) => {
      if (talking) return;
      seen += text;
      if (port !== undefined && options.ready.test(seen)) talking = exchange(port, options.message, deadline);
    },
    answer: async () => (await talking) ?? '',
  };
}
