import { describe, expect, it } from 'vitest';
import { createProgressRenderer } from './progress.ts';

function collector(columns = 200) {
  const chunks: string[] = [];
  return { chunks, stream: { columns, write: (t: string) => chunks.push(t) } };
}

const layers = [
  { digest: `sha256:${'a'.repeat(64)}`, diffId: 'x', mediaType: 'gz', size: 4 * 1024 * 1024 },
  { digest: `sha256:${'b'.repeat(64)}`, diffId: 'y', mediaType: 'gz', size: 1024 },
];

describe('progress', () => {
  it('draws a bar per layer with bytes and speed on a terminal, redrawing in place', () => {
    let now = 0;
    const { chunks, stream } = collector();
    const r = createProgressRenderer(stream, {
      mode: 'tty',
      compression: 'gzip',
      intervalMs: 100,
      now: () => now,
    });
    r.onEvent({ type: 'resolve', image: 'demo' });
    r.onEvent({ type: 'resolved', image: 'demo', digest: 'sha256:m', platform: 'linux/amd64', layers });
    now = 1000;
    r.onEvent({ type: 'blob', digest: layers[0]!.digest, done: 0, total: layers[0]!.size, phase: 'network' });
    now = 2000;
    r.onEvent({
      type: 'blob',
      digest: layers[0]!.digest,
      done: 2 * 1024 * 1024,
      total: layers[0]!.size,
      phase: 'network',
    });
    r.onEvent({ type: 'blob', digest: layers[1]!.digest, done: 1024, total: 1024, phase: 'done' });
    now = 2500;
    r.onEvent({ type: 'index', layer: 1, layers: 2, entries: 42 });
    expect(chunks.at(-1)).toContain('indexing     layer 2/2, 42 tar entries');
    now = 3000;
    r.onEvent({ type: 'pack', entries: 10, bytes: 1024 * 1024, totalBytes: 2 * 1024 * 1024 });
    r.finish();
    const last = chunks.at(-1)!;
    expect(last.startsWith('\x1b[')).toBe(true);
    expect(last).toContain(
      'layer 1/2 aaaaaaaaaaaa  [############------------]  2.0 MiB / 4.0 MiB  2.0 MiB/s',
    );
    expect(last).toContain('layer 2/2 bbbbbbbbbbbb  [########################]  1.0 KiB from cache');
    expect(last).toContain('packing');
    expect(last).toContain('1.0 MiB / 2.0 MiB');
  });

  it('throttles redraws', () => {
    const now = 0;
    const { chunks, stream } = collector();
    const r = createProgressRenderer(stream, {
      mode: 'tty',
      compression: 'gzip',
      intervalMs: 100,
      now: () => now,
    });
    r.onEvent({ type: 'resolved', image: 'demo', digest: 'sha256:m', platform: 'linux/amd64', layers });
    const before = chunks.length;
    for (let i = 1; i <= 50; i++) {
      r.onEvent({
        type: 'blob',
        digest: layers[0]!.digest,
        done: i * 1000,
        total: layers[0]!.size,
        phase: 'network',
      });
    }
    expect(chunks.length - before).toBeLessThanOrEqual(1);
    r.finish();
  });

  it('prints plain lines when not a terminal, and nothing when quiet', () => {
    const { chunks, stream } = collector();
    const r = createProgressRenderer(stream, { mode: 'plain', compression: 'zstd' });
    r.onEvent({ type: 'resolve', image: 'demo' });
    r.onEvent({ type: 'resolved', image: 'demo', digest: 'sha256:m', platform: 'linux/amd64', layers });
    r.onEvent({ type: 'blob', digest: layers[1]!.digest, done: 1024, total: 1024, phase: 'done' });
    r.onEvent({ type: 'pack', entries: 1, bytes: 10, totalBytes: 100 });
    expect(chunks.join('')).not.toContain('\x1b');
    expect(chunks).toEqual([
      'resolving demo\n',
      'demo sha256:m (linux/amd64), 2 layers, 4.0 MiB\n',
      'layer 2/2 bbbbbbbbbbbb  [########################]  1.0 KiB from cache\n',
      'packing 100 B\n',
    ]);
    const quiet = collector();
    const q = createProgressRenderer(quiet.stream, { mode: 'none', compression: 'gzip' });
    q.onEvent({ type: 'resolve', image: 'demo' });
    q.finish();
    expect(quiet.chunks).toEqual([]);
  });
});
