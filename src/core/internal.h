/*
 * Internal cross-file helpers of libdiffsde. Not installed; names carry the `diffsde_i_`
 * prefix so they are recognisably internal (and hidden: the library is built with
 * -fvisibility=hidden and only DIFFSDE_API symbols are exported).
 */
#ifndef DIFFSDE_INTERNAL_H
#define DIFFSDE_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include "diffsde/context.h"

struct diffsde_ctx {
    diffsde_allocator allocator;
    atomic_flag lock; /* guards errmsg/last_status when a context is shared between threads */
    int last_status;
    unsigned long nfail; /* failures recorded so far: lets a caller see whether a callee failed */
    char errmsg[DIFFSDE_ERRMSG_CAPACITY];
};

/* Allocate through the context's hooks. Returns NULL on failure (and when size == 0). */
void *diffsde_i_alloc(diffsde_ctx *ctx, size_t size);

/* Allocate count*size bytes, zeroed; NULL on overflow or failure. */
void *diffsde_i_calloc(diffsde_ctx *ctx, size_t count, size_t size);

/* Release memory obtained from diffsde_i_alloc; NULL is a no-op. */
void diffsde_i_free(diffsde_ctx *ctx, void *ptr);

/*
 * Record a failure on the context and return `status`, so call sites read
 *     return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: sigma_min (%g) must be > 0", fn, v);
 * ctx may be NULL (the status is still returned; there is nowhere to keep the message).
 */
int diffsde_i_fail(diffsde_ctx *ctx, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Re-record the context's current failure with a prefix, giving
 * "<prefix>: <previous message>", e.g. to add the sample index to an SDE's domain error.
 */
int diffsde_i_fail_prefix(diffsde_ctx *ctx, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* a*b without overflow: returns 0 and stores the product, or -1 on overflow. */
int diffsde_i_mul_size(size_t a, size_t b, size_t *out);

/* The context an SDE was created from (for messages of functions that receive an SDE). */
struct diffsde_sde;
diffsde_ctx *diffsde_i_sde_ctx(const struct diffsde_sde *sde);

/*
 * Fill n × d Philox draws for samples sample0.. at (stream, step): normals if `normal`,
 * else uniforms. Indices must already be validated against the counter layout (noise.h).
 */
#include <stdint.h>
void diffsde_i_philox_fill(uint64_t seed, uint32_t stream, uint64_t step, uint64_t sample0,
                           size_t n, size_t d, int normal, double *out);

/* The context a mixture was created from, and whether it is finalised. */
struct diffsde_gmm;
diffsde_ctx *diffsde_i_gmm_ctx(const struct diffsde_gmm *gmm);
int diffsde_i_gmm_finalized(const struct diffsde_gmm *gmm);

/* Convert one row of d values between parametrisations with known α, σ (no checks). */
#include "diffsde/score.h"
void diffsde_i_param_convert_row(diffsde_param from, diffsde_param to, double alpha,
                                 double sigma, size_t d, const double *x, const double *in,
                                 double *out);

#endif /* DIFFSDE_INTERNAL_H */
