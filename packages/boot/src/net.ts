import { createServer } from 'node:net';
import { IrbError } from '@irb/errors';
import type { BootMachine } from './arch.ts';

/** A guest TCP port reachable from the host at `127.0.0.1:hostPort` (0: a free port is picked). */
export interface PortForward {
  /** The host port, on 127.0.0.1 only; 0 picks a free one. */
  hostPort: number;
  /** The port the guest listens on. */
  guestPort: number;
}

/** A forward as the VM got it: the host port actually bound. */
export interface BootForward {
  /** Always `127.0.0.1`: nothing outside this machine reaches the guest. */
  host: '127.0.0.1';
  /** The bound host port (the picked one when 0 was asked). */
  hostPort: number;
  /** The guest's port. */
  guestPort: number;
  /** The host port was picked because 0 was asked. */
  picked: boolean;
}

/** Options of a boot's network (`BootOptions.net`). */
export interface BootNetOptions {
  /** Ports to forward: `[127.0.0.1:]HOSTPORT:GUESTPORT` strings (see {@link parseForward}) or objects. */
  forwards?: readonly (string | PortForward)[];
  /**
   * `false`: no `ip=` kernel argument, for an archive that configures the network itself (irb's
   * init: a baked `--net` or a job file's network, which any `ip=` would override; slirp's
   * network is 10.0.2.0/24, gateway 10.0.2.2). Default `true`, unless `append` has an `ip=`.
   */
  ip?: boolean;
}

/**
 * The network QEMU's user networking (slirp) gives the guest, and the device name a guest with
 * one virtio NIC and no udev sees.
 */
export const USER_NET = {
  address: '10.0.2.15',
  netmask: '255.255.255.0',
  gateway: '10.0.2.2',
  dns: '10.0.2.3',
  device: 'eth0',
} as const;

/**
 * The kernel argument for {@link USER_NET}, in the kernel's own syntax
 * (`ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>`), passed with
 * `net` unless the caller passes an `ip=` of their own.
 */
export const USER_NET_IP_ARGUMENT = `ip=${USER_NET.address}::${USER_NET.gateway}:${USER_NET.netmask}::${USER_NET.device}:off:${USER_NET.dns}`;

const LOOPBACK = '127.0.0.1';

function port(text: string, what: string, spec: string, min: number): number {
  const value = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= 65535)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `forward "${spec}": ${what} "${text}" is not a port number from ${min} to 65535; write [127.0.0.1:]HOSTPORT:GUESTPORT`,
    );
  }
  return value;
}

/**
 * Parses `[127.0.0.1:]HOSTPORT:GUESTPORT` (HOSTPORT 0: pick a free port).
 *
 * @throws IrbError `IRB_OPTION_INVALID` for any other host address (a forward binds 127.0.0.1
 *   only, so nothing outside this machine reaches the guest) and for ports that are not numbers.
 */
export function parseForward(spec: string): PortForward {
  const parts = spec.split(':');
  if (parts.length < 2) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `forward "${spec}" is not [127.0.0.1:]HOSTPORT:GUESTPORT (e.g. 8080:80, or 0:80 for a free host port)`,
    );
  }
  if (parts.length > 2) {
    const host = parts.slice(0, -2).join(':');
    if (host !== LOOPBACK) {
      const rest = parts.slice(-2).join(':');
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `forward "${spec}": host address "${host}" refused, a forward binds 127.0.0.1 only so that nothing outside this machine reaches the guest; write ${rest} or 127.0.0.1:${rest}`,
      );
    }
  }
  return {
    hostPort: port(parts.at(-2) as string, 'host port', spec, 0),
    guestPort: port(parts.at(-1) as string, 'guest port', spec, 1),
  };
}

/** The forwards of `net`, parsed, with a busy or repeated host port refused. */
export function netForwards(net: BootNetOptions): PortForward[] {
  const forwards = (net.forwards ?? []).map((f) => (typeof f === 'string' ? parseForward(f) : f));
  const seen = new Set<number>();
  for (const f of forwards) {
    for (const [value, min, what] of [
      [f.hostPort, 0, 'host port'],
      [f.guestPort, 1, 'guest port'],
    ] as const) {
      if (!Number.isInteger(value) || value < min || value > 65535) {
        throw new IrbError(
          'IRB_OPTION_INVALID',
          `forward ${what} ${value} is not a port number from ${min} to 65535`,
        );
      }
    }
    if (f.hostPort !== 0 && seen.has(f.hostPort)) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `host port ${f.hostPort} is forwarded twice; give each forward its own host port (or 0 for a free one)`,
      );
    }
    seen.add(f.hostPort);
  }
  return forwards;
}

/** Binds 127.0.0.1:`port` for a moment: the bound port, or the bind error's code. */
function tryBind(port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'EADDRINUSE'));
    server.listen(port, LOOPBACK, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * The host ports for `forwards`: a port asked for is checked to be free; 0 gets a port the
 * system picks (free when checked; QEMU binds it a moment later, and a boot that loses that race
 * is started again with new ports).
 *
 * @throws IrbError `IRB_BOOT_FORWARD_PORT_IN_USE` when an asked-for host port is taken.
 */
export async function bindForwards(forwards: readonly PortForward[]): Promise<BootForward[]> {
  const out: BootForward[] = [];
  for (const f of forwards) {
    const bound = await tryBind(f.hostPort);
    if (typeof bound === 'string') throw portInUse(f.hostPort, bound);
    // Two picks in a row can get the same port back: ask again.
    if (f.hostPort === 0 && out.some((o) => o.hostPort === bound)) {
      out.push(...(await bindForwards([f])));
      continue;
    }
    out.push({ host: LOOPBACK, hostPort: bound, guestPort: f.guestPort, picked: f.hostPort === 0 });
  }
  return out;
}

/** The one-line error for a host port QEMU or the check could not bind. */
export function portInUse(port: number, code = 'EADDRINUSE'): IrbError {
  return new IrbError(
    'IRB_BOOT_FORWARD_PORT_IN_USE',
    `host port ${port} on 127.0.0.1 cannot be bound (${code}); forward another host port, or 0 for a free one`,
  );
}

/** QEMU's stderr when a hostfwd could not be bound. */
export const HOSTFWD_FAILED = /Could not set up host forwarding rule '?tcp:127\.0\.0\.1:(\d+)/;

/** The virtio-net device for a machine: on a virtio-mmio bus on microvm, on PCI elsewhere. */
export function netDevice(machine: BootMachine): 'virtio-net-device' | 'virtio-net-pci' {
  return machine === 'microvm' ? 'virtio-net-device' : 'virtio-net-pci';
}

/** The kernel modules the guest needs for that device: the driver, then its transport. */
export function netDriverModules(machine: BootMachine): readonly [string, string] {
  return ['virtio_net', machine === 'microvm' ? 'virtio_mmio' : 'virtio_pci'];
}

/**
 * QEMU arguments for user networking (slirp) with `restrict=on` (the guest reaches nothing
 * outside; only the forwards reach it) and a virtio-net device on the machine's bus.
 */
export function qemuNetArguments(
  machine: BootMachine,
  forwards: readonly Omit<BootForward, 'picked' | 'host'>[],
): string[] {
  const rules = forwards.map((f) => `,hostfwd=tcp:${LOOPBACK}:${f.hostPort}-:${f.guestPort}`).join('');
  return ['-netdev', `user,id=net0,restrict=on${rules}`, '-device', `${netDevice(machine)},netdev=net0`];
}

/** What the guest's init said when no network device appeared: see {@link parseNoNetDevice}. */
export interface NoNetDevice {
  /** The device the init waited for (`eth0`). */
  device: string;
  /** How long it waited. */
  afterMs: number;
}

const NO_DEVICE = /irb: net: no device (\S+) after (\d+) ms/;

/**
 * Finds the init's console line `irb: net: no device <name> after <N> ms` (irb's generated inits
 * print it when the `ip=` device did not appear; with or without a printk timestamp).
 */
export function parseNoNetDevice(output: string): NoNetDevice | undefined {
  const m = NO_DEVICE.exec(output);
  return m ? { device: m[1] as string, afterMs: Number(m[2]) } : undefined;
}

/** The one line for a guest that found no network device: which modules the archive lacks. */
export function noNetDeviceMessage(found: NoNetDevice, machine: BootMachine, release?: string): string {
  const [driver, transport] = netDriverModules(machine);
  return `the guest found no network device ${found.device} after ${found.afterMs} ms: the archive lacks the kernel's network driver; add the modules ${driver} and ${transport}${release ? ` for ${release}` : ''} (irb build --kernel-modules … --modules net)`;
}
