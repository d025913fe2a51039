/*
 * The noise source handle: a seeded Philox4x32-10 source (read only after creation, so it may
 * be shared between threads) or a user callback. Argument checking and messages live here; the
 * counter layout and the transforms live in philox.c.
 */
#include <inttypes.h>
#include <math.h>

#include "core/internal.h"
#include "diffsde/noise.h"

/* Internal, defined in philox.c (declared there with the same text). */

enum noise_kind { NOISE_PHILOX, NOISE_CALLBACK };

struct diffsde_noise {
    diffsde_ctx *ctx; /* borrowed */
    enum noise_kind kind;
    uint64_t seed;       /* NOISE_PHILOX */
    diffsde_noise_fn fn; /* NOISE_CALLBACK */
    void *user;          /* NOISE_CALLBACK, borrowed */
};

/* A new source with every field initialised, or NULL (the failure recorded on ctx). */
static diffsde_noise *noise_alloc(diffsde_ctx *ctx, const char *fname)
{
    diffsde_noise *noise = diffsde_i_alloc(ctx, sizeof *noise);
    if (!noise) {
        diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the noise source (%zu bytes)",
                       fname, sizeof *noise);
        return NULL;
    }
    noise->ctx = ctx;
    noise->kind = NOISE_PHILOX;
    noise->seed = 0;
    noise->fn = NULL;
    noise->user = NULL;
    return noise;
}

int diffsde_noise_new_philox(diffsde_ctx *ctx, uint64_t seed, diffsde_noise **out)
{
    static const char fname[] = "diffsde_noise_new_philox";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fname);
    diffsde_noise *noise = noise_alloc(ctx, fname);
    if (!noise)
        return DIFFSDE_ENOMEM;
    noise->kind = NOISE_PHILOX;
    noise->seed = seed;
    *out = noise;
    return DIFFSDE_OK;
}

int diffsde_noise_new_callback(diffsde_ctx *ctx, diffsde_noise_fn fn, void *user,
                               diffsde_noise **out)
{
    static const char fname[] = "diffsde_noise_new_callback";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fname);
    if (!fn)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: the callback fn is NULL", fname);
    diffsde_noise *noise = noise_alloc(ctx, fname);
    if (!noise)
        return DIFFSDE_ENOMEM;
    noise->kind = NOISE_CALLBACK;
    noise->fn = fn;
    noise->user = user;
    *out = noise;
    return DIFFSDE_OK;
}

void diffsde_noise_free(diffsde_noise *noise)
{
    if (noise)
        diffsde_i_free(noise->ctx, noise);
}

int diffsde_noise_seed(const diffsde_noise *noise, uint64_t *seed)
{
    if (!noise)
        return DIFFSDE_ENULL;
    if (!seed)
        return diffsde_i_fail(noise->ctx, DIFFSDE_ENULL, "diffsde_noise_seed: seed is NULL");
    if (noise->kind != NOISE_PHILOX)
        return diffsde_i_fail(noise->ctx, DIFFSDE_EUNSUPPORTED,
                              "diffsde_noise_seed: a callback noise source has no seed");
    *seed = noise->seed;
    return DIFFSDE_OK;
}

/* Checks shared by both fills; on success *count = n·d. */
static int check_fill(const diffsde_noise *noise, const char *fname, uint32_t stream,
                      uint64_t step, uint64_t sample0, size_t n, size_t d, const double *z,
                      size_t *count)
{
    diffsde_ctx *ctx = noise->ctx;
    if (!z && n > 0 && d > 0)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: the output array is NULL (n = %zu, d = %zu)",
                              fname, n, d);
    if (diffsde_i_mul_size(n, d, count) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*d overflows size_t (n = %zu, d = %zu)",
                              fname, n, d);
    if (stream >= DIFFSDE_NOISE_MAX_STREAMS)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE, "%s: stream (%" PRIu32 ") must be < 2^16",
                              fname, stream);
    if (step >= DIFFSDE_NOISE_MAX_STEPS)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE, "%s: step (%" PRIu64 ") must be < 2^32", fname,
                              step);
    if (sample0 > DIFFSDE_NOISE_MAX_SAMPLES || (uint64_t)n > DIFFSDE_NOISE_MAX_SAMPLES - sample0)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE,
                              "%s: sample0 + n (%" PRIu64 " + %zu) must be <= 2^48", fname,
                              sample0, n);
    if ((uint64_t)d > DIFFSDE_NOISE_MAX_COORDS)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE, "%s: dimension d (%zu) must be <= 2^33", fname,
                              d);
    return DIFFSDE_OK;
}

int diffsde_noise_fill_normal(const diffsde_noise *noise, uint32_t stream, uint64_t step,
                              uint64_t sample0, size_t n, size_t d, double *z)
{
    static const char fname[] = "diffsde_noise_fill_normal";
    if (!noise)
        return DIFFSDE_ENULL;
    size_t count;
    int status = check_fill(noise, fname, stream, step, sample0, n, d, z, &count);
    if (status != DIFFSDE_OK || count == 0)
        return status;
    if (noise->kind == NOISE_PHILOX) {
        diffsde_i_philox_fill(noise->seed, stream, step, sample0, n, d, 1, z);
        return DIFFSDE_OK;
    }
    int rc = noise->fn(stream, step, sample0, n, d, z, noise->user);
    if (rc != 0)
        return diffsde_i_fail(noise->ctx, DIFFSDE_ECALLBACK,
                              "%s: noise callback returned %d (stream %" PRIu32 ", step %" PRIu64
                              ", samples %" PRIu64 "..%" PRIu64 ", d = %zu)",
                              fname, rc, stream, step, sample0, sample0 + (uint64_t)n - 1, d);
    for (size_t k = 0; k < count; k++)
        if (!isfinite(z[k]))
            return diffsde_i_fail(noise->ctx, DIFFSDE_ENONFINITE,
                                  "%s: noise callback wrote %g for sample %" PRIu64
                                  ", coordinate %zu (stream %" PRIu32 ", step %" PRIu64 ")",
                                  fname, z[k], sample0 + (uint64_t)(k / d), k % d, stream, step);
    return DIFFSDE_OK;
}

int diffsde_noise_fill_uniform(const diffsde_noise *noise, uint32_t stream, uint64_t step,
                               uint64_t sample0, size_t n, size_t d, double *u)
{
    static const char fname[] = "diffsde_noise_fill_uniform";
    if (!noise)
        return DIFFSDE_ENULL;
    if (noise->kind != NOISE_PHILOX)
        return diffsde_i_fail(noise->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: a callback noise source gives normals only", fname);
    size_t count;
    int status = check_fill(noise, fname, stream, step, sample0, n, d, u, &count);
    if (status != DIFFSDE_OK || count == 0)
        return status;
    diffsde_i_philox_fill(noise->seed, stream, step, sample0, n, d, 0, u);
    return DIFFSDE_OK;
}
