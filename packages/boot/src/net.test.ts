import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  kernelCommandLine,
  netDevice,
  netDriverModules,
  parseForward,
  parseNoNetDevice,
  qemuArguments,
  qemuNetArguments,
  USER_NET_IP_ARGUMENT,
} from './index.ts';
import { bindForwards, netForwards, noNetDeviceMessage } from './net.ts';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('parseForward', () => {
  it('reads HOSTPORT:GUESTPORT and 127.0.0.1:HOSTPORT:GUESTPORT; 0 picks a port', () => {
    expect(parseForward('8080:80')).toEqual({ hostPort: 8080, guestPort: 80 });
    expect(parseForward('127.0.0.1:8080:80')).toEqual({ hostPort: 8080, guestPort: 80 });
    expect(parseForward('0:8000')).toEqual({ hostPort: 0, guestPort: 8000 });
  });

  it('refuses any other host address in one line', () => {
    for (const host of ['0.0.0.0', '192.168.1.5', 'localhost', '[::1]', '::', '']) {
      let error: unknown;
      try {
        parseForward(`${host}:8080:80`);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'IRB_OPTION_INVALID' });
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      expect(message).toContain('binds 127.0.0.1 only');
      expect(message).toContain('write 8080:80 or 127.0.0.1:8080:80');
    }
  });

  it('refuses ports that are not numbers in range', () => {
    for (const spec of ['80', 'x:80', '8080:0', '70000:80', '8080:', ':80', '-1:80', '8080:80.5']) {
      expect(() => parseForward(spec), spec).toThrow(expect.objectContaining({ code: 'IRB_OPTION_INVALID' }));
    }
  });

  it('refuses one host port forwarded twice, but not two picks', () => {
    expect(() => netForwards({ forwards: ['8080:80', { hostPort: 8080, guestPort: 81 }] })).toThrow(
      /forwarded twice/,
    );
    expect(netForwards({ forwards: ['0:80', '0:81'] })).toHaveLength(2);
    expect(() => netForwards({ forwards: [{ hostPort: 1.5, guestPort: 80 }] })).toThrow(/not a port number/);
  });
});

describe('bindForwards', () => {
  it('picks distinct free ports for 0 and keeps the asked ones', async () => {
    const free = await listen();
    const asked = (free.address() as { port: number }).port;
    await new Promise((resolve) => free.close(resolve));
    const bound = await bindForwards([
      { hostPort: 0, guestPort: 80 },
      { hostPort: 0, guestPort: 81 },
      { hostPort: asked, guestPort: 82 },
    ]);
    expect(bound[0]).toMatchObject({ host: '127.0.0.1', guestPort: 80, picked: true });
    expect(bound[0]?.hostPort).not.toBe(bound[1]?.hostPort);
    expect(bound[2]).toEqual({ host: '127.0.0.1', hostPort: asked, guestPort: 82, picked: false });
  });

  it('refuses a host port that is taken, in one line', async () => {
    const busy = await listen();
    const port = (busy.address() as { port: number }).port;
    try {
      await expect(bindForwards([{ hostPort: port, guestPort: 80 }])).rejects.toMatchObject({
        code: 'IRB_BOOT_FORWARD_PORT_IN_USE',
        message: `host port ${port} on 127.0.0.1 cannot be bound (EADDRINUSE); forward another host port, or 0 for a free one`,
      });
    } finally {
      busy.close();
    }
  });
});

describe('QEMU arguments for a network', () => {
  it('puts virtio-net on the machine bus: PCI on pc and virt, virtio-mmio on microvm', () => {
    expect(netDevice('pc')).toBe('virtio-net-pci');
    expect(netDevice('virt')).toBe('virtio-net-pci');
    expect(netDevice('microvm')).toBe('virtio-net-device');
    expect(netDriverModules('pc')).toEqual(['virtio_net', 'virtio_pci']);
    expect(netDriverModules('microvm')).toEqual(['virtio_net', 'virtio_mmio']);
  });

  it('restricts user networking and forwards from 127.0.0.1 only', () => {
    expect(
      qemuNetArguments('microvm', [
        { hostPort: 8080, guestPort: 80 },
        { hostPort: 2222, guestPort: 22 },
      ]),
    ).toEqual([
      '-netdev',
      'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22',
      '-device',
      'virtio-net-device,netdev=net0',
    ]);
  });

  it("passes QEMU's user network as ip= unless the caller gave one", () => {
    expect(USER_NET_IP_ARGUMENT).toBe('ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3');
    const base = { kernel: '/k', initramfs: '/i', machine: 'pc', accel: 'tcg' } as const;
    const args = qemuArguments({
      ...base,
      append: ['quiet'],
      net: { forwards: [{ hostPort: 1, guestPort: 2 }] },
    });
    expect(args.at(-1)).toBe(kernelCommandLine('pc', [USER_NET_IP_ARGUMENT, 'quiet']));
    expect(args).toContain('virtio-net-pci,netdev=net0');
    const own = qemuArguments({
      ...base,
      append: ['ip=192.0.2.2::192.0.2.1:255.255.255.0::eth0:off'],
      net: { forwards: [] },
    });
    expect(own.at(-1)).toBe(kernelCommandLine('pc', ['ip=192.0.2.2::192.0.2.1:255.255.255.0::eth0:off']));
    // An archive that configures its own network: the device and forwards, no ip=.
    const none = qemuArguments({ ...base, append: ['quiet'], net: { forwards: [], ip: false } });
    expect(none).toContain('virtio-net-pci,netdev=net0');
    expect(none.at(-1)).toBe(kernelCommandLine('pc', ['quiet']));
    expect(qemuArguments(base).join(' ')).not.toMatch(/netdev|ip=/);
  });
});

describe('parseNoNetDevice', () => {
  it("finds the init's line, with or without a printk timestamp, and names the modules", () => {
    expect(parseNoNetDevice('x\nirb: net: no device eth0 after 2000 ms\n')).toEqual({
      device: 'eth0',
      afterMs: 2000,
    });
    const found = parseNoNetDevice('[    4.123456] irb: net: no device eth1 after 500 ms');
    expect(found).toEqual({ device: 'eth1', afterMs: 500 });
    expect(parseNoNetDevice('irb: net: eth0 up')).toBeUndefined();
    expect(noNetDeviceMessage(found!, 'microvm', '6.1.0-57-amd64')).toBe(
      "the guest found no network device eth1 after 500 ms: the archive lacks the kernel's network driver; add the modules virtio_net and virtio_mmio for 6.1.0-57-amd64 (irb build --kernel-modules … --modules net)",
    );
  });
});
