/*
 * Example: a host code that owns the time loop. Two "ranks" (as in an MPI code, here two
 * samplers in one process) each sample half of the batch from the ring8 mixture with the
 * step API, interleaved inside the host's own loop, which does its own work between steps (a
 * running diagnostic of the whole state). Checks that the result is bit-identical to one
 * diffsde_sampler_run() over the whole batch with the same seed, and that the host and the
 * observer saw the documented number of steps. Prints TAP; exits non-zero if wrong.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffsde.h"

enum { STEPS = 400, NS = 2000, D = 2, EVERY = 25 };

struct watch { /* what the observer saw */
    size_t calls, last_step;
};

static int observe(size_t step, size_t n, size_t d, const double *t, const double *x, void *user)
{
    struct watch *w = user;
    (void)n, (void)d, (void)t, (void)x; /* read-only views, valid only during this call */
    w->calls++;
    w->last_step = step;
    return 0; /* non-zero would stop the run */
}

/* One rank: its own model (the exact score object is not thread-safe, so each rank gets
 * one) and sampler, and its slice of the global batch, starting at sample index sample0. */
struct rank {
    diffsde_score *score;
    diffsde_sampler *smp;
    uint64_t sample0;
    size_t n;
    double *x;
};

static int ok_line(int *k, int ok, const char *what)
{
    printf("%s %d - %s\n", ok ? "ok" : "not ok", ++*k, what);
    return ok;
}

int main(void)
{
    diffsde_ctx *ctx = NULL;
    diffsde_sde *vp = NULL;
    diffsde_gmm *ring = NULL;
    diffsde_noise *noise = NULL;
    struct rank r[2] = {{0}};
    struct watch w = {0, 0};
    double *x = malloc(sizeof(double) * NS * D), *xref = malloc(sizeof(double) * NS * D);
    double trace_t[STEPS + 1], trace_r[STEPS + 1]; /* the host's per-step record */
    double times[NS / 2];
    size_t nrec = 0;
    if (!x || !xref || diffsde_ctx_new(&ctx, NULL))
        return 1;

    diffsde_sampler_options opt;
    diffsde_sampler_options_default(&opt);
    opt.steps = STEPS;
    opt.corrector = DIFFSDE_CORRECTOR_ALD; /* per-sample Langevin norms would be biased, and
                                              batch-averaged ones couple a rank's samples */
    int st = diffsde_sde_new_vp(ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &vp);
    if (!st)
        st = diffsde_gmm_new_builtin(ctx, "ring8", &ring);
    if (!st)
        st = diffsde_noise_new_philox(ctx, 7, &noise); /* shared: a Philox source is read only */
    for (int i = 0; i < 2 && !st; i++) {
        r[i].sample0 = i ? NS / 2 : 0; /* rank i owns global samples sample0 .. sample0+n-1 */
        r[i].n = NS / 2;
        r[i].x = x + r[i].sample0 * D; /* row-major: the halves of x are contiguous */
        st = diffsde_gmm_score_new(ring, vp, &r[i].score);
        if (!st)
            st = diffsde_sampler_new(ctx, vp, r[i].score, &opt, &r[i].smp);
        if (!st)
            st = diffsde_sampler_init(r[i].smp, noise, r[i].sample0, r[i].n, D, r[i].x);
    }
    if (!st)
        st = diffsde_sampler_set_observer(r[0].smp, observe, &w, EVERY);

    /* The host's loop: advance each rank that still has work, then do the host's own work.
     * A failed step leaves that rank's x and times as they were, so a host could checkpoint,
     * change something and carry on; here we just report and stop. */
    while (!st && !(diffsde_sampler_done(r[0].smp) && diffsde_sampler_done(r[1].smp))) {
        for (int i = 0; i < 2 && !st; i++)
            if (!diffsde_sampler_done(r[i].smp))
                st = diffsde_sampler_step(r[i].smp, r[i].x);
        double rad = 0;
        if (!st) /* one time per sample (adaptive solvers give each its own) */
            st = diffsde_sampler_get_times(r[0].smp, times);
        for (size_t j = 0; j < NS; j++)
            rad += hypot(x[j * D], x[j * D + 1]) / NS;
        if (!st && nrec <= STEPS) {
            trace_t[nrec] = times[0];
            trace_r[nrec++] = rad;
        }
    }
    for (int i = 0; i < 2 && !st; i++)
        st = diffsde_sampler_finish(r[i].smp, r[i].x); /* the final Tweedie step */
    /* The reference: the whole batch in one call (rank 0's sampler may start a new run now). */
    if (!st)
        st = diffsde_sampler_set_observer(r[0].smp, NULL, NULL, 1);
    if (!st)
        st = diffsde_sampler_run(r[0].smp, noise, 0, NS, D, xref);
    if (st) {
        fprintf(stderr, "host_loop: %s: %s\n", diffsde_status_name(st), diffsde_errmsg(ctx));
        return 1;
    }

    for (size_t s = STEPS / 4; s <= nrec; s += STEPS / 4)
        printf("# host record, step %3zu: t = %.4f, mean |x| = %.4f\n", s, trace_t[s - 1],
               trace_r[s - 1]);
    int k = 0, good = 1;
    printf("1..5\n");
    good &= ok_line(&k, memcmp(x, xref, sizeof(double) * NS * D) == 0,
                    "two interleaved half-batches == one run of the whole batch, bit for bit");
    good &= ok_line(&k, nrec == STEPS, "the host loop ran one iteration per level");
    int decreasing = 1;
    for (size_t s = 1; s < nrec; s++)
        decreasing &= trace_t[s] < trace_t[s - 1];
    double eps;
    diffsde_sde_default_eps(vp, &eps);
    good &= ok_line(&k, decreasing && fabs(trace_t[nrec - 1] - eps) <= 1e-15,
                    "the host saw t decrease at every step, down to eps");
    good &= ok_line(&k, w.calls == STEPS / EVERY && w.last_step == STEPS,
                    "the observer was called every 25 steps, the last at step 400");
    diffsde_sampler_stats stats;
    diffsde_sampler_get_stats(r[1].smp, &stats);
    /* Per level one ald corrector call and one predictor call, plus the denoising call. */
    good &= ok_line(&k, stats.steps == STEPS && stats.score_calls == 2 * STEPS + 1,
                    "rank 1's statistics: 400 steps, 801 score calls");

    for (int i = 0; i < 2; i++) {
        diffsde_sampler_free(r[i].smp);
        diffsde_score_free(r[i].score);
    }
    diffsde_noise_free(noise);
    diffsde_gmm_free(ring);
    diffsde_sde_free(vp);
    diffsde_ctx_free(ctx);
    free(x);
    free(xref);
    return good ? 0 : 1;
}
