/* A minimal Maildir MDA for fetchmail: stdin -> MAILDIR/tmp/NAME, fsync, rename to new/.
 * Usage: mda MAILDIR. Exit 0 when delivered, 75 (EX_TEMPFAIL) otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char host[256], name[512], tmp[4096], dst[4096], buf[1 << 16];
    struct timeval tv;
    ssize_t n;
    int fd;
    if (argc != 2) return 64;
    gettimeofday(&tv, NULL);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(name, sizeof name, "%ld.M%06ldP%d.%s", (long)tv.tv_sec, (long)tv.tv_usec,
             (int)getpid(), host);
    snprintf(tmp, sizeof tmp, "%s/tmp/%s", argv[1], name);
    snprintf(dst, sizeof dst, "%s/new/%s", argv[1], name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return 75;
    for (;;) {
        n = read(0, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        for (char *p = buf; n > 0;) {
            ssize_t w = write(fd, p, (size_t)n);
            if (w < 0) {
                if (errno == EINTR) continue;
                goto fail;
            }
            p += w;
            n -= w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) goto fail_closed;
    if (rename(tmp, dst) != 0) goto fail_closed;
    return 0;
fail:
    close(fd);
fail_closed:
    unlink(tmp);
    return 75;
}
