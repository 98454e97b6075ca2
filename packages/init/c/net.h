/*
 * The guest network from the kernel's `ip=` argument (or the baked configuration, in the same
 * syntax): ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>
 * (Documentation/admin-guide/nfs/nfsroot.rst). Kernels built without CONFIG_IP_PNP (Debian's)
 * leave it to init; with the driver a module, even an IP_PNP kernel finds no device in time.
 * Static addresses only: raw ioctls on an AF_INET socket, no netlink, no DHCP client.
 * SPDX-License-Identifier: Apache-2.0
 *
 * The parser follows the kernel's (net/ipv4/ipconfig.c) and is strict where the kernel guesses:
 * each field is optional, fields after the tenth are ignored, 0.0.0.0 counts as empty, a missing
 * netmask is the client address's class; but an address is four decimal bytes (no CIDR), a
 * netmask is contiguous and the gateway is on the client's network. src/net.ts is the same
 * parser in TypeScript; `init ip VALUE` prints how this one reads a value, for the tests that
 * hold the two together.
 */
#ifndef IRB_NET_H
#define IRB_NET_H

#include "base.h"

enum { IP_OFF, IP_STATIC, IP_DYNAMIC };

struct ipspec {
  int kind;
  /* Host byte order; 0 = not given. */
  unsigned int client, gw, mask, dns[2];
  const char *host, *domain, *dev; /* into the parsed copy; 0 = not given */
  /* On an error: which field, and why (the field's text is field_text). */
  const char *field, *field_text, *why;
};

static const char *const ip_fields[] = {"client", "server", "gateway", "netmask", "hostname",
                                        "device", "autoconf", "dns0", "dns1", "ntp0"};

/* Four decimal bytes a.b.c.d, nothing else. */
static int parse_ipv4(const char *s, unsigned int *out) {
  unsigned int v = 0;
  for (int part = 0; part < 4; part++) {
    unsigned int b = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
      if (++digits > 3) return 0;
      b = b * 10 + (unsigned int)(*s - '0');
    }
    if (!digits || b > 255) return 0;
    v = v << 8 | b;
    if (part < 3 && *s++ != '.') return 0;
  }
  if (*s) return 0;
  *out = v;
  return 1;
}

/* The prefix length of a contiguous netmask, or -1. */
static int mask_prefix(unsigned int mask) {
  int n = 0;
  while (n < 32 && (mask & (0x80000000U >> n))) n++;
  return (n == 32 || (mask << n) == 0) ? n : -1;
}

/* Autoconfiguration protocols the kernel knows (ic_proto_name): any of them means "not static". */
static int ip_dynamic_name(const char *s) {
  return streq(s, "on") || streq(s, "any") || starts_with(s, "dhcp") || streq(s, "bootp") || streq(s, "rarp") ||
         streq(s, "both");
}

static int ip_bad(struct ipspec *c, int field, const char *text, const char *why) {
  c->field = ip_fields[field];
  c->field_text = text;
  c->why = why;
  return -1;
}

/* Parses `s` (changed in place: fields are cut at their colons). 0, or -1 with field/why set. */
static int parse_ip(char *s, struct ipspec *c) {
  memset(c, 0, sizeof *c);
  if (!*s || streq(s, "off") || streq(s, "none")) return 0;
  if (ip_dynamic_name(s)) {
    c->kind = IP_DYNAMIC;
    return 0;
  }
  const char *autoconf = "", *gw_text = 0;
  char *p = s;
  for (int num = 0; p && num < 10; num++) {
    char *f = p;
    while (*p && *p != ':') p++;
    if (*p) *p++ = '\0';
    else p = 0;
    if (!*f) continue;
    unsigned int a = 0;
    if (num <= 3 || num >= 7) {
      if (!parse_ipv4(f, &a)) return ip_bad(c, num, f, "is not an IPv4 address a.b.c.d");
      if (a == 0) continue; /* 0.0.0.0: not given, as for the kernel */
    }
    switch (num) {
      case 0:
        if (a >= 0xe0000000U) return ip_bad(c, num, f, "is not a unicast address");
        c->client = a;
        break;
      case 2:
        c->gw = a;
        gw_text = f;
        break;
      case 3:
        if (mask_prefix(a) < 0) return ip_bad(c, num, f, "is not a contiguous netmask");
        c->mask = a;
        break;
      case 4: {
        char *dot = f;
        while (*dot && *dot != '.') dot++;
        if (*dot) {
          *dot = '\0';
          c->domain = dot + 1;
        }
        if (slen(f) > 64 || (c->domain && slen(c->domain) > 64))
          return ip_bad(c, num, f, "is longer than the kernel's 64 bytes");
        c->host = *f ? f : 0;
        break;
      }
      case 5: {
        int ok = slen(f) <= 15;
        for (const char *q = f; *q; q++)
          if (*q == '/') ok = 0;
        if (!ok) return ip_bad(c, num, f, "is not a network device name (at most 15 bytes, no /)");
        c->dev = f;
        break;
      }
      case 6:
        if (!streq(f, "off") && !streq(f, "none") && !ip_dynamic_name(f))
          return ip_bad(c, num, f, "is not off, none, on, any, dhcp, bootp, rarp or both");
        autoconf = f;
        break;
      case 7:
      case 8: c->dns[c->dns[0] ? 1 : 0] = a; break; /* the ones given, in order */
      default: break; /* server and ntp0: checked, not used */
    }
  }
  if (!c->client) {
    c->kind = (streq(autoconf, "off") || streq(autoconf, "none")) ? IP_OFF : IP_DYNAMIC;
    return 0;
  }
  c->kind = IP_STATIC;
  if (!c->mask) {
    /* The kernel's guess: the address's class. */
    c->mask = c->client < 0x80000000U ? 0xff000000U : c->client < 0xc0000000U ? 0xffff0000U : 0xffffff00U;
  }
  if (c->gw && ((c->gw ^ c->client) & c->mask)) return ip_bad(c, 2, gw_text, "is not on the client's network");
  return 0;
}

static void put_ipv4(struct line *l, unsigned int a) {
  for (int i = 3; i >= 0; i--) {
    put_u(l, (a >> (i * 8)) & 255, 1);
    if (i) put(l, ".");
  }
}

/* "irb: net: <...>" */
static void net_line_start(struct line *l) { put(l, "irb: net: "); }

static void net_failed(const char *what, const char *dev, long err) {
  struct line l = {.len = 0};
  net_line_start(&l);
  put(&l, what);
  if (dev) {
    put(&l, " ");
    put(&l, dev);
  }
  put(&l, ": ");
  put_errno(&l, err);
  emit(1, &l);
}

/* ---- devices */

static int dev_exists(const char *name) {
  char path[48] = "/sys/class/net/";
  unsigned long st[32];
  memcpy(path + 15, name, slen(name) + 1);
  return sys_fstatat(IRB_AT_FDCWD, path, st, 0) == 0;
}

/* The first network device that is not lo, in name order; 1 when there is one. */
static int first_dev(char out[16]) {
  long fd = sys_openat(IRB_AT_FDCWD, "/sys/class/net", IRB_O_RDONLY | IRB_O_DIRECTORY | IRB_O_CLOEXEC, 0);
  if (fd < 0) return 0;
  int found = 0;
  static unsigned char dents[2048];
  for (int rounds = 0; rounds < 64; rounds++) {
    long n = sys_getdents64((int)fd, dents, sizeof dents);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      unsigned short reclen;
      memcpy(&reclen, dents + off + 16, 2);
      const char *name = (const char *)dents + off + 19;
      off += reclen;
      if (name[0] == '.' || streq(name, "lo") || slen(name) > 15) continue;
      if (!found || scmp(name, out) < 0) {
        memcpy(out, name, slen(name) + 1);
        found = 1;
      }
    }
  }
  sys_close((int)fd);
  return found;
}

/* struct ifreq: 16 bytes of name, then a union (sockaddr, flags, …); 40 bytes on 64-bit. */
union ifreq {
  char bytes[40];
  unsigned long align;
};

static void sockaddr_in_at(char *at, unsigned int addr) {
  unsigned short family = IRB_AF_INET;
  memset(at, 0, 16);
  memcpy(at, &family, 2);
  for (int i = 0; i < 4; i++) at[4 + i] = (char)(addr >> (24 - 8 * i)); /* network byte order */
}

static long if_addr(int s, unsigned long req, const char *dev, unsigned int addr) {
  union ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.bytes, dev, slen(dev) + 1);
  sockaddr_in_at(ifr.bytes + 16, addr);
  return sys_ioctl(s, req, &ifr);
}

static long if_up(int s, const char *dev) {
  union ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.bytes, dev, slen(dev) + 1);
  long r = sys_ioctl(s, IRB_SIOCGIFFLAGS, &ifr);
  if (r < 0) return r;
  short flags;
  memcpy(&flags, ifr.bytes + 16, sizeof flags);
  flags |= IRB_IFF_UP;
  memcpy(ifr.bytes + 16, &flags, sizeof flags);
  return sys_ioctl(s, IRB_SIOCSIFFLAGS, &ifr);
}

static void loopback_up(void) {
  long s = sys_socket(IRB_AF_INET, IRB_SOCK_DGRAM | IRB_SOCK_CLOEXEC, 0);
  if (s < 0) return; /* no networking in this kernel */
  if_up((int)s, "lo");
  sys_close((int)s);
}

/* The device already has an IPv4 address: the kernel configured it (CONFIG_IP_PNP). */
static int if_configured(int s, const char *dev) {
  union ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.bytes, dev, slen(dev) + 1);
  if (sys_ioctl(s, IRB_SIOCGIFADDR, &ifr) < 0) return 0;
  return ifr.bytes[20] || ifr.bytes[21] || ifr.bytes[22] || ifr.bytes[23];
}

/* The default route through gw (SIOCADDRT with struct rtentry, 120 bytes on 64-bit). */
static long add_default_route(int s, const char *dev, unsigned int gw) {
  union {
    char bytes[120];
    unsigned long align;
  } rt;
  memset(&rt, 0, sizeof rt);
  sockaddr_in_at(rt.bytes + 8, 0);   /* rt_dst */
  sockaddr_in_at(rt.bytes + 24, gw); /* rt_gateway */
  sockaddr_in_at(rt.bytes + 40, 0);  /* rt_genmask */
  unsigned short flags = IRB_RTF_UP | IRB_RTF_GATEWAY;
  memcpy(rt.bytes + 56, &flags, 2);
  const char *devp = dev;
  memcpy(rt.bytes + 88, &devp, sizeof devp); /* rt_dev */
  long r = sys_ioctl(s, IRB_SIOCADDRT, &rt);
  return r == -IRB_EEXIST ? 0 : r;
}

/* /etc/resolv.conf from the DNS fields, written aside and renamed over (a symlink there, as
 * some images have, is replaced rather than followed into a directory that may not exist). */
static void write_resolv_conf(const struct ipspec *c) {
  struct line l = {.len = 0};
  for (int i = 0; i < 2; i++) {
    if (!c->dns[i]) continue;
    put(&l, "nameserver ");
    put_ipv4(&l, c->dns[i]);
    put(&l, "\n");
  }
  if (!l.len) return;
  sys_mkdirat(IRB_AT_FDCWD, "/etc", 0755);
  static const char tmp[] = "/etc/.resolv.conf.irb";
  long fd = sys_openat(IRB_AT_FDCWD, tmp, IRB_O_WRONLY | IRB_O_CREAT | IRB_O_TRUNC | IRB_O_CLOEXEC, 0644);
  long r = fd;
  if (fd >= 0) {
    r = sys_write((int)fd, l.buf, l.len);
    if (r >= 0 && (unsigned long)r != l.len) r = -IRB_EIO;
    sys_close((int)fd);
    if (r >= 0) r = sys_renameat(IRB_AT_FDCWD, tmp, IRB_AT_FDCWD, "/etc/resolv.conf");
  }
  if (r < 0) net_failed("cannot write", "/etc/resolv.conf", -r);
}

/* Waits for the device, bounded by wait_ms; 0 with its name in dev, or -1 after a line. */
static int wait_for_device(const char *want, char dev[16], unsigned long wait_ms) {
  unsigned long start = boottime_us();
  for (unsigned long i = 0; i <= wait_ms / 5 + 1; i++) {
    if (want ? dev_exists(want) : first_dev(dev)) {
      if (want) memcpy(dev, want, slen(want) + 1);
      return 0;
    }
    if (boottime_us() - start >= wait_ms * 1000UL) break;
    sys_sleep_ms(5);
  }
  struct line l = {.len = 0};
  net_line_start(&l);
  put(&l, "no device ");
  put(&l, want ? want : "(any)");
  put(&l, " after ");
  put_u(&l, wait_ms, 1);
  put(&l, " ms");
  emit(1, &l);
  return -1;
}

static void configure_static(const struct ipspec *c, unsigned long wait_ms) {
  char dev[16];
  if (wait_for_device(c->dev, dev, wait_ms) < 0) return;
  long s = sys_socket(IRB_AF_INET, IRB_SOCK_DGRAM | IRB_SOCK_CLOEXEC, 0);
  if (s < 0) {
    net_failed("cannot open an IPv4 socket", 0, -s);
    return;
  }
  struct line l = {.len = 0};
  net_line_start(&l);
  put(&l, dev);
  if (if_configured((int)s, dev)) {
    put(&l, " was configured by the kernel");
  } else {
    long r = if_addr((int)s, IRB_SIOCSIFADDR, dev, c->client);
    const char *what = "cannot set the address of";
    if (r == 0) {
      r = if_addr((int)s, IRB_SIOCSIFNETMASK, dev, c->mask);
      what = "cannot set the netmask of";
    }
    if (r == 0) {
      r = if_up((int)s, dev);
      what = "cannot bring up";
    }
    if (r == 0 && c->gw) {
      r = add_default_route((int)s, dev, c->gw);
      what = "cannot add the default route on";
    }
    if (r < 0) {
      sys_close((int)s);
      net_failed(what, dev, -r);
      return;
    }
    put(&l, " ");
    put_ipv4(&l, c->client);
    put(&l, "/");
    put_u(&l, (unsigned long)mask_prefix(c->mask), 1);
    if (c->gw) {
      put(&l, " via ");
      put_ipv4(&l, c->gw);
    }
  }
  sys_close((int)s);
  emit(1, &l);
  write_resolv_conf(c);
  marker("net", 0);
}

/* The value of the last ip= on the kernel command line, copied into out; 1 when there is one. */
static int cmdline_ip(char *out, unsigned long size) {
  const char *end, *arg = kernel_args(&end);
  int found = 0;
  for (; arg < end; arg += slen(arg) + 1) {
    if (!starts_with(arg, "ip=")) continue;
    unsigned long n = slen(arg + 3);
    if (n >= size) n = size - 1;
    memcpy(out, arg + 3, n);
    out[n] = '\0';
    found = 1;
  }
  return found;
}

/* The network: `ip=` from the kernel command line wins over the baked value (`baked`, may be 0). */
static void net_setup(const char *baked, unsigned long wait_ms) {
  static char value[4097], parsed[4097];
  if (!cmdline_ip(value, sizeof value)) {
    if (!baked) return;
    unsigned long n = slen(baked);
    if (n >= sizeof value) n = sizeof value - 1;
    memcpy(value, baked, n);
    value[n] = '\0';
  }
  memcpy(parsed, value, slen(value) + 1);
  struct ipspec c;
  struct line l = {.len = 0};
  if (parse_ip(parsed, &c) < 0) {
    net_line_start(&l);
    put(&l, "bad ip=");
    put(&l, value);
    put(&l, ": ");
    put(&l, c.field);
    put(&l, " ");
    put(&l, c.field_text);
    put(&l, " ");
    put(&l, c.why);
    emit(1, &l);
    return;
  }
  if (c.host) sys_sethostname(c.host, slen(c.host));
  if (c.domain) sys_setdomainname(c.domain, slen(c.domain));
  if (c.kind == IP_DYNAMIC) {
    net_line_start(&l);
    put(&l, "ip=");
    put(&l, value);
    put(&l, " asks for DHCP, BOOTP or RARP; irb's init configures static addresses only: ");
    put(&l, "ip=<client>::<gateway>:<netmask>::<device>:off");
    emit(1, &l);
  } else if (c.kind == IP_STATIC) {
    configure_static(&c, wait_ms);
  }
}

#endif
