/*
 * The internal stepper interface. Every predictor and corrector is one file ending in a
 * `const diffsde_i_predictor_type` / `diffsde_i_corrector_type` table; the driver
 * (sampler.c) finds them by enum in a registry (registry.c) and adapts to their capability
 * flags without switching on names. Steppers never re-derive the reverse SDE: they get the
 * SDE coefficients and the score from the level context below.
 */
#ifndef DIFFSDE_STEPPER_H
#define DIFFSDE_STEPPER_H

#include "core/internal.h"
#include "diffsde/sampler.h"

/* Capability flags. */
enum {
    DIFFSDE_I_NEEDS_TABLE = 1u << 0,  /* uses the SDE's discrete table (β_i or σ_i) */
    DIFFSDE_I_VE_VP_ONLY = 1u << 1,   /* refused for sub-VP and user SDEs */
    DIFFSDE_I_NEEDS_LOGP = 1u << 2,   /* needs the model's log-density (MALA) */
    DIFFSDE_I_USES_NOISE = 1u << 3    /* draws noise (all but "none") */
};

/* What a stepper sees at one level of a PC run. All arrays are n × d unless said. */
typedef struct diffsde_i_level {
    diffsde_ctx *ctx;
    const diffsde_sde *sde;
    const diffsde_score *score;
    const diffsde_noise *noise;
    const diffsde_sampler_options *opt;
    size_t n, d;
    uint64_t sample0;     /* global index of sample 0 */
    size_t level;         /* i in 0..N−1 */
    size_t N;             /* number of levels */
    double t;             /* time of this level (score evaluated here) */
    double dt;            /* > 0: the predictor moves from t to t − dt (EM step size) */
    diffsde_sde_coefs c;  /* SDE coefficients at t */
    const double *table;  /* discrete table on N levels (β_i or σ_i, from
                             diffsde_sde_discrete_table()) when a stepper has
                             DIFFSDE_I_NEEDS_TABLE and the SDE has one; NULL for user SDEs */
    double *tvec;         /* n entries, all equal to t (for score calls) */
    double *s;            /* scratch: the score */
    double *z;            /* scratch: the noise */
    double *w;            /* scratch: one more n × d array */
    double *w2;           /* scratch: a fourth n × d array (MALA: the score at x, kept across
                             its K steps); the driver allocates it like s, z and w */
    double *wn;           /* scratch: n doubles */
    double *wn2;          /* scratch: n doubles */
    diffsde_sampler_stats *stats; /* counters to update (score_calls, score_evals, accepted...) */
} diffsde_i_level;

/* Evaluate the score at (lv->tvec, x) into lv->s, counting the call. Returns a status with
 * the message naming the level and t on failure. */
int diffsde_i_level_score(diffsde_i_level *lv, const double *x);

/* The SDE's discretisation at this level (diffsde_sde_discretize on N levels at lv->t); on
 * failure the message names `what`, the level and t. */
int diffsde_i_level_discretize(diffsde_i_level *lv, const char *what, diffsde_sde_discrete *dd);

/* Fill lv->z with the normals of (stream, step) for this run's samples. */
int diffsde_i_level_noise(diffsde_i_level *lv, uint32_t stream, uint64_t step);

typedef struct diffsde_i_predictor_type {
    const char *name;
    unsigned flags;
    /* One predictor step at lv->t: update x in place; write the noise-free mean x̄ to xmean
     * (reference mode returns the last one). Must not modify anything on failure other than
     * lv's scratch (the driver restores x from its backup). */
    int (*step)(diffsde_i_level *lv, double *x, double *xmean);
} diffsde_i_predictor_type;

typedef struct diffsde_i_corrector_type {
    const char *name;
    unsigned flags;
    /* Corrector step k (0..K−1) at lv->t: update x in place. On failure x is unchanged
     * (every fallible call comes before the first write to x). The driver calls k = 0..K−1
     * in order at one level and touches none of the scratch arrays between them: MALA keeps
     * the score and log-density at x (w2, wn) from step k−1 to step k, and recomputes them
     * at k = 0. */
    int (*step)(diffsde_i_level *lv, size_t k, double *x);
} diffsde_i_corrector_type;

/* The Langevin-family factor a at lv->t (corrector_langevin.c): a = 1 − b_j for VP and
 * sub-VP, with b_j = lv->table[j] the DDPM entry at j = ⌊t (N − 1)/T⌋ (clamped to
 * [0, N − 1], as diffsde_sde_discretize()); a = 1 for VE and user SDEs. Returns
 * DIFFSDE_ESTATE if a VP/sub-VP level has no table, DIFFSDE_EPARAM if a ≤ 0 (the table is
 * invalid: N ≤ βmax); messages name the corrector `who`, the level and t. */
int diffsde_i_langevin_a(const diffsde_i_level *lv, const char *who, double *a);

extern const diffsde_i_predictor_type diffsde_i_predictor_none;
extern const diffsde_i_predictor_type diffsde_i_predictor_euler_maruyama;
extern const diffsde_i_predictor_type diffsde_i_predictor_reverse_diffusion;
extern const diffsde_i_predictor_type diffsde_i_predictor_ancestral;
extern const diffsde_i_corrector_type diffsde_i_corrector_none;
extern const diffsde_i_corrector_type diffsde_i_corrector_langevin;
extern const diffsde_i_corrector_type diffsde_i_corrector_ald;
extern const diffsde_i_corrector_type diffsde_i_corrector_mala;

/* Registry: the table of an enum value, NULL if invalid. */
const diffsde_i_predictor_type *diffsde_i_predictor_lookup(diffsde_predictor p);
const diffsde_i_corrector_type *diffsde_i_corrector_lookup(diffsde_corrector c);

#endif /* DIFFSDE_STEPPER_H */
