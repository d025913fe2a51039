/*
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11) and the pinned map from (seed, stream, sample, step, coord) to a uniform and a
 * standard normal. Written from the published algorithm; the counter layout and the uniform
 * live only in this file, the normal transform in normal.c (both documented in noise.h).
 *
 * Two evaluations of the same map: one draw at a time (diffsde_noise_uniform_at / _normal_at),
 * plain scalar code; and fills, in chunks of CHUNK blocks laid out as structures of arrays
 * so that the Philox rounds run on SIMD vectors of blocks (SSE2, AVX2 or AVX-512F kernels on
 * x86-64, picked at run time; portable C elsewhere) and the uniform conversion vectorises.
 * Philox is integer arithmetic and the uniform is exact, so every path gives the same bits
 * (tests/test_noise.c compares fills with single draws).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "diffsde/noise.h"
#include "noise/noise_impl.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(DIFFSDE_NO_SIMD)
#include <immintrin.h>
#define PHILOX_X86 1
#else
#define PHILOX_X86 0
#endif

/*
 * GCC's -O2 cost model ("very cheap") declines the loops below that would vectorise; ask for
 * the ordinary one (integer and exact conversions only: no value depends on it).
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

/* The uniform conversion is also compiled for AVX-512F and AVX2, picked at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__) && \
    __GNUC__ >= 6 && !defined(DIFFSDE_NO_SIMD)
#define PHILOX_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PHILOX_CLONES
#endif

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9) /* golden ratio */
#define PHILOX_W1 UINT32_C(0xBB67AE85) /* sqrt(3) - 1 */

/* ---------------------------------------------------------------------------------------- */
/* Philox4x32-10, one block. */

/* One Philox round: two 32×32→64 multiplications, then the S-box-like swap and key xor. */
static inline void philox_round(uint32_t x[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
    uint32_t y0 = (uint32_t)(p1 >> 32) ^ x[1] ^ k0;
    uint32_t y1 = (uint32_t)p1;
    uint32_t y2 = (uint32_t)(p0 >> 32) ^ x[3] ^ k1;
    uint32_t y3 = (uint32_t)p0;
    x[0] = y0;
    x[1] = y1;
    x[2] = y2;
    x[3] = y3;
}

static inline void philox_block(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4])
{
    uint32_t x[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    philox_round(x, k0, k1);
    for (int r = 1; r < 10; r++) {
        /* The key is bumped by the Weyl constants before each of rounds 2..10. */
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
        philox_round(x, k0, k1);
    }
    out[0] = x[0];
    out[1] = x[1];
    out[2] = x[2];
    out[3] = x[3];
}

void diffsde_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    philox_block(ctr, key[0], key[1], out);
}

/* ---------------------------------------------------------------------------------------- */
/* The exact uniform. */

/*
 * U = (2·(u >> 12) + 1)·2^-53 = ((u >> 12) + 0.5)·2^-52. 2·(u >> 12) + 1 < 2^53 is exact in a
 * double and the scaling by a power of two is exact, so U is exactly an odd multiple of 2^-53
 * in [2^-53, 1 − 2^-53]; the grid is symmetric about 1/2, so 1 − U is exact as well.
 */
static inline double u64_to_uniform(uint64_t u)
{
    return (double)(((u >> 12) << 1) | 1u) * 0x1p-53;
}

/*
 * The same value without an integer-to-double conversion (which SSE2/AVX2 lack for 64-bit
 * integers, so it would not vectorise): the bits 0x3ff·2^52 | (u >> 12) are the double
 * m = 1 + (u >> 12)·2^-52 in [1, 2); m − 1 = (u >> 12)·2^-52 exactly (Sterbenz), and adding
 * 2^-53 gives (2·(u >> 12) + 1)·2^-53, exact because it is below 2^53·2^-53 on the 2^-53 grid.
 */
static inline double u64_to_uniform_bits(uint64_t u)
{
    uint64_t bits = (u >> 12) | UINT64_C(0x3ff0000000000000);
    double m;
    memcpy(&m, &bits, sizeof m);
    return (m - 1.0) + 0x1p-53;
}

/* ---------------------------------------------------------------------------------------- */
/* Draws one at a time. */

static inline int in_layout(uint32_t stream, uint64_t sample, uint64_t step, uint64_t coord)
{
    return stream < DIFFSDE_NOISE_MAX_STREAMS && sample < DIFFSDE_NOISE_MAX_SAMPLES &&
           step < DIFFSDE_NOISE_MAX_STEPS && coord < DIFFSDE_NOISE_MAX_COORDS;
}

/* The pinned counter layout, coordinate pair (coord >> 1) left to the caller. */
static inline void make_counter(uint32_t stream, uint64_t sample, uint64_t step, uint32_t ctr[4])
{
    ctr[0] = 0;
    ctr[1] = (uint32_t)step;
    ctr[2] = (uint32_t)(sample & UINT32_C(0xffffffff));
    ctr[3] = (uint32_t)(sample >> 32) | (stream << 16);
}

double diffsde_noise_uniform_at(uint64_t seed, uint32_t stream, uint64_t sample, uint64_t step,
                                uint64_t coord)
{
    if (!in_layout(stream, sample, step, coord))
        return NAN;
    uint32_t ctr[4], w[4];
    make_counter(stream, sample, step, ctr);
    ctr[0] = (uint32_t)(coord >> 1);
    philox_block(ctr, (uint32_t)seed, (uint32_t)(seed >> 32), w);
    uint64_t u = (coord & 1u) ? ((uint64_t)w[2] | (uint64_t)w[3] << 32)
                              : ((uint64_t)w[0] | (uint64_t)w[1] << 32);
    return u64_to_uniform(u);
}

double diffsde_noise_normal_at(uint64_t seed, uint32_t stream, uint64_t sample, uint64_t step,
                               uint64_t coord)
{
    double u = diffsde_noise_uniform_at(seed, stream, sample, step, coord);
    return isnan(u) ? u : diffsde_i_uniform_to_normal(u);
}

/* ---------------------------------------------------------------------------------------- */
/* Fills, chunk by chunk. */

/* Philox blocks per chunk: 2·CHUNK draws, 2 KiB of doubles, in L1 with the rest. */
#define CHUNK (DIFFSDE_I_NORMAL_BLOCK / 2)

typedef struct chunk {
    uint32_t x0[CHUNK], x1[CHUNK], x2[CHUNK], x3[CHUNK]; /* counters in, outputs out */
    double v[2 * CHUNK];                                 /* uniforms, then normals */
    diffsde_i_normal_scratch scratch;
} chunk;

/*
 * Philox4x32-10 on blocks 0..nb−1 of the chunk, in place (nb a multiple of PHILOX_PAD: the
 * padding blocks are computed and ignored), with round keys ka[r], kb[r], r = 0..9.
 *
 * The SIMD kernels hold one 32-bit word of consecutive blocks per lane. The 32×32→64
 * products come from the even-lane multiply (pmuludq) applied to the words and to the words
 * shifted down by 32 bits; the high halves of both are merged into one vector, and so are the
 * low halves. Integer arithmetic only: every kernel gives the words of philox_block()
 * (tests/test_noise.c compares fills with single draws).
 */
#define PHILOX_PAD 16
_Static_assert(CHUNK % PHILOX_PAD == 0, "a chunk holds whole SIMD groups of blocks");

#if !PHILOX_X86
static void philox_soa_generic(chunk *c, size_t nb, const uint32_t ka[10], const uint32_t kb[10])
{
    for (size_t b = 0; b < nb; b++) {
        uint32_t x[4] = {c->x0[b], c->x1[b], c->x2[b], c->x3[b]};
        for (int r = 0; r < 10; r++)
            philox_round(x, ka[r], kb[r]);
        c->x0[b] = x[0];
        c->x1[b] = x[1];
        c->x2[b] = x[2];
        c->x3[b] = x[3];
    }
}
#else
/* SSE2 belongs to x86-64: the baseline kernel, four blocks per vector. */
static void philox_soa_sse2(chunk *c, size_t nb, const uint32_t ka[10], const uint32_t kb[10])
{
    const __m128i m0 = _mm_set1_epi32((int)PHILOX_M0), m1 = _mm_set1_epi32((int)PHILOX_M1);
    const __m128i lo = _mm_set1_epi64x(INT64_C(0xffffffff)), hi = _mm_slli_epi64(lo, 32);
    for (size_t b = 0; b < nb; b += 4) {
        __m128i a0 = _mm_loadu_si128((const __m128i *)(c->x0 + b));
        __m128i a1 = _mm_loadu_si128((const __m128i *)(c->x1 + b));
        __m128i a2 = _mm_loadu_si128((const __m128i *)(c->x2 + b));
        __m128i a3 = _mm_loadu_si128((const __m128i *)(c->x3 + b));
        for (int r = 0; r < 10; r++) {
            __m128i e0 = _mm_mul_epu32(a0, m0), o0 = _mm_mul_epu32(_mm_srli_epi64(a0, 32), m0);
            __m128i e1 = _mm_mul_epu32(a2, m1), o1 = _mm_mul_epu32(_mm_srli_epi64(a2, 32), m1);
            __m128i hi0 = _mm_or_si128(_mm_srli_epi64(e0, 32), _mm_and_si128(o0, hi));
            __m128i hi1 = _mm_or_si128(_mm_srli_epi64(e1, 32), _mm_and_si128(o1, hi));
            __m128i lo0 = _mm_or_si128(_mm_and_si128(e0, lo), _mm_slli_epi64(o0, 32));
            __m128i lo1 = _mm_or_si128(_mm_and_si128(e1, lo), _mm_slli_epi64(o1, 32));
            a0 = _mm_xor_si128(_mm_xor_si128(hi1, a1), _mm_set1_epi32((int)ka[r]));
            a2 = _mm_xor_si128(_mm_xor_si128(hi0, a3), _mm_set1_epi32((int)kb[r]));
            a1 = lo1;
            a3 = lo0;
        }
        _mm_storeu_si128((__m128i *)(c->x0 + b), a0);
        _mm_storeu_si128((__m128i *)(c->x1 + b), a1);
        _mm_storeu_si128((__m128i *)(c->x2 + b), a2);
        _mm_storeu_si128((__m128i *)(c->x3 + b), a3);
    }
}

/* AVX2: eight blocks per vector. */
__attribute__((target("avx2"))) static void
philox_soa_avx2(chunk *c, size_t nb, const uint32_t ka[10], const uint32_t kb[10])
{
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    for (size_t b = 0; b < nb; b += 8) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(c->x0 + b));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(c->x1 + b));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(c->x2 + b));
        __m256i a3 = _mm256_loadu_si256((const __m256i *)(c->x3 + b));
        for (int r = 0; r < 10; r++) {
            __m256i e0 = _mm256_mul_epu32(a0, m0);
            __m256i o0 = _mm256_mul_epu32(_mm256_srli_epi64(a0, 32), m0);
            __m256i e1 = _mm256_mul_epu32(a2, m1);
            __m256i o1 = _mm256_mul_epu32(_mm256_srli_epi64(a2, 32), m1);
            __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(e0, 32), o0, 0xaa);
            __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(e1, 32), o1, 0xaa);
            __m256i lo0 = _mm256_blend_epi32(e0, _mm256_slli_epi64(o0, 32), 0xaa);
            __m256i lo1 = _mm256_blend_epi32(e1, _mm256_slli_epi64(o1, 32), 0xaa);
            a0 = _mm256_xor_si256(_mm256_xor_si256(hi1, a1), _mm256_set1_epi32((int)ka[r]));
            a2 = _mm256_xor_si256(_mm256_xor_si256(hi0, a3), _mm256_set1_epi32((int)kb[r]));
            a1 = lo1;
            a3 = lo0;
        }
        _mm256_storeu_si256((__m256i *)(c->x0 + b), a0);
        _mm256_storeu_si256((__m256i *)(c->x1 + b), a1);
        _mm256_storeu_si256((__m256i *)(c->x2 + b), a2);
        _mm256_storeu_si256((__m256i *)(c->x3 + b), a3);
    }
}

/* AVX-512F: sixteen blocks per vector; the two xors are one ternary-logic instruction. */
__attribute__((target("avx512f"))) static void
philox_soa_avx512(chunk *c, size_t nb, const uint32_t ka[10], const uint32_t kb[10])
{
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    const __mmask16 odd = 0xaaaa;
    for (size_t b = 0; b < nb; b += 16) {
        __m512i a0 = _mm512_loadu_si512(c->x0 + b), a1 = _mm512_loadu_si512(c->x1 + b);
        __m512i a2 = _mm512_loadu_si512(c->x2 + b), a3 = _mm512_loadu_si512(c->x3 + b);
        for (int r = 0; r < 10; r++) {
            __m512i e0 = _mm512_mul_epu32(a0, m0);
            __m512i o0 = _mm512_mul_epu32(_mm512_srli_epi64(a0, 32), m0);
            __m512i e1 = _mm512_mul_epu32(a2, m1);
            __m512i o1 = _mm512_mul_epu32(_mm512_srli_epi64(a2, 32), m1);
            __m512i hi0 = _mm512_mask_blend_epi32(odd, _mm512_srli_epi64(e0, 32), o0);
            __m512i hi1 = _mm512_mask_blend_epi32(odd, _mm512_srli_epi64(e1, 32), o1);
            __m512i lo0 = _mm512_mask_blend_epi32(odd, e0, _mm512_slli_epi64(o0, 32));
            __m512i lo1 = _mm512_mask_blend_epi32(odd, e1, _mm512_slli_epi64(o1, 32));
            /* 0x96: the truth table of a ^ b ^ c */
            a0 = _mm512_ternarylogic_epi32(hi1, a1, _mm512_set1_epi32((int)ka[r]), 0x96);
            a2 = _mm512_ternarylogic_epi32(hi0, a3, _mm512_set1_epi32((int)kb[r]), 0x96);
            a1 = lo1;
            a3 = lo0;
        }
        _mm512_storeu_si512(c->x0 + b, a0);
        _mm512_storeu_si512(c->x1 + b, a1);
        _mm512_storeu_si512(c->x2 + b, a2);
        _mm512_storeu_si512(c->x3 + b, a3);
    }
}
#endif

/* The widest kernel the processor (and the operating system's saved state) supports. */
static void philox_soa(chunk *c, size_t nb, uint32_t k0, uint32_t k1)
{
    uint32_t ka[10], kb[10];
    for (int r = 0; r < 10; r++) {
        ka[r] = k0 + (uint32_t)r * PHILOX_W0;
        kb[r] = k1 + (uint32_t)r * PHILOX_W1;
    }
#if PHILOX_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        philox_soa_avx512(c, nb, ka, kb);
    else if (__builtin_cpu_supports("avx2"))
        philox_soa_avx2(c, nb, ka, kb);
    else
        philox_soa_sse2(c, nb, ka, kb);
#else
    philox_soa_generic(c, nb, ka, kb);
#endif
}

/*
 * The uniforms of blocks 0..nb−1 into v, in output order; returns their number. Block b gives
 * U(word 0, word 1) and, unless it is the last block of a row of odd length d, U(word 2,
 * word 3). P = blocks per row, p_first = the first block's position in its row.
 */
PHILOX_CLONES
static size_t chunk_uniform(chunk *c, size_t nb, size_t d, size_t P, size_t p_first)
{
    if (!(d & 1u)) {
        for (size_t b = 0; b < nb; b++) {
            c->v[2 * b] = u64_to_uniform_bits((uint64_t)c->x0[b] | (uint64_t)c->x1[b] << 32);
            c->v[2 * b + 1] = u64_to_uniform_bits((uint64_t)c->x2[b] | (uint64_t)c->x3[b] << 32);
        }
        return 2 * nb;
    }
    if (d == 1) {
        for (size_t b = 0; b < nb; b++)
            c->v[b] = u64_to_uniform_bits((uint64_t)c->x0[b] | (uint64_t)c->x1[b] << 32);
        return nb;
    }
    size_t m = 0;
    for (size_t b = 0, pb = p_first; b < nb; b++) {
        c->v[m++] = u64_to_uniform_bits((uint64_t)c->x0[b] | (uint64_t)c->x1[b] << 32);
        if (++pb < P)
            c->v[m++] = u64_to_uniform_bits((uint64_t)c->x2[b] | (uint64_t)c->x3[b] << 32);
        else
            pb = 0;
    }
    return m;
}

/*
 * Counters of up to CHUNK blocks in row-major order of (row i, block p), starting at
 * (*i, *p) and advancing them; returns the number of blocks. P = blocks per row.
 */
static size_t chunk_counters(chunk *c, uint32_t stream, uint64_t step, uint64_t sample0,
                             size_t n, size_t P, size_t *i, size_t *p)
{
    size_t nb = 0;
    if (P == 1) { /* d ≤ 2: one block per row, the loop vectorises */
        nb = n - *i < CHUNK ? n - *i : CHUNK;
        for (size_t b = 0; b < nb; b++) {
            uint64_t sample = sample0 + *i + b;
            c->x0[b] = 0;
            c->x1[b] = (uint32_t)step;
            c->x2[b] = (uint32_t)(sample & UINT32_C(0xffffffff));
            c->x3[b] = (uint32_t)(sample >> 32) | (stream << 16);
        }
        *i += nb;
        return nb;
    }
    while (nb < CHUNK && *i < n) { /* a run of blocks of one row */
        uint64_t sample = sample0 + *i;
        uint32_t c2 = (uint32_t)(sample & UINT32_C(0xffffffff));
        uint32_t c3 = (uint32_t)(sample >> 32) | (stream << 16);
        size_t run = P - *p < CHUNK - nb ? P - *p : CHUNK - nb;
        for (size_t k = 0; k < run; k++) {
            c->x0[nb + k] = (uint32_t)(*p + k);
            c->x1[nb + k] = (uint32_t)step;
            c->x2[nb + k] = c2;
            c->x3[nb + k] = c3;
        }
        nb += run;
        *p += run;
        if (*p == P) {
            *p = 0;
            ++*i;
        }
    }
    return nb;
}

void diffsde_i_philox_fill(uint64_t seed, uint32_t stream, uint64_t step, uint64_t sample0,
                           size_t n, size_t d, int normal, double *out)
{
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const size_t P = d / 2 + (d & 1u); /* blocks per row; an odd d uses half of the last one */
    chunk c;
    size_t i = 0, p = 0; /* row and block of the next block to generate */
    while (i < n) {
        const size_t p_first = p;
        size_t nb = chunk_counters(&c, stream, step, sample0, n, P, &i, &p);
        size_t nbp = (nb + PHILOX_PAD - 1) / PHILOX_PAD * PHILOX_PAD;
        for (size_t b = nb; b < nbp; b++)
            c.x0[b] = c.x1[b] = c.x2[b] = c.x3[b] = 0;
        philox_soa(&c, nbp, k0, k1);
        size_t m = chunk_uniform(&c, nb, d, P, p_first);
        if (normal)
            diffsde_i_normal_block(c.v, m, &c.scratch);
        memcpy(out, c.v, m * sizeof *out);
        out += m;
    }
}
