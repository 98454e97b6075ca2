/* A guest-internal vsock round trip for the boot tests: listen on port 5000 of any CID, connect
 * to CID 1 (VMADDR_CID_LOCAL, the vsock_loopback transport) from a child, exchange one message
 * each way. Built static by the test with the host's gcc. */
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

int main(void) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) {
    perror("vsock: socket");
    return 1;
  }
  struct sockaddr_vm any = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 5000};
  if (bind(s, (struct sockaddr *)&any, sizeof any) < 0 || listen(s, 1) < 0) {
    perror("vsock: bind");
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int c = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm local = {.svm_family = AF_VSOCK, .svm_cid = 1, .svm_port = 5000};
    if (connect(c, (struct sockaddr *)&local, sizeof local) < 0) {
      perror("vsock: connect");
      _exit(1);
    }
    if (write(c, "ping", 4) != 4) _exit(1);
    char buf[16] = {0};
    ssize_t n = read(c, buf, sizeof buf - 1);
    printf("vsock: client got %s\n", n > 0 ? buf : "nothing");
    fflush(stdout);
    _exit(0);
  }
  int c = accept(s, 0, 0);
  char buf[16] = {0};
  ssize_t n = c < 0 ? -1 : read(c, buf, sizeof buf - 1);
  printf("vsock: server got %s\n", n > 0 ? buf : "nothing");
  fflush(stdout);
  if (c >= 0 && write(c, "pong", 4) != 4) return 1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
