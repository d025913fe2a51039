/*
 * Shared helpers for the cmocka test binaries: a double-precision closeness assertion
 * (cmocka 1.1.5's float assertion casts to float) and a counting allocator that can be told
 * to fail at its k-th call, to prove that every failure path leaks nothing.
 *
 * Include after <cmocka.h> (and its prerequisites <stdarg.h>, <stddef.h>, <stdint.h>,
 * <setjmp.h>).
 */
#ifndef DIFFSDE_TESTUTIL_H
#define DIFFSDE_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffsde.h"

/* |actual − expected| ≤ atol + rtol·|expected|, with both values printed on failure. */
#define assert_close(actual, expected, rtol, atol) \
    tu_assert_close((actual), (expected), (rtol), (atol), #actual, __FILE__, __LINE__)

static inline void tu_fail_msg(const char *msg, const char *file, int line)
{
    print_error("%s\n", msg);
    _fail(file, line);
}

static inline void tu_assert_close(double a, double e, double rtol, double atol,
                                   const char *expr, const char *file, int line)
{
    double err = fabs(a - e);
    if (!(err <= atol + rtol * fabs(e))) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "%s = %.17g, expected %.17g (|err| = %.3g > atol %.3g + rtol %.3g·|e|)", expr, a,
                 e, err, atol, rtol);
        tu_fail_msg(msg, file, line);
    }
}


/* A counting allocator: fails the call numbered fail_at (1-based; 0 = never fail). */
typedef struct tu_alloc {
    long calls;      /* alloc calls so far */
    long live;       /* blocks allocated and not yet released */
    long fail_at;    /* the call number to fail, 0 for none */
} tu_alloc;

static inline void *tu_alloc_fn(size_t size, void *user)
{
    tu_alloc *a = user;
    a->calls++;
    if (a->fail_at && a->calls == a->fail_at)
        return NULL;
    void *p = malloc(size);
    if (p)
        a->live++;
    return p;
}

static inline void tu_release_fn(void *ptr, void *user)
{
    tu_alloc *a = user;
    if (ptr) {
        a->live--;
        free(ptr);
    }
}

static inline diffsde_allocator tu_allocator(tu_alloc *a)
{
    diffsde_allocator al = {tu_alloc_fn, tu_release_fn, a};
    return al;
}

#endif /* DIFFSDE_TESTUTIL_H */
