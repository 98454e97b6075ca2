/*
 * irb's example agent: what a serverless platform injects into every microVM. It listens on
 * TCP and, where the guest kernel has AF_VSOCK, on vsock; each request carries a snippet of
 * code, which the agent runs with an interpreter and answers with its stdout, stderr and exit
 * status as JSON.
 * SPDX-License-Identifier: Apache-2.0
 *
 *   agent [--port N] [--vsock-port N] [--interpreter PROGRAM] [--timeout SECONDS]
 *   agent send (--tcp HOST:PORT | --vsock CID:PORT) [--interpreter PROGRAM] < CODE
 *
 * Protocol: HTTP/1.1, one request per connection.
 *   POST /run   body: the code; optional header `X-Interpreter: python3`
 *               → 200 {"stdout":"…","stderr":"…","status":N,"signal":N,"ms":N,"timedOut":B,"truncated":B}
 *   GET /health → 200 ok
 * Defaults: --port 8080 ($AGENT_PORT), --vsock-port 1024 ($AGENT_VSOCK_PORT; 0 turns it off),
 * --interpreter /bin/sh ($AGENT_INTERPRETER), --timeout 30 ($AGENT_TIMEOUT). The snippet runs
 * with the agent's environment (so a job's `--env` reaches it), in the agent's working
 * directory, with stdin from /dev/null.
 *
 * Build it static, so it runs in any image (distroless, FROM scratch, Alpine's musl):
 *   gcc -static -Os -o agent agent.c                    (x86_64)
 *   aarch64-linux-gnu-gcc -static -Os -o agent agent.c  (arm64)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
/* <linux/vm_sockets.h> without depending on kernel headers being installed. */
struct vsock_addr {
  unsigned short family;
  unsigned short reserved1;
  unsigned int port;
  unsigned int cid;
  unsigned char zero[4];
};
#define VMADDR_CID_ANY 0xffffffffU

#define MAX_REQUEST (8u << 20)  /* code larger than this is refused (413) */
#define MAX_OUTPUT (16u << 20)  /* per stream; the rest is cut and said so */
#define MAX_HEADER 16384

static const char *interpreter = "/bin/sh";
static unsigned timeout_s = 30;

/* ---- a growable byte buffer */
struct buf {
  char *data;
  size_t len, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int buf_printf(struct buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  return buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string of arbitrary bytes: UTF-8 passes through, control bytes are escaped. */
static int buf_json(struct buf *b, const char *s, size_t n) {
  if (buf_add(b, "\"", 1)) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      if (buf_add(b, e, 2)) return -1;
    } else if (c == '\n') {
      if (buf_add(b, "\\n", 2)) return -1;
    } else if (c == '\t') {
      if (buf_add(b, "\\t", 2)) return -1;
    } else if (c < 0x20 || c == 0x7f) {
      if (buf_printf(b, "\\u%04x", c)) return -1;
    } else if (buf_add(b, &s[i], 1)) {
      return -1;
    }
  }
  return buf_add(b, "\"", 1);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void respond(int fd, int code, const char *reason, const char *type, const char *body, size_t n) {
  struct buf head = {0};
  buf_printf(&head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             code, reason, type, n);
  if (head.data) write_all(fd, head.data, head.len);
  write_all(fd, body, n);
  free(head.data);
}

static void respond_text(int fd, int code, const char *reason, const char *text) {
  respond(fd, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- running a snippet */

struct run_result {
  struct buf out, err;
  int status, signal, cut, timed_out;
  long ms;
};

/* Reads whatever `fd` has into `b` (up to MAX_OUTPUT); 0 at EOF, 1 while open. */
static int drain(int fd, struct buf *b, int *cut) {
  char chunk[65536];
  ssize_t n = read(fd, chunk, sizeof chunk);
  if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
  if (n == 0) return 0;
  size_t room = b->len < MAX_OUTPUT ? MAX_OUTPUT - b->len : 0;
  if ((size_t)n > room) *cut = 1;
  buf_add(b, chunk, (size_t)n < room ? (size_t)n : room);
  return 1;
}

static int run_snippet(const char *code, size_t len, const char *program, struct run_result *r) {
  char path[] = "/tmp/agent-snippet-XXXXXX";
  int tmp = mkstemp(path);
  if (tmp < 0) return -1;
  if (write_all(tmp, code, len) < 0) {
    close(tmp);
    unlink(path);
    return -1;
  }
  close(tmp);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) < 0) return -1;
  if (pipe2(err, O_CLOEXEC) < 0) return -1;
  long started = now_ms();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    setpgid(0, 0);
    char *argv[] = {(char *)program, path, NULL};
    execvp(program, argv);
    dprintf(2, "agent: cannot run %s: %s\n", program, strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  long deadline = started + (long)timeout_s * 1000L;
  while (open_fds > 0) {
    long left = deadline - now_ms();
    if (left <= 0 && !r->timed_out) {
      r->timed_out = 1;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
    }
    int n = poll(fds, 2, r->timed_out ? 1000 : (int)(left < 1000 ? left : 1000));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (!drain(fds[i].fd, i == 0 ? &r->out : &r->err, &r->cut)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r->ms = now_ms() - started;
  unlink(path);
  if (WIFEXITED(status)) r->status = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    r->signal = WTERMSIG(status);
    r->status = 128 + r->signal;
  }
  return 0;
}

/* ---- HTTP */

/* Case-insensitive search for "\r\nName:" in a header block; returns the value (trimmed). */
static int header_value(const char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t i = 0;
      while (v[i] && v[i] != '\r' && i + 1 < cap) {
        out[i] = v[i];
        i++;
      }
      out[i] = '\0';
      return 1;
    }
  }
  return 0;
}

/*
 * Closes a connection whose request was answered before its body was read (413, 404, …). A
 * close with unread bytes makes the kernel reset the connection, and a client still sending its
 * body then gets EPIPE or ECONNRESET instead of the answer. So: stop writing, read and drop what
 * still comes until the client closes, at most 2 s between reads and 10 s in all, then close.
 */
static void close_lingering(int fd) {
  shutdown(fd, SHUT_WR);
  char sink[65536];
  long deadline = now_ms() + 10000;
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) break;
    struct pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, left < 2000 ? (int)left : 2000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    ssize_t n = read(fd, sink, sizeof sink);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  close(fd);
}

/* Answers one request on `fd`; returns 1 when the whole request was read, 0 when bytes of it
 * may still be coming (answered early, or the client went away). */
static int serve(int fd) {
  struct buf req = {0};
  char chunk[65536];
  char *end = NULL;
  while (!end) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return 0;
    buf_add(&req, chunk, (size_t)n);
    end = strstr(req.data, "\r\n\r\n");
    if (!end && req.len > MAX_HEADER) {
      respond_text(fd, 431, "Request Header Fields Too Large", "headers too large\n");
      return 0;
    }
  }
  size_t head_len = (size_t)(end - req.data) + 4;
  char method[8] = {0}, target[256] = {0};
  if (sscanf(req.data, "%7s %255s", method, target) != 2) {
    respond_text(fd, 400, "Bad Request", "bad request line\n");
    return 0;
  }
  if (strcmp(target, "/health") == 0) {
    respond_text(fd, 200, "OK", "ok\n");
    return 0;
  }
  if (strcmp(target, "/run") != 0) {
    respond_text(fd, 404, "Not Found", "POST code to /run\n");
    return 0;
  }
  if (strcmp(method, "POST") != 0) {
    respond_text(fd, 405, "Method Not Allowed", "POST code to /run\n");
    return 0;
  }
  char value[256];
  if (!header_value(req.data, "Content-Length", value, sizeof value)) {
    respond_text(fd, 411, "Length Required", "send Content-Length\n");
    return 0;
  }
  char *tail;
  unsigned long want = strtoul(value, &tail, 10);
  if (*tail || want > MAX_REQUEST) {
    respond_text(fd, 413, "Content Too Large", "code too large\n");
    return 0;
  }
  while (req.len - head_len < want) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return 0;
    buf_add(&req, chunk, (size_t)n);
  }
  char program[256];
  if (!header_value(req.data, "X-Interpreter", program, sizeof program)) {
    snprintf(program, sizeof program, "%s", interpreter);
  }
  struct run_result r = {0};
  if (run_snippet(req.data + head_len, want, program, &r) < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot run the snippet: %s\n", strerror(errno));
    respond_text(fd, 500, "Internal Server Error", msg);
    return 1;
  }
  struct buf body = {0};
  buf_add(&body, "{\"stdout\":", 10);
  buf_json(&body, r.out.data ? r.out.data : "", r.out.len);
  buf_add(&body, ",\"stderr\":", 10);
  buf_json(&body, r.err.data ? r.err.data : "", r.err.len);
  buf_printf(&body, ",\"status\":%d,\"signal\":%d,\"ms\":%ld,\"timedOut\":%s,\"truncated\":%s}\n", r.status,
             r.signal, r.ms, r.timed_out ? "true" : "false", r.cut ? "true" : "false");
  respond(fd, 200, "OK", "application/json", body.data, body.len);
  return 1;
}

static int listen_tcp(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int listen_vsock(unsigned port) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct vsock_addr a = {.family = AF_VSOCK, .port = port, .cid = VMADDR_CID_ANY};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static unsigned env_uint(const char *name, unsigned fallback) {
  const char *v = getenv(name);
  if (!v || !*v) return fallback;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  return *end || n > 65535 ? fallback : (unsigned)n;
}

static unsigned arg_uint(const char *flag, const char *v) {
  char *end;
  unsigned long n = v ? strtoul(v, &end, 10) : 0;
  if (!v || !*v || *end || n > 65535) {
    fprintf(stderr, "agent: %s needs a number from 0 to 65535\n", flag);
    exit(2);
  }
  return (unsigned)n;
}

/* ---- `agent send`: a client, for tests and for guests that talk to a sibling over vsock */

static int send_main(int argc, char **argv) {
  const char *tcp = NULL, *vsock = NULL, *program = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc) tcp = argv[++i];
    else if (strcmp(argv[i], "--vsock") == 0 && i + 1 < argc) vsock = argv[++i];
    else if (strcmp(argv[i], "--interpreter") == 0 && i + 1 < argc) program = argv[++i];
    else {
      fprintf(stderr, "agent send: unknown argument %s; use --tcp HOST:PORT or --vsock CID:PORT\n", argv[i]);
      return 2;
    }
  }
  if (!tcp == !vsock) {
    fprintf(stderr, "agent send: give one of --tcp HOST:PORT or --vsock CID:PORT\n");
    return 2;
  }
  const char *spec = tcp ? tcp : vsock;
  const char *colon = strrchr(spec, ':');
  if (!colon) {
    fprintf(stderr, "agent send: %s is not ADDRESS:PORT\n", spec);
    return 2;
  }
  unsigned port = arg_uint("the port", colon + 1);
  int fd;
  if (tcp) {
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
      fprintf(stderr, "agent send: %s is not an IPv4 address\n", host);
      return 2;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      fprintf(stderr, "agent send: cannot connect to %s: %s\n", spec, strerror(errno));
      return 1;
    }
  } else {
    struct vsock_addr a = {.family = AF_VSOCK, .port = port, .cid = (unsigned)strtoul(spec, NULL, 10)};
    fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      fprintf(stderr, "agent send: cannot connect to vsock %s: %s\n", spec, strerror(errno));
      return 1;
    }
  }
  struct buf code = {0};
  char chunk[65536];
  ssize_t n;
  while ((n = read(0, chunk, sizeof chunk)) > 0) buf_add(&code, chunk, (size_t)n);
  struct buf req = {0};
  buf_printf(&req, "POST /run HTTP/1.1\r\nHost: agent\r\nContent-Length: %zu\r\n", code.len);
  if (program) buf_printf(&req, "X-Interpreter: %s\r\n", program);
  buf_add(&req, "\r\n", 2);
  if (code.len) buf_add(&req, code.data, code.len);
  /* An agent may answer (413) and stop reading before the code is all sent: the write then
   * fails, but the answer is there to read. */
  signal(SIGPIPE, SIG_IGN);
  int sent = write_all(fd, req.data, req.len);
  int send_errno = errno;
  struct buf answer = {0};
  while ((n = read(fd, chunk, sizeof chunk)) > 0) buf_add(&answer, chunk, (size_t)n);
  if (sent < 0 && !answer.data) {
    fprintf(stderr, "agent send: cannot send: %s\n", strerror(send_errno));
    return 1;
  }
  char *body = answer.data ? strstr(answer.data, "\r\n\r\n") : NULL;
  if (!body || strncmp(answer.data, "HTTP/1.1 200", 12) != 0) {
    fprintf(stderr, "agent send: the agent answered: %s\n", answer.data ? answer.data : "nothing");
    return 1;
  }
  fputs(body + 4, stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "send") == 0) return send_main(argc, argv);
  unsigned port = env_uint("AGENT_PORT", 8080);
  unsigned vport = env_uint("AGENT_VSOCK_PORT", 1024);
  const char *env_program = getenv("AGENT_INTERPRETER");
  if (env_program && *env_program) interpreter = env_program;
  timeout_s = env_uint("AGENT_TIMEOUT", 30);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0) port = arg_uint("--port", i + 1 < argc ? argv[++i] : NULL);
    else if (strcmp(argv[i], "--vsock-port") == 0) vport = arg_uint("--vsock-port", i + 1 < argc ? argv[++i] : NULL);
    else if (strcmp(argv[i], "--interpreter") == 0 && i + 1 < argc) interpreter = argv[++i];
    else if (strcmp(argv[i], "--timeout") == 0) timeout_s = arg_uint("--timeout", i + 1 < argc ? argv[++i] : NULL);
    else {
      fprintf(stderr, "agent: unknown argument %s (see the comment at the top of agent.c)\n", argv[i]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  /* Handlers are reaped as they end; each handler waits for its own snippet. */
  struct sigaction sa = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
  sigaction(SIGCHLD, &sa, NULL);

  int fds[2] = {-1, -1};
  fds[0] = listen_tcp(port);
  if (fds[0] < 0) {
    fprintf(stderr, "agent: cannot listen on tcp port %u: %s\n", port, strerror(errno));
    return 1;
  }
  char vsock_note[128] = "";
  if (vport) {
    fds[1] = listen_vsock(vport);
    if (fds[1] >= 0) snprintf(vsock_note, sizeof vsock_note, " and vsock port %u", vport);
    else snprintf(vsock_note, sizeof vsock_note, " (no vsock: %s)", strerror(errno));
  }
  printf("agent: listening on tcp port %u%s; running snippets with %s\n", port, vsock_note, interpreter);
  fflush(stdout);

  struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
  for (;;) {
    if (poll(p, fds[1] >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      perror("agent: poll");
      return 1;
    }
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & POLLIN)) continue;
      int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0) continue;
      pid_t pid = fork();
      if (pid == 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGCHLD, &dfl, NULL);
        close(fds[0]);
        if (fds[1] >= 0) close(fds[1]);
        if (serve(c)) {
          shutdown(c, SHUT_WR);
          close(c);
        } else {
          close_lingering(c);
        }
        _exit(0);
      }
      close(c);
    }
  }
}
