import type { BuildProgressEvent } from '@irb/builder';
import { formatBytes, formatRate } from './format.ts';

/** Where progress goes: stderr in the CLI. */
export interface ProgressStream {
  write(text: string): unknown;
  columns?: number;
}

/** Receives build events and draws them. */
export interface ProgressRenderer {
  onEvent(event: BuildProgressEvent): void;
  /** Draws the final state and stops timers. */
  finish(): void;
}

interface LayerState {
  index: number;
  digest: string;
  size: number;
  done: number;
  phase: 'wait' | 'network' | 'cache' | 'done';
  start?: number;
  firstBytes: number;
  /** Time of the latest event: the rate is measured up to it, not to when it is drawn. */
  last?: number;
  end?: number;
}

const BAR = 24;

function bar(done: number, total: number, width = BAR): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

function shortDigest(digest: string): string {
  const hex = digest.slice(digest.indexOf(':') + 1);
  return hex.slice(0, 12);
}

/** Tracks build state shared by both renderers. */
class BuildState {
  layers = new Map<string, LayerState>();
  order: LayerState[] = [];
  packStart?: number;
  packBytes = 0;
  packTotal = 0;
  outBytes = 0;
  entries = 0;
  indexEntries = 0;
  indexLayer = -1;
  indexLayers = 0;

  readonly now: () => number;
  constructor(now: () => number) {
    this.now = now;
  }

  apply(event: BuildProgressEvent): LayerState | undefined {
    switch (event.type) {
      case 'resolved':
        event.layers.forEach((l, index) => {
          if (this.layers.has(l.digest)) return;
          const s: LayerState = {
            index,
            digest: l.digest,
            size: l.size,
            done: 0,
            phase: 'wait',
            firstBytes: 0,
          };
          this.layers.set(l.digest, s);
          this.order.push(s);
        });
        return undefined;
      case 'blob': {
        const s = this.layers.get(event.digest);
        if (!s) return undefined;
        if (s.start === undefined) {
          s.start = this.now();
          s.firstBytes = event.done;
        }
        s.done = event.done;
        s.last = this.now();
        if (event.total > 0) s.size = event.total;
        if (event.phase === 'done') {
          if (s.phase !== 'done') s.end = this.now();
          // A blob that never went to the network was served from the cache.
          s.phase = s.phase === 'wait' || s.phase === 'cache' ? 'cache' : 'done';
          if (s.phase === 'cache') s.end = this.now();
          return s;
        }
        if (s.phase !== 'done') s.phase = event.phase;
        return undefined;
      }
      case 'index':
        this.indexEntries = event.entries;
        this.indexLayer = event.layer;
        this.indexLayers = event.layers;
        return undefined;
      case 'pack':
        this.packStart ??= this.now();
        this.packBytes = event.bytes;
        this.packTotal = event.totalBytes;
        this.entries = event.entries;
        return undefined;
      case 'compress':
        this.packStart ??= this.now();
        this.outBytes = event.bytes;
        return undefined;
      default:
        return undefined;
    }
  }

  layerLine(s: LayerState): string {
    const name = `layer ${s.index + 1}/${this.order.length} ${shortDigest(s.digest)}`;
    if (s.phase === 'cache') return `${name}  ${bar(1, 1)}  ${formatBytes(s.size)} from cache`;
    if (s.phase === 'wait') return `${name}  ${bar(0, 1)}  waiting`;
    const elapsed = (s.end ?? s.last ?? this.now()) - (s.start ?? this.now());
    const rate = formatRate(s.done - s.firstBytes, elapsed);
    // A blob fetched in a few milliseconds has no meaningful rate.
    const tail =
      s.phase === 'done'
        ? `${formatBytes(s.size)} in ${(elapsed / 1000).toFixed(1)} s${elapsed >= 50 ? `, ${rate}` : ''}`
        : rate;
    return `${name}  ${bar(s.done, s.size)}  ${formatBytes(s.done)} / ${formatBytes(s.size)}  ${tail}`;
  }

  packLine(compression: string): string {
    const elapsed = this.now() - (this.packStart ?? this.now());
    return (
      `packing      ${bar(this.packBytes, this.packTotal)}  ${formatBytes(this.packBytes)} / ${formatBytes(this.packTotal)}` +
      `  ${formatRate(this.packBytes, elapsed)}  → ${formatBytes(this.outBytes)} ${compression}`
    );
  }
}

/** Options of {@link createProgressRenderer}. */
export interface ProgressRendererOptions {
  /** `tty`: redrawn bars; `plain`: a line per step; `none`: silent. */
  mode: 'tty' | 'plain' | 'none';
  /** Name of the compression, shown on the packing line. */
  compression: string;
  /** Minimum milliseconds between redraws. Default 100. */
  intervalMs?: number;
  now?: () => number;
}

/** A renderer for build progress on `stream`. */
export function createProgressRenderer(
  stream: ProgressStream,
  options: ProgressRendererOptions,
): ProgressRenderer {
  if (options.mode === 'none') return { onEvent() {}, finish() {} };
  const state = new BuildState(options.now ?? Date.now);
  return options.mode === 'tty'
    ? new TtyRenderer(stream, state, options.compression, options.intervalMs ?? 100)
    : new PlainRenderer(stream, state);
}

class TtyRenderer implements ProgressRenderer {
  private drawn = 0;
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private header: string[] = [];
  private packing = false;

  private readonly stream: ProgressStream;
  private readonly state: BuildState;
  private readonly compression: string;
  private readonly interval: number;

  constructor(stream: ProgressStream, state: BuildState, compression: string, interval: number) {
    this.stream = stream;
    this.state = state;
    this.compression = compression;
    this.interval = interval;
  }

  onEvent(event: BuildProgressEvent): void {
    this.state.apply(event);
    if (event.type === 'resolve') this.header = [`resolving ${event.image}`];
    if (event.type === 'resolved') {
      this.header = [`${event.image} ${event.digest} (${event.platform})`];
    }
    if (event.type === 'pack' || event.type === 'compress') this.packing = true;
    if (event.type === 'done') {
      this.finish();
      return;
    }
    const now = this.state.now();
    if (now - this.last >= this.interval || event.type === 'resolved') this.draw();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.draw(), this.interval - (now - this.last));
      this.timer.unref?.();
    }
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.last = this.state.now();
    const lines = [...this.header, ...this.state.order.map((s) => this.state.layerLine(s))];
    if (this.packing) lines.push(this.state.packLine(this.compression));
    else if (this.state.indexLayer >= 0) {
      lines.push(
        `indexing     layer ${this.state.indexLayer + 1}/${this.state.indexLayers}, ${this.state.indexEntries} tar entries`,
      );
    }
    const width = Math.max(40, (this.stream.columns || 100) - 1);
    let out = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    for (const line of lines) out += `\x1b[2K${line.length > width ? line.slice(0, width) : line}\n`;
    this.stream.write(out);
    this.drawn = lines.length;
  }

  finish(): void {
    if (this.drawn > 0 || this.header.length > 0) this.draw();
  }
}

class PlainRenderer implements ProgressRenderer {
  private packing = false;
  private readonly stream: ProgressStream;
  private readonly state: BuildState;

  constructor(stream: ProgressStream, state: BuildState) {
    this.stream = stream;
    this.state = state;
  }

  onEvent(event: BuildProgressEvent): void {
    const finished = this.state.apply(event);
    const say = (line: string) => this.stream.write(`${line}\n`);
    switch (event.type) {
      case 'resolve':
        say(`resolving ${event.image}`);
        break;
      case 'resolved': {
        const total = event.layers.reduce((n, l) => n + l.size, 0);
        say(
          `${event.image} ${event.digest} (${event.platform}), ${event.layers.length} layers, ${formatBytes(total)}`,
        );
        break;
      }
      case 'blob':
        if (finished) say(this.state.layerLine(finished));
        break;
      case 'pack':
      case 'compress':
        if (!this.packing && event.type === 'pack') {
          this.packing = true;
          say(`packing ${formatBytes(event.totalBytes)}`);
        }
        break;
      default:
        break;
    }
  }

  finish(): void {}
}
