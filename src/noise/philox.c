/*
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11) and the pinned map from (seed, stream, sample, step, coord) to a uniform and a
 * standard normal. Written from the published algorithm; the counter layout and the transforms
 * are documented in include/diffsde/noise.h and live only in this file.
 */
#include <gsl/gsl_cdf.h>
#include <math.h>

#include "core/internal.h"
#include "diffsde/noise.h"

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9) /* golden ratio */
#define PHILOX_W1 UINT32_C(0xBB67AE85) /* sqrt(3) - 1 */

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

/*
 * U = (2·(u >> 12) + 1)·2^-53 = ((u >> 12) + 0.5)·2^-52. 2·(u >> 12) + 1 < 2^53 is exact in a
 * double and the scaling by a power of two is exact, so U is exactly an odd multiple of 2^-53
 * in [2^-53, 1 − 2^-53]; the grid is symmetric about 1/2, so 1 − U is exact as well.
 */
static inline double u64_to_uniform(uint64_t u)
{
    return (double)(((u >> 12) << 1) | 1u) * 0x1p-53;
}

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
    return isnan(u) ? u : gsl_cdf_ugaussian_Pinv(u);
}

void diffsde_i_philox_fill(uint64_t seed, uint32_t stream, uint64_t step, uint64_t sample0,
                           size_t n, size_t d, int normal, double *out)
{
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const size_t pairs = d / 2; /* full blocks per row; an odd d uses half of one more */
    uint32_t ctr[4], w[4];
    for (size_t i = 0; i < n; i++) {
        double *row = out + i * d;
        make_counter(stream, sample0 + i, step, ctr);
        for (size_t p = 0; p < pairs; p++) {
            ctr[0] = (uint32_t)p;
            philox_block(ctr, k0, k1, w);
            row[2 * p] = u64_to_uniform((uint64_t)w[0] | (uint64_t)w[1] << 32);
            row[2 * p + 1] = u64_to_uniform((uint64_t)w[2] | (uint64_t)w[3] << 32);
        }
        if (d & 1u) {
            ctr[0] = (uint32_t)pairs;
            philox_block(ctr, k0, k1, w);
            row[d - 1] = u64_to_uniform((uint64_t)w[0] | (uint64_t)w[1] << 32);
        }
        if (normal)
            for (size_t j = 0; j < d; j++)
                row[j] = gsl_cdf_ugaussian_Pinv(row[j]);
    }
}
