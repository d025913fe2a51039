/*
 * Atomic replacement of a file: write a temporary in the destination's directory, flush,
 * fsync, close, rename over the destination. rename() within one directory (one file system)
 * is atomic in POSIX: a reader sees either the old file or the complete new one, never a
 * partial write. On any failure the temporary is unlinked and the destination is untouched.
 *
 * The temporary is created with open(O_CREAT | O_EXCL, 0666) rather than mkstemp(): mkstemp
 * creates mode 0600, and the renamed result would then be unreadable by the group and others,
 * unlike a file written with fopen(); with mode 0666 the process umask applies as usual.
 * O_EXCL gives mkstemp's guarantee (never open an existing file); the name has 8 random
 * base-36 characters, retried on collision.
 *
 * An existing destination must be a regular file (a directory, device or FIFO is refused
 * before anything is created) and keeps its permission bits. A symbolic link is followed, as
 * fopen() would: the link's final target is replaced and the link still points to it.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with XSI: realpath() */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/io_impl.h"

#define SUFFIX_LEN 8
#define MAX_ATTEMPTS 100
#define MAX_BASE_IN_TEMP 100 /* keep the temporary's name well under NAME_MAX */
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Entropy for the temporary's name: time, process id, a stack address and the attempt. */
static void fill_suffix(char *s, unsigned attempt)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     ((uint64_t)getpid() << 17) ^ (uint64_t)(uintptr_t)&ts ^
                     ((uint64_t)attempt << 48);
    uint64_t r = splitmix64(&state);
    for (int i = 0; i < SUFFIX_LEN; i++) {
        s[i] = digits[r % 36];
        r /= 36;
    }
}

/* fsync the directory holding the renamed file, so that the rename itself is durable. Best
 * effort: the destination has already been replaced, so a failure here is not reported. */
static void sync_directory(const char *tmp, size_t dirlen)
{
    char dir[4096];
    if (dirlen == 0) {
        dir[0] = '.';
        dir[1] = '\0';
    } else if (dirlen < sizeof dir) {
        memcpy(dir, tmp, dirlen);
        dir[dirlen] = '\0';
    } else {
        return;
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int diffsde_i_atomic_write(diffsde_ctx *ctx, const char *fn, const char *user_path,
                           diffsde_i_emit_fn emit, void *user)
{
    char et[128], resolved[PATH_MAX];
    const char *path = user_path;
    if (*path == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: the path is empty", fn);
    /* An existing destination: follow a symbolic link, insist on a regular file, keep its
     * permission bits. */
    struct stat sb;
    int exists = 0;
    mode_t mode = 0;
    if (lstat(path, &sb) == 0) {
        if (S_ISLNK(sb.st_mode)) {
            if (!realpath(user_path, resolved) || stat(resolved, &sb) != 0) {
                int e = errno;
                return diffsde_i_fail(ctx, DIFFSDE_EIO,
                                      "%s: cannot resolve the symbolic link '%s': %s", fn,
                                      user_path, diffsde_i_errno_text(e, et, sizeof et));
            }
            path = resolved;
        }
        if (!S_ISREG(sb.st_mode))
            return diffsde_i_fail(ctx, DIFFSDE_EIO,
                                  "%s: '%s' exists and is not a regular file (a directory, "
                                  "device or pipe is not replaced)",
                                  fn, user_path);
        exists = 1;
        mode = sb.st_mode & 0777;
    }
    size_t plen = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dirlen;
    size_t blen = plen - dirlen;
    if (blen == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: '%s' names a directory, not a file", fn,
                              user_path);
    if (blen > MAX_BASE_IN_TEMP)
        blen = MAX_BASE_IN_TEMP;

    /* "<dir>/.<base>.<suffix>" */
    size_t tlen = dirlen + 1 + blen + 1 + SUFFIX_LEN;
    char *tmp = diffsde_i_alloc(ctx, tlen + 1);
    if (!tmp)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: out of memory for the temporary file name of '%s'", fn,
                              user_path);
    memcpy(tmp, path, dirlen);
    tmp[dirlen] = '.';
    memcpy(tmp + dirlen + 1, base, blen);
    tmp[dirlen + 1 + blen] = '.';
    tmp[tlen] = '\0';
    char *suffix = tmp + dirlen + 1 + blen + 1;

    int fd = -1;
    for (unsigned attempt = 0; attempt < MAX_ATTEMPTS && fd < 0; attempt++) {
        fill_suffix(suffix, attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        diffsde_i_free(ctx, tmp);
        return diffsde_i_fail(ctx, DIFFSDE_EIO,
                              "%s: cannot create a temporary file beside '%s': %s", fn, user_path,
                              diffsde_i_errno_text(e, et, sizeof et));
    }
    if (exists && fchmod(fd, mode) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        diffsde_i_free(ctx, tmp);
        return diffsde_i_fail(ctx, DIFFSDE_EIO,
                              "%s: cannot give the temporary file the mode %o of '%s': %s", fn,
                              (unsigned)mode, user_path, diffsde_i_errno_text(e, et, sizeof et));
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        diffsde_i_free(ctx, tmp);
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: cannot open a stream for '%s': %s", fn,
                              user_path, diffsde_i_errno_text(e, et, sizeof et));
    }

    const char *what = NULL;
    int e = 0;
    errno = 0;
    if (emit(f, user) != 0 || fflush(f) != 0 || ferror(f)) {
        what = "cannot write";
        e = errno ? errno : EIO;
    } else if (fsync(fd) != 0) {
        what = "cannot sync";
        e = errno;
    }
    if (fclose(f) != 0 && !what) {
        what = "cannot close";
        e = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "cannot rename the temporary file over";
        e = errno;
    }
    if (what) {
        unlink(tmp);
        diffsde_i_free(ctx, tmp);
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: %s '%s': %s (the file is unchanged)", fn,
                              what, user_path, diffsde_i_errno_text(e, et, sizeof et));
    }
    sync_directory(tmp, dirlen);
    diffsde_i_free(ctx, tmp);
    return DIFFSDE_OK;
}
