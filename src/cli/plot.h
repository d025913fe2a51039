/*
 * `--plot FILE.png`: pictures of a sample set drawn by gnuplot (pngcairo terminal).
 * For d = 2 the samples are scattered over the exact density (a mixture model) as a shaded
 * map with contour lines, or over a 2-D histogram of the samples; optional trajectories of a
 * few samples are drawn as paths. For d > 2: pairwise scatters of the first coordinates and
 * per-coordinate histograms against the exact marginal densities.
 */
#ifndef DIFFSDE_CLI_PLOT_H
#define DIFFSDE_CLI_PLOT_H

#include <stddef.h>

#include "diffsde.h"

typedef struct cli_plot_spec {
    const char *png;          /* output path (written by rename once gnuplot succeeded) */
    const char *title;        /* shown above the picture */
    size_t n, d;
    const double *x;          /* n × d samples */
    const diffsde_gmm *gmm;   /* exact model, or NULL */
    const diffsde_sde *sde;   /* with gmm: the density is p_t under sde (NULL: p0) */
    double t;                 /* the time of that density */
    size_t ntraj, npts;       /* optional paths: ntraj paths of npts points */
    const double *traj;       /* ntraj × npts × d, or NULL */
} cli_plot_spec;

/* Draw the picture. Returns a CLI exit code (CLI_OK, or CLI_FAILED with a message on stderr
 * naming the problem: gnuplot missing or failing, a file not writable). Nothing is left at
 * spec->png on failure. */
int cli_plot(const char *sub, const cli_plot_spec *spec);

/* The same in two phases, for a command that writes several files and commits them only once
 * all are ready: render draws the complete PNG under a hidden name beside spec->png and
 * returns that name in *partial (malloc'd); commit renames it over the destination; discard
 * removes it. Each prints its error and returns CLI_OK or CLI_FAILED; on failure nothing is
 * left behind. */
int cli_plot_render(const char *sub, const cli_plot_spec *spec, char **partial);
int cli_plot_commit(const char *sub, const char *png, char *partial);
void cli_plot_discard(char *partial);

/* Whether gnuplot can be run (an executable `gnuplot` on PATH): checked before a long run so
 * that a missing plotter fails it at once. Prints the error; returns CLI_OK or CLI_FAILED. */
int cli_plot_available(const char *sub);

#endif /* DIFFSDE_CLI_PLOT_H */
