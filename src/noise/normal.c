/*
 * The pinned transform from a uniform U to a standard normal Z = Φ⁻¹(U) (noise.h documents
 * it operation by operation): Wichura's AS 241 (PPND16), "The percentage points of the normal
 * distribution", Applied Statistics 37 (1988) 477–484, with the published coefficients, and
 * the logarithm of the tails computed here with + − × ÷ rather than by the C library, whose
 * last bits differ between implementations (glibc alone picks an FMA or a plain variant at
 * load time). Written from the paper and the series of atanh.
 *
 * Two evaluations of the same operations: one draw at a time, and a block at a time with the
 * central region (85% of draws) branch free over the whole block and the tails gathered, both
 * in loops the compiler vectorises (with SSE2, AVX2 or AVX-512F clones on x86-64 with GCC).
 * They agree bit for bit on every path because every operation is an IEEE-754 operation that
 * is correctly rounded on every instruction set, in one fixed order, with contraction into
 * fused multiply-adds forbidden below. (An x87 build with excess precision would differ; the
 * library targets SSE2 or later on x86.)
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "noise/noise_impl.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(DIFFSDE_NO_SIMD)
#include <emmintrin.h>
#define NORMAL_X86 1
#else
#define NORMAL_X86 0
#endif

/*
 * A fused multiply-add rounds once where the documented transform rounds twice, so it would
 * change the last bits of some draws: forbid contraction whatever the compiler's defaults
 * (GCC contracts across statements under -std=gnu*; clang honours the standard pragma).
 * Vectorisation with GCC's ordinary cost model (-O2 uses a "very cheap" one that declines
 * these loops), and comparisons assumed not to trap so that selects need no branches; none
 * of these options changes a value.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "tree-vectorize", "vect-cost-model=dynamic", \
                     "no-trapping-math")
#endif

/* Block kernels compiled for AVX-512F, AVX2 and the x86-64 baseline, picked at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__) && \
    __GNUC__ >= 6 && !defined(DIFFSDE_NO_SIMD)
#define NORMAL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NORMAL_CLONES
#endif

/* ---------------------------------------------------------------------------------------- */
/* AS 241: three rational functions of degree 7/7. */

static const double as241_a[8] = {3.3871328727963666080e0,  1.3314166789178437745e+2,
                                  1.9715909503065514427e+3, 1.3731693765509461125e+4,
                                  4.5921953931549871457e+4, 6.7265770927008700853e+4,
                                  3.3430575583588128105e+4, 2.5090809287301226727e+3};
static const double as241_b[8] = {1.0,
                                  4.2313330701600911252e+1, 6.8718700749205790830e+2,
                                  5.3941960214247511077e+3, 2.1213794301586595867e+4,
                                  3.9307895800092710610e+4, 2.8729085735721942674e+4,
                                  5.2264952788528545610e+3};
static const double as241_c[8] = {1.42343711074968357734e0, 4.63033784615654529590e0,
                                  5.76949722146069140550e0, 3.64784832476320460504e0,
                                  1.27045825245236838258e0, 2.41780725177450611770e-1,
                                  2.27238449892691845833e-2, 7.74545014278341407640e-4};
static const double as241_d[8] = {1.0,
                                  2.05319162663775882187e0, 1.67638483018380384940e0,
                                  6.89767334985100004550e-1, 1.48103976427480074590e-1,
                                  1.51986665636164571966e-2, 5.47593808499534494600e-4,
                                  1.05075007164441684324e-9};
static const double as241_e[8] = {6.65790464350110377720e0, 5.46378491116411436990e0,
                                  1.78482653991729133580e0, 2.96560571828504891230e-1,
                                  2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                  2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double as241_f[8] = {1.0,
                                  5.99832206555887937690e-1, 1.36929880922735805310e-1,
                                  1.48753612908506148525e-2, 7.86869131145613259100e-4,
                                  1.84631831751005468180e-5, 1.42151175831644588870e-7,
                                  2.04426310338993978564e-15};

#define AS241_SPLIT1 0.425
#define AS241_SPLIT2 5.0
#define AS241_CONST1 0.180625
#define AS241_CONST2 1.6

/* p(r)/q(r), both of degree 7, by Horner's rule from the top coefficient, then one division. */
static inline double rational7(const double p[8], const double q[8], double r)
{
    /* written out: a loop here would keep the callers' loops from vectorising */
    double u = p[7], v = q[7];
    u = u * r + p[6];
    v = v * r + q[6];
    u = u * r + p[5];
    v = v * r + q[5];
    u = u * r + p[4];
    v = v * r + q[4];
    u = u * r + p[3];
    v = v * r + q[3];
    u = u * r + p[2];
    v = v * r + q[2];
    u = u * r + p[1];
    v = v * r + q[1];
    u = u * r + p[0];
    v = v * r + q[0];
    return u / v;
}

/* |q| ≤ 0.425: Z = q·(A(r)/B(r)), r = 0.180625 − q·q. */
static inline double as241_central(double q)
{
    double r = AS241_CONST1 - q * q;
    return q * rational7(as241_a, as241_b, r);
}

/* The magnitude X of a tail draw from s = √(−log p). */
static inline double as241_tail(double s)
{
    return s <= AS241_SPLIT2 ? rational7(as241_c, as241_d, s - AS241_CONST2)
                             : rational7(as241_e, as241_f, s - AS241_SPLIT2);
}

/* ---------------------------------------------------------------------------------------- */
/*
 * −log p for p in [2^-53, 0.075] (normal doubles), as noise.h documents: p = 2^e·m with
 * m in [1, 2) read from the bits, and (m, e) ← (m/2, e + 1) if m > √2 (the double nearest);
 * f = m − 1 (exact); s = f/(2 + f), z = s·s; from log(1 + f) = 2 atanh(s) =
 * 2(s + s³/3 + s⁵/5 + ...) truncated after s^21 (|s| ≤ 0.1716: the remainder is below 2^-56
 * of the sum): P = 1/21, then P = P·z + 1/(2k + 1) for k = 9, 8, ..., 1, with the doubles
 * nearest 1/19, ..., 1/3; g = 2·(s + s·(z·P)); log p = e·LN2_HI + (e·LN2_LO + g), LN2_HI
 * having 21 significant bits so that e·LN2_HI is exact. Negated (exactly) on return.
 * Within about one unit in the last place of log p (tests/test_noise.c).
 */
#define NEG_LOG_LN2_HI 0x1.62e42p-1
#define NEG_LOG_LN2_LO 0x1.fdf473de6af28p-22 /* ln 2 − LN2_HI, rounded */
#define NEG_LOG_SQRT2 0x1.6a09e667f3bcdp+0

static inline double neg_log(double p)
{
    uint64_t bits;
    memcpy(&bits, &p, sizeof bits);
    /* e without an integer conversion: the double 2^52 + (biased exponent), minus 2^52 + 1023 */
    uint64_t ebits = (bits >> 52) | UINT64_C(0x4330000000000000);
    uint64_t mbits = (bits & UINT64_C(0x000fffffffffffff)) | UINT64_C(0x3ff0000000000000);
    double e, m;
    memcpy(&e, &ebits, sizeof e);
    memcpy(&m, &mbits, sizeof m);
    e = e - (0x1p52 + 1023.0);
    int big = m > NEG_LOG_SQRT2;
    m = big ? 0.5 * m : m;
    e = big ? e + 1.0 : e;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double P = 1.0 / 21;
    P = P * z + 1.0 / 19;
    P = P * z + 1.0 / 17;
    P = P * z + 1.0 / 15;
    P = P * z + 1.0 / 13;
    P = P * z + 1.0 / 11;
    P = P * z + 1.0 / 9;
    P = P * z + 1.0 / 7;
    P = P * z + 1.0 / 5;
    P = P * z + 1.0 / 3;
    double g = 2.0 * (s + s * (z * P));
    return -(e * NEG_LOG_LN2_HI + (e * NEG_LOG_LN2_LO + g));
}

double diffsde_i_uniform_to_normal(double u)
{
    double q = u - 0.5; /* exact: u is on the 2^-53 grid */
    if (fabs(q) <= AS241_SPLIT1)
        return as241_central(q);
    double x = as241_tail(sqrt(neg_log(u < 0.5 ? u : 1.0 - u)));
    return u < 0.5 ? -x : x;
}

/* ---------------------------------------------------------------------------------------- */
/*
 * A block: the central formula over all m draws (tail slots get q = 0 and are overwritten),
 * then the tail draws gathered (branch free), transformed in vectorised loops and scattered
 * back. The signs are applied with a select before the scatter: a branch on a coin flip
 * would be mispredicted half of the time.
 */
NORMAL_CLONES
void diffsde_i_normal_block(double *v, size_t m, diffsde_i_normal_scratch *sc)
{
    size_t nt = 0;
    for (size_t j = 0; j < m; j++) {
        double u = v[j];
        sc->tidx[nt] = (uint16_t)j;
        sc->tu[nt] = u;
        nt += !(fabs(u - 0.5) <= AS241_SPLIT1);
    }
    for (size_t j = 0; j < m; j++) {
        double q = v[j] - 0.5;
        q = fabs(q) <= AS241_SPLIT1 ? q : 0.0;
        v[j] = as241_central(q);
    }
    if (nt == 0)
        return;
    /* far: some p < 2e-11, so s may exceed 5 there (p < e^-25 ≈ 1.39e-11) */
    int far = 0;
    for (size_t t = 0; t < nt; t++) {
        double u = sc->tu[t];
        double p = u < 0.5 ? u : 1.0 - u;
        far |= p < 2e-11;
        sc->ts[t] = neg_log(p);
    }
#if NORMAL_X86
    /* GCC does not vectorise sqrt() where it might set errno; SSE2's sqrtpd is the same IEEE
       square root, two at a time (ts[nt] is padding when nt is odd: then nt < the size). */
    if (nt & 1u)
        sc->ts[nt] = 1.0;
    for (size_t t = 0; t < nt; t += 2)
        _mm_storeu_pd(sc->ts + t, _mm_sqrt_pd(_mm_loadu_pd(sc->ts + t)));
#else
    for (size_t t = 0; t < nt; t++)
        sc->ts[t] = sqrt(sc->ts[t]);
#endif
    if (far) { /* rare (2.8e-11 per draw): a loop with a branch */
        for (size_t t = 0; t < nt; t++) {
            double x = as241_tail(sc->ts[t]);
            sc->ts[t] = sc->tu[t] < 0.5 ? -x : x;
        }
    } else {
        for (size_t t = 0; t < nt; t++) {
            double x = rational7(as241_c, as241_d, sc->ts[t] - AS241_CONST2);
            sc->ts[t] = sc->tu[t] < 0.5 ? -x : x;
        }
    }
    for (size_t t = 0; t < nt; t++)
        v[sc->tidx[t]] = sc->ts[t];
}
