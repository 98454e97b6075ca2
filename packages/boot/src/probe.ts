import { connect, type Socket } from 'node:net';

/** Options of {@link probeForward}. */
export interface ForwardProbeOptions {
  /** The host port (on 127.0.0.1) of the forward to probe. */
  port: number;
  /**
   * The host port of a forward to a guest port nothing listens on. Its refusals tell when the
   * guest's network answers, which is what makes "accepted" decidable (see {@link probeForward}).
   */
  closedPort: number;
  /** Sent on every connection as soon as it opens; the first bytes back are the answer. Default {@link HTTP_PROBE_REQUEST}; empty: send nothing (a server that speaks first). */
  request?: string | Uint8Array;
  /** How often a refused connection is tried again. Default 20 ms. */
  intervalMs?: number;
  /** How long a connection must stay open, after the guest's network answered, to count as accepted. Default 100 ms (raised to 4 times the slowest refusal seen). */
  graceMs?: number;
  /** The clock's zero (a `performance.now()` value, e.g. when QEMU started). Default: when the probe starts. */
  originMs?: number;
  /** Ends the probe; it resolves with what it saw. */
  signal?: AbortSignal;
}

/** What {@link probeForward} saw, in ms since `originMs` on the host's clock. */
export interface ForwardProbeResult {
  /** The guest first refused a connection on the closed port: its network answers. */
  netUpMs?: number;
  /** The guest accepted a connection on the probed port (start of that connection). */
  acceptedMs?: number;
  /** The first bytes of an answer arrived on the probed port. */
  answerMs?: number;
  /** The answer's first line (`HTTP/1.0 200 OK`), at most 200 characters. */
  answerLine?: string;
}

/** The default request: HTTP/1.0, so that a server answers and closes. */
export const HTTP_PROBE_REQUEST = 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: irb-probe\r\n\r\n';

/** Closed-port attempts: one every 250 ms, each kept 1 s (slirp holds a connection for the guest's ARP answer about that long). */
const CLOSED_INTERVAL_MS = 250;
const CLOSED_KEEP_MS = 1000;

/**
 * Finds out, from the host, when a forwarded guest port starts answering — without being fooled by
 * QEMU's user networking, which accepts every connection on the host side at once and closes it
 * only when the guest refuses it.
 *
 * How it tells the guest's acceptance from slirp's:
 * - Before the guest's network is up, a connection stays open with nothing happening (slirp holds
 *   the guest-side SYN). So first, connections to `closedPort` (a forward to a guest port nothing
 *   listens on) are made every 250 ms until one is refused: the guest's TCP/IP stack answered
 *   (`netUpMs`; slirp delivers held attempts the moment the guest answers its ARP, so this is
 *   within a few ms of the guest's network coming up).
 * - Then connections to `port` are made one after the other, each sending `request` at once: a
 *   refusal comes back within a round trip (about 1–10 ms under TCG), and the next attempt starts
 *   `intervalMs` after the previous one. A connection still open after `graceMs` was accepted by
 *   the guest (`acceptedMs` = that connection's start; the guest accepted it within one round
 *   trip after that, and had refused the attempt before, at most one interval plus a round trip
 *   earlier: that is the resolution). If it then closes without a byte, it was a late
 *   refusal or a server that hung up: the acceptance is withdrawn and the probing goes on.
 * - The first bytes back on the accepted connection are the answer (`answerMs`, exact to the
 *   event loop): the time from the VM's start to the first answer of the agent.
 *
 * Resolves when the answer came or `signal` aborted; never rejects.
 * Every socket is closed when it resolves.
 */
export function probeForward(options: ForwardProbeOptions): Promise<ForwardProbeResult> {
  const origin = options.originMs ?? performance.now();
  const now = (): number => Math.round((performance.now() - origin) * 10) / 10;
  const interval = options.intervalMs ?? 20;
  const request =
    typeof options.request === 'string'
      ? new TextEncoder().encode(options.request)
      : (options.request ?? new TextEncoder().encode(HTTP_PROBE_REQUEST));
  const result: ForwardProbeResult = {};
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let grace = options.graceMs ?? 100;
  let done = false;

  return new Promise<ForwardProbeResult>((resolve) => {
    const later = (ms: number, run: () => void): void => {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          if (!done) run();
        },
        Math.max(0, ms),
      );
      timers.add(timer);
    };
    const finish = (): void => {
      if (done) return;
      done = true;
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      options.signal?.removeEventListener('abort', finish);
      resolve(result);
    };
    if (options.signal?.aborted) {
      finish();
      return;
    }
    options.signal?.addEventListener('abort', finish, { once: true });

    /**
     * One connection to `port`. `onEnd` hears of its end unless the probe abandoned it: `byGuest`
     * when it had opened (a refusal before QEMU listens is the host's), and after how long.
     */
    const open = (
      port: number,
      onEnd: (byGuest: boolean, afterMs: number) => void,
      onData?: (data: Buffer) => void,
    ): { abandon: () => void } => {
      const started = performance.now();
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      sockets.add(socket);
      let connected = false;
      let ended = false;
      const close = (): boolean => {
        if (ended) return false;
        ended = true;
        sockets.delete(socket);
        socket.destroy();
        return true;
      };
      const end = (): void => {
        if (close() && !done) onEnd(connected, performance.now() - started);
      };
      socket.once('connect', () => {
        connected = true;
        if (port === options.port && request.length > 0) socket.write(request);
      });
      if (onData) socket.on('data', onData);
      socket.once('error', end);
      socket.once('close', end);
      return { abandon: close };
    };

    const waiting = new Set<{ abandon: () => void }>();
    const closedAttempt = (): void => {
      const attempt = open(options.closedPort, (byGuest) => {
        waiting.delete(attempt);
        if (!byGuest || result.netUpMs !== undefined) return;
        result.netUpMs = now();
        for (const other of waiting) other.abandon();
        waiting.clear();
        portAttempt();
      });
      waiting.add(attempt);
      later(CLOSED_KEEP_MS, () => {
        waiting.delete(attempt);
        attempt.abandon();
      });
      later(CLOSED_INTERVAL_MS, () => {
        if (result.netUpMs === undefined) closedAttempt();
      });
    };

    const portAttempt = (): void => {
      const startedMs = now();
      let over = false;
      open(
        options.port,
        (byGuest, afterMs) => {
          over = true;
          // Closed without a byte: a late refusal or a server that hung up, not an acceptance.
          if (result.acceptedMs === startedMs) result.acceptedMs = undefined;
          else if (byGuest) grace = Math.max(grace, 4 * afterMs);
          later(startedMs + interval - now(), portAttempt);
        },
        (data) => {
          if (over) return;
          over = true;
          result.answerMs = now();
          result.answerLine = data.toString('latin1').split(/\r?\n/, 1)[0]?.slice(0, 200) ?? '';
          result.acceptedMs ??= startedMs;
          finish();
        },
      );
      later(grace, () => {
        if (!over) result.acceptedMs ??= startedMs;
      });
    };

    closedAttempt();
  });
}
