/*
 * The private sampler object (public contract: include/diffsde/sampler.h). Options and their
 * validation live in options.c, the enum → stepper tables in registry.c, the score/noise
 * helpers of a level in level.c, and the loop in sampler.c.
 */
#ifndef DIFFSDE_SAMPLER_IMPL_H
#define DIFFSDE_SAMPLER_IMPL_H

#include "sampler/adaptive.h"
#include "sampler/stepper.h"

/* Where a sampler is in its lifecycle. */
typedef enum diffsde_i_sampler_state {
    DIFFSDE_I_SAMPLER_IDLE = 0,    /* created, or the last init failed: no run */
    DIFFSDE_I_SAMPLER_RUNNING = 1, /* initialised, steps remain or finish not yet called */
    DIFFSDE_I_SAMPLER_FINISHED = 2 /* finish succeeded: statistics final */
} diffsde_i_sampler_state;

struct diffsde_sampler {
    diffsde_ctx *ctx;             /* borrowed */
    const diffsde_sde *sde;       /* borrowed */
    const diffsde_score *score;   /* borrowed */
    diffsde_sampler_options opt;  /* copied, with snr and eps resolved (never NaN) */
    const diffsde_i_predictor_type *pred; /* PC only */
    const diffsde_i_corrector_type *corr; /* PC only */
    double T;                     /* the SDE's final time */
    double *table;                /* discrete table on opt.steps levels, or NULL */

    diffsde_observer_fn observer; /* NULL: none */
    void *observer_user;
    size_t observer_every;

    /* The current run. */
    diffsde_i_sampler_state state;
    const diffsde_noise *noise;   /* borrowed for the run */
    uint64_t sample0;
    size_t n, d;
    size_t nstep;                 /* successful step() calls of this run (observer period) */
    size_t level;                 /* PC: levels completed, 0..N */
    double t;                     /* PC: the common time of every sample */
    diffsde_sampler_stats stats;

    /* Workspace: one block holding every array below, sized for cap_nd and cap_n. */
    double *block;
    size_t cap_nd, cap_n;
    double *backup;               /* n × d: x before the current step */
    double *xmean;                /* n × d: the last predictor's mean */
    double *s, *z, *w, *w2;       /* n × d scratch of the level context */
    double *tvec, *wn, *wn2;      /* n scratch */
    diffsde_i_level lv;           /* the level context, re-pointed at each init */

    /* The adaptive solver (method adaptive-sde), sized for (ad_n, ad_d). */
    diffsde_i_adaptive *adaptive;
    size_t ad_n, ad_d;
};

/* Validate *in and write the resolved options (snr and eps defaults filled in) to *out.
 * Messages name the function `fn`, the option and its value. Returns DIFFSDE_OK or
 * DIFFSDE_EPARAM (DIFFSDE_EDOM-free: ε is checked against the SDE's T here). */
int diffsde_i_sampler_options_resolve(diffsde_ctx *ctx, const diffsde_sde *sde,
                                      const diffsde_sampler_options *in,
                                      diffsde_sampler_options *out, const char *fn);

#endif /* DIFFSDE_SAMPLER_IMPL_H */
