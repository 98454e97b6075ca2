import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packCpio } from '@irb/cpio';
import { moduleEntries } from '../src/entries.ts';
import type { ResolvedModules } from '../src/types.ts';

/** A Debian kernel unpacked by scripts/ensure-env.sh: its root, release, .deb and vmlinuz. */
export interface DebianKernel {
  root: string;
  release: string;
  deb: string;
  vmlinuz: string;
  tree: string;
}

/** The Debian kernel of `arch` in the cache (`kernel` for amd64, `kernel-aarch64` for arm64). */
export function debianKernel(arch: 'amd64' | 'arm64'): DebianKernel {
  const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
  const root = join(cache, 'irb', arch === 'amd64' ? 'kernel' : 'kernel-aarch64');
  const release = readdirSync(join(root, 'lib', 'modules'))[0] as string;
  const deb = readdirSync(root).find((n) => n.startsWith('linux-image-') && n.endsWith('.deb')) as string;
  return {
    root,
    release,
    deb: join(root, deb),
    vmlinuz: join(root, 'boot', `vmlinuz-${release}`),
    tree: join(root, 'lib', 'modules', release),
  };
}

/** The modules member of a set as newc bytes. */
export async function memberBytes(set: ResolvedModules): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of packCpio(moduleEntries(set))) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The error a promise rejects with (fails when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}
