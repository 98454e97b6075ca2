/** A named set of modules for a kind of virtio device. */
export interface ModulePreset {
  /** What it gives the guest. */
  description: string;
  /** The modules it names (their dependencies come from the tree). */
  modules: readonly string[];
}

/**
 * The virtio transports. A device driver does not depend on them (modules.dep lists no
 * transport: virtio_net alone finds no device), so every preset adds them: virtio_pci for
 * QEMU's `-M pc`/`q35`/`virt` and Cloud Hypervisor, virtio_mmio for Firecracker and QEMU's
 * microvm. Where the kernel has one built in, or not at all, it is left out.
 */
export const VIRTIO_TRANSPORTS: readonly string[] = ['virtio_pci', 'virtio_mmio'];

/**
 * The presets a module list may name. Checked against Debian 12's 6.1 kernels (amd64 and arm64):
 * none of these modules has a soft dependency there, and virtio/virtio_ring are modules on amd64
 * and built in on arm64 (the closure handles both).
 */
export const MODULE_PRESETS: Readonly<Record<string, ModulePreset>> = {
  net: { description: 'virtio network device (eth0)', modules: ['virtio_net'] },
  vsock: { description: 'AF_VSOCK over a virtio vsock device', modules: ['vmw_vsock_virtio_transport'] },
  console: { description: 'virtio console (/dev/hvc0)', modules: ['virtio_console'] },
  blk: { description: 'virtio block devices (/dev/vda)', modules: ['virtio_blk'] },
  fs: {
    description: 'virtiofs, 9p over virtio, overlayfs',
    modules: ['virtiofs', '9p', '9pnet_virtio', 'overlay'],
  },
};

/** The preset called `name`, if any. */
export function presetOf(name: string): ModulePreset | undefined {
  return Object.hasOwn(MODULE_PRESETS, name) ? MODULE_PRESETS[name] : undefined;
}
