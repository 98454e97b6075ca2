/**
 * `pnpm bench:boot --agent`: what a serverless platform sells, QEMU's start → the agent's first
 * answer. The Debian python3 fixture with the example agent (`examples/agent/`) as its program and
 * the Debian kernel's `net` modules, full and traced, lz4 and zstd, irb's static init and the
 * shell init; each archive booted with a network and a forward, the host asks the agent for
 * `print(6*7)`, and the run counts only when the answer is `42`.
 *
 * One clock: the host's, from QEMU's spawn. The answer and the port's first acceptance are
 * measured there (`probeForward`, then a POST); the boot's phases are read by `parseBootTimeline`
 * from the console lines stamped with when they reached the host (see {@link onHostClock}), and
 * the kernel's start is where its own clock began on the host's (see {@link kernelStartMs}).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BootTimeline,
  bootInitramfs,
  type ConsoleLine,
  type ForwardProbeResult,
  findKernel,
  inspectKernel,
  kernelModulesDir,
  parseBootTimeline,
  probeForward,
  probeKvm,
} from '../packages/boot/src/index.ts';
import {
  type BootTrace,
  InitramfsBuilder,
  type InitramfsBuilderOptions,
  traceImage,
  traceOfRun,
} from '../packages/builder/src/index.ts';
import { ensureDebianPythonImage } from '../packages/test-utils/src/debian-image.ts';
import {
  buildAgent,
  checkAnswer,
  extractVmlinux,
  nativeRun,
  post,
  type Reply,
  SNIPPET,
  unpackForNative,
} from './agent-bench-host.ts';
import { log, machineLine, medianOf, seconds, writeMarked } from './boot-bench-kit.ts';

/** The archive's compression. */
export type AgentFormat = 'lz4' | 'zstd';
/** The whole image, or only what a traced run of the agent answering the snippet used. */
export type AgentVariant = 'full' | 'traced';
/** irb's static init, or the generated shell script. */
export type AgentInit = 'static' | 'sh';
/** The Debian kernel as it ships (a bzImage that decompresses itself), or its ELF taken out of it. */
export type AgentKernel = 'bzImage' | 'vmlinux';

/** What `pnpm bench:boot --agent` measures and where the table goes. */
export interface AgentBenchOptions {
  runs: number;
  formats: AgentFormat[];
  variants: AgentVariant[];
  inits: AgentInit[];
  /** `vmlinux` rows are the static-init rows again, booted from the kernel's ELF. */
  kernels: AgentKernel[];
  out?: string;
}

const AGENT_PORT = 8080;
/** A guest port nothing listens on: its refusals tell the probe when the guest's network is up. */
const CLOSED_PORT = 1;
/** The readiness check before the POST: the agent's `GET /health`, one round trip. */
const HEALTH = 'GET /health HTTP/1.0\r\nHost: agent\r\n\r\n';
/** The traced run's agent is stopped (and the init lists what it used) this long after its start. */
const TRACE_SECONDS = 30;
const BOOT_TIMEOUT_MS = 240_000;
/** The hand-made loop of issue 19 ("Measured by hand"), for scale: not measured by this script. */
const HAND_MADE = '9.1 s';

/** One boot: the phases on both clocks, the answer, what the agent said the snippet took. */
interface Trip {
  /** The boot's phases on the host's clock (see {@link onHostClock}). */
  phases: BootTimeline;
  /** The same on the guest's clock (kernel start = 0), for the log's clock check. */
  guest: BootTimeline;
  /** Host clock, ms from QEMU's spawn, at which the guest's clock read 0. */
  kernelStartMs?: number;
  probe: ForwardProbeResult;
  /** Host clock, ms from QEMU's spawn: the host holds the answer, `42`. */
  answerMs: number;
  /** The agent's own timing of the snippet (fork → python3 exited), guest clock. */
  snippetMs: number;
  output: string;
}

/** One row of the table and its boots. */
interface Row {
  variant: AgentVariant;
  init: AgentInit;
  format: AgentFormat;
  kernel: AgentKernel;
  archive: string;
  bytes: number;
  memoryMb: number;
  trips: Trip[];
}

/**
 * Where the guest's clock began on the host's: a kernel line reaches the host at or after its
 * printk time plus that offset (the kernel holds its first lines until the serial console is
 * registered), so the smallest difference is the estimate. Only the kernel's own start is read,
 * up to running /init: the column means "QEMU, the firmware and the kernel's decompression".
 */
function kernelStartMs(lines: readonly ConsoleLine[]): number | undefined {
  let best: number | undefined;
  for (const line of lines) {
    const m = /^\[\s*(\d+\.\d+)\]\s?(.*)$/.exec(line.text);
    if (!m) continue;
    const offset = line.hostMs - Number(m[1]) * 1000;
    if (best === undefined || offset < best) best = offset;
    if (/^Run \S+ as init process/.test(m[2] as string)) break;
  }
  return best;
}

/**
 * The console lines with every guest time (a printk stamp, an init marker's uptime) replaced by
 * when the line reached the host, so that `parseBootTimeline` reads the phases on the host's
 * clock: the clock of the answer, with no assumption about how the emulated clock runs.
 */
function onHostClock(lines: readonly ConsoleLine[]): ConsoleLine[] {
  return lines.map((line) => {
    const text =
      /^\[\s*\d+\.\d+\]\s?(.*)$/.exec(line.text)?.[1] ??
      /^(irb: (?:init|modules|net|exec)) \d+(?:\.\d+)?\s*$/.exec(line.text)?.[1];
    return text === undefined
      ? line
      : { text: `[${(line.hostMs / 1000).toFixed(6)}] ${text}`, hostMs: line.hostMs };
  });
}

/** What the bench boots with: the kernel, its modules, the accelerator. */
interface BootSetup {
  kernel: string;
  modulesDir: string;
}

/**
 * Boots `archive` with a network and forwards to the agent's port and to a closed one; once the
 * probe saw the agent answer its readiness check, POSTs the snippet. QEMU is stopped when the
 * answer came, unless `untilPowerOff` (a traced run: the init lists what the program used when
 * it stops it). A missing or wrong answer throws with the console's last lines.
 */
async function roundTrip(
  setup: BootSetup,
  label: string,
  archive: string,
  memoryMb: number,
  untilPowerOff = false,
): Promise<Trip> {
  const stopper = new AbortController();
  let lines: ConsoleLine[] = [];
  let partial = '';
  let origin = 0;
  let asking:
    | {
        stop: AbortController;
        done: Promise<{
          probe: ForwardProbeResult;
          reply?: Reply;
          atMs?: number;
        }>;
      }
    | undefined;
  const result = await bootInitramfs({
    kernel: setup.kernel,
    kernelModules: setup.modulesDir,
    initramfs: archive,
    memoryMb,
    net: { forwards: [`0:${AGENT_PORT}`, `0:${CLOSED_PORT}`] },
    stopOnMatch: false,
    stopSignal: stopper.signal,
    timeoutMs: BOOT_TIMEOUT_MS,
    onStart: (start) => {
      // A restart (a picked port was taken meanwhile) starts the clock and the questions anew.
      origin = start.startMs;
      lines = [];
      partial = '';
      asking?.stop.abort();
      const port = start.forwards.find((f) => f.guestPort === AGENT_PORT)?.hostPort as number;
      const closedPort = start.forwards.find((f) => f.guestPort === CLOSED_PORT)?.hostPort as number;
      const stop = new AbortController();
      const done = (async () => {
        const probe = await probeForward({
          port,
          closedPort,
          request: HEALTH,
          originMs: start.startMs,
          signal: stop.signal,
        });
        if (probe.answerMs === undefined) return { probe };
        const reply = await post(port, stop.signal);
        const atMs = performance.now() - start.startMs;
        if (!untilPowerOff) stopper.abort();
        return { probe, reply, atMs };
      })();
      asking = { stop, done };
    },
    onOutput: (text) => {
      const now = performance.now() - origin;
      const parts = (partial + text).split('\n');
      partial = parts.pop() ?? '';
      for (const part of parts) lines.push({ text: part.replace(/\r$/, ''), hostMs: now });
    },
  });
  const wallMs = performance.now() - origin;
  if (partial !== '') lines.push({ text: partial, hostMs: wallMs });
  asking?.stop.abort();
  const asked = asking ? await asking.done : undefined;
  let answer = checkAnswer(asked?.reply);
  // A boot that lost a module or a mount is not the boot this row stands for.
  const degraded = /^(?:\[[\s\d.]+\] )?irb: (?:warning:|module ).*$/m.exec(result.output);
  if (typeof answer !== 'string' && degraded) answer = `the init said: ${degraded[0]}`;
  if (typeof answer === 'string' || asked?.atMs === undefined) {
    const how = result.timedOut
      ? 'timed out'
      : result.panicked
        ? 'panicked'
        : `ended (exit ${result.exitCode})`;
    const tail = result.output.trimEnd().split('\n').slice(-25).join('\n');
    throw new Error(`${label}: ${answer as string}; QEMU ${how}. Console's end:\n${tail}`);
  }
  const kernelStart = kernelStartMs(lines);
  return {
    phases: parseBootTimeline(onHostClock(lines), wallMs),
    guest: parseBootTimeline(lines, wallMs),
    ...(kernelStart !== undefined ? { kernelStartMs: kernelStart } : {}),
    probe: asked?.probe ?? {},
    answerMs: asked.atMs,
    snippetMs: answer.ms,
    output: result.output,
  };
}

/**
 * Traces the agent image as `traceImage` does (a static-init archive in trace mode, the run's
 * file list from the console), but with a network and the forward: the host asks the agent for
 * the snippet during the traced run, so python3 and what it loads are in the trace.
 * `traceImage` boots without forwards, so nothing could reach a server it traces.
 */
async function traceAgent(setup: BootSetup, base: InitramfsBuilderOptions, dir: string): Promise<string> {
  const archive = join(dir, 'trace.cpio.lz4');
  const summary = await new InitramfsBuilder({
    ...base,
    compression: 'lz4',
    initKind: 'static',
    trace: { stopAfterSeconds: TRACE_SECONDS },
  }).build(archive);
  const trip = await roundTrip(
    setup,
    'the traced run',
    archive,
    Math.max(summary.recommendedMemoryMiB, 256),
    true,
  );
  let trace: BootTrace;
  try {
    trace = traceOfRun(summary, trip.output);
  } catch (error) {
    const tail = trip.output.trimEnd().split('\n').slice(-8).join('\n');
    throw new Error(`the traced run: ${(error as Error).message}. Console's end:\n${tail}`, { cause: error });
  }
  const file = join(dir, 'agent.trace.json');
  await writeFile(file, JSON.stringify(trace));
  log(`traced: ${trace.files.length} files (answer at ${seconds(trip.answerMs)})`);
  return file;
}

const ms = (value: number | undefined) => (value === undefined ? '–' : `${Math.round(value)} ms`);

/** One round's native run (see `nativeRun`), or why there is none. */
type Native = { archive: string; runs: { answerMs: number; snippetMs: number }[] } | string;

/** The markdown: the table and what its columns mean, where the time goes, the native ratio, the reference. */
function render(
  rows: readonly Row[],
  runs: number,
  accel: 'kvm' | 'tcg',
  kernel: string,
  native: Native,
  loads: readonly number[],
): string {
  const lines = [
    machineLine(accel, kernel),
    '',
    `Load average (1 min) after each round: ${loads.map((l) => l.toFixed(1)).join(', ')}.`,
    '',
    `Medians of ${runs} boots per row, each column its own median (so neighbours can cross), rows interleaved (round 1 of every row, then round 2, …); a run counts only when the host holds the agent's answer to \`${SNIPPET}\` and it is \`42\`, and the init reported no failed module or mount. Every time is on the host's clock from QEMU's spawn: the boot's phases are when their console lines reached the host (the kernel's lines and the init's markers, read by \`parseBootTimeline\`); "kernel start" is where the kernel's own clock began on the host's (the smallest arrival − printk time of its lines), so before it lie QEMU, the firmware and, for the bzImage, the kernel decompressing itself. "agent listening" is the agent's first console line, "port accepting" the first connection \`probeForward\` saw the agent accept through the forward; the host then sends \`GET /health\` and, once answered, POSTs the snippet with \`X-Interpreter: python3\`: "→ 42" includes that readiness round trip. The \`vmlinux\` rows boot the same kernel's ELF, taken out of the bzImage on the host (its compressed payload undone, as the kernel's \`extract-vmlinux\` does) and started by QEMU through its PVH entry, the way Firecracker boots x86_64 kernels.`,
    '',
    '| kernel | variant | init | format | archive | kernel start | unpacked | /init | modules loaded | net up | agent exec | agent listening | port accepting | **→ 42** |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const m = (pick: (t: Trip) => number | undefined) => seconds(medianOf(r.trips.map(pick)));
    const g = (phase: keyof BootTimeline) => m((t) => t.phases[phase] as number | undefined);
    lines.push(
      `| ${r.kernel} | ${r.variant} | ${r.init} | ${r.format} | ${(r.bytes / 2 ** 20).toFixed(1)} MiB | ${m((t) => t.kernelStartMs)} | ${g('unpackedMs')} | ${g('initMs')} | ${g('modulesMs')} | ${g('netMs')} | ${g('execMs')} | ${g('firstLineMs')} | ${m((t) => t.probe.acceptedMs)} | **${m((t) => t.answerMs)}** |`,
    );
  }
  const all = rows.flatMap((r) => r.trips);
  const snippet = medianOf(all.map((t) => t.snippetMs));
  const postMs = medianOf(
    all.map((t) => (t.probe.answerMs === undefined ? undefined : t.answerMs - t.probe.answerMs)),
  );
  const toAccept = medianOf(
    all.map((t) => {
      const listening = t.phases.firstLineMs;
      return listening === undefined || t.probe.acceptedMs === undefined
        ? undefined
        : t.probe.acceptedMs - listening;
    }),
  );
  lines.push(
    '',
    `Medians over all rows: python3 running the snippet in the guest ${ms(snippet)} (the agent's own timing, fork → exit), the POST that carries it ${ms(postMs)}; agent listening → port accepting ${ms(toAccept)}.`,
  );
  if (typeof native === 'string') lines.push('', `Natively: ${native}.`);
  else {
    // Paired by round: the native run of round i saw about the load the boots of round i saw.
    const ratios = native.runs.map((n, i) => {
      const guest = medianOf(rows.map((r) => r.trips[i]?.snippetMs));
      return guest === undefined || n.snippetMs <= 0 ? undefined : guest / n.snippetMs;
    });
    const defined = ratios.filter((x): x is number => x !== undefined);
    lines.push(
      '',
      `Natively, three runs per round (the same agent, python3 and libraries, unpacked from ${native.archive} and started with \`chroot\` on this host): agent start → 42 ${ms(medianOf(native.runs.map((n) => n.answerMs)))}, python3 running the snippet ${ms(medianOf(native.runs.map((n) => n.snippetMs)))} (medians). Under ${accel.toUpperCase()} the snippet takes ${defined.length ? `${medianOf(defined)?.toFixed(0)}× as long (median of the rounds' ratios; ${Math.min(...defined).toFixed(0)}–${Math.max(...defined).toFixed(0)}×)` : '–'}.`,
    );
  }
  lines.push(
    '',
    `For scale, not measured here: issue 19's hand-made loop (Debian's bzImage, the python image as lz4, busybox \`insmod\` of eight modules, \`ifconfig\`/\`route\`, an HTTP agent that \`exec\`s the posted code) took ${HAND_MADE} from QEMU's start to 42, at another time and load.`,
  );
  return lines.join('\n');
}

/**
 * Runs a trace up to three times while its list comes back incomplete. The init powers the VM off
 * right after writing the list to the console, without waiting for the serial port to send what
 * the tty still holds; under load the end of the list, `irb-trace: end N` with it, is lost.
 */
async function tracedAgain<T>(trace: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await trace();
    } catch (error) {
      const code = (e: unknown) => (e as { code?: string } | undefined)?.code;
      const incomplete = [error, (error as Error).cause].some((e) => code(e) === 'IRB_TRACE_INCOMPLETE');
      if (!incomplete || attempt === 3) throw error;
      log(`trace attempt ${attempt} lost the end of its list on the console; tracing again`);
    }
  }
}

/** Runs the agent benchmark: builds, traces, boots every row `runs` times, prints and writes the table. */
export async function agentBench(options: AgentBenchOptions): Promise<void> {
  const fixture = await ensureDebianPythonImage();
  const kernel = await findKernel();
  const info = await inspectKernel(kernel);
  if (!info?.release) throw new Error(`cannot read the release of ${kernel}`);
  const modulesDir = await kernelModulesDir({ path: kernel, release: info.release });
  if (!modulesDir) {
    throw new Error(`no module tree with modules.builtin for ${info.release}; run scripts/ensure-env.sh`);
  }
  const setup: BootSetup = { kernel, modulesDir };
  const accel = (await probeKvm({ kernel })) ? 'kvm' : 'tcg';
  const dir = await mkdtemp(join(tmpdir(), 'irb-agent-bench-'));
  try {
    const agent = await buildAgent(dir);
    const base: InitramfsBuilderOptions = {
      image: fixture.ref,
      kernelModules: modulesDir,
      modules: ['net'],
      inject: [`${agent}:/usr/bin/agent`],
      entrypoint: '/usr/bin/agent',
    };
    const kernels: Record<AgentKernel, BootSetup> = {
      bzImage: setup,
      vmlinux: {
        ...setup,
        kernel: options.kernels.includes('vmlinux') ? await extractVmlinux(kernel, dir) : kernel,
      },
    };
    let trace: string | undefined;
    let shTrace: string | undefined;
    if (options.variants.includes('traced')) {
      log('tracing the agent image (the host asks for the snippet during the traced run)');
      trace = await tracedAgain(() => traceAgent(setup, base, dir));
      if (options.inits.includes('sh')) {
        // The shell init runs the image's sh, mount, mkdir and ln, which the agent's run never
        // touched (a trace is always taken with the static init): a traced run of them keeps
        // what they need, their libraries too. Without mkdir the script cannot make /dev/pts.
        log('tracing what the shell init uses: sh, mount, mkdir, ln');
        shTrace = join(dir, 'sh-tools.trace.json');
        const traced = await tracedAgain(() =>
          traceImage({
            image: fixture.ref,
            entrypoint: '/bin/sh',
            cmd: [
              '-c',
              'mkdir -p /run/d && ln -s /proc/self/fd /run/fd && mount -t tmpfs -o nosuid tmpfs /run',
            ],
            kernel,
          }),
        );
        if (traced.exitStatus !== 0)
          throw new Error(`the traced run of the shell init's tools exited ${traced.exitStatus}`);
        await writeFile(shTrace, JSON.stringify(traced));
      }
    }
    const rows: Row[] = [];
    for (const kernelKind of options.kernels) {
      for (const variant of options.variants) {
        for (const init of options.inits) {
          if (kernelKind === 'vmlinux' && init !== 'static') continue;
          for (const format of options.formats) {
            const archive = join(dir, `${variant}-${init}.cpio.${format}`);
            const built = rows.find((r) => r.archive === archive);
            if (built) {
              rows.push({ ...built, kernel: kernelKind, trips: [] });
              continue;
            }
            const keepOnly = init === 'sh' ? [trace as string, shTrace as string] : [trace as string];
            const summary = await new InitramfsBuilder({
              ...base,
              compression: format,
              initKind: init,
              ...(variant === 'traced' ? { keepOnly } : {}),
            }).build(archive);
            rows.push({
              variant,
              init,
              format,
              kernel: kernelKind,
              archive,
              bytes: summary.compressedBytes,
              memoryMb: Math.max(summary.recommendedMemoryMiB, 256),
              trips: [],
            });
            log(`built ${variant} ${init} ${format}: ${(summary.compressedBytes / 2 ** 20).toFixed(1)} MiB`);
          }
        }
      }
    }
    // The native runs use the traced archive: the agent, python3 and its libraries, nothing else.
    const reference =
      rows.find((r) => r.variant === 'traced' && r.init === 'static') ??
      rows.find((r) => r.init === 'static') ??
      rows[0];
    let native: Native = 'not run: chroot needs root';
    const nativeRoot = join(dir, 'native-root');
    if (reference && process.getuid?.() === 0) {
      await unpackForNative(reference.archive, reference.format, nativeRoot);
      native = { archive: `the ${reference.variant} ${reference.format} archive`, runs: [] };
    }
    const loads: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      if (typeof native !== 'string') {
        // Three native runs a round, their median: one run is a few ms, which a burst of the
        // machine's other work can double.
        const three = [await nativeRun(nativeRoot), await nativeRun(nativeRoot), await nativeRun(nativeRoot)];
        native.runs.push({
          answerMs: medianOf(three.map((n) => n.answerMs)) as number,
          snippetMs: medianOf(three.map((n) => n.snippetMs)) as number,
        });
      }
      for (const row of rows) {
        const label = `${row.variant}, ${row.init} init, ${row.format}, ${row.kernel}, run ${run + 1}`;
        const trip = await roundTrip(kernels[row.kernel], label, row.archive, row.memoryMb);
        row.trips.push(trip);
        // The guest's clock, moved by the kernel's start, against the host's: how the emulated clock ran.
        const guestExec =
          trip.guest.execMs === undefined ? undefined : (trip.kernelStartMs ?? 0) + trip.guest.execMs;
        log(
          `${label}: kernel ${seconds(trip.kernelStartMs)}, exec ${seconds(trip.phases.execMs)} (guest clock ${seconds(guestExec)}), listening ${seconds(trip.phases.firstLineMs)}, net up ${seconds(trip.probe.netUpMs)}, accepted ${seconds(trip.probe.acceptedMs)}, ready ${seconds(trip.probe.answerMs)}, 42 at ${seconds(trip.answerMs)}`,
        );
      }
      loads.push(loadavg()[0] ?? 0);
    }
    const table = render(rows, options.runs, accel, kernel, native, loads);
    process.stdout.write(`${table}\n`);
    if (options.out)
      await writeMarked(
        options.out,
        'boot-bench-agent',
        "Boot time: QEMU start → the agent's first answer",
        table,
      );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
