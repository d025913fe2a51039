/*
 * `diffsde sample --plot-paths K`: recording the trajectories of the first K samples of a
 * 2-D model for the picture (sample_paths.c).
 */
#ifndef DIFFSDE_CLI_SAMPLE_PATHS_H
#define DIFFSDE_CLI_SAMPLE_PATHS_H

#include <stddef.h>

#include "cli/cli.h"

#define PATH_CAP 512 /* points kept per path: beyond, every other one is dropped */

typedef struct cli_path_rec {
    size_t k;      /* paths */
    size_t npts;   /* points recorded so far */
    size_t stride; /* record every stride-th observation (doubles when the buffer fills) */
    size_t calls;  /* observations so far */
    double *buf;   /* PATH_CAP × k × 2: point p of path i at buf[(p k + i) 2]; caller frees */
} cli_path_rec;

/* Allocate room for k paths; -1 when out of memory. */
int cli_paths_init(cli_path_rec *pr, size_t k);
/* Append the first k rows of x (rows of d = 2); a full buffer keeps its even points. */
void cli_paths_add(cli_path_rec *pr, const double *x);
/* A sampler observer (diffsde_observer_fn) recording into the cli_path_rec `user`. */
int cli_paths_observe(size_t step, size_t n, size_t d, const double *t, const double *x,
                      void *user);
/* Path-major copy (k × npts × 2) as cli_plot wants it (caller frees); NULL when out of memory. */
double *cli_paths_layout(const cli_path_rec *pr);
/* The flow ODE's paths: the first k prior draws integrated again segment by segment (see
 * sample_paths.c). Returns a CLI exit code, with the message printed. */
int cli_paths_ode(const char *s, diffsde_ctx *ctx, diffsde_ode *ode, const diffsde_sde *sde,
                  const diffsde_score *score, const diffsde_noise *noise,
                  const cli_sample_config *c, cli_path_rec *pr);

#endif /* DIFFSDE_CLI_SAMPLE_PATHS_H */
