/*
 * The pieces every part of irb's init uses: memory and string helpers, console lines, error
 * texts, the clocks and the timeline markers, reading a whole file.
 * SPDX-License-Identifier: Apache-2.0
 *
 * The init is one translation unit (init.c includes its parts), so every function stays
 * `static` and -Os with --gc-sections keeps only what is called.
 */
#ifndef IRB_BASE_H
#define IRB_BASE_H

#include "syscall.h"

/* gcc may emit calls to these even when freestanding. */
void *memcpy(void *dst, const void *src, unsigned long n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}
void *memmove(void *dst, const void *src, unsigned long n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}
void *memset(void *dst, int c, unsigned long n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
int memcmp(const void *a, const void *b, unsigned long n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x - *y;
  return 0;
}

static unsigned long slen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static int starts_with(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

/* Byte order of two NUL-terminated strings, as sort(1) in the C locale. */
static int scmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (unsigned char)*a - (unsigned char)*b;
}

/* A decimal number 0 … 4294967295 that is the whole string. */
static int parse_u32(const char *s, unsigned long *out) {
  unsigned long v = 0;
  if (!*s) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return 0;
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > 0xffffffffUL) return 0;
  }
  *out = v;
  return 1;
}

/* ---- output: every message is built in one buffer and written with one write(2), so lines
 * from the program and from init never interleave inside a line. */

struct line {
  char buf[1024];
  unsigned long len;
};

static void put(struct line *l, const char *s) {
  while (*s && l->len < sizeof l->buf - 1) l->buf[l->len++] = *s++;
}

static void put_u(struct line *l, unsigned long v, int min_digits) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v || n < min_digits);
  while (n && l->len < sizeof l->buf - 1) l->buf[l->len++] = tmp[--n];
}

static void put_errno(struct line *l, long err) {
  const char *s = 0;
  switch (err) {
    case IRB_EPERM: s = "Operation not permitted"; break;
    case IRB_ENOENT: s = "No such file or directory"; break;
    case IRB_EIO: s = "Input/output error"; break;
    case IRB_ENXIO: s = "No such device or address"; break;
    case IRB_E2BIG: s = "Argument list too long"; break;
    case IRB_ENOEXEC: s = "Exec format error"; break;
    case IRB_ENOMEM: s = "Cannot allocate memory"; break;
    case IRB_EACCES: s = "Permission denied"; break;
    case IRB_EBUSY: s = "Device or resource busy"; break;
    case IRB_EEXIST: s = "File exists"; break;
    case IRB_ENODEV: s = "No such device"; break;
    case IRB_ENOTDIR: s = "Not a directory"; break;
    case IRB_EISDIR: s = "Is a directory"; break;
    case IRB_EINVAL: s = "Invalid argument"; break;
    case IRB_ETXTBSY: s = "Text file busy"; break;
    case IRB_EFBIG: s = "File too large"; break;
    case IRB_ENOSPC: s = "No space left on device"; break;
    case IRB_EROFS: s = "Read-only file system"; break;
    case IRB_ERANGE: s = "Numerical result out of range"; break;
    case IRB_ENAMETOOLONG: s = "File name too long"; break;
    case IRB_ENOSYS: s = "Function not implemented"; break;
    case IRB_ELOOP: s = "Too many levels of symbolic links"; break;
    case IRB_EOPNOTSUPP: s = "Operation not supported"; break;
    case IRB_EADDRNOTAVAIL: s = "Cannot assign requested address"; break;
    case IRB_ENETUNREACH: s = "Network is unreachable"; break;
    case IRB_ENOKEY: s = "Required key not available"; break;
    case IRB_EKEYREJECTED: s = "Key was rejected by service"; break;
    default: break;
  }
  if (s) {
    put(l, s);
  } else {
    put(l, "errno ");
    put_u(l, (unsigned long)err, 1);
  }
}

static void emit(int fd, struct line *l) {
  l->buf[l->len++] = '\n';
  unsigned long off = 0;
  while (off < l->len) {
    long n = sys_write(fd, l->buf + off, l->len - off);
    if (n == -IRB_EINTR) continue;
    if (n <= 0) break;
    off += (unsigned long)n;
  }
  l->len = 0;
}

/* One line "irb-init: <what><arg>: <error>" on stderr (the console). */
static void fail(const char *what, const char *arg, long err) {
  struct line l = {.len = 0};
  put(&l, "irb-init: ");
  put(&l, what);
  if (arg) put(&l, arg);
  if (err) {
    put(&l, ": ");
    put_errno(&l, err);
  }
  emit(2, &l);
}

/* Reads a whole file into buf, which holds `max` bytes and gets a NUL after them. Returns the
 * length, -EFBIG when the file is longer, or another -errno. */
static long read_file(int dir, const char *path, char *buf, unsigned long max) {
  long fd = sys_openat(dir, path, IRB_O_RDONLY | IRB_O_CLOEXEC, 0);
  if (fd < 0) return fd;
  unsigned long len = 0;
  long result = 0;
  for (;;) {
    long n = sys_read((int)fd, buf + len, max + 1 - len);
    if (n == -IRB_EINTR) continue;
    if (n < 0) {
      result = n;
      break;
    }
    if (n == 0) break;
    len += (unsigned long)n;
    if (len > max) {
      result = -IRB_EFBIG;
      break;
    }
  }
  sys_close((int)fd);
  if (result < 0) return result;
  buf[len] = '\0';
  return (long)len;
}

/* The kernel command line's arguments, NUL-terminated one after another, quotes dropped and
 * none after a "--" (those are init's), read once from /proc/cmdline. Returns the first; *end is
 * set past the last (no arguments: the two are equal). */
static const char *kernel_args(const char **end) {
  static char raw[4097], args[4097];
  static long len = -1;
  if (len < 0) {
    long n = read_file(IRB_AT_FDCWD, "/proc/cmdline", raw, sizeof raw - 1);
    len = 0;
    int quoted = 0;
    unsigned long start = 0;
    for (long i = 0; i < n; i++) {
      char ch = raw[i];
      if (ch == '"') {
        quoted = !quoted;
        continue;
      }
      if (!quoted && (ch == ' ' || ch == '\t' || ch == '\n')) {
        if ((unsigned long)len == start) continue; /* no argument yet */
        args[len] = '\0';
        if (streq(args + start, "--")) {
          len = (long)start;
          break;
        }
        start = (unsigned long)++len;
        continue;
      }
      args[len++] = ch;
    }
    if ((unsigned long)len != start) {
      args[len] = '\0';
      if (streq(args + start, "--")) len = (long)start;
      else len++;
    }
  }
  *end = args + len;
  return args;
}

/* CLOCK_BOOTTIME in microseconds. */
static unsigned long boottime_us(void) {
  struct irb_timespec ts = {0, 0};
  sys_clock_gettime(IRB_CLOCK_BOOTTIME, &ts);
  return (unsigned long)ts.tv_sec * 1000000UL + (unsigned long)ts.tv_nsec / 1000;
}

/* The kernel log's clock (printk's "[   2.034914]"), in microseconds, or -1 without /dev/kmsg.
 * It is not CLOCK_BOOTTIME: on arm64 under QEMU the two differ by a fifth of a second, so
 * markers stated in CLOCK_BOOTTIME could not be set against the kernel's own lines. No syscall
 * reads this clock, so a debug-level record is written to /dev/kmsg and read back with its
 * timestamp (level 7 is below the default console level: it does not show on the console). */
static long printk_us(void) {
  long fd = sys_openat(IRB_AT_FDCWD, "/dev/kmsg", IRB_O_RDWR | IRB_O_NONBLOCK | IRB_O_CLOEXEC, 0);
  if (fd < 0) return -1;
  long result = -1;
  static const char probe[] = "<7>irb: clock\n";
  if (sys_lseek((int)fd, 0, IRB_SEEK_END) >= 0 && sys_write((int)fd, probe, sizeof probe - 1) > 0) {
    /* Each read returns one record, "prio,seq,usec,flags;text\n"; another record may come first. */
    for (int tries = 0; tries < 32 && result < 0; tries++) {
      char rec[512];
      long n = sys_read((int)fd, rec, sizeof rec - 1);
      if (n == -IRB_EPIPE) continue; /* records were overwritten under us */
      if (n <= 0) break;
      rec[n] = '\0';
      char *text = rec;
      while (*text && *text != ';') text++;
      if (!*text || !starts_with(text + 1, "irb: clock")) continue;
      const char *p = rec;
      for (int commas = 0; *p && commas < 2; p++)
        if (*p == ',') commas++;
      unsigned long us = 0;
      int digits = 0;
      for (; *p >= '0' && *p <= '9'; p++, digits++) us = us * 10 + (unsigned long)(*p - '0');
      if (digits) result = (long)us;
    }
  }
  sys_close((int)fd);
  return result;
}

/* "irb: <event> <seconds with microseconds>": the boot timeline's markers, on the console, in
 * the kernel log's clock when /dev/kmsg is there (else CLOCK_BOOTTIME). `before_us` says how long
 * ago, in CLOCK_BOOTTIME, the event happened. */
static void marker(const char *event, unsigned long before_us) {
  long now = printk_us();
  unsigned long at = now >= 0 ? (unsigned long)now : boottime_us();
  at = at > before_us ? at - before_us : 0;
  struct line l = {.len = 0};
  put(&l, "irb: ");
  put(&l, event);
  put(&l, " ");
  put_u(&l, at / 1000000UL, 1);
  put(&l, ".");
  put_u(&l, at % 1000000UL, 6);
  emit(1, &l);
}

#endif
