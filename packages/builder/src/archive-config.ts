import { elfArch } from '@irb/boot/arch';
import { decodeInitramfs } from '@irb/compress';
import { IrbError } from '@irb/errors';
import {
  applyJobConfigs,
  type DecodedInitConfig,
  type DecodedJobConfig,
  decodeInitConfig,
  decodeJobConfig,
  INIT_CONFIG_PATH,
  initConfigDefaults,
  JOB_CONFIG_DIR,
} from '@irb/init';
import { openArchive, readArchiveEntries } from './archive.ts';
import { INIT_HELPER_PATH } from './init.ts';

/** One job file of an archive, as the init applies it. */
export interface ArchiveJob extends DecodedJobConfig {
  /** Its path in the guest (`/irb/job.d/<name>.conf`). */
  path: string;
}

/**
 * What a built archive runs, decoded from the archive itself: its `/init`, the parameter file
 * (or the generated script) and the job files, applied in order as the init applies them.
 */
export type ArchiveConfig =
  | {
      /** irb's static init, or irb's generated shell script. */
      init: 'static' | 'sh';
      /** The architecture of the static init (or of the script's helper), when it has one. */
      initArch?: 'x86_64' | 'aarch64';
      /** The Entrypoint and Cmd as run: argv split where the Entrypoint ends. */
      entrypoint: string[];
      cmd: string[];
      env: string[];
      workingDir: string;
      /**
       * `UID:GID` from the build, or the last job's `--user` spec, which the init resolves at
       * boot through the guest's /etc/passwd and /etc/group.
       */
      user: string;
      /** Supplementary groups from the build (a job's user gets its own at boot). */
      groups: number[];
      hostname: string;
      exitAction: 'poweroff' | 'reboot';
      /** Kernel module files the init loads, in order (the parameter file's, then each job's). */
      modules: string[];
      /** The network it configures when the kernel command line has no `ip=` (an `ip=` value). */
      net?: string;
      /** How long it waits for the network device, in ms. */
      netWaitMs: number;
      /** A tracing archive (`irb trace`). */
      trace: boolean;
      /** The job files, in the order the init applies them. */
      jobs: ArchiveJob[];
    }
  | {
      /** `/init` is not irb's generated init (the image's, or a file given to `init`), or there is none. */
      init: 'other' | 'none';
      jobs: ArchiveJob[];
    };

/** Options of {@link archiveConfig}. */
export interface ArchiveConfigOptions {
  signal?: AbortSignal;
}

/** Files of an archive whose bodies {@link archiveConfig} needs, by name without a leading `/`. */
const CONFIG = INIT_CONFIG_PATH.slice(1);
const HELPER = INIT_HELPER_PATH.slice(1);
const JOBS = `${JOB_CONFIG_DIR.slice(1)}/`;
const MAX_BYTES = 8 << 20;

function wanted(name: string): boolean {
  return name === 'init' || name === CONFIG || name === HELPER || name.startsWith(JOBS);
}

async function bodyBytes(body: AsyncIterable<Uint8Array>, name: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > MAX_BYTES) {
      throw new IrbError(
        'IRB_INITRAMFS_CORRUPT',
        `/${name} is larger than ${MAX_BYTES} bytes; it is not irb's`,
      );
    }
    chunks.push(chunk.slice());
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * What a built archive runs: the kind of `/init`, the Entrypoint and Cmd, Env, WorkingDir, User,
 * the kernel modules to load and the network, after the job files `irb append` added (listed in
 * the order the init applies them). Read from the archive alone — every member, as the kernel
 * unpacks them, the last entry of a name winning — so it shows what a pulled or appended archive
 * will do. `archive` is a path or the archive's bytes. A job file the init would refuse is an
 * error here too (`IRB_OPTION_INVALID`, naming it).
 */
export async function archiveConfig(
  archive: string | AsyncIterable<Uint8Array>,
  options: ArchiveConfigOptions = {},
): Promise<ArchiveConfig> {
  const { signal } = options;
  const label = typeof archive === 'string' ? archive : 'the input stream';
  const bytes = typeof archive === 'string' ? openArchive(archive, signal) : archive;
  const source = decodeInitramfs(bytes, { label, ...(signal ? { signal } : {}) });
  const files = new Map<string, Uint8Array>();
  for await (const e of readArchiveEntries(source, label, signal)) {
    const name = e.name.replace(/^(\.?\/)+/, '');
    files.delete(name);
    // A directory (or anything else) at a job file's or the init's path hides what was there.
    if (e.type === 'file' && wanted(name)) files.set(name, await bodyBytes(e.body, name));
  }
  const jobs: ArchiveJob[] = [];
  const jobNames = [...files.keys()]
    .filter((n) => n.startsWith(JOBS) && !n.slice(JOBS.length).includes('/'))
    .map((n) => n.slice(JOBS.length))
    .filter((n) => n.endsWith('.conf') && n.length > 5 && !n.startsWith('.'))
    // The init sorts the names as bytes.
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of jobNames) {
    const path = `${JOB_CONFIG_DIR}/${name}`;
    try {
      jobs.push({ path, ...decodeJobConfig(files.get(`${JOBS}${name}`) as Uint8Array) });
    } catch (error) {
      throw new IrbError('IRB_OPTION_INVALID', `${label}: ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  const init = files.get('init');
  if (init === undefined) return { init: 'none', jobs };
  let decoded: DecodedInitConfig | undefined;
  let kind: 'static' | 'sh';
  let arch: 'x86_64' | 'aarch64' | undefined;
  const conf = files.get(CONFIG);
  if (elfArch(init.subarray(0, 64)) !== undefined && conf !== undefined) {
    kind = 'static';
    arch = elfArch(init.subarray(0, 64));
    decoded = decodeInitConfig(conf);
  } else {
    decoded = decodeInitScript(new TextDecoder().decode(init));
    if (decoded === undefined) return { init: 'other', jobs };
    kind = 'sh';
    const helper = files.get(HELPER);
    arch = helper ? elfArch(helper.subarray(0, 64)) : undefined;
  }
  const run = applyJobConfigs(decoded, jobs);
  const user = run.user ?? `${run.uid}:${run.gid}`;
  return {
    init: kind,
    ...(arch ? { initArch: arch } : {}),
    entrypoint: run.argv.slice(0, run.entrypointLength),
    cmd: run.argv.slice(run.entrypointLength),
    env: run.env,
    workingDir: run.workingDir,
    user,
    groups: run.user === undefined ? run.groups : [],
    hostname: decoded.hostname,
    exitAction: decoded.onExit,
    modules: run.modules,
    ...(run.net !== undefined ? { net: run.net } : {}),
    netWaitMs: decoded.netWaitMs,
    trace: decoded.trace,
    jobs,
  };
}

/** The words of one line of {@link shellJoin}'s output: bare words, `'…'`, and `\'` between them. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error('unterminated quote');
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[i + 1];
      i++;
    } else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

const GENERATED = '# /init generated by irb';
const encoder = new TextEncoder();

/**
 * Reads what irb's generated shell `/init` (see `renderInitScript`) runs back into the shape of
 * a decoded parameter file, so that job files apply to it as the helper applies them. Without a
 * helper (other architectures) the program's words include the user switch and `env` prefix the
 * script execs. `undefined` for a script irb did not generate.
 */
export function decodeInitScript(script: string): DecodedInitConfig | undefined {
  const lines = script.split('\n');
  if (lines[0] !== '#!/bin/sh' || !lines[1]?.startsWith(GENERATED)) return undefined;
  const out = initConfigDefaults();
  const env: string[] = [];
  let runArgv: string[] | undefined;
  // The line shapes renderInitScript writes, each with what it sets.
  const shapes: Array<[RegExp, (m: RegExpExecArray) => void]> = [
    [
      /^echo (.+) > \/proc\/sys\/kernel\/hostname$/,
      (m) => {
        out.hostname = shellWords(m[1] as string).join(' ');
      },
    ],
    [
      new RegExp(`^${INIT_HELPER_PATH} setup( .*)?$`),
      (m) => {
        const words = shellWords(m[1] ?? '');
        for (let i = 0; i + 1 < words.length; i += 2) {
          const value = words[i + 1] as string;
          if (words[i] === '-m') out.modules.push(encoder.encode(value));
          else if (words[i] === '-n') out.net = value;
          else if (words[i] === '-w') out.netWaitMs = Number(value);
        }
      },
    ],
    [
      /^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/,
      (m) => {
        env.push(`${m[1]}=${shellWords(m[2] as string).join('')}`);
      },
    ],
    [
      /^if cd (.+); then$/,
      (m) => {
        out.workingDir = encoder.encode(shellWords(m[1] as string).join(''));
      },
    ],
    [
      /^ {2}\((?:echo 'irb: exec' 2>\/dev\/null >\/dev\/kmsg; )?exec (.+)\)$/,
      (m) => {
        runArgv = shellWords(m[1] as string);
      },
    ],
    [
      /^echo b > \/proc\/sysrq-trigger 2>\/dev\/null$/,
      () => {
        out.onExit = 'reboot';
      },
    ],
  ];
  try {
    for (const line of lines) {
      for (const [shape, take] of shapes) {
        const m = shape.exec(line);
        if (m) {
          take(m);
          break;
        }
      }
    }
  } catch {
    return undefined;
  }
  if (!runArgv) return undefined;
  let argv = runArgv;
  if (runArgv[0] === INIT_HELPER_PATH && runArgv[1] === 'exec') {
    const end = runArgv.indexOf('--');
    const opts = runArgv.slice(2, end < 0 ? runArgv.length : end);
    argv = end < 0 ? [] : runArgv.slice(end + 1);
    for (let i = 0; i < opts.length; i++) {
      const o = opts[i];
      if (o === '-H') {
        out.homeFromUser = true;
        continue;
      }
      const value = opts[++i] ?? '';
      if (o === '-u') out.uid = Number(value);
      else if (o === '-g') out.gid = Number(value);
      else if (o === '-G') out.groups.push(Number(value));
      else if (o === '-E') out.entrypointLength = Number(value);
      else if (o === '-e') env.push(value);
    }
  }
  out.argv = argv.map((w) => encoder.encode(w));
  out.env = env.map((kv) => encoder.encode(kv));
  return out;
}
