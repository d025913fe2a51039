/* Whole-file reads and thread-safe system error text for the I/O module. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "io/io_impl.h"

const char *diffsde_i_errno_text(int err, char *buf, size_t len)
{
    if (len == 0)
        return buf;
#if defined(_GNU_SOURCE) && defined(__GLIBC__)
    /* GNU strerror_r (if a build defines _GNU_SOURCE): returns the text, maybe not in buf */
    const char *s = strerror_r(err, buf, len);
    if (s != buf)
        snprintf(buf, len, "%s", s);
#else
    /* XSI strerror_r (selected by _POSIX_C_SOURCE without _GNU_SOURCE): returns an int */
    if (strerror_r(err, buf, len) != 0)
        snprintf(buf, len, "system error %d", err);
#endif
    return buf;
}

/* Grow *buf (capacity *cap, *len bytes in use) to at least need bytes: the allocator has no
 * realloc hook, so allocate, copy, release. */
static int grow(diffsde_ctx *ctx, char **buf, size_t *cap, size_t len, size_t need)
{
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    char *nb = diffsde_i_alloc(ctx, ncap);
    if (!nb)
        return -1;
    if (len)
        memcpy(nb, *buf, len);
    diffsde_i_free(ctx, *buf);
    *buf = nb;
    *cap = ncap;
    return 0;
}

int diffsde_i_read_whole_file(diffsde_ctx *ctx, const char *fn, const char *path, char **buf,
                              size_t *len)
{
    char et[128];
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: cannot open '%s': %s", fn, path,
                              diffsde_i_errno_text(e, et, sizeof et));
    }
    char *b = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        /* keep one byte free for the terminating NUL */
        if (cap - n < 2 && grow(ctx, &b, &cap, n, n + 2) != 0) {
            diffsde_i_free(ctx, b);
            fclose(f);
            return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                                  "%s: out of memory reading '%s' (%zu bytes so far)", fn, path,
                                  n);
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        diffsde_i_free(ctx, b);
        fclose(f);
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: error reading '%s': %s", fn, path,
                              diffsde_i_errno_text(e, et, sizeof et));
    }
    fclose(f);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return DIFFSDE_OK;
}
