import { IrbError } from '@irb/errors';
import { type BootNetOptions, netForwards, type PortForward } from './net.ts';
import { type ForwardProbeOptions, type ForwardProbeResult, probeForward } from './probe.ts';
import { type BootOptions, type BootResult, bootInitramfs } from './qemu.ts';

/**
 * When each phase of a boot was reached, in milliseconds of the guest's clock since the kernel
 * started (printk time 0). A phase the console did not show is `undefined`.
 */
export interface BootTimeline {
  /** The kernel began to unpack the initramfs ("Trying to unpack rootfs image"). */
  unpackStartMs?: number;
  /** The initramfs was unpacked ("Freeing initrd memory"). */
  unpackedMs?: number;
  /** The kernel ran /init ("Run /init as init process"), or the init's own `irb: init` marker. */
  initMs?: number;
  /** The init loaded its kernel modules (its `irb: modules` marker; only when it had any). */
  modulesMs?: number;
  /** The init configured the network (its `irb: net` marker; only when it did). */
  netMs?: number;
  /** The init exec'd the program (its `irb: exec` marker). */
  execMs?: number;
  /** The program printed its first line on the console. */
  firstLineMs?: number;
  /** The VM ended: the kernel's power-off or restart line, else the last timestamped line. */
  endMs?: number;
  /** Host wall-clock time from starting QEMU until it exited, firmware included. */
  wallMs: number;
  /** The status the init reported (`irb: exit status N`), when it did. */
  exitStatus?: number;
  /** Host clock, ms since QEMU started: the guest's network first answered (see {@link probeForward}). With forwards only. */
  netUpMs?: number;
  /** Host clock, ms since QEMU started: the guest first accepted a connection on the probed forward. */
  acceptedMs?: number;
  /** Host clock, ms since QEMU started: the first answer came back on the probed forward (VM start → the agent's first answer). */
  answerMs?: number;
  /** The first line of that answer (`HTTP/1.0 200 OK`). */
  answerLine?: string;
}

/** The phase fields of a {@link BootTimeline}, in boot order. */
export const TIMELINE_PHASES = [
  'unpackStartMs',
  'unpackedMs',
  'initMs',
  'modulesMs',
  'netMs',
  'execMs',
  'firstLineMs',
  'endMs',
  'wallMs',
] as const;

/** One phase field of a {@link BootTimeline}. */
export type TimelinePhase = (typeof TIMELINE_PHASES)[number];

/** The fields a boot with forwards adds, on the host's clock from QEMU's start, in order. */
export const FORWARD_PHASES = ['netUpMs', 'acceptedMs', 'answerMs'] as const;

/** One field of {@link FORWARD_PHASES}. */
export type ForwardPhase = (typeof FORWARD_PHASES)[number];

/** A console line and when it reached the host (any monotonic clock, in ms). */
export interface ConsoleLine {
  text: string;
  hostMs: number;
}

const PRINTK = /^\[\s*(\d+)\.(\d{1,9})\]\s?(.*)$/;
const EXIT_STATUS = /irb: exit status (\d+)/;

/** printk's `[   12.345678]` prefix as milliseconds, and the text after it. */
function printkTime(line: string): { ms: number; text: string } | undefined {
  const m = PRINTK.exec(line);
  if (!m) return undefined;
  const fraction = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  return { ms: Number(m[1]) * 1000 + Number(fraction) / 1000, text: m[3] ?? '' };
}

/**
 * Reads a boot's phases from its console lines.
 *
 * Kernel events carry printk timestamps. The init's markers (`irb: init`, `irb: modules`,
 * `irb: net`, `irb: exec`, written to /dev/kmsg so that they carry the same clock) come as kernel
 * lines too; a marker written to the console with the guest's uptime (`irb: exec 5.361234`) is
 * read as well. The program's first
 * line has no guest timestamp: its time is interpolated from when it reached the host between
 * the timestamped lines around it (the guest clock under emulation does not run at the host's
 * rate, so the nearest anchors on both sides keep the error small).
 */
export function parseBootTimeline(lines: readonly ConsoleLine[], wallMs: number): BootTimeline {
  const timeline: BootTimeline = { wallMs };
  // Lines with a guest time: printk lines, and markers that state their uptime.
  const anchors: { index: number; guestMs: number; hostMs: number }[] = [];
  let lastPrintk: number | undefined;
  let firstLineIndex: number | undefined;
  let afterExec = false;

  lines.forEach((line, index) => {
    const printk = printkTime(line.text);
    const text = printk ? printk.text : line.text;
    let guestMs = printk?.ms;
    const marker = /^irb: (init|modules|net|exec)(?: (\d+(?:\.\d+)?))?\s*$/.exec(text);
    if (marker && guestMs === undefined && marker[2] !== undefined) guestMs = Number(marker[2]) * 1000;
    if (guestMs !== undefined) {
      anchors.push({ index, guestMs, hostMs: line.hostMs });
      if (printk) lastPrintk = printk.ms;
    }
    if (printk) {
      if (timeline.unpackStartMs === undefined && text.startsWith('Trying to unpack rootfs image')) {
        timeline.unpackStartMs = printk.ms;
      } else if (timeline.unpackedMs === undefined && text.startsWith('Freeing initrd memory')) {
        timeline.unpackedMs = printk.ms;
      } else if (timeline.initMs === undefined && /^Run \S+ as init process/.test(text)) {
        timeline.initMs = printk.ms;
      } else if (/^reboot: (Power down|Restarting system)/.test(text)) {
        timeline.endMs = printk.ms;
      }
    }
    if (marker?.[1] === 'init' && guestMs !== undefined) timeline.initMs ??= guestMs;
    if (marker?.[1] === 'modules' && guestMs !== undefined) timeline.modulesMs ??= guestMs;
    if (marker?.[1] === 'net' && guestMs !== undefined) timeline.netMs ??= guestMs;
    if (marker?.[1] === 'exec') {
      if (guestMs !== undefined) timeline.execMs ??= guestMs;
      afterExec = true;
      return;
    }
    const status = EXIT_STATUS.exec(text);
    if (status) timeline.exitStatus = Number(status[1]);
    if (
      afterExec &&
      firstLineIndex === undefined &&
      !printk &&
      !text.startsWith('irb:') &&
      text.trim() !== ''
    ) {
      firstLineIndex = index;
    }
  });

  const first = firstLineIndex;
  if (first !== undefined) {
    const line = lines[first] as ConsoleLine;
    const before = anchors.filter((a) => a.index < first).at(-1);
    const after = anchors.find((a) => a.index > first);
    if (before && after && after.hostMs > before.hostMs) {
      const fraction = Math.min(
        1,
        Math.max(0, (line.hostMs - before.hostMs) / (after.hostMs - before.hostMs)),
      );
      timeline.firstLineMs = before.guestMs + fraction * (after.guestMs - before.guestMs);
    } else if (before) {
      timeline.firstLineMs = before.guestMs + Math.max(0, line.hostMs - before.hostMs);
    }
  }
  // Without the kernel's power-down line (a console cut short), the end is the last moment the
  // guest is known to have lived: never before a phase it reached, so each run stays in order
  // and so do the medians of several runs.
  if (timeline.endMs === undefined) {
    const seen = [lastPrintk, timeline.execMs, timeline.firstLineMs].filter(
      (v): v is number => v !== undefined,
    );
    if (seen.length > 0) timeline.endMs = Math.max(...seen);
  }
  for (const phase of TIMELINE_PHASES) {
    const value = timeline[phase];
    if (value !== undefined) timeline[phase] = Math.round(value * 10) / 10;
  }
  return timeline;
}

/** How {@link bootTimeline} probes a forward (see {@link probeForward}). */
export interface TimelineProbeOptions
  extends Pick<ForwardProbeOptions, 'request' | 'intervalMs' | 'graceMs'> {
  /** The guest port of the forward to probe. Default: the first forward's. */
  guestPort?: number;
  /**
   * A guest port nothing listens on, forwarded from a picked host port for the probe: its
   * refusals tell when the guest's network is up. Default: 1, or the first of 9, 7, 13 the
   * forwards do not use.
   */
  closedGuestPort?: number;
  /** Keep the VM running after the answer until it powers off. Default `false`: QEMU is stopped once the answer came (an agent serves forever). */
  untilPowerOff?: boolean;
}

/** Options of {@link bootTimeline}: those of a boot, and how many boots to make. */
export interface BootTimelineOptions
  extends Omit<BootOptions, 'onOutput' | 'expect' | 'stopOnMatch' | 'stopSignal'> {
  /** How many times to boot; the report gives each phase's median. Default 1. */
  runs?: number;
  /** Called after each boot with its timeline (for progress output). */
  onRun?: (timeline: BootTimeline, run: number) => void;
  /** With forwards in `net`: how to probe one (default: the first, with an HTTP request); `false`: no probe, each boot runs until the guest powers off. */
  probe?: TimelineProbeOptions | false;
}

/** The result of {@link bootTimeline}. */
export interface BootTimelineReport {
  /** Each phase's median over the runs that showed it. */
  median: BootTimeline;
  /** Every run's timeline, in order. */
  runs: BootTimeline[];
  /** The last boot's result (console output, QEMU command, how it ended). */
  last: BootResult;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The forwards of `net`, parsed; `[]` without any. */
function forwardsOf(net: BootOptions['net']): PortForward[] {
  if (!net || net === true) return [];
  return netForwards(net);
}

/**
 * Boots an initramfs `runs` times, each until the guest powers off, and reports when each phase
 * was reached (see {@link BootTimeline}), with each phase's median.
 *
 * With forwards in `net`, one forward is probed from the host (see {@link probeForward}): when the
 * guest's network answered, when the guest accepted a connection, and when the first answer came,
 * on the host's clock from QEMU's start. QEMU is then stopped, unless `probe.untilPowerOff`.
 *
 * The kernel must print its messages on the console with timestamps (Debian's kernels do, unless
 * `quiet` or `printk.time=0` is appended). irb's generated inits write the `irb: init` and
 * `irb: exec` markers; another /init shows the kernel's phases and the end only.
 */
export async function bootTimeline(options: BootTimelineOptions): Promise<BootTimelineReport> {
  const { runs: count = 1, onRun, probe: probeOptions, ...boot } = options;
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`runs must be a positive integer, got ${count}`);
  const forwards = forwardsOf(boot.net);
  const probe = probeOptions === false || forwards.length === 0 ? undefined : (probeOptions ?? {});
  const probed = probe ? (probe.guestPort ?? forwards[0]?.guestPort) : undefined;
  if (probe && !forwards.some((f) => f.guestPort === probed)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `the probed guest port ${probed} is not forwarded; forward it or probe another`,
    );
  }
  const closed =
    probe?.closedGuestPort ?? [1, 9, 7, 13].find((p) => !forwards.some((f) => f.guestPort === p)) ?? 1;
  if (probe)
    boot.net = {
      ...(boot.net as BootNetOptions),
      forwards: [...forwards, { hostPort: 0, guestPort: closed }],
    };
  const runs: BootTimeline[] = [];
  let last: BootResult | undefined;
  for (let run = 0; run < count; run++) {
    let lines: ConsoleLine[] = [];
    let partial = '';
    let started = performance.now();
    const stopper = new AbortController();
    let probing: { stop: AbortController; result: Promise<ForwardProbeResult> } | undefined;
    const result = await bootInitramfs({
      ...boot,
      stopOnMatch: false,
      stopSignal: stopper.signal,
      onStart: (start) => {
        // A restart (a picked port was taken) starts the clock and the probe anew.
        started = start.startMs;
        lines = [];
        partial = '';
        probing?.stop.abort();
        const port = start.forwards.find((f) => f.guestPort === probed)?.hostPort;
        const closedPort = start.forwards.findLast((f) => f.guestPort === closed)?.hostPort;
        if (!probe || port === undefined || closedPort === undefined) return;
        const stop = new AbortController();
        const result = probeForward({
          ...probe,
          port,
          closedPort,
          originMs: start.startMs,
          signal: stop.signal,
        });
        probing = { stop, result };
        if (!probe.untilPowerOff) void result.then((r) => r.answerMs !== undefined && stopper.abort());
      },
      onOutput: (text) => {
        const now = performance.now() - started;
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        for (const part of parts) lines.push({ text: part, hostMs: now });
      },
    });
    const wallMs = performance.now() - started;
    probing?.stop.abort();
    const seen = probing ? await probing.result : {};
    if (partial !== '') lines.push({ text: partial, hostMs: wallMs });
    const timeline = { ...parseBootTimeline(lines, wallMs), ...seen };
    runs.push(timeline);
    onRun?.(timeline, run);
    last = result;
  }
  const medianTimeline: BootTimeline = { wallMs: 0 };
  for (const phase of [...TIMELINE_PHASES, ...FORWARD_PHASES]) {
    const value = median(runs.map((r) => r[phase]).filter((v): v is number => v !== undefined));
    if (value !== undefined) medianTimeline[phase] = Math.round(value * 10) / 10;
  }
  const statuses = runs.map((r) => r.exitStatus).filter((s): s is number => s !== undefined);
  if (statuses.length) medianTimeline.exitStatus = statuses.at(-1) as number;
  return { median: medianTimeline, runs, last: last as BootResult };
}
