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

/* "irb: module <name>: <error>", the name being the file's base name without ".ko…". */
static void module_failed(const char *path, long err) {
  const char *base = path;
  for (const char *p = path; *p; p++)
    if (*p == '/') base = p + 1;
  struct line l = {.len = 0};
  put(&l, "irb: module ");
  for (const char *p = base; *p && !starts_with(p, ".ko") && l.len < 200; p++) l.buf[l.len++] = *p;
  put(&l, ": ");
  put_errno(&l, err);
  emit(1, &l);
}

/* Loads each module; one that fails is one console line and the rest still load (a module the
 * kernel already has, EEXIST, counts as loaded). Ends with the "irb: modules" marker when there
 * were any. */
static void load_modules(char *const *paths, unsigned long n) {
  for (unsigned long i = 0; i < n; i++) {
    long fd = sys_openat(IRB_AT_FDCWD, paths[i], IRB_O_RDONLY | IRB_O_CLOEXEC, 0);
    long r = fd;
    if (fd >= 0) {
      r = sys_finit_module((int)fd, "", module_compressed(paths[i]) ? IRB_MODULE_INIT_COMPRESSED_FILE : 0);
      sys_close((int)fd);
    }
    if (r < 0 && r != -IRB_EEXIST) module_failed(paths[i], -r);
  }
  if (n) marker("modules", 0);
}

#endif
