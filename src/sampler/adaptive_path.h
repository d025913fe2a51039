/*
 * The Brownian path memories of the adaptive solver's samples ("rejection sampling with
 * memory", Rackauckas & Nie 2017): the algorithm, the noise layout and the limit are stated in
 * adaptive.h ("The Brownian path of a sample", "Noise (pinned)", "Memory of the path"). Internal
 * to sampler/adaptive.c, which carves the storage from its block and calls, per step:
 * plan (for each active sample) → draw → make → [attempts] → commit (for each). Nothing but
 * commit and reset changes a memory, so that a step failing in between leaves them as they
 * were.
 *
 * Per sample i: a stack of depth[i] pieces, piece p the increment of the sample's path over
 * [lo_p, lo_{p+1}] (the top one up to the sample's t), and its fresh and bridge draw counters.
 * Per active entry k of a step (the attempt of sample act[k] over [u_k, t]): the plan.
 *
 * Thread-safety: used by one thread at a time, like the solver.
 */
#ifndef DIFFSDE_ADAPTIVE_PATH_H
#define DIFFSDE_ADAPTIVE_PATH_H

#include "core/internal.h"
#include "diffsde/noise.h"

/* Most stored pieces of a sample's Brownian path (see adaptive.h, "Memory of the path"). */
#define DIFFSDE_I_ADAPTIVE_MAX_PIECES 32

typedef struct diffsde_i_apath {
    size_t n, d;
    double *w;         /* n × MAX_PIECES × d: the pieces' increments, sample-major */
    double *lo;        /* n × MAX_PIECES: their lower ends */
    double *r;         /* n × d: the draws; then the attempt's new part */
    size_t *depth;     /* n: stored pieces */
    uint64_t *nfresh;  /* n: fresh draws made (the next one's step index) */
    uint64_t *nbridge; /* n: bridge draws made */
    /* per active entry k */
    double *u, *blo, *bup; /* t', and the interval drawn over (see diffsde_i_apath_plan) */
    size_t *npop;          /* pieces taken whole */
    unsigned char *draw;   /* DIFFSDE_I_APATH_NONE, _FRESH or _BRIDGE */
    /* since the last reset, over all samples */
    size_t max_depth; /* deepest memory */
    uint64_t merges;  /* rejections that merged two pieces (memory full) */
} diffsde_i_apath;

enum { DIFFSDE_I_APATH_NONE = 0, DIFFSDE_I_APATH_FRESH = 1, DIFFSDE_I_APATH_BRIDGE = 2 };

/* Where a draw failed (for the caller's message). */
typedef struct diffsde_i_apath_failure {
    size_t i, len;   /* samples i .. i + len − 1 of the run */
    uint32_t stream; /* DIFFSDE_STREAM_PREDICTOR or DIFFSDE_STREAM_BRIDGE */
    uint64_t step;
} diffsde_i_apath_failure;

/* Bytes of storage for n samples of dimension d (each array rounded up to 8 bytes), added to
 * *total; -1 (and *total unchanged) when the size overflows size_t. */
int diffsde_i_apath_bytes(size_t n, size_t d, size_t *total);

/* Set up p over the storage at *mem (8-byte aligned, diffsde_i_apath_bytes() long), advancing
 * *mem past it. The memories are then undefined until diffsde_i_apath_reset(). */
void diffsde_i_apath_carve(diffsde_i_apath *p, size_t n, size_t d, unsigned char **mem);

/* Every memory empty, every counter 0 (a run starts). */
void diffsde_i_apath_reset(diffsde_i_apath *p);

/* Plan the increment of sample i (now at t) over [u, t], u < t, as active entry k: the
 * pieces lying in [u, t] taken whole, then a bridge draw splitting the piece [blo, bup] that
 * straddles u, or a fresh draw over [u, bup] below every piece, or no draw. */
void diffsde_i_apath_plan(diffsde_i_apath *p, size_t k, size_t i, double t, double u);

/* The draws of active entries 0..m−1 (act[k] their samples, ascending) into the rows of r:
 * one diffsde_noise_fill_normal() call per run of consecutive samples with the same stream
 * and step, sample i being global sample sample0 + i. Returns DIFFSDE_OK or the noise
 * source's status, with *fail naming the call that failed. */
int diffsde_i_apath_draw(diffsde_i_apath *p, const size_t *act, size_t m,
                         const diffsde_noise *noise, uint64_t sample0,
                         diffsde_i_apath_failure *fail);

/* The increment W of each active entry into row act[k] of z (n × d), the new part into r. */
void diffsde_i_apath_make(diffsde_i_apath *p, const size_t *act, size_t m, double *z);

/* The memory of sample i after the attempt of entry k, accepted or rejected (a rejection
 * with a full memory first merges its two lowest pieces: see adaptive.h). */
void diffsde_i_apath_commit(diffsde_i_apath *p, size_t k, size_t i, int accepted);

#endif /* DIFFSDE_ADAPTIVE_PATH_H */
