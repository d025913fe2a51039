/*
 * `diffsde sample --plot-paths K`: the trajectories of the first K samples (2-D models), kept
 * at most PATH_CAP points per path. The samplers give them through their observer; the flow
 * ODE has none, so its paths come from integrating the same starting points again.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/sample_paths.h"

int cli_paths_init(cli_path_rec *pr, size_t k)
{
    memset(pr, 0, sizeof *pr);
    pr->k = k;
    pr->stride = 1;
    pr->buf = malloc((size_t)PATH_CAP * k * 2 * sizeof *pr->buf);
    return pr->buf ? 0 : -1;
}

/* Append the first k rows of x (rows of d = 2); a full buffer keeps its even points. */
void cli_paths_add(cli_path_rec *pr, const double *x)
{
    if (pr->npts == PATH_CAP) {
        for (size_t p = 0; 2 * p < PATH_CAP; p++)
            memcpy(pr->buf + p * pr->k * 2, pr->buf + 2 * p * pr->k * 2,
                   pr->k * 2 * sizeof *pr->buf);
        pr->npts = (PATH_CAP + 1) / 2;
        pr->stride *= 2;
    }
    memcpy(pr->buf + pr->npts * pr->k * 2, x, pr->k * 2 * sizeof *x);
    pr->npts++;
}

int cli_paths_observe(size_t step, size_t n, size_t d, const double *t, const double *x,
                      void *user)
{
    (void)step, (void)n, (void)d, (void)t;
    cli_path_rec *pr = user;
    if (++pr->calls % pr->stride == 0)
        cli_paths_add(pr, x);
    return 0;
}

/* Path-major copy (k × npts × 2) as cli_plot wants it; NULL when out of memory. */
double *cli_paths_layout(const cli_path_rec *pr)
{
    double *out = malloc(pr->k * pr->npts * 2 * sizeof *out);
    for (size_t i = 0; out && i < pr->k; i++)
        for (size_t p = 0; p < pr->npts; p++)
            memcpy(out + (i * pr->npts + p) * 2, pr->buf + (p * pr->k + i) * 2,
                   2 * sizeof *out);
    return out;
}

/* Methods whose every step starts afresh from (t_k, x_k): a solve over one grid interval with
 * one step is exactly that step of the N-step solve. */
static int one_step_method(diffsde_ode_method m)
{
    return m == DIFFSDE_ODE_EULER || m == DIFFSDE_ODE_HEUN || m == DIFFSDE_ODE_RK4 ||
           m == DIFFSDE_ODE_DDIM;
}

/* The flow ODE has no observer: integrate the first k prior draws (the samples' own starting
 * points) again, segment by segment, recording the state between segments. One-step
 * fixed-grid methods take the segments of their own grid, one step each, so the paths pass
 * through the very states of the samples; the others integrate with the same integrator over
 * PATH_SEGMENTS segments uniform in log-SNR, a separate solve that agrees with the samples to
 * the method's accuracy (neither path includes the final denoising step). */
#define PATH_SEGMENTS 100
int cli_paths_ode(const char *s, diffsde_ctx *ctx, diffsde_ode *ode, const diffsde_sde *sde,
                  const diffsde_score *score, const diffsde_noise *noise,
                  const cli_sample_config *c, cli_path_rec *pr)
{
    const diffsde_ode_options *o = &c->ode_opt;
    int own = one_step_method(o->method);
    size_t nseg = own ? o->steps : PATH_SEGMENTS, k = pr->k;
    double T, *times = malloc((nseg + 1) * sizeof *times), x[CLI_MAX_PLOT_PATHS * 2];
    diffsde_ode *seg = NULL;
    diffsde_sde_time_range(sde, NULL, &T);
    int st = times ? DIFFSDE_OK : DIFFSDE_ENOMEM;
    if (st == DIFFSDE_OK)
        st = diffsde_time_grid_make(sde, own ? o->grid : DIFFSDE_GRID_LOGSNR, o->rho, T, o->eps,
                                    nseg, times);
    if (st == DIFFSDE_OK && own) {
        diffsde_ode_options one = *o;
        one.steps = 1;
        one.denoise = 0;
        st = diffsde_ode_new(ctx, sde, score, &one, &seg);
    }
    if (st == DIFFSDE_OK)
        st = diffsde_sde_prior_sample(sde, noise, 0, k, 2, x);
    if (st == DIFFSDE_OK)
        cli_paths_add(pr, x);
    for (size_t j = 0; st == DIFFSDE_OK && j < nseg; j++) {
        st = diffsde_ode_solve(own ? seg : ode, times[j], times[j + 1], k, 2, x);
        if (st == DIFFSDE_OK && ((j + 1) % pr->stride == 0 || j + 1 == nseg))
            cli_paths_add(pr, x);
    }
    if (st != DIFFSDE_OK)
        cli_error(s, "--plot-paths: %s", st == DIFFSDE_ENOMEM && !times ? "out of memory"
                                                                        : diffsde_errmsg(ctx));
    diffsde_ode_free(seg);
    free(times);
    return st == DIFFSDE_OK ? CLI_OK : CLI_FAILED;
}

