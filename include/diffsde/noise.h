/**
 * @file diffsde/noise.h
 * @brief Reproducible noise: every standard-normal draw is a pure function of
 *        (seed, stream, sample index, step index, coordinate).
 *
 * The generator is Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), a counter-based generator: there is no sequential state, so the
 * draw for sample 7 at step 12 is the same whether the batch holds 1 or 10⁶ samples, whatever
 * the thread count or the number of MPI ranks.
 *
 * ## Counter layout (pinned: changing it changes every sample ever drawn)
 * - key    = { seed & 0xffffffff, seed >> 32 }
 * - ctr[0] = coord >> 1                   (coordinate pair; coord < 2^33)
 * - ctr[1] = step                         (step < 2^32)
 * - ctr[2] = sample & 0xffffffff
 * - ctr[3] = (sample >> 32) | (stream << 16)   (sample < 2^48, stream < 2^16)
 * The four output words w0..w3 of one block give two 64-bit words,
 * u64 = w0 | w1 << 32 (even coord) and u64 = w2 | w3 << 32 (odd coord).
 *
 * ## Exact transform to uniforms and normals
 * - uniform U = ((u64 >> 12) + 0.5) · 2^-52 = (2·(u64 >> 12) + 1) · 2^-53, computed exactly in
 *   double precision, so U lies strictly inside (0, 1) on the grid of odd multiples of 2^-53
 *   (smallest 2^-53, largest 1 − 2^-53). The grid is symmetric about 1/2, so 1 − U is exact.
 *   (53 bits plus a half would need 54 significant bits: it would round to exactly 1 at the top.)
 * - normal Z = Φ⁻¹(U) by Wichura's algorithm AS 241 (PPND16; Applied Statistics 37 (1988)
 *   477–484), evaluated exactly as below: every operation one IEEE-754 double operation
 *   rounded to nearest, in the order written, never fused (no FMA), and no C library function
 *   but the correctly rounded √, so that every build, C library and instruction set (the SIMD
 *   fills included) gives the same bits. Constants are the doubles nearest the decimals shown.
 *   1. q = U − 1/2 (exact). If |q| ≤ 0.425: r = 0.180625 − q·q and Z = q·(A(r)/B(r)).
 *   2. Otherwise p = min(U, 1 − U) (exact), L = −log p computed as in 4, s = √L (correctly
 *      rounded). If s ≤ 5: X = C(s − 1.6)/D(s − 1.6), else X = E(s − 5)/F(s − 5); Z = −X when
 *      U < 1/2, else X.
 *   3. Each of A ... F is a polynomial c0 + c1·x + ... + c7·x^7 evaluated by Horner's rule
 *      from the top: y = c7, then y = y·x + c_k for k = 6, 5, ..., 0 (a rounded product, then
 *      a rounded sum); the quotient is one division. Coefficients c0 ... c7 (the decimal
 *      values printed in the paper, each rounded to the nearest double):
 *      - A: 3.3871328727963666080, 133.14166789178437745, 1971.5909503065514427,
 *        13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
 *        33430.575583588128105, 2509.0809287301226727
 *      - B: 1, 42.313330701600911252, 687.18700749205790830, 5394.1960214247511077,
 *        21213.794301586595867, 39307.895800092710610, 28729.085735721942674,
 *        5226.4952788528545610
 *      - C: 1.42343711074968357734, 4.63033784615654529590, 5.76949722146069140550,
 *        3.64784832476320460504, 1.27045825245236838258, 0.241780725177450611770,
 *        0.0227238449892691845833, 7.74545014278341407640e-4
 *      - D: 1, 2.05319162663775882187, 1.67638483018380384940, 0.689767334985100004550,
 *        0.148103976427480074590, 0.0151986665636164571966, 5.47593808499534494600e-4,
 *        1.05075007164441684324e-9
 *      - E: 6.65790464350110377720, 5.46378491116411436990, 1.78482653991729133580,
 *        0.296560571828504891230, 0.0265321895265761230930, 1.24266094738807843860e-3,
 *        2.71155556874348757815e-5, 2.01033439929228813265e-7
 *      - F: 1, 0.599832206555887937690, 0.136929880922735805310, 0.0148753612908506148525,
 *        7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
 *        2.04426310338993978564e-15
 *   4. L = −log p for p in [2^-53, 0.075]: p = 2^e·m with m in [1, 2) (from the bits, exact);
 *      if m > √2 (the double nearest, 0x1.6a09e667f3bcdp+0) then m ← m/2 and e ← e + 1;
 *      f = m − 1 (exact); t = f/(2 + f); w = t·t; P = 1/21, then P = P·w + 1/k for
 *      k = 19, 17, ..., 3 (each 1/k the nearest double); g = 2·(t + t·(w·P)) (this is
 *      log m = 2 atanh t, the series cut after t^21); L = −(e·H + (e·K + g)) with
 *      H = 0x1.62e42p-1 (21 significant bits, so e·H is exact) and K = 0x1.fdf473de6af28p-22
 *      (ln 2 − H rounded). L is within about one unit in the last place of −ln p.
 *   In the central region (|q| ≤ 0.425, 85% of draws) this is GSL's gsl_cdf_ugaussian_Pinv
 *   bit for bit (where GSL is built without FMA, as on x86-64); in the tails, where that
 *   function takes its log from the C library, about 99% of draws agree and the rest are
 *   within 7 units in the last place (both are within about 6 units of AS 241 evaluated
 *   exactly). Z is finite,
 *   |Z| ≤ Φ⁻¹(1 − 2^-53) ≈ 8.2095, and exactly antisymmetric: the draw made from 1 − U is −Z.
 * One uniform per normal (no pairing as in Box–Muller), so each coordinate is independent of
 * how many coordinates are drawn.
 *
 * ## Streams
 * Streams separate draws that share (sample, step): the prior draw, the predictor, the
 * corrector, Hutchinson probes... The constants below are the library's own; values from
 * ::DIFFSDE_STREAM_USER upwards are free for host codes.
 */
#ifndef DIFFSDE_NOISE_H
#define DIFFSDE_NOISE_H

#include "diffsde/common.h"
#include "diffsde/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Stream identifiers used by the library (see the file comment). */
enum diffsde_stream {
    DIFFSDE_STREAM_PRIOR = 0,     /**< draws of the initial state from the prior */
    DIFFSDE_STREAM_PREDICTOR = 1, /**< noise of predictor steps */
    DIFFSDE_STREAM_CORRECTOR = 2, /**< noise of corrector steps */
    DIFFSDE_STREAM_PROBE = 3,     /**< Hutchinson probe vectors */
    DIFFSDE_STREAM_MODEL = 4,     /**< exact sampling from analytic models */
    DIFFSDE_STREAM_ACCEPT = 5,    /**< uniforms of accept/reject decisions */
    DIFFSDE_STREAM_BRIDGE = 6,    /**< Brownian-bridge draws splitting an increment already
                                       drawn (the adaptive solver's rejected steps) */
    DIFFSDE_STREAM_DEQUANT = 7,   /**< uniforms of the likelihood's dequantisation */
    DIFFSDE_STREAM_USER = 256     /**< first stream free for host codes */
};

/** Largest sample index + 1 addressable by the counter layout (2^48). */
#define DIFFSDE_NOISE_MAX_SAMPLES (UINT64_C(1) << 48)
/** Largest step index + 1 (2^32). */
#define DIFFSDE_NOISE_MAX_STEPS (UINT64_C(1) << 32)
/** Largest coordinate index + 1 (2^33). */
#define DIFFSDE_NOISE_MAX_COORDS (UINT64_C(1) << 33)
/** Largest stream id + 1 (2^16). */
#define DIFFSDE_NOISE_MAX_STREAMS (UINT32_C(1) << 16)

/**
 * The Philox4x32-10 block function: 10 rounds on counter `ctr` with key `key`.
 * Pure; exposed so that its published known-answer vectors can be checked by anyone.
 * Thread-safety: safe from any thread. No errors (all arguments must be valid pointers).
 */
DIFFSDE_API void diffsde_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                                       uint32_t out[4]);

/**
 * One standard-normal draw as a pure function of its coordinates (see the file comment).
 *
 * @return the draw; NaN if an index exceeds its range (stream ≥ 2^16, sample ≥ 2^48,
 *         step ≥ 2^32, coord ≥ 2^33).
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API double diffsde_noise_normal_at(uint64_t seed, uint32_t stream, uint64_t sample,
                                           uint64_t step, uint64_t coord);

/**
 * As diffsde_noise_normal_at() but the uniform U in (0, 1) that the normal is made from
 * (NaN on the same out-of-range indices). Thread-safety: safe from any thread.
 */
DIFFSDE_API double diffsde_noise_uniform_at(uint64_t seed, uint32_t stream, uint64_t sample,
                                            uint64_t step, uint64_t coord);

/** Opaque noise source: Philox (seeded) or a user callback (e.g. replaying recorded draws). */
typedef struct diffsde_noise diffsde_noise;

/**
 * User noise callback: fill z (n × d, row-major) with the standard-normal draws for samples
 * sample0 .. sample0+n−1 at (stream, step). Must be a pure function of its arguments for the
 * library's reproducibility promises to hold. Returns 0 on success, non-zero on failure
 * (reported as ::DIFFSDE_ECALLBACK with the code in the message).
 */
typedef int (*diffsde_noise_fn)(uint32_t stream, uint64_t step, uint64_t sample0, size_t n,
                                size_t d, double *z, void *user);

/**
 * Create a Philox4x32-10 noise source.
 *
 * @param ctx   context (borrowed; must outlive the source).
 * @param seed  any 64-bit value.
 * @param[out] out  the new source, owned by the caller (diffsde_noise_free()); NULL on failure.
 * @return ::DIFFSDE_OK, ::DIFFSDE_ENULL (ctx or out NULL), ::DIFFSDE_ENOMEM.
 * Thread-safety: safe on distinct contexts.
 */
DIFFSDE_API int diffsde_noise_new_philox(diffsde_ctx *ctx, uint64_t seed, diffsde_noise **out);

/**
 * Create a noise source that calls `fn` (for recorded noise, or a host code's own generator).
 *
 * @param ctx  context (borrowed; must outlive the source). @param fn the callback (required).
 * @param user passed to `fn`, borrowed: must stay valid for the life of the source.
 * @param[out] out the new source, owned by the caller; NULL on failure.
 * @return ::DIFFSDE_OK, ::DIFFSDE_ENULL (ctx, fn or out NULL), ::DIFFSDE_ENOMEM.
 * Thread-safety: safe on distinct contexts.
 */
DIFFSDE_API int diffsde_noise_new_callback(diffsde_ctx *ctx, diffsde_noise_fn fn, void *user,
                                           diffsde_noise **out);

/** Free a noise source; NULL is a no-op. */
DIFFSDE_API void diffsde_noise_free(diffsde_noise *noise);

/**
 * Seed of a Philox source.
 * @param noise the source. @param[out] seed receives the seed.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (noise or seed NULL); ::DIFFSDE_EUNSUPPORTED for a
 *         callback source (seed is left unchanged).
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API int diffsde_noise_seed(const diffsde_noise *noise, uint64_t *seed);

/**
 * Fill z (n × d, row-major, caller-owned) with standard normals: z[i*d + j] is the draw for
 * (stream, sample0 + i, step, coordinate j). A Philox source computes each block once and
 * uses both of its coordinates. A callback source calls its callback once with the same
 * arguments, then checks every value written. When n·d = 0 nothing is written (z may be NULL)
 * and no callback is called.
 *
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (noise NULL, which leaves no message because there is
 *         no context, or z NULL with n·d > 0); ::DIFFSDE_ESIZE if n·d overflows size_t;
 *         ::DIFFSDE_ERANGE if an index leaves the counter layout (stream ≥ 2^16, step ≥ 2^32,
 *         sample0 + n > 2^48 or d > 2^33), for callback sources too, so that code that runs
 *         with one kind of source runs with the other; ::DIFFSDE_ECALLBACK if a user callback
 *         returns non-zero; ::DIFFSDE_ENONFINITE if it writes NaN/Inf (the message names the
 *         first such sample and coordinate). On failure the contents of z are unspecified.
 * Thread-safety: a Philox source may be shared by any number of threads (it is read only); a
 * callback source is as thread-safe as its callback.
 */
DIFFSDE_API int diffsde_noise_fill_normal(const diffsde_noise *noise, uint32_t stream,
                                          uint64_t step, uint64_t sample0, size_t n, size_t d,
                                          double *z);

/**
 * As diffsde_noise_fill_normal() but uniforms in (0, 1) (the U of the file comment).
 * @return as above; ::DIFFSDE_EUNSUPPORTED for a callback source (checked first).
 * Thread-safety: as diffsde_noise_fill_normal().
 */
DIFFSDE_API int diffsde_noise_fill_uniform(const diffsde_noise *noise, uint32_t stream,
                                           uint64_t step, uint64_t sample0, size_t n, size_t d,
                                           double *u);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_NOISE_H */
