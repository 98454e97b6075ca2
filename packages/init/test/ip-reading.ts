import { spawnSync } from 'node:child_process';
import { staticInitPath } from '../src/binary.ts';
import { type KernelIpConfig, readKernelIp } from '../src/net.ts';

/*
 * The init's C parser (c/net.h) and the TypeScript one must read every ip= value alike. The
 * x86_64 binary runs on an x86_64 host as a plain process (not PID 1), where `init ip VALUE`
 * prints its reading; these helpers put both readings in that one form.
 */

/** What `init ip VALUE` prints and its exit status. */
export interface IpReading {
  value: string;
  out: string;
  status: number | null;
}

/** The line `init ip VALUE` prints for a parse (see describe_ip in c/init.c). */
function describeIp(config: KernelIpConfig): string {
  const head = config.kind === 'static' ? `static ${config.address}/${config.prefix}` : config.kind;
  return (
    `${head} gw=${config.kind === 'static' ? (config.gateway ?? '') : ''}` +
    ` dns0=${config.dns[0] ?? ''} dns1=${config.dns[1] ?? ''} host=${config.hostname ?? ''}` +
    ` domain=${config.domain ?? ''} device=${config.device ?? ''}`
  );
}

/** The reading `readKernelIp` gives, as the C parser would print it. */
export function tsIpReading(value: string): IpReading {
  const read = readKernelIp(value);
  return 'problem' in read
    ? { value, out: `error ${read.problem.field}\n`, status: 1 }
    : { value, out: `${describeIp(read.config)}\n`, status: 0 };
}

/** The reading of the init's own parser (the x86_64 binary, run on this host). */
export function cIpReading(value: string): IpReading {
  const run = spawnSync(staticInitPath('x86_64'), ['ip', value], { encoding: 'utf8' });
  return { value, out: run.stdout, status: run.status };
}
