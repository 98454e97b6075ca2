/**
 * Every code an irb error can carry, with what it means.
 *
 * The rule for names: `IRB_` + the thing that is wrong + what is wrong with it
 * (`IRB_OPTION_INVALID`, `IRB_LAYER_TRUNCATED`, `IRB_BOOT_KERNEL_NOT_FOUND`). The thing is
 * what the user sees (an option, the image, a layer, the registry), not the package that noticed.
 * One condition has one code: there are no synonyms. Codes are stable; a rename is a breaking change.
 */
export const ERROR_CODES = {
  // Options and inputs given by the caller
  IRB_OPTION_INVALID: 'An option has a wrong value or options contradict each other.',
  IRB_INPUT_UNREADABLE:
    'An input file (an archive, a kernel, an injected file list) is missing or not a regular file.',
  IRB_OUTPUT_FAILED: 'The output could not be written (permissions, space, a directory in the way).',
  IRB_STREAM_ABANDONED: 'The consumer of a build stream stopped reading before the end.',
  IRB_REFERENCE_INVALID: 'An image reference cannot be parsed.',
  IRB_DIGEST_INVALID: 'A digest is not `algorithm:hex` with a supported algorithm.',
  IRB_PLATFORM_INVALID: 'A platform string is not `os/arch[/variant]`.',
  IRB_ENV_INVALID: 'An environment variable name is not valid for the generated /init.',
  IRB_HOSTNAME_INVALID: 'The guest hostname is not a valid host name.',
  IRB_NET_INVALID:
    'A guest network setting (`--net`, an `ip=` value) cannot be parsed or is not a static address.',
  IRB_WORKDIR_INVALID: "The image's WorkingDir is not an absolute path.",
  IRB_USER_INVALID: "The image's User is not `name`, `uid`, `name:group` or `uid:gid`.",
  IRB_USER_UNKNOWN: "The image's User names a user its /etc/passwd does not have.",
  IRB_GROUP_UNKNOWN: "The image's User names a group its /etc/group does not have.",
  IRB_INJECT_SPEC_INVALID: 'An inject spec is not `SRC:DEST`.',
  IRB_INJECT_SOURCE_UNREADABLE: 'A file to inject is missing or unreadable.',
  IRB_INJECT_DEST_INVALID:
    'An inject destination is not allowed (not absolute, the root, or through a file).',
  IRB_INJECT_CHANGED: 'A file to inject changed while the build read it.',
  IRB_KEYCHAIN_MODULE_INVALID: 'A keychain module cannot be loaded or does not export a keychain.',
  IRB_KEYCHAIN_FAILED: 'A keychain threw while resolving credentials.',

  // Image sources
  IRB_SOURCE_UNSUPPORTED:
    'An image source scheme is not one irb reads (registry, `oci:`, `docker-archive:`).',
  IRB_SOURCE_NOT_FOUND: 'An OCI layout directory or docker archive file does not exist.',
  IRB_SOURCE_INVALID: 'An OCI layout or docker archive is malformed.',
  IRB_TAG_REQUIRED: 'A local source holds several images and none was chosen.',
  IRB_IMAGE_NOT_FOUND: 'The image (tag, digest or repository) does not exist where it was looked for.',
  IRB_BLOB_NOT_FOUND: 'A blob the manifest names is missing from its source.',
  IRB_MANIFEST_INVALID: 'A manifest, index or config is not valid JSON of the expected shape.',
  IRB_MANIFEST_UNSUPPORTED: 'A manifest has a media type or schema irb does not read.',
  IRB_PLATFORM_NOT_FOUND: 'The image index has no manifest for the requested platform.',
  IRB_DIGEST_MISMATCH: 'Downloaded or cached bytes do not match their digest.',
  IRB_SIZE_MISMATCH: 'Downloaded bytes are longer or shorter than their descriptor says.',

  // Registry transport
  IRB_REGISTRY_UNREACHABLE: 'The registry cannot be reached (DNS, refused connection, timeout).',
  IRB_REGISTRY_UNAUTHORIZED: 'The registry refused the credentials, or needs some and none were found.',
  IRB_REGISTRY_RATE_LIMITED: 'The registry kept answering 429 after the retries.',
  IRB_REGISTRY_INSECURE: 'Plain HTTP to a registry that is not loopback and not listed as insecure.',
  IRB_REGISTRY_FAILED: 'The registry answered with an error status after the retries.',
  IRB_TLS_FAILED: "The registry's TLS certificate is not trusted or the handshake failed.",
  IRB_BODY_TRUNCATED: 'A response body ended before its announced length.',
  IRB_CLIENT_CLOSED: 'The registry client was closed while an operation was running.',
  IRB_CACHE_BUSY: 'Another process has been pruning the cache for minutes; a build cannot use it meanwhile.',
  IRB_CACHE_MISS: 'A blob was asked of the cache alone (offline) and the cache lacks it.',
  IRB_CACHE_WRITE_FAILED: 'The cache directory, or an area in it, cannot be created or written.',

  // Distribution through registries (push, pull, remote build cache)
  IRB_INITRAMFS_NOT_FOUND: 'No irb initramfs artifact is at the reference or attached to the image.',
  IRB_PLATFORM_REQUIRED: 'Initramfs artifacts for several platforms match and none was chosen.',
  IRB_PLATFORM_MISMATCH: 'A platform given for an archive contradicts the architecture of its /init.',

  // Credentials (auth packages)
  IRB_AUTH_FILE_UNREADABLE: 'A Docker/Podman auth file exists but cannot be read.',
  IRB_AUTH_FILE_INVALID: 'A Docker/Podman auth file is not valid JSON of the expected shape.',
  IRB_AUTH_HELPER_NOT_FOUND: 'A configured credential helper is not on PATH.',
  IRB_AUTH_HELPER_FAILED: 'A credential helper exited with an error or printed invalid JSON.',
  IRB_AUTH_HELPER_TIMEOUT: 'A credential helper did not answer in time.',
  IRB_AUTH_ENV_INVALID: 'An IRB_AUTH_* / IRB_TOKEN_* / IRB_REGISTRY_AUTH variable is malformed.',

  // Layers
  IRB_LAYER_CORRUPT: 'A layer tar has a bad header checksum or malformed fields.',
  IRB_LAYER_TRUNCATED: 'A layer tar ends in the middle of an entry.',
  IRB_LAYER_CHANGED: 'A layer read back in the second pass differs from the first.',
  IRB_LAYER_DIFF_ID_MISMATCH: "A layer's uncompressed tar does not match its diff_id in the image config.",
  IRB_LAYER_UNSUPPORTED_ENTRY: 'A layer holds a tar entry type that has no meaning in a root filesystem.',
  IRB_LAYER_SPARSE_INVALID: 'A sparse file map in a layer is malformed.',
  IRB_LAYER_LINK_INVALID: 'A hard link in a layer points to nothing, or outside the root.',
  IRB_LAYER_ROOT_INVALID: 'A layer replaces the root directory with something that is not a directory.',
  IRB_LAYER_WHITEOUT_INVALID: 'A whiteout marker in a layer is malformed.',
  IRB_LAYER_NOT_A_DIRECTORY: 'A layer path goes through something that is not a directory.',
  IRB_LAYER_SYMLINK_LOOP:
    'Resolving a path in the image needs more than 40 symlinks (a loop, or a chain the kernel would refuse).',
  IRB_LAYER_NAME_TOO_LONG: 'A name or link target is longer than the kernel accepts (4096 bytes).',
  IRB_LAYER_FILE_TOO_LARGE: 'A file is 4 GiB or larger, which newc cannot hold.',
  IRB_LAYER_TOO_MANY_ENTRIES:
    'The layers hold more tar members than the entry limit, or than the heap can index.',
  IRB_LAYER_UNPACKED_TOO_LARGE: 'The files of the image add up to more than the unpacked-size limit.',

  // The image's fitness for the generated /init
  IRB_IMAGE_NO_COMMAND: 'The image has neither Entrypoint nor Cmd, and no /init was given.',
  IRB_IMAGE_NO_SHELL: 'The generated /init needs /bin/sh and the image has none.',
  IRB_IMAGE_NO_MOUNT: 'The generated /init needs `mount` and the image has none.',
  IRB_IMAGE_NO_USER_SWITCH: 'The image runs as a non-root User and has no tool to switch to it.',
  IRB_IMAGE_HAS_INIT: 'The image already has /init and the options do not say which to use.',
  IRB_IMAGE_NO_INIT: "Keeping the image's own /init was asked for and the image has none.",
  IRB_IMAGE_ARCH_MISMATCH: "The image's program is built for another architecture than the image's platform.",

  // CPIO archives
  IRB_CPIO_MAGIC_INVALID: 'The input is not a newc/crc CPIO archive.',
  IRB_CPIO_HEADER_INVALID: 'A CPIO header has a malformed field.',
  IRB_CPIO_TRUNCATED: 'A CPIO archive ends in the middle of an entry.',
  IRB_CPIO_TRAILING_DATA: 'Non-zero bytes follow the last CPIO trailer.',
  IRB_CPIO_CHECKSUM_MISMATCH: "A crc-format entry's body does not match its checksum.",
  IRB_CPIO_BODY_UNAVAILABLE: "An entry's body was read after the reader moved past it.",
  IRB_CPIO_INPUT_INVALID: 'A CPIO reader or writer was given something that is not a byte stream.',
  IRB_CPIO_FIELD_INVALID: 'An entry field (mode, ids, times, device numbers) is out of range.',
  IRB_CPIO_PATH_INVALID: 'An entry path is empty, absolute after normalization, or holds NUL.',
  IRB_CPIO_PATH_TOO_LONG: 'An entry path or link target is longer than the kernel accepts.',
  IRB_CPIO_FILE_TOO_LARGE: 'A file is 4 GiB or larger, which newc cannot hold.',
  IRB_CPIO_BODY_INVALID: "An entry's body is not bytes, or has the wrong length.",
  IRB_CPIO_SIZE_MISMATCH: "An entry's body is longer or shorter than its declared size.",
  IRB_CPIO_TOO_MANY_INODES: 'The archive needs more inode numbers than newc can hold.',
  IRB_CPIO_DIRECTORY_UNREADABLE: 'A directory to pack cannot be read.',

  // Compression
  IRB_COMPRESSION_UNSUPPORTED: 'An archive or layer uses a compression irb does not read.',
  IRB_GZIP_CORRUPT: 'gzip data is malformed.',
  IRB_GZIP_TRUNCATED: 'gzip data ends early.',
  IRB_GZIP_WORKER_FAILED: 'A compression worker thread failed.',
  IRB_ZSTD_CORRUPT: 'zstd data is malformed.',
  IRB_ZSTD_TRUNCATED: 'zstd data ends early.',
  IRB_ZSTD_WINDOW_TOO_LARGE: 'zstd data needs a window larger than the kernel accepts (128 MiB).',
  IRB_LZ4_CORRUPT: 'lz4 (legacy format) data is malformed.',
  IRB_LZ4_TRUNCATED: 'lz4 (legacy format) data ends early.',
  IRB_COMPRESSOR_UNAVAILABLE: 'The library a compression format needs cannot be loaded on this machine.',
  IRB_XZ_CORRUPT: 'xz data is malformed or fails its check.',
  IRB_XZ_TRUNCATED: 'xz data ends early.',
  IRB_INITRAMFS_CORRUPT: 'An initramfs member is neither CPIO nor a compression the kernel reads.',

  // Booting
  IRB_BOOT_KERNEL_NOT_FOUND: 'No kernel was given or found to boot with.',
  IRB_BOOT_KERNEL_INVALID: 'The kernel file is not a bootable Linux kernel image.',
  IRB_BOOT_INITRAMFS_NOT_FOUND: 'The archive to boot does not exist.',
  IRB_BOOT_QEMU_NOT_FOUND: 'QEMU for the guest architecture is not installed.',
  IRB_BOOT_KERNEL_ARCH_MISMATCH:
    'The kernel image is built for another architecture than the archive to boot.',
  IRB_BOOT_MODULES_MISMATCH:
    "The archive's kernel modules are for another kernel release than the kernel to boot.",
  IRB_BOOT_NET_DRIVER_MISSING:
    "A boot with a network lacks the kernel's network driver: neither built in nor in the archive.",
  IRB_BOOT_FORWARD_PORT_IN_USE: 'A host port to forward to the guest cannot be bound on 127.0.0.1.',
  IRB_TRACE_INCOMPLETE: 'A traced boot ended without the complete list of paths the program used.',

  // The command line (irb)
  IRB_COMMAND_LINE_INVALID:
    'The command line names an unknown command or flag, misses an argument, or gives a flag a bad value.',
  IRB_COMMAND_INTERRUPTED: 'A command was stopped by SIGINT or SIGTERM (or Ctrl-A x) before it finished.',
  IRB_INTERNAL_FAILURE: 'An unexpected failure inside irb: a bug, to report with the output of --verbose.',

  // Kernel modules
  IRB_KMOD_SOURCE_INVALID: 'A kernel module source cannot be read, or holds no `lib/modules/<release>` tree.',
  IRB_KMOD_RELEASE_REQUIRED: 'A kernel module source holds several kernel releases and none was chosen.',
  IRB_KMOD_RELEASE_NOT_FOUND: 'The chosen kernel release is not in the module source.',
  IRB_KMOD_RELEASE_MISMATCH: "A module's vermagic names another kernel release than its tree.",
  IRB_KMOD_MODULE_UNKNOWN: 'A requested name is no module, alias, builtin or preset of the kernel.',
  IRB_KMOD_INDEX_MISSING:
    'A module tree has no modules.dep (depmod did not run) and its dependencies cannot be derived.',
  IRB_KMOD_FILE_MISSING: 'A module that modules.dep or a dependency names is missing from the tree.',
  IRB_KMOD_DEPENDENCY_CYCLE: 'Module dependencies form a cycle, so no load order exists.',
  IRB_KMOD_MODULE_INVALID:
    'A module file is not a kernel module (not ELF, no .modinfo, damaged compression).',
  IRB_KMOD_COMPRESSION_UNSUPPORTED:
    'Modules were to stay compressed and the kernel cannot decompress them itself.',
  IRB_KMOD_SOURCE_CHANGED: 'A module read again to pack it differs from the one resolved.',
} as const satisfies Record<`IRB_${string}`, string>;

/** A code an irb error can carry; the list with meanings is {@link ERROR_CODES}. */
export type IrbErrorCode = keyof typeof ERROR_CODES;

/** True when `code` is in the catalog. */
export function isIrbErrorCode(code: unknown): code is IrbErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}
