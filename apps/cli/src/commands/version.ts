/** `irb --version` (`-v`, `irb version`): the version; with --verbose, what irb runs on. */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
// An import, not a read beside this module: the bundle (dist/) inlines it.
import packageJson from '../../package.json' with { type: 'json' };
import { EXIT } from '../kit/errors.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';

/** First line of `command --version`, or `undefined` when it cannot be run. */
function firstLineOf(command: string, args: string[]): Promise<string | undefined> {
  // Taken here, not imported: this module shares the chunk every command loads, and only
  // `--version --verbose` runs a program.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => resolve(code === 0 ? out.split('\n')[0]?.trim() : undefined));
  });
}

const TCG = 'irb boot uses software emulation (TCG)';

/**
 * What `irb boot` will use on this host, not merely whether /dev/kvm opens: some sandboxes expose
 * a /dev/kvm that hangs the guest, and boot then uses TCG after its probe (cached per host boot).
 */
async function kvmReport(): Promise<string> {
  const forced = process.env.IRB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') {
    return `IRB_ACCEL=${forced}: ${forced === 'kvm' ? 'irb boot uses KVM' : TCG}`;
  }
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `no /dev/kvm; ${TCG}` : `/dev/kvm is not usable (${code}); ${TCG}`;
  }
  const { chooseAccel, findKernel } = await builder();
  const kernel = await findKernel().catch(() => undefined);
  if (kernel === undefined) {
    return '/dev/kvm is accessible; no kernel was found to probe it with, so irb boot probes at its first boot whether KVM runs a guest';
  }
  return (await chooseAccel({ kernel })) === 'kvm'
    ? '/dev/kvm works (a probe boot ran a guest under it); irb boot uses KVM'
    : `/dev/kvm is accessible but a probe boot under it failed; ${TCG}`;
}

/** `irb --version --verbose`: what irb runs on, the things bug reports need. */
async function environmentReport(): Promise<string[]> {
  const lines = [`node      ${process.version} (irb needs ${packageJson.engines.node})`];
  for (const qemu of ['qemu-system-x86_64', 'qemu-system-aarch64']) {
    const found = await firstLineOf(qemu, ['--version']);
    lines.push(
      `${qemu.replace('qemu-system-', 'qemu ').padEnd(9)} ${found ?? `not found (${qemu} is not on PATH)`}`,
    );
  }
  const kvm = await kvmReport();
  lines.push(`kvm       ${kvm}`);
  let zstd: string;
  try {
    // The backend -c zstd would use: zstd-napi, or node:zlib when the addon did not load
    // (IRB_ZSTD_BACKEND forces one). Output bytes depend on it.
    zstd = (await builder()).zstdBackend();
  } catch (error) {
    zstd = `unavailable: ${error instanceof Error ? error.message : String(error)}`;
  }
  lines.push(`zstd      ${zstd}`);
  return lines;
}

/** Prints the version, and with `verbose` the environment report; returns the exit code. */
export async function printVersion(verbose: boolean, io: CliIo): Promise<number> {
  io.stdout.write(`irb ${packageJson.version}\n`);
  if (verbose) io.stdout.write(`${(await environmentReport()).join('\n')}\n`);
  return EXIT.ok;
}
