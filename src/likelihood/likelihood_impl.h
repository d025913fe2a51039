/*
 * The likelihood's augmented ODE: for each point, the flow state x (d components) and the
 * running integral of the flow's divergence (one more), y = (x, δ) with
 *     x' = f x − ½ g² s(x, t),    δ' = ∇·v = d·f − ½ g² ∇·s(x, t),
 * as a system of the ODE driver (ode/ode_impl.h), so that every integrator that does not need
 * the flow's structure can solve it.
 *
 * Every score evaluation of one right-hand side call goes into as few model calls as the
 * scratch allows: the points x ± h u of all rows and directions, then the m base points x.
 */
#ifndef DIFFSDE_LIKELIHOOD_IMPL_H
#define DIFFSDE_LIKELIHOOD_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "diffsde/likelihood.h"
#include "ode/ode_impl.h"

/* How ∇·s is formed. */
typedef enum diffsde_i_divmode {
    DIFFSDE_I_DIV_CALLBACK = 0, /* the model's divergence callback */
    DIFFSDE_I_DIV_AXES = 1,     /* d central differences along the coordinate axes */
    DIFFSDE_I_DIV_PROBES = 2    /* Hutchinson: K central differences along fixed probes */
} diffsde_i_divmode;

/* Upper bound on the doubles of the evaluation scratch (32 MiB), unless one pair of
 * perturbed points alone needs more. Sized once per batch size, never per call. */
#define DIFFSDE_I_LOGLIK_SCRATCH_DOUBLES ((size_t)1 << 22)

typedef struct diffsde_i_augsys {
    diffsde_ctx *ctx; /* where messages go */
    const diffsde_sde *sde;
    const diffsde_score *score;
    size_t d;
    diffsde_i_divmode mode;
    size_t K;       /* directions per point: 0 (callback), d (axes), probes (Hutchinson) */
    double fd_step; /* the finite-difference step; NaN: automatic */
    /* Per batch (set by diffsde_i_augsys_bind before each solve). */
    size_t n;               /* rows of the batch */
    uint64_t sample0;       /* global index of row 0, for messages */
    const double *probe_u;  /* K × n × d unit-RMS probe directions (PROBES) */
    const double *probe_r2; /* K × n: squared RMS of each probe draw (PROBES) */
    double *scratch;        /* diffsde_i_augsys_scratch_len() doubles */
    size_t chunk;           /* points per model call */
    uint64_t div_calls;     /* divergence-callback invocations */
    diffsde_i_odesys sys;   /* w = d + 1, rhs below, self = this struct */
} diffsde_i_augsys;

/* Initialise (no allocation). K: probes for PROBES, ignored otherwise. */
void diffsde_i_augsys_init(diffsde_i_augsys *a, diffsde_ctx *ctx, const diffsde_sde *sde,
                           const diffsde_score *score, size_t d, diffsde_i_divmode mode, size_t K,
                           double fd_step);

/* Points per model call and doubles of scratch for batches of up to n rows: all of one rhs
 * call's points when they fit DIFFSDE_I_LOGLIK_SCRATCH_DOUBLES, else as many as fit (an even
 * number, at least one ± pair). DIFFSDE_ESIZE on overflow (no message). */
int diffsde_i_augsys_scratch_len(const diffsde_i_augsys *a, size_t n, size_t *chunk,
                                 size_t *len);

/* Attach a batch's probes and scratch (sized by diffsde_i_augsys_scratch_len for n). */
void diffsde_i_augsys_bind(diffsde_i_augsys *a, size_t n, uint64_t sample0, const double *probe_u,
                           const double *probe_r2, double *scratch, size_t chunk);

/* The Hutchinson probes of a batch: slab k (n × d) is the PROBE stream at step k for global
 * samples sample0.., Rademacher (their signs) or Gaussian, stored as unit-RMS directions u
 * with the squared RMS r2 of the draw (v = √r2 · u). u: K × n × d, r2: K × n. Noise errors
 * are restated on ctx with fname. */
int diffsde_i_probes_fill(diffsde_ctx *ctx, const char *fname, const diffsde_noise *noise,
                          diffsde_probe kind, size_t K, uint64_t sample0, size_t n, size_t d,
                          double *u, double *r2);

#endif /* DIFFSDE_LIKELIHOOD_IMPL_H */
