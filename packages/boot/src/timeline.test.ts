import { describe, expect, it } from 'vitest';
import { type ConsoleLine, parseBootTimeline } from './timeline.ts';

/** Console lines as a Debian 6.1 kernel under QEMU TCG printed them, with host arrival times. */
const BOOT: ConsoleLine[] = [
  { hostMs: 10, text: '[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)' },
  { hostMs: 11, text: '[    0.000000] Command line: console=ttyS0 panic=-1 rdinit=/init' },
  { hostMs: 7290, text: '[    1.947416] Trying to unpack rootfs image as initramfs...' },
  { hostMs: 7400, text: '[    2.075212] Freeing initrd memory: 1940K' },
  { hostMs: 7990, text: '[    5.043824] Run /init as init process' },
  { hostMs: 7995, text: '[    5.101000] irb: init' },
  { hostMs: 7999, text: '[    5.201000] irb: exec' },
  { hostMs: 8020, text: 'hello from the program' },
  { hostMs: 8040, text: 'a second line' },
  { hostMs: 8060, text: '[    5.401000] irb: exit status 3' },
  { hostMs: 8080, text: '[    5.436275] reboot: Power down' },
];

describe('parseBootTimeline', () => {
  it('reads every phase from printk times and the init markers', () => {
    const t = parseBootTimeline(BOOT, 8123.44);
    expect(t).toEqual({
      unpackStartMs: 1947.4,
      unpackedMs: 2075.2,
      initMs: 5043.8,
      execMs: 5201,
      // 21 ms of 61 ms host time between the exec marker and the exit line, on the guest's 200 ms.
      firstLineMs: Math.round((5201 + (21 / 61) * 200) * 10) / 10,
      endMs: 5436.3,
      wallMs: 8123.4,
      exitStatus: 3,
    });
  });

  it('reads markers that carry their uptime, and an init that prints none', () => {
    const lines: ConsoleLine[] = [
      { hostMs: 1, text: '[    2.000000] Freeing initrd memory: 100K' },
      { hostMs: 2, text: '[    3.000000] Run /init as init process' },
      { hostMs: 3, text: 'irb: init 3.10' },
      { hostMs: 4, text: 'irb: exec 3.25' },
      { hostMs: 10, text: 'ready' },
    ];
    const t = parseBootTimeline(lines, 20);
    expect(t.initMs).toBe(3000);
    expect(t.execMs).toBe(3250);
    // No timestamped line after it: the host's elapsed time since the exec marker.
    expect(t.firstLineMs).toBe(3256);
    // No power-down line: the end is the last moment the guest was seen, never before a phase.
    expect(t.endMs).toBe(3256);
    const bare = parseBootTimeline(lines.slice(0, 2), 5);
    expect(bare).toEqual({ unpackedMs: 2000, initMs: 3000, endMs: 3000, wallMs: 5 });
  });

  it('reads the modules and net markers, from kmsg or with their uptime, and not the lines around them', () => {
    const lines: ConsoleLine[] = [
      { hostMs: 1, text: '[    3.000000] Run /init as init process' },
      { hostMs: 2, text: 'irb: init 3.010000' },
      { hostMs: 3, text: 'irb: module bogus: Exec format error' },
      { hostMs: 4, text: '[    3.300000] virtio_net virtio0 eth0: renamed' },
      { hostMs: 5, text: 'irb: modules 3.420000' },
      { hostMs: 6, text: 'irb: net: eth0 10.0.2.15/24 via 10.0.2.2' },
      { hostMs: 7, text: 'irb: net 3.500500' },
      { hostMs: 8, text: 'irb: exec 3.600000' },
      { hostMs: 9, text: 'listening' },
      { hostMs: 10, text: '[    3.700000] reboot: Power down' },
    ];
    expect(parseBootTimeline(lines, 20)).toEqual({
      initMs: 3000,
      modulesMs: 3420,
      netMs: 3500.5,
      execMs: 3600,
      firstLineMs: 3650,
      endMs: 3700,
      wallMs: 20,
    });
    // The shell init writes its own markers to /dev/kmsg: kernel lines with the kernel's time.
    const kmsg = parseBootTimeline(
      [
        { hostMs: 1, text: '[    1.000000] irb: init' },
        { hostMs: 2, text: '[    1.250000] irb: modules' },
        { hostMs: 3, text: 'irb: net: no device eth0 after 5000 ms' },
        { hostMs: 4, text: '[    6.300000] irb: exec' },
      ],
      10,
    );
    expect(kmsg).toMatchObject({ initMs: 1000, modulesMs: 1250, execMs: 6300 });
    expect(kmsg.netMs).toBeUndefined();
  });

  it('does not take kernel lines or irb lines for the program', () => {
    const t = parseBootTimeline(
      [
        { hostMs: 1, text: '[    1.000000] irb: exec' },
        { hostMs: 2, text: '[    1.100000] random: crng init done' },
        { hostMs: 3, text: 'irb: exit status 0' },
        { hostMs: 4, text: '' },
      ],
      10,
    );
    expect(t.execMs).toBe(1000);
    expect(t.firstLineMs).toBeUndefined();
    expect(t.exitStatus).toBe(0);
  });
});
