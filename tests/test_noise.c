/*
 * Tests of the noise module: Philox4x32-10 known answers, the pinned counter layout and
 * transforms, batch invariance, argument checking, the callback source, the statistics of the
 * draws and allocation failure at every allocation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------- */
/* Re-statements of the documented layout and transform, written independently of philox.c. */

static uint64_t ref_u64(uint64_t seed, uint32_t stream, uint64_t sample, uint64_t step,
                        uint64_t coord)
{
    uint32_t ctr[4] = {(uint32_t)(coord >> 1), (uint32_t)step, (uint32_t)(sample & 0xffffffffu),
                       (uint32_t)(sample >> 32) | (stream << 16)};
    uint32_t key[2] = {(uint32_t)(seed & 0xffffffffu), (uint32_t)(seed >> 32)};
    uint32_t w[4];
    diffsde_philox4x32_10(ctr, key, w);
    return (coord % 2 == 0) ? ((uint64_t)w[1] << 32 | w[0]) : ((uint64_t)w[3] << 32 | w[2]);
}

/* U = ((u64 >> 12) + 0.5)·2^-52, as written in noise.h (exact: (u64 >> 12) < 2^52). */
static inline double ref_uniform(uint64_t u)
{
    return ((double)(u >> 12) + 0.5) * ldexp(1.0, -52);
}

/*
 * The normal transform of noise.h, step by step. Its operations must not be fused (the
 * project compiles with -std=c11, where GCC does not contract; clang needs the pragma).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* AS 241's coefficients c0..c7, typed from the list in noise.h. */
static const double ref_A[8] = {3.3871328727963666080, 133.14166789178437745,
                                1971.5909503065514427, 13731.693765509461125,
                                45921.953931549871457, 67265.770927008700853,
                                33430.575583588128105, 2509.0809287301226727};
static const double ref_B[8] = {1, 42.313330701600911252, 687.18700749205790830,
                                5394.1960214247511077, 21213.794301586595867,
                                39307.895800092710610, 28729.085735721942674,
                                5226.4952788528545610};
static const double ref_C[8] = {1.42343711074968357734, 4.63033784615654529590,
                                5.76949722146069140550, 3.64784832476320460504,
                                1.27045825245236838258, 0.241780725177450611770,
                                0.0227238449892691845833, 7.74545014278341407640e-4};
static const double ref_D[8] = {1, 2.05319162663775882187, 1.67638483018380384940,
                                0.689767334985100004550, 0.148103976427480074590,
                                0.0151986665636164571966, 5.47593808499534494600e-4,
                                1.05075007164441684324e-9};
static const double ref_E[8] = {6.65790464350110377720, 5.46378491116411436990,
                                1.78482653991729133580, 0.296560571828504891230,
                                0.0265321895265761230930, 1.24266094738807843860e-3,
                                2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double ref_F[8] = {1, 0.599832206555887937690, 0.136929880922735805310,
                                0.0148753612908506148525, 7.86869131145613259100e-4,
                                1.84631831751005468180e-5, 1.42151175831644588870e-7,
                                2.04426310338993978564e-15};

static double ref_ratio(const double *num, const double *den, double x)
{
    double u = num[7], v = den[7];
    for (int k = 6; k >= 0; k--) {
        u = u * x + num[k];
        v = v * x + den[k];
    }
    return u / v;
}

/* Step 4 of the transform: −log p, with frexp for the exponent and mantissa. */
static double ref_neg_log(double p)
{
    int e2;
    double m = 2.0 * frexp(p, &e2); /* p = m·2^(e2 − 1), m in [1, 2); both exact */
    double e = (double)(e2 - 1);
    if (m > sqrt(2.0)) {
        m = m / 2.0;
        e = e + 1.0;
    }
    double f = m - 1.0, t = f / (2.0 + f), w = t * t, P = 1.0 / 21.0;
    for (int k = 19; k >= 3; k -= 2)
        P = P * w + 1.0 / k;
    double g = 2.0 * (t + t * (w * P));
    return -(e * 0x1.62e42p-1 + (e * 0x1.fdf473de6af28p-22 + g));
}

static double ref_normal(double u)
{
    double q = u - 0.5;
    if (fabs(q) <= 0.425)
        return q * ref_ratio(ref_A, ref_B, 0.180625 - q * q);
    double s = sqrt(ref_neg_log(u < 0.5 ? u : 1.0 - u));
    double x = s <= 5.0 ? ref_ratio(ref_C, ref_D, s - 1.6) : ref_ratio(ref_E, ref_F, s - 5.0);
    return u < 0.5 ? -x : x;
}

/* |a − b| in units of the last place of b. */
static double ulp_diff(double a, double b)
{
    return fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
}

static diffsde_ctx *new_ctx(void)
{
    diffsde_ctx *ctx = NULL;
    assert_int_equal(diffsde_ctx_new(&ctx, NULL), DIFFSDE_OK);
    assert_non_null(ctx);
    return ctx;
}

static void assert_msg_has(const diffsde_ctx *ctx, const char *a, const char *b)
{
    const char *msg = diffsde_errmsg(ctx);
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    if (a)
        assert_non_null(strstr(msg, a));
    if (b)
        assert_non_null(strstr(msg, b));
}

/* ---------------------------------------------------------------------------------------- */
/* 1. Known answers. */

/*
 * Philox4x32-10 known-answer vectors, verbatim from Random123's tests/kat_vectors, lines 27-29
 * (https://github.com/DEShawResearch/random123, commit 9545ff6413f258be2f04c1d319d99aaef7521150),
 * columns CTR[4] KEY[2] EXPECTED[4]:
 *   philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
 *   philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
 *   philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
 */
static const struct {
    uint32_t ctr[4], key[2], expected[4];
} kat[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_philox_kat(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4] = {0, 0, 0, 0};
        diffsde_philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++)
            assert_int_equal(out[j], kat[i].expected[j]);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* 2. Counter layout and transforms. */

static void test_layout(void **state)
{
    (void)state;
    const struct {
        uint64_t seed;
        uint32_t stream;
        uint64_t sample, step, coord;
    } c[] = {
        {0, 0, 0, 0, 0},
        {0, 0, 0, 0, 1},
        {UINT64_C(0x0123456789abcdef), 3, (UINT64_C(1) << 32) + 5, 17, 6},
        {UINT64_C(0x0123456789abcdef), 3, (UINT64_C(1) << 32) + 5, 17, 7},
        {42, DIFFSDE_STREAM_USER, 7, 12, 3},
        {UINT64_C(0xfedcba9876543210), DIFFSDE_STREAM_CORRECTOR, UINT64_C(0x0000abcd12345678),
         UINT64_C(0x9abcdef0), UINT64_C(0x1fffffffe)},
        {UINT64_MAX, 65535, DIFFSDE_NOISE_MAX_SAMPLES - 1, DIFFSDE_NOISE_MAX_STEPS - 1,
         DIFFSDE_NOISE_MAX_COORDS - 1},
        {UINT64_MAX, 65535, DIFFSDE_NOISE_MAX_SAMPLES - 1, DIFFSDE_NOISE_MAX_STEPS - 1,
         DIFFSDE_NOISE_MAX_COORDS - 2},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double u = diffsde_noise_uniform_at(c[i].seed, c[i].stream, c[i].sample, c[i].step,
                                            c[i].coord);
        double z = diffsde_noise_normal_at(c[i].seed, c[i].stream, c[i].sample, c[i].step,
                                           c[i].coord);
        double want = ref_uniform(ref_u64(c[i].seed, c[i].stream, c[i].sample, c[i].step,
                                          c[i].coord));
        assert_true(u == want);
        assert_true(z == ref_normal(want));
    }

    /*
     * The layout tied to the third published vector: key a4093822 299f31d0 is seed
     * 0x299f31d0a4093822; ctr = {243f6a88, 85a308d3, 13198a2e, 03707344} is coordinate pair
     * 0x243f6a88, step 0x85a308d3, sample 0x734413198a2e, stream 0x0370.
     */
    const uint64_t seed = UINT64_C(0x299f31d0a4093822), sample = UINT64_C(0x734413198a2e);
    const uint64_t step = UINT64_C(0x85a308d3), coord = UINT64_C(0x243f6a88) * 2;
    assert_true(diffsde_noise_uniform_at(seed, 0x0370, sample, step, coord) ==
                ref_uniform(UINT64_C(0x94fdccebd16cfe09)));
    assert_true(diffsde_noise_uniform_at(seed, 0x0370, sample, step, coord + 1) ==
                ref_uniform(UINT64_C(0x24126ea15001e420)));

    /* Out of the layout: NaN. */
    assert_true(isnan(diffsde_noise_normal_at(1, DIFFSDE_NOISE_MAX_STREAMS, 0, 0, 0)));
    assert_true(isnan(diffsde_noise_normal_at(1, 0, DIFFSDE_NOISE_MAX_SAMPLES, 0, 0)));
    assert_true(isnan(diffsde_noise_normal_at(1, 0, 0, DIFFSDE_NOISE_MAX_STEPS, 0)));
    assert_true(isnan(diffsde_noise_normal_at(1, 0, 0, 0, DIFFSDE_NOISE_MAX_COORDS)));
    assert_true(isnan(diffsde_noise_uniform_at(1, DIFFSDE_NOISE_MAX_STREAMS, 0, 0, 0)));
    assert_true(isnan(diffsde_noise_uniform_at(1, 0, DIFFSDE_NOISE_MAX_SAMPLES, 0, 0)));
    assert_true(isnan(diffsde_noise_uniform_at(1, 0, 0, DIFFSDE_NOISE_MAX_STEPS, 0)));
    assert_true(isnan(diffsde_noise_uniform_at(1, 0, 0, 0, DIFFSDE_NOISE_MAX_COORDS)));
}

/* ---------------------------------------------------------------------------------------- */
/* 3. Purity and batch invariance. */

static void test_batch_invariance(void **state)
{
    (void)state;
    enum { N = 37, D = 5, N1 = 20 };
    const uint64_t seed = UINT64_C(0x5eed2385);
    const uint64_t step = 12;
    const uint32_t stream = DIFFSDE_STREAM_PREDICTOR;
    diffsde_ctx *ctx = new_ctx();
    diffsde_noise *noise = NULL;
    assert_int_equal(diffsde_noise_new_philox(ctx, seed, &noise), DIFFSDE_OK);
    uint64_t got_seed = 0;
    assert_int_equal(diffsde_noise_seed(noise, &got_seed), DIFFSDE_OK);
    assert_true(got_seed == seed);

    double whole[N * D], parts[N * D], other[N * D], u[N * D];
    assert_int_equal(diffsde_noise_fill_normal(noise, stream, step, 0, N, D, whole), DIFFSDE_OK);
    assert_int_equal(diffsde_noise_fill_normal(noise, stream, step, 0, N1, D, parts), DIFFSDE_OK);
    assert_int_equal(diffsde_noise_fill_normal(noise, stream, step, N1, N - N1, D, parts + N1 * D),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_noise_fill_uniform(noise, stream, step, 0, N, D, u), DIFFSDE_OK);
    assert_memory_equal(whole, parts, sizeof whole);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < D; j++) {
            assert_true(whole[i * D + j] == diffsde_noise_normal_at(seed, stream, i, step, j));
            assert_true(u[i * D + j] == diffsde_noise_uniform_at(seed, stream, i, step, j));
        }

    /* A row does not depend on d: coordinate j of a d = 2 fill equals that of a d = 5 fill. */
    for (size_t dd = 1; dd <= 6; dd++) {
        double small[3 * 6];
        assert_int_equal(diffsde_noise_fill_normal(noise, stream, step, 4, 3, dd, small),
                         DIFFSDE_OK);
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < dd; j++)
                assert_true(small[i * dd + j] ==
                            diffsde_noise_normal_at(seed, stream, 4 + i, step, j));
    }

    /* Other streams, steps and seeds give other draws (no element in common). */
    diffsde_noise *noise2 = NULL;
    assert_int_equal(diffsde_noise_new_philox(ctx, seed + 1, &noise2), DIFFSDE_OK);
    for (int variant = 0; variant < 3; variant++) {
        int rc = variant == 0   ? diffsde_noise_fill_normal(noise, stream + 1, step, 0, N, D, other)
                 : variant == 1 ? diffsde_noise_fill_normal(noise, stream, step + 1, 0, N, D, other)
                                : diffsde_noise_fill_normal(noise2, stream, step, 0, N, D, other);
        assert_int_equal(rc, DIFFSDE_OK);
        for (size_t k = 0; k < N * D; k++)
            assert_true(other[k] != whole[k]);
    }
    diffsde_noise_free(noise2);
    diffsde_noise_free(noise);
    diffsde_noise_free(NULL);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* 4. Argument checking. */

static void test_errors(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    diffsde_noise *noise = NULL;
    double z[8];

    /* Constructors. */
    assert_int_equal(diffsde_noise_new_philox(NULL, 1, &noise), DIFFSDE_ENULL);
    assert_null(noise);
    assert_int_equal(diffsde_noise_new_philox(ctx, 1, NULL), DIFFSDE_ENULL);
    assert_msg_has(ctx, "diffsde_noise_new_philox", "out");
    assert_int_equal(diffsde_noise_new_callback(ctx, NULL, NULL, &noise), DIFFSDE_ENULL);
    assert_msg_has(ctx, "diffsde_noise_new_callback", "fn");
    assert_null(noise);
    assert_int_equal(diffsde_noise_seed(NULL, NULL), DIFFSDE_ENULL);

    assert_int_equal(diffsde_noise_new_philox(ctx, 7, &noise), DIFFSDE_OK);
    assert_int_equal(diffsde_noise_seed(noise, NULL), DIFFSDE_ENULL);
    for (int uniform = 0; uniform < 2; uniform++) {
        int (*fill)(const diffsde_noise *, uint32_t, uint64_t, uint64_t, size_t, size_t,
                    double *) = uniform ? diffsde_noise_fill_uniform : diffsde_noise_fill_normal;
        const char *fname = uniform ? "diffsde_noise_fill_uniform" : "diffsde_noise_fill_normal";

        assert_int_equal(fill(NULL, 0, 0, 0, 1, 1, z), DIFFSDE_ENULL);
        diffsde_clear_error(ctx);
        assert_int_equal(fill(noise, 0, 0, 0, 2, 3, NULL), DIFFSDE_ENULL);
        assert_msg_has(ctx, fname, "NULL");

        diffsde_clear_error(ctx);
        assert_int_equal(fill(noise, DIFFSDE_NOISE_MAX_STREAMS, 0, 0, 1, 1, z), DIFFSDE_ERANGE);
        assert_msg_has(ctx, fname, "stream (65536)");
        assert_int_equal(fill(noise, 0, DIFFSDE_NOISE_MAX_STEPS, 0, 1, 1, z), DIFFSDE_ERANGE);
        assert_msg_has(ctx, fname, "step (4294967296)");
        assert_int_equal(fill(noise, 0, 0, DIFFSDE_NOISE_MAX_SAMPLES - 1, 2, 1, z),
                         DIFFSDE_ERANGE);
        assert_msg_has(ctx, fname, "sample0 + n (281474976710655 + 2)");
        assert_int_equal(fill(noise, 0, 0, UINT64_MAX, 1, 1, z), DIFFSDE_ERANGE);
        assert_msg_has(ctx, fname, "sample0");
#if SIZE_MAX > 0xffffffffu
        assert_int_equal(fill(noise, 0, 0, 0, 1, (size_t)DIFFSDE_NOISE_MAX_COORDS + 1, z),
                         DIFFSDE_ERANGE);
        assert_msg_has(ctx, fname, "d (8589934593)");
#endif
        assert_int_equal(fill(noise, 0, 0, 0, SIZE_MAX / 2 + 1, 2, z), DIFFSDE_ESIZE);
        assert_msg_has(ctx, fname, "overflow");
        assert_int_equal(diffsde_last_status(ctx), DIFFSDE_ESIZE);

        /* The last valid indices are accepted. */
        assert_int_equal(fill(noise, DIFFSDE_NOISE_MAX_STREAMS - 1, DIFFSDE_NOISE_MAX_STEPS - 1,
                              DIFFSDE_NOISE_MAX_SAMPLES - 2, 2, 4, z),
                         DIFFSDE_OK);
        for (int k = 0; k < 8; k++)
            assert_true(isfinite(z[k]));

        /* n = 0 or d = 0: OK, nothing written, z may be NULL. */
        for (int k = 0; k < 8; k++)
            z[k] = 2.385;
        assert_int_equal(fill(noise, 0, 0, 0, 0, 5, z), DIFFSDE_OK);
        assert_int_equal(fill(noise, 0, 0, 0, 5, 0, z), DIFFSDE_OK);
        assert_int_equal(fill(noise, 0, 0, DIFFSDE_NOISE_MAX_SAMPLES, 0, 5, z), DIFFSDE_OK);
        assert_int_equal(fill(noise, 0, 0, 0, 0, 5, NULL), DIFFSDE_OK);
        for (int k = 0; k < 8; k++)
            assert_true(z[k] == 2.385);
    }
    diffsde_noise_free(noise);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* 5. Callback source. */

typedef struct cb_record {
    int calls;
    uint32_t stream;
    uint64_t step, sample0;
    size_t n, d;
    double *z;
    int rc;         /* value to return */
    double poison;  /* written at z[poison_at] when poison_at >= 0 */
    long poison_at;
} cb_record;

static int record_cb(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                     double *z, void *user)
{
    cb_record *r = user;
    r->calls++;
    r->stream = stream;
    r->step = step;
    r->sample0 = sample0;
    r->n = n;
    r->d = d;
    r->z = z;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            z[i * d + j] = (double)(sample0 + i) + 0.125 * (double)j;
    if (r->poison_at >= 0)
        z[r->poison_at] = r->poison;
    return r->rc;
}

static void test_callback(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    cb_record rec = {0};
    rec.poison_at = -1;
    diffsde_noise *noise = NULL;
    assert_int_equal(diffsde_noise_new_callback(ctx, record_cb, &rec, &noise), DIFFSDE_OK);

    double z[4 * 3];
    assert_int_equal(diffsde_noise_fill_normal(noise, 513, UINT64_C(4000000000),
                                               UINT64_C(0x123456789ab), 4, 3, z),
                     DIFFSDE_OK);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.stream, 513);
    assert_true(rec.step == UINT64_C(4000000000));
    assert_true(rec.sample0 == UINT64_C(0x123456789ab));
    assert_int_equal(rec.n, 4);
    assert_int_equal(rec.d, 3);
    assert_ptr_equal(rec.z, z);
    assert_true(z[2 * 3 + 1] == (double)(UINT64_C(0x123456789ab) + 2) + 0.125);

    /* n = 0: the callback is not called. */
    assert_int_equal(diffsde_noise_fill_normal(noise, 0, 0, 0, 0, 3, NULL), DIFFSDE_OK);
    assert_int_equal(rec.calls, 1);

    /* Failure code forwarded into the message. */
    rec.rc = -3;
    assert_int_equal(diffsde_noise_fill_normal(noise, 2, 9, 0, 4, 3, z), DIFFSDE_ECALLBACK);
    assert_msg_has(ctx, "diffsde_noise_fill_normal", "returned -3");
    rec.rc = 7;
    assert_int_equal(diffsde_noise_fill_normal(noise, 2, 9, 0, 4, 3, z), DIFFSDE_ECALLBACK);
    assert_msg_has(ctx, "returned 7", NULL);
    rec.rc = 0;

    /* Non-finite values. */
    rec.poison = NAN;
    rec.poison_at = 7; /* sample 10 + 2, coordinate 1 */
    assert_int_equal(diffsde_noise_fill_normal(noise, 2, 9, 10, 4, 3, z), DIFFSDE_ENONFINITE);
    assert_msg_has(ctx, "sample 12", "coordinate 1");
    rec.poison = -INFINITY;
    rec.poison_at = 11;
    assert_int_equal(diffsde_noise_fill_normal(noise, 2, 9, 10, 4, 3, z), DIFFSDE_ENONFINITE);
    assert_msg_has(ctx, "sample 13", "coordinate 2");
    rec.poison_at = -1;

    /* Range checks apply to callback sources too. */
    assert_int_equal(diffsde_noise_fill_normal(noise, DIFFSDE_NOISE_MAX_STREAMS, 0, 0, 1, 1, z),
                     DIFFSDE_ERANGE);

    /* Unsupported operations. */
    int calls = rec.calls;
    assert_int_equal(diffsde_noise_fill_uniform(noise, 0, 0, 0, 4, 3, z), DIFFSDE_EUNSUPPORTED);
    assert_msg_has(ctx, "diffsde_noise_fill_uniform", "callback");
    uint64_t seed = 99;
    assert_int_equal(diffsde_noise_seed(noise, &seed), DIFFSDE_EUNSUPPORTED);
    assert_msg_has(ctx, "diffsde_noise_seed", "callback");
    assert_true(seed == 99);
    assert_int_equal(rec.calls, calls);

    diffsde_noise_free(noise);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* 6. Statistics. */

/*
 * Kolmogorov's limiting survival function Q(λ) = P(K > λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²);
 * for small λ the Jacobi-theta form 1 − (√(2π)/λ) Σ_{k≥1} exp(−(2k−1)²π²/(8λ²)), which
 * converges fast there.
 */
static double kolmogorov_q(double lambda)
{
    const double pi = 3.14159265358979323846;
    if (lambda <= 0.0)
        return 1.0;
    double s = 0.0;
    if (lambda < 1.18) {
        for (int k = 1; k < 100; k++) {
            double t = exp(-(2.0 * k - 1) * (2.0 * k - 1) * pi * pi / (8.0 * lambda * lambda));
            s += t;
            if (t <= 1e-17 * s)
                break;
        }
        return 1.0 - sqrt(2.0 * pi) / lambda * s;
    }
    for (int k = 1; k < 100; k++) {
        double t = exp(-2.0 * k * k * lambda * lambda);
        s += (k % 2) ? t : -t;
        if (t <= 1e-17)
            break;
    }
    return 2.0 * s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One-sample KS test of x (sorted in place) against cdf: returns the asymptotic p-value. */
static double ks_pvalue(double *x, size_t n, double (*cdf)(double), double *d_out)
{
    qsort(x, n, sizeof *x, cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double f = cdf(x[i]);
        double dplus = (double)(i + 1) / (double)n - f, dminus = f - (double)i / (double)n;
        if (dplus > d)
            d = dplus;
        if (dminus > d)
            d = dminus;
    }
    double sn = sqrt((double)n);
    *d_out = d;
    return kolmogorov_q((sn + 0.12 + 0.11 / sn) * d); /* Stephens (1970) */
}

static double cdf_uniform(double u)
{
    return u;
}

static void test_kolmogorov_q(void **state)
{
    (void)state;
    /* Reference values of the Kolmogorov distribution (e.g. Q(1.3581) = 0.05, Q(1.6276) = 0.01). */
    assert_close(kolmogorov_q(1.3580986), 0.05, 1e-5, 0);
    assert_close(kolmogorov_q(1.6276236), 0.01, 1e-5, 0);
    assert_close(kolmogorov_q(0.8275735), 0.5, 1e-5, 0);
    /* Both series agree where they switch. */
    assert_close(kolmogorov_q(1.18 - 1e-12), kolmogorov_q(1.18), 1e-10, 0);
    assert_true(kolmogorov_q(0.01) == 1.0);
}

/*
 * 10^6 normals (200000 samples × 5 coordinates, seed 0x2385d1ce5eed0001, stream PRIOR, step 3)
 * and 10^6 uniforms (stream ACCEPT). Each check has a false-failure probability under an ideal
 * generator of at most: mean 5.7e-7 (|z̄|·√n < 5), variance ≈ 5.7e-7 (|s² − 1|/√(2/n) < 5,
 * asymptotically normal), each KS test 1e-6 (p > 1e-6): about 3e-6 in all. The seed is fixed,
 * so the outcome is deterministic; these bounds say how unlucky a seed would have to be.
 */
static void test_statistics(void **state)
{
    (void)state;
    enum { NS = 200000, D = 5, N = NS * D };
    const uint64_t seed = UINT64_C(0x2385d1ce5eed0001);
    diffsde_ctx *ctx = new_ctx();
    diffsde_noise *noise = NULL;
    assert_int_equal(diffsde_noise_new_philox(ctx, seed, &noise), DIFFSDE_OK);
    double *z = malloc(N * sizeof *z);
    assert_non_null(z);

    /* Normals. */
    assert_int_equal(diffsde_noise_fill_normal(noise, DIFFSDE_STREAM_PRIOR, 3, 0, NS, D, z),
                     DIFFSDE_OK);
    double mean = 0.0;
    for (size_t k = 0; k < N; k++)
        mean += z[k];
    mean /= N;
    double var = 0.0, zmax = 0.0;
    for (size_t k = 0; k < N; k++) {
        var += (z[k] - mean) * (z[k] - mean);
        if (fabs(z[k]) > zmax)
            zmax = fabs(z[k]);
    }
    var /= (N - 1);
    double dn, pn = ks_pvalue(z, N, gsl_cdf_ugaussian_P, &dn);
    print_message("# normals: n = %d, mean = %.3e (%.2f SE), variance = %.6f (%.2f SE), "
                  "max |z| = %.3f, KS D = %.3e, p = %.4f\n",
                  N, mean, mean * sqrt((double)N), var, (var - 1.0) / sqrt(2.0 / N), zmax, dn, pn);
    assert_true(fabs(mean) * sqrt((double)N) < 5.0);
    assert_true(fabs(var - 1.0) / sqrt(2.0 / N) < 5.0);
    assert_true(pn > 1e-6);

    /* Uniforms: strictly inside (0, 1), on the grid of odd multiples of 2^-53, KS. */
    assert_int_equal(diffsde_noise_fill_uniform(noise, DIFFSDE_STREAM_ACCEPT, 3, 0, NS, D, z),
                     DIFFSDE_OK);
    for (size_t k = 0; k < N; k++) {
        assert_true(z[k] > 0.0 && z[k] < 1.0);
        double m = ldexp(z[k], 53);
        assert_true(m == floor(m) && fmod(m, 2.0) == 1.0);
    }
    double du, pu = ks_pvalue(z, N, cdf_uniform, &du);
    print_message("# uniforms: n = %d, min = %.3e, max = 1 - %.3e, KS D = %.3e, p = %.4f\n", N,
                  z[0], 1.0 - z[N - 1], du, pu);
    assert_true(pu > 1e-6);

    free(z);
    diffsde_noise_free(noise);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* 7. Allocation failure at every allocation. */

static void test_alloc_failure(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        int done = 0;
        for (long k = 1; !done && k < 100; k++) {
            tu_alloc a = {0, 0, k};
            diffsde_allocator al = tu_allocator(&a);
            diffsde_ctx *ctx = NULL;
            int rc = diffsde_ctx_new(&ctx, &al);
            if (rc != DIFFSDE_OK) {
                assert_int_equal(rc, DIFFSDE_ENOMEM);
                assert_null(ctx);
                assert_int_equal(a.live, 0);
                continue;
            }
            diffsde_noise *noise = NULL;
            rc = kind == 0 ? diffsde_noise_new_philox(ctx, 5, &noise)
                           : diffsde_noise_new_callback(ctx, record_cb, NULL, &noise);
            if (rc != DIFFSDE_OK) {
                assert_int_equal(rc, DIFFSDE_ENOMEM);
                assert_null(noise);
                assert_msg_has(ctx, kind == 0 ? "diffsde_noise_new_philox"
                                              : "diffsde_noise_new_callback",
                               "allocate");
            } else {
                done = 1;
                diffsde_noise_free(noise);
            }
            diffsde_ctx_free(ctx);
            assert_int_equal(a.live, 0);
        }
        assert_true(done);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* 8. Bounds of the transform. */

static void test_uniform_bounds(void **state)
{
    (void)state;
    const double lo = ldexp(1.0, -53), hi = 1.0 - ldexp(1.0, -53);
    assert_true(ref_uniform(0) == lo);
    assert_true(ref_uniform(UINT64_MAX) == hi);
    assert_true(hi < 1.0 && 1.0 - hi == lo); /* exact and symmetric */
    assert_true(ref_uniform(UINT64_C(1) << 63) == 0.5 + lo);
    assert_true(ref_uniform((UINT64_C(1) << 63) - 1) == 0.5 - lo);

    /*
     * Why 52 bits and not 53: ((u64 >> 11) + 0.5)·2^-53 (53 bits plus a half) needs 54
     * significant bits; at the top it rounds to exactly 1.0, whose normal is +inf.
     */
    volatile double k53 = (double)(UINT64_MAX >> 11);
    assert_true((k53 + 0.5) * ldexp(1.0, -53) == 1.0);

    /* The extreme normals are finite, within the documented bound, and exactly antisymmetric. */
    const double zlo = ref_normal(lo), zhi = ref_normal(hi);
    assert_true(isfinite(zlo) && isfinite(zhi));
    assert_true(zhi == -zlo);
    assert_true(zhi <= 8.21 && zhi > 8.2);
    assert_true(ulp_diff(zhi, gsl_cdf_ugaussian_Pinv(hi)) <= 8.0);
    for (uint64_t s = 0; s < 2000; s++) {
        double u = diffsde_noise_uniform_at(11, 0, s, 0, s % 3);
        double z = diffsde_noise_normal_at(11, 0, s, 0, s % 3);
        assert_true(z == ref_normal(u));
        assert_true(ref_normal(1.0 - u) == -z);
        assert_true(fabs(z) <= 8.21);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* 9. The normal transform: the library against its documentation, and against GSL. */

/*
 * Draws at chosen uniforms: the extremes U = 2^-53 and 1 − 2^-53, and draws on either side of
 * p = e^-25 (p = min(U, 1 − U)), where s = √(−log p) crosses 5 and AS 241 switches to its
 * third rational function: about 2.8e-11 of all draws are beyond, too few to meet by chance.
 * Found by running Philox4x32-10 backwards (each round is a bijection for a given key) from
 * the wanted output words and random other words until the coordinate pair was below 4; any
 * counter is a valid (stream, sample, step, coordinate pair). The test re-derives u64 forwards.
 */
static const struct {
    uint64_t seed;
    uint32_t stream;
    uint64_t sample, step, coord;
    uint64_t u64; /* the draw's 64-bit word */
    int beyond;   /* s > 5 */
} chosen[] = {
    {2385, 44060, UINT64_C(0x7ab9415232e4), UINT64_C(0xb441ff76), 0, 0, 1},
    {2385, 10219, UINT64_C(0xc8b83bafdfe5), UINT64_C(0xcd23e49), 7, UINT64_MAX, 1},
    {2385, 22035, UINT64_C(0x85db3bf74370), UINT64_C(0xed71fc2b), 5, UINT64_C(0x0ecfd000), 1},
    {2385, 8864, UINT64_C(0x60b38d7b230f), UINT64_C(0xa7deb782), 6, UINT64_C(0xffffffffef81efff),
     0},
    {2385, 31193, UINT64_C(0x699192999d75), UINT64_C(0x294fe0d4), 6, UINT64_C(0x107e1000), 0},
};

/*
 * (a) 4·10^5 draws from fills (two seeds, d = 5 and d = 4, streams 7 and 8, step 3): each
 * equals the documented transform of its uniform (ref_normal), bit for bit, and is within 8
 * units in the last place of GSL's gsl_cdf_ugaussian_Pinv, an independent implementation of
 * AS 241 (equal in the central region when GSL is built without fused multiply-adds, as on
 * x86-64; in the tails it takes log from the C library). (b) The chosen draws above, from single draws and from fills. (c) The documented
 * −log p against the C library's log on about 9·10^4 values of p in [2^-53, 0.075] (random
 * mantissas, every binade): within 2 units in the last place (each is within about one of
 * −ln p). (Values like exp(y) would not do: log(exp(y)) lies next to the double y, far from
 * any rounding boundary, so every implementation rounds it alike.)
 * Deterministic: no statistical threshold.
 */
static void test_normal_transform(void **state)
{
    (void)state;
    enum { NS = 40000, D = 5 };
    diffsde_ctx *ctx = new_ctx();
    double *z = malloc(NS * D * sizeof *z), *u = malloc(NS * D * sizeof *u);
    assert_non_null(z);
    assert_non_null(u);
    long central = 0, central_same = 0, tails = 0, tails_same = 0;
    double max_ulp = 0.0;
    for (int run = 0; run < 2; run++) {
        const uint64_t seed = run == 0 ? UINT64_C(0x2385) : UINT64_C(0xfeedface01234567);
        const size_t d = run == 0 ? D : D - 1, n = NS * D / d;
        diffsde_noise *noise = NULL;
        assert_int_equal(diffsde_noise_new_philox(ctx, seed, &noise), DIFFSDE_OK);
        assert_int_equal(diffsde_noise_fill_normal(noise, 7 + (uint32_t)run, 3, 1000, n, d, z),
                         DIFFSDE_OK);
        assert_int_equal(diffsde_noise_fill_uniform(noise, 7 + (uint32_t)run, 3, 1000, n, d, u),
                         DIFFSDE_OK);
        for (size_t k = 0; k < n * d; k++) {
            assert_true(z[k] == ref_normal(u[k]));
            double g = gsl_cdf_ugaussian_Pinv(u[k]), e = ulp_diff(z[k], g);
            assert_true(e <= 8.0);
            if (fabs(u[k] - 0.5) <= 0.425) {
                central++;
                central_same += z[k] == g;
            } else {
                tails++;
                tails_same += z[k] == g;
                if (e > max_ulp)
                    max_ulp = e;
            }
        }
        diffsde_noise_free(noise);
    }
    print_message("# %ld central draws, %.2f%% equal to GSL's; %ld tail draws, %.2f%% equal, "
                  "the others within %.0f ulps\n",
                  central, 100.0 * (double)central_same / (double)central, tails,
                  100.0 * (double)tails_same / (double)tails, max_ulp);

    /* (b) */
    for (size_t i = 0; i < sizeof chosen / sizeof chosen[0]; i++) {
        const uint64_t seed = chosen[i].seed, sample = chosen[i].sample, step = chosen[i].step;
        const uint64_t coord = chosen[i].coord;
        const uint32_t stream = chosen[i].stream;
        assert_true(ref_u64(seed, stream, sample, step, coord) == chosen[i].u64);
        const double uc = ref_uniform(chosen[i].u64), p = uc < 0.5 ? uc : 1.0 - uc;
        assert_true(diffsde_noise_uniform_at(seed, stream, sample, step, coord) == uc);
        assert_true((sqrt(ref_neg_log(p)) > 5.0) == chosen[i].beyond);
        assert_true((p < exp(-25.0)) == chosen[i].beyond);
        const double zc = diffsde_noise_normal_at(seed, stream, sample, step, coord);
        assert_true(zc == ref_normal(uc));
        assert_true(isfinite(zc) && fabs(zc) > 6.6 && fabs(zc) <= 8.21 && (zc < 0) == (uc < 0.5));
        assert_true(ulp_diff(zc, gsl_cdf_ugaussian_Pinv(uc)) <= 8.0);
        /* the same draw from a fill (rows sample − 1 .. sample + 1, d = 8) */
        diffsde_noise *noise = NULL;
        assert_int_equal(diffsde_noise_new_philox(ctx, seed, &noise), DIFFSDE_OK);
        double rows[3 * 8];
        assert_int_equal(diffsde_noise_fill_normal(noise, stream, step, sample - 1, 3, 8, rows),
                         DIFFSDE_OK);
        assert_true(rows[8 + coord] == zc);
        diffsde_noise_free(noise);
    }
    /* the extremes: U = 2^-53 and 1 − 2^-53 give ∓Φ⁻¹(1 − 2^-53), bit for bit antisymmetric */
    assert_true(diffsde_noise_normal_at(chosen[0].seed, chosen[0].stream, chosen[0].sample,
                                        chosen[0].step, chosen[0].coord) ==
                -diffsde_noise_normal_at(chosen[1].seed, chosen[1].stream, chosen[1].sample,
                                         chosen[1].step, chosen[1].coord));

    /* (c) */
    double max_log = 0.0;
    long nlog = 0, nlog_same = 0;
    for (uint64_t k = 1; k <= 100000; k++) {
        /* p = m·2^e, m in [1, 2) with 52 pseudo-random mantissa bits, e in −53..−4 */
        uint64_t bits = (k * UINT64_C(0x9e3779b97f4a7c15)) >> 12;
        double p = ldexp(1.0 + ldexp((double)bits, -52), -4 - (int)(k % 50));
        if (p > 0.075)
            continue;
        double e = ulp_diff(-ref_neg_log(p), log(p));
        nlog++;
        nlog_same += e == 0.0;
        if (e > max_log)
            max_log = e;
    }
    print_message("# -log p: %ld values, %.2f%% equal to the C library's log, largest "
                  "difference %.2f ulps\n",
                  nlog, 100.0 * (double)nlog_same / (double)nlog, max_log);
    assert_true(max_log <= 2.0);

    free(u);
    free(z);
    diffsde_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),     cmocka_unit_test(test_layout),
        cmocka_unit_test(test_batch_invariance), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_callback),       cmocka_unit_test(test_kolmogorov_q),
        cmocka_unit_test(test_statistics),     cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_uniform_bounds), cmocka_unit_test(test_normal_transform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
