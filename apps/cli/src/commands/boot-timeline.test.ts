import type { BootTimeline } from '@irb/builder';
import { describe, expect, it } from 'vitest';
import { medianTimeline, timelineJson, timelineStats, timelineText } from './boot-timeline.ts';

/** `runs` boots that all took `t`. */
const same = (t: BootTimeline, runs = 1) => ({ runs, median: t, min: t, max: t });

describe('boot --timeline output', () => {
  it('takes each phase’s median over the runs that showed it', () => {
    const t = medianTimeline([
      { unpackStartMs: 100, initMs: 900, wallMs: 3000 },
      { unpackStartMs: 300, initMs: 700, wallMs: 5000 },
      { unpackStartMs: 200, wallMs: 4000 },
    ]);
    expect(t).toEqual({ unpackStartMs: 200, initMs: 800, wallMs: 4000 });
  });

  it('draws each step’s bar where the previous phase ended, on the guest scale; wall has none', () => {
    const lines = timelineText(
      'a.cpio',
      same(
        {
          unpackStartMs: 1000,
          unpackedMs: 2000,
          initMs: 2000,
          execMs: 3000,
          firstLineMs: 3500,
          endMs: 4000,
          wallMs: 9000,
        },
        5,
      ),
      3,
    );
    expect(lines[0]).toBe(
      "boot timeline of a.cpio (median of 5 boots, min and max beside it; ms since the kernel started, on the guest's clock)",
    );
    const row = (label: string) => lines.find((l) => l.startsWith(`  ${label} `)) as string;
    const barOf = (label: string) => {
      const m = /\+[\d.]+ {2}( *)([█▏▎▍▌▋▊▉]+)$/.exec(row(label));
      return { start: m?.[1]?.length ?? -1, cells: m?.[2]?.length ?? -1 };
    };
    // 40 cells stand for 4000 ms: 10 cells per second.
    expect(barOf('kernel unpack start')).toEqual({ start: 0, cells: 10 });
    expect(barOf('unpacked')).toEqual({ start: 10, cells: 10 });
    expect(barOf('program exec')).toEqual({ start: 20, cells: 10 });
    expect(barOf('VM end')).toEqual({ start: 35, cells: 5 });
    // A step of 0 ms still marks where it happened.
    expect(barOf('/init')).toEqual({ start: 20, cells: 1 });
    expect(row('wall')).toMatch(/9000\.0 +host clock: QEMU start to exit, firmware included$/);
    // An archive without modules or network shows no rows for them; one with them does.
    expect(lines.some((l) => l.includes('modules loaded') || l.includes('network up'))).toBe(false);
    const net = timelineText(
      'b',
      same({ initMs: 2000, modulesMs: 2500, netMs: 2600, execMs: 3000, wallMs: 9000 }),
    );
    expect(net.find((l) => l.startsWith('  modules loaded '))).toMatch(/2500\.0 +\+500\.0/);
    expect(net.find((l) => l.startsWith('  network up '))).toMatch(/2600\.0 +\+100\.0/);
    expect(lines.at(-1)).toBe('  exit status 3');
  });

  it('says why phases are missing', () => {
    const noTimestamps = timelineText('a', same({ wallMs: 100 }));
    expect(noTimestamps.join('\n')).toContain('the console had no kernel timestamps');
    expect(noTimestamps.find((l) => l.includes('kernel unpack start'))).toMatch(/kernel unpack start +—$/);
    const foreignInit = timelineText(
      'a',
      same({ unpackStartMs: 1, unpackedMs: 2, initMs: 3, endMs: 9, wallMs: 100 }),
    );
    expect(foreignInit.join('\n')).toContain("no program exec: the /init is not irb's generated one");
  });

  it('--json has one field per phase, null when not seen, and the min and max of each', () => {
    const phases = {
      unpackedMs: null,
      initMs: null,
      modulesMs: null,
      netMs: null,
      execMs: null,
      firstLineMs: null,
      endMs: null,
    };
    const forward = { netUpMs: null, acceptedMs: null, answerMs: null };
    expect(
      timelineJson(
        'a',
        timelineStats([
          { unpackStartMs: 5, wallMs: 10 },
          { unpackStartMs: 7, wallMs: 30 },
        ]),
      ),
    ).toEqual({
      archive: 'a',
      runs: 2,
      unpackStartMs: 6,
      ...phases,
      wallMs: 20,
      ...forward,
      answerLine: null,
      min: { unpackStartMs: 5, ...phases, wallMs: 10, ...forward },
      max: { unpackStartMs: 7, ...phases, wallMs: 30, ...forward },
      exitStatus: null,
    });
  });

  it('shows min and max beside the median over several boots, and not for one', () => {
    const stats = timelineStats([
      { unpackStartMs: 100, initMs: 900, wallMs: 3000 },
      { unpackStartMs: 300, initMs: 700, wallMs: 5000 },
      { unpackStartMs: 200, initMs: 800, wallMs: 4000 },
    ]);
    expect(stats.min).toEqual({ unpackStartMs: 100, initMs: 700, wallMs: 3000 });
    expect(stats.max).toEqual({ unpackStartMs: 300, initMs: 900, wallMs: 5000 });
    const lines = timelineText('a', stats);
    expect(lines[1]).toMatch(/^ {2}phase +at ms +min +max +\+ms$/);
    expect(lines.find((l) => l.startsWith('  kernel unpack start'))).toMatch(
      /kernel unpack start +200\.0 +100\.0 +300\.0 +\+200\.0 /,
    );
    expect(lines.find((l) => l.startsWith('  wall'))).toMatch(/wall +4000\.0 +3000\.0 +5000\.0 +host clock/);
    const one = timelineText('a', timelineStats([{ unpackStartMs: 100, wallMs: 3000 }]));
    expect(one[1]).toMatch(/^ {2}phase +at ms +\+ms$/);
  });

  it('a probed forward adds its phases on the host clock, and the answer', () => {
    const runs = [
      {
        initMs: 900,
        wallMs: 3000,
        netUpMs: 2000,
        acceptedMs: 2100,
        answerMs: 2105,
        answerLine: 'HTTP/1.0 200 OK',
      },
      {
        initMs: 700,
        wallMs: 5000,
        netUpMs: 4000,
        acceptedMs: 4300,
        answerMs: 4302,
        answerLine: 'HTTP/1.0 503 Busy',
      },
    ];
    const stats = timelineStats(runs);
    expect(stats).toMatchObject({
      median: { netUpMs: 3000, acceptedMs: 3200, answerMs: 3203.5 },
      min: { netUpMs: 2000, acceptedMs: 2100, answerMs: 2105 },
      max: { netUpMs: 4000, acceptedMs: 4300, answerMs: 4302 },
      // The last answer: what the guest says now.
      answerLine: 'HTTP/1.0 503 Busy',
    });
    const lines = timelineText('a', stats);
    const row = (label: string) => lines.find((l) => l.startsWith(`  ${label} `));
    expect(row('network answers')).toMatch(
      /network answers +3000\.0 +2000\.0 +4000\.0 +\+3000\.0 +host clock, since QEMU started$/,
    );
    expect(row('port accepts')).toMatch(/port accepts +3200\.0 +2100\.0 +4300\.0 +\+200\.0$/);
    expect(row('first answer')).toMatch(
      /first answer +3203\.5 +2105\.0 +4302\.0 +\+3\.5 +HTTP\/1\.0 503 Busy$/,
    );
    // Between the guest's phases and the wall time.
    expect(lines.indexOf(row('first answer') as string)).toBe(lines.indexOf(row('wall') as string) - 1);
    expect(timelineJson('a', stats)).toMatchObject({ netUpMs: 3000, answerLine: 'HTTP/1.0 503 Busy' });
    // Without a forward, no rows for it.
    expect(timelineText('a', same({ initMs: 1, wallMs: 2 })).some((l) => l.includes('first answer'))).toBe(
      false,
    );
  });
});
