/*
 * Loading kernel modules: finit_module on each file the configuration lists, in its order
 * (dependencies first: the builder resolves modules.dep). No modprobe, no modules.dep at boot.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef IRB_MODULES_H
#define IRB_MODULES_H

#include "base.h"

/* A module file the kernel decompresses itself (CONFIG_MODULE_DECOMPRESS, Linux 5.17+). */
static int module_compressed(const char *path) {
  unsigned long n = slen(path);
  const char *ends[] = {".ko.xz", ".ko.zst", ".ko.gz"};
  for (unsigned i = 0; i < sizeof ends / sizeof ends[0]; i++) {
    unsigned long e = slen(ends[i]);
    if (n >= e && streq(path + n - e, ends[i])) return 1;
  }
  return 0;
}

/* The module's name: the file's base name without ".ko…" (at most 63 bytes, as the kernel's). */
static void module_name(const char *path, char name[64]) {
  const char *base = path;
  for (const char *p = path; *p; p++)
    if (*p == '/') base = p + 1;
  unsigned long n = 0;
  for (const char *p = base; *p && !starts_with(p, ".ko") && n < 63; p++) name[n++] = *p;
  name[n] = '\0';
}

/* The module's parameters from the kernel command line ("virtio_mmio.device=…" gives
 * "device=…"; '-' and '_' in the name are the same), as modprobe passes them: the kernel does not
 * apply them to a module it loads later. Firecracker describes its MMIO devices that way. */
static const char *module_params(const char *name) {
  static char params[4097];
  unsigned long len = 0;
  const char *end, *arg = kernel_args(&end);
  for (; arg < end; arg += slen(arg) + 1) {
    unsigned long i = 0;
    for (; name[i] && arg[i]; i++) {
      char a = arg[i] == '-' ? '_' : arg[i], b = name[i] == '-' ? '_' : name[i];
      if (a != b) break;
    }
    if (name[i] || arg[i] != '.' || !arg[i + 1]) continue;
    unsigned long n = slen(arg + i + 1);
    if (len + n + 2 > sizeof params) break;
    if (len) params[len++] = ' ';
    memcpy(params + len, arg + i + 1, n);
    len += n;
  }
  params[len] = '\0';
  return params;
}

/* "irb: module <name>: <error>". */
static void module_failed(const char *name, long err) {
  struct line l = {.len = 0};
  put(&l, "irb: module ");
  put(&l, name);
  put(&l, ": ");
  put_errno(&l, err);
  emit(1, &l);
}

/* Loads each module; one that fails is one console line and the rest still load (a module the
 * kernel already has, EEXIST, counts as loaded). Ends with the "irb: modules" marker when there
 * were any. */
static void load_modules(char *const *paths, unsigned long n) {
  for (unsigned long i = 0; i < n; i++) {
    char name[64];
    module_name(paths[i], name);
    long fd = sys_openat(IRB_AT_FDCWD, paths[i], IRB_O_RDONLY | IRB_O_CLOEXEC, 0);
    long r = fd;
    if (fd >= 0) {
      int flags = module_compressed(paths[i]) ? IRB_MODULE_INIT_COMPRESSED_FILE : 0;
      r = sys_finit_module((int)fd, module_params(name), flags);
      sys_close((int)fd);
    }
    if (r < 0 && r != -IRB_EEXIST) module_failed(name, -r);
  }
  if (n) marker("modules", 0);
}

#endif
