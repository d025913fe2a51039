/*
 * Internal interface of the noise module: the pinned normal transform of noise.h (normal.c),
 * used by the Philox fills and single draws (philox.c).
 */
#ifndef DIFFSDE_NOISE_IMPL_H
#define DIFFSDE_NOISE_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* Most draws transformed by one diffsde_i_normal_block() call. */
#define DIFFSDE_I_NORMAL_BLOCK 256

/* Scratch of diffsde_i_normal_block() (the tail draws of a block); about 4.5 KiB. */
typedef struct diffsde_i_normal_scratch {
    double tu[DIFFSDE_I_NORMAL_BLOCK]; /* U of each tail draw */
    double ts[DIFFSDE_I_NORMAL_BLOCK]; /* −log p, then s = √(−log p), then the normal */
    uint16_t tidx[DIFFSDE_I_NORMAL_BLOCK]; /* position of each tail draw in the block */
} diffsde_i_normal_scratch;

/* Z = Φ⁻¹(U) as noise.h documents, for U on the grid of odd multiples of 2^-53 in (0, 1). */
double diffsde_i_uniform_to_normal(double u);

/*
 * v[0..m) from uniforms (as above) to normals, in place, m ≤ DIFFSDE_I_NORMAL_BLOCK; values
 * bit-identical to diffsde_i_uniform_to_normal() on every instruction set.
 */
void diffsde_i_normal_block(double *v, size_t m, diffsde_i_normal_scratch *s);

#endif /* DIFFSDE_NOISE_IMPL_H */
