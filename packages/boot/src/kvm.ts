import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { cacheLayout, makeDirectory } from '@irb/store/paths';
import { type BootArch, hostArch } from './arch.ts';
import { type BootAccel, type BootMachine, qemuArguments, qemuBinary } from './command.ts';
import { stop, track } from './process.ts';

/** In the cache the user named (`IRB_CACHE_DIR`), else the default one: see @irb/store. */
function probeCacheFile(): string {
  return cacheLayout().kvmProbe;
}

async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

const probes = new Map<string, Promise<boolean>>();

/**
 * Whether KVM really runs a Linux guest here. An accessible /dev/kvm is not enough (some
 * sandboxes expose one that hangs the guest), so this boots `kernel` under KVM with no
 * initramfs and waits up to `timeoutMs` for its first console line. The answer is cached
 * in memory and in the cache's `kvm-probe.json` (`$IRB_CACHE_DIR/kvm-probe.json`, else
 * `~/.cache/irb/kvm-probe.json`) until the host reboots.
 */
export function probeKvm(options: {
  kernel: string;
  qemu?: string;
  timeoutMs?: number;
  /** The guest's architecture; KVM runs only the host's. Default: the host's. */
  arch?: BootArch;
}): Promise<boolean> {
  const arch = options.arch ?? hostArch();
  if (arch !== hostArch()) return Promise.resolve(false);
  const qemu = options.qemu ?? qemuBinary(arch);
  const key = `${qemu}\0${options.kernel}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = probeUncached(qemu, options.kernel, options.timeoutMs ?? 4000, arch);
    probes.set(key, probe);
  }
  return probe;
}

async function probeUncached(
  qemu: string,
  kernel: string,
  timeoutMs: number,
  arch: BootArch,
): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const id = await bootId();
  const file = probeCacheFile();
  const cacheKey = `${qemu}|${kernel}`;
  let cache: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as {
      bootId?: string;
      results?: Record<string, unknown>;
    };
    if (parsed.bootId === id && parsed.results) cache = parsed.results;
  } catch {
    // no cache yet
  }
  const known = cache[cacheKey];
  if (typeof known === 'boolean') return known;

  const machine: BootMachine = arch === 'aarch64' ? 'virt' : 'microvm';
  const args = [...qemuArguments({ kernel, initramfs: '/dev/null', machine, accel: 'kvm', memoryMb: 128 })];
  // No initrd for the probe: drop it, and print from the very first instruction on.
  const initrd = args.indexOf('-initrd');
  args.splice(initrd, 2);
  args[args.length - 1] += arch === 'aarch64' ? ' earlycon=pl011,0x9000000' : ' earlyprintk=serial,ttyS0';
  const works = await new Promise<boolean>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      resolve(false);
      return;
    }
    track(child);
    let text = '';
    const timer = setTimeout(() => finish(false), timeoutMs);
    function finish(result: boolean): void {
      clearTimeout(timer);
      stop(child, 500);
      resolve(result);
    }
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('Linux version')) finish(true);
    });
    child.on('error', () => finish(false));
    child.on('exit', () => finish(text.includes('Linux version')));
  });
  try {
    await makeDirectory(dirname(file));
    await writeFile(file, JSON.stringify({ bootId: id, results: { ...cache, [cacheKey]: works } }));
  } catch {
    // a read-only cache only costs another probe next time
  }
  return works;
}

/** `IRB_ACCEL=kvm|tcg`, when set. */
export function accelFromEnv(): BootAccel | undefined {
  const value = process.env.IRB_ACCEL;
  return value === 'kvm' || value === 'tcg' ? value : undefined;
}

/**
 * The accelerator {@link bootInitramfs} uses for an `arch` guest booting `kernel` when the caller
 * does not choose: `IRB_ACCEL` when set, else KVM when {@link probeKvm} shows it runs a guest,
 * else TCG. For reports (`irb --version --verbose`) that must say what a boot will do.
 */
export async function chooseAccel(options: {
  kernel: string;
  qemu?: string;
  arch?: BootArch;
}): Promise<BootAccel> {
  const arch = options.arch ?? hostArch();
  const qemu = options.qemu ?? qemuBinary(arch);
  return accelFromEnv() ?? ((await probeKvm({ kernel: options.kernel, qemu, arch })) ? 'kvm' : 'tcg');
}
