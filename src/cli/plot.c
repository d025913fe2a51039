/*
 * `--plot`: the data files and the script for gnuplot's pngcairo terminal, run in a private
 * temporary directory. gnuplot writes the PNG next to its destination under a hidden name,
 * which is renamed over the destination only when gnuplot succeeded, so a failed plot
 * leaves nothing behind.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, posix_spawnp */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/plot.h"

extern char **environ;

#define GRID 160        /* density map resolution (per axis) */
#define HIST_BINS 48    /* per-coordinate histogram bins */
#define MAX_POINTS 20000 /* scatter at most this many samples: more only blackens the picture */
#define MAX_COORDS 3    /* pictures of the first coordinates for d > 2 */

typedef struct plot_dir {
    char path[4096];
    char files[16][64];
    size_t nfiles;
} plot_dir;

static int add_file(plot_dir *pd, const char *name, char *full, size_t len)
{
    if (pd->nfiles == sizeof pd->files / sizeof pd->files[0])
        return -1;
    snprintf(pd->files[pd->nfiles++], sizeof pd->files[0], "%s", name);
    return snprintf(full, len, "%s/%s", pd->path, name) >= (int)len ? -1 : 0;
}

static void remove_dir(plot_dir *pd)
{
    char full[4200];
    for (size_t i = 0; i < pd->nfiles; i++) {
        snprintf(full, sizeof full, "%s/%s", pd->path, pd->files[i]);
        remove(full);
    }
    rmdir(pd->path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A robust range of coordinate j: the 0.1% and 99.9% quantiles, padded by 15%, widened to
 * include the mixture's component centres at t (so that a sampler that missed a mode shows
 * the empty mode). */
static int coord_range(const cli_plot_spec *s, size_t j, double *lo, double *hi)
{
    double *v = malloc(s->n * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        v[i] = s->x[i * s->d + j];
    qsort(v, s->n, sizeof *v, cmp_double);
    double a = v[(size_t)(0.001 * (double)(s->n - 1))];
    double b = v[(size_t)(0.999 * (double)(s->n - 1))];
    free(v);
    if (s->gmm) {
        double alpha = 1.0;
        if (s->sde)
            diffsde_sde_alpha(s->sde, s->t, &alpha);
        size_t D = diffsde_gmm_dim(s->gmm);
        double *mean = malloc(D * sizeof *mean);
        if (!mean)
            return -1;
        for (size_t k = 0; k < diffsde_gmm_ncomponents(s->gmm); k++) {
            if (diffsde_gmm_component(s->gmm, k, NULL, mean, NULL) == DIFFSDE_OK) {
                a = fmin(a, alpha * mean[j]);
                b = fmax(b, alpha * mean[j]);
            }
        }
        free(mean);
    }
    double pad = 0.15 * (b - a);
    if (!(pad > 0))
        pad = 1.0;
    *lo = a - pad;
    *hi = b + pad;
    return 0;
}

static FILE *open_data(const char *sub, plot_dir *pd, const char *name, char *full, size_t len)
{
    if (add_file(pd, name, full, len) != 0) {
        cli_error(sub, "--plot: temporary path too long");
        return NULL;
    }
    FILE *f = fopen(full, "w");
    if (!f)
        cli_error(sub, "--plot: cannot write %s: %s", full, strerror(errno));
    return f;
}

/* Samples (every k-th so that at most MAX_POINTS remain), coordinates a and b. */
static int write_scatter(const char *sub, const cli_plot_spec *s, plot_dir *pd, const char *name,
                         size_t a, size_t b, char *full, size_t len)
{
    FILE *f = open_data(sub, pd, name, full, len);
    if (!f)
        return -1;
    size_t step = s->n > MAX_POINTS ? (s->n + MAX_POINTS - 1) / MAX_POINTS : 1;
    for (size_t i = 0; i < s->n; i += step)
        fprintf(f, "%.9g %.9g\n", s->x[i * s->d + a], s->x[i * s->d + b]);
    return fclose(f) == 0 ? 0 : -1;
}

/* The exact density p_t on a GRID × GRID map of coordinates (0, 1) (d = 2 only), or a 2-D
 * histogram of the samples without a model; returns the largest value in *peak. */
static int write_map(const char *sub, const cli_plot_spec *s, plot_dir *pd, const double box[4],
                     char *full, size_t len, double *peak)
{
    FILE *f = open_data(sub, pd, "map.dat", full, len);
    if (!f)
        return -1;
    double *val = calloc((size_t)GRID * GRID, sizeof *val);
    double *pts = malloc((size_t)GRID * 2 * sizeof *pts), *tv = malloc(GRID * sizeof *tv);
    int rc = val && pts && tv ? 0 : -1;
    const double dx = (box[1] - box[0]) / GRID, dy = (box[3] - box[2]) / GRID;
    if (rc == 0 && s->gmm) {
        diffsde_gmm_eval *ev = NULL;
        if (diffsde_gmm_eval_new(s->gmm, s->sde, &ev) != DIFFSDE_OK) {
            rc = -1;
        } else {
            for (size_t r = 0; r < GRID && rc == 0; r++) {
                for (size_t c = 0; c < GRID; c++) {
                    pts[2 * c] = box[0] + (c + 0.5) * dx;
                    pts[2 * c + 1] = box[2] + (r + 0.5) * dy;
                    tv[c] = s->t;
                }
                if (diffsde_gmm_evaluate(ev, GRID, tv, pts, val + r * GRID, NULL, NULL, NULL) !=
                    DIFFSDE_OK)
                    rc = -1;
                for (size_t c = 0; c < GRID; c++)
                    val[r * GRID + c] = exp(val[r * GRID + c]);
            }
            diffsde_gmm_eval_free(ev);
        }
        if (rc != 0)
            cli_error(sub, "--plot: evaluating the exact density failed");
    } else if (rc == 0) {
        for (size_t i = 0; i < s->n; i++) {
            double u = (s->x[i * s->d] - box[0]) / dx, v = (s->x[i * s->d + 1] - box[2]) / dy;
            if (u >= 0 && u < GRID && v >= 0 && v < GRID)
                val[(size_t)v * GRID + (size_t)u] += 1.0 / ((double)s->n * dx * dy);
        }
    }
    *peak = 0;
    for (size_t r = 0; rc == 0 && r < GRID; r++) {
        for (size_t c = 0; c < GRID; c++) {
            double p = val[r * GRID + c];
            *peak = fmax(*peak, p);
            fprintf(f, "%.9g %.9g %.9g\n", box[0] + (c + 0.5) * dx, box[2] + (r + 0.5) * dy, p);
        }
        fputc('\n', f);
    }
    free(val);
    free(pts);
    free(tv);
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Histogram (density) of coordinate j and the exact marginal Σ w_k N(α μ_kj, α² Σ_kjj + σ²). */
static int write_marginal(const char *sub, const cli_plot_spec *s, plot_dir *pd, size_t j,
                          double lo, double hi, char *hist, char *curve, size_t len)
{
    char name[32];
    snprintf(name, sizeof name, "hist%zu.dat", j);
    FILE *f = open_data(sub, pd, name, hist, len);
    if (!f)
        return -1;
    double counts[HIST_BINS] = {0}, w = (hi - lo) / HIST_BINS;
    for (size_t i = 0; i < s->n; i++) {
        double u = (s->x[i * s->d + j] - lo) / w;
        if (u >= 0 && u < HIST_BINS)
            counts[(size_t)u] += 1.0;
    }
    for (size_t b = 0; b < HIST_BINS; b++)
        fprintf(f, "%.9g %.9g\n", lo + (b + 0.5) * w, counts[b] / ((double)s->n * w));
    if (fclose(f) != 0)
        return -1;
    curve[0] = '\0';
    if (!s->gmm)
        return 0;
    snprintf(name, sizeof name, "exact%zu.dat", j);
    if (!(f = open_data(sub, pd, name, curve, len)))
        return -1;
    size_t D = diffsde_gmm_dim(s->gmm), K = diffsde_gmm_ncomponents(s->gmm);
    double alpha = 1.0, sigma = 0.0;
    if (s->sde) {
        diffsde_sde_alpha(s->sde, s->t, &alpha);
        diffsde_sde_sigma(s->sde, s->t, &sigma);
    }
    double *mean = malloc(D * sizeof *mean), *cov = malloc(D * D * sizeof *cov);
    int rc = mean && cov ? 0 : -1;
    for (int q = 0; rc == 0 && q <= 400; q++) {
        double x = lo + (hi - lo) * q / 400.0, p = 0.0;
        for (size_t k = 0; k < K; k++) {
            double wk;
            diffsde_gmm_component(s->gmm, k, &wk, mean, cov);
            double var = alpha * alpha * cov[j * D + j] + sigma * sigma, r = x - alpha * mean[j];
            p += wk * exp(-0.5 * r * r / var) / sqrt(6.283185307179586 * var);
        }
        fprintf(f, "%.9g %.9g\n", x, p);
    }
    free(mean);
    free(cov);
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static int write_paths(const char *sub, const cli_plot_spec *s, plot_dir *pd, char *full,
                       size_t len)
{
    FILE *f = open_data(sub, pd, "paths.dat", full, len);
    if (!f)
        return -1;
    for (size_t p = 0; p < s->ntraj; p++) {
        for (size_t k = 0; k < s->npts; k++) {
            const double *row = s->traj + (p * s->npts + k) * s->d;
            fprintf(f, "%.9g %.9g\n", row[0], row[1]);
        }
        fputs("\n\n", f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* gnuplot strings are single-quoted: refuse paths that would break the quoting. */
static int quotable(const char *sub, const char *p)
{
    if (strchr(p, '\'') || strchr(p, '\n')) {
        cli_error(sub, "--plot: the path %s contains a quote or newline, which gnuplot's script "
                       "cannot carry; choose another name",
                  p);
        return 0;
    }
    return 1;
}

static int run_gnuplot(const char *sub, const char *script)
{
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (e != 0) {
        cli_error(sub, "--plot: cannot run gnuplot (%s); on Debian: apt-get install gnuplot-nox",
                  strerror(e));
        return -1;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cli_error(sub, "--plot: gnuplot failed (its messages are above)");
        return -1;
    }
    return 0;
}

int cli_plot_render(const char *sub, const cli_plot_spec *s, char **partial_out)
{
    *partial_out = NULL;
    if (s->n < 2 || s->d < 1) {
        cli_error(sub, "--plot: need at least 2 samples");
        return CLI_FAILED;
    }
    if (!quotable(sub, s->png))
        return CLI_USAGE;
    const char *tmp = getenv("TMPDIR");
    plot_dir pd = {.nfiles = 0};
    snprintf(pd.path, sizeof pd.path, "%s/diffsde-plot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!quotable(sub, pd.path))
        return CLI_USAGE;
    if (!mkdtemp(pd.path)) {
        cli_error(sub, "--plot: cannot create a temporary directory under %s: %s",
                  tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return CLI_FAILED;
    }
    /* The PNG goes next to its destination, hidden, and is renamed when complete. */
    char partial[4200];
    const char *slash = strrchr(s->png, '/');
    if (slash)
        snprintf(partial, sizeof partial, "%.*s/.%s.partial", (int)(slash - s->png), s->png,
                 slash + 1);
    else
        snprintf(partial, sizeof partial, ".%s.partial", s->png);

    int rc = CLI_FAILED;
    char script[4200], f1[4200], f2[4200], f3[4200];
    FILE *g = open_data(sub, &pd, "plot.gp", script, sizeof script);
    if (!g)
        goto done;
    fprintf(g,
            "set terminal pngcairo size %d,%d enhanced font 'Sans,10'\n"
            "set output '%s'\n"
            "set key top right opaque box\n",
            s->d == 2 ? 900 : 1200, s->d == 2 ? 820 : 760, partial);
    if (s->d == 1) {
        double lo, hi;
        if (coord_range(s, 0, &lo, &hi) != 0 ||
            write_marginal(sub, s, &pd, 0, lo, hi, f1, f2, sizeof f1) != 0)
            goto script_fail;
        fprintf(g, "set title '%s' noenhanced\nset xlabel 'x'\nset ylabel 'density'\n", s->title);
        fprintf(g, "plot '%s' using 1:2 with boxes fs solid 0.4 lc rgb '#d7301f' title "
                   "'samples'",
                f1);
        if (f2[0])
            fprintf(g, ", '%s' using 1:2 with lines lw 2 lc rgb '#08306b' title 'exact'", f2);
        fputc('\n', g);
    } else if (s->d == 2) {
        double box[4], peak;
        if (coord_range(s, 0, &box[0], &box[1]) != 0 || coord_range(s, 1, &box[2], &box[3]) != 0)
            goto script_fail;
        if (write_map(sub, s, &pd, box, f1, sizeof f1, &peak) != 0 ||
            write_scatter(sub, s, &pd, "samples.dat", 0, 1, f2, sizeof f2) != 0)
            goto script_fail;
        if (s->traj && s->ntraj > 0 && s->npts > 0 &&
            write_paths(sub, s, &pd, f3, sizeof f3) != 0)
            goto script_fail;
        fprintf(g,
                "set title '%s' noenhanced\n"
                "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\nset size ratio -1\n"
                "set xlabel 'x_1'\nset ylabel 'x_2'\n"
                "set palette defined (0 'white', 1 '#deebf7', 2 '#9ecae1', 3 '#3182bd')\n"
                "unset colorbox\n",
                s->title, box[0], box[1], box[2], box[3]);
        if (s->gmm && peak > 0) {
            fprintf(g,
                    "set contour base\nunset surface\nset view map\n"
                    "set cntrparam levels discrete %.9g,%.9g,%.9g,%.9g,%.9g\n"
                    "set table '%s/contours.dat'\nsplot '%s' using 1:2:3 with lines notitle\n"
                    "unset table\nunset contour\n",
                    0.01 * peak, 0.05 * peak, 0.2 * peak, 0.5 * peak, 0.85 * peak, pd.path, f1);
            char unused[4200];
            if (add_file(&pd, "contours.dat", unused, sizeof unused) != 0) /* for removal */
                goto script_fail;
        }
        fprintf(g, "plot '%s' using 1:2:3 with image notitle", f1);
        fprintf(g, ", '%s' using 1:2 with points pt 7 ps 0.22 lc rgb '#d7301f' title 'samples'",
                f2);
        if (s->gmm && peak > 0) /* drawn over the samples, so that a missed mode shows */
            fprintf(g, ", '%s/contours.dat' using 1:2 with lines lw 1.2 lc rgb '#08306b' "
                       "title 'exact density'",
                    pd.path);
        if (s->traj && s->ntraj > 0 && s->npts > 0)
            fprintf(g, ", '%s/paths.dat' using 1:2 with lines lw 1.2 lc rgb '#222222' title "
                       "'paths'",
                    pd.path);
        fputc('\n', g);
    } else {
        size_t m = s->d < MAX_COORDS ? s->d : MAX_COORDS;
        double lo[MAX_COORDS], hi[MAX_COORDS];
        for (size_t j = 0; j < m; j++)
            if (coord_range(s, j, &lo[j], &hi[j]) != 0)
                goto script_fail;
        fprintf(g, "set multiplot layout 2,3 title '%s (first %zu of %zu coordinates)' "
                   "noenhanced\n",
                s->title, m, s->d);
        fputs("unset key\n", g);
        const size_t pairs[3][2] = {{0, 1}, {0, 2}, {1, 2}};
        for (size_t p = 0; p < 3; p++) {
            size_t a = pairs[p][0], b = pairs[p][1];
            if (b >= m) {
                fputs("set multiplot next\n", g);
                continue;
            }
            char name[32];
            snprintf(name, sizeof name, "pair%zu.dat", p);
            if (write_scatter(sub, s, &pd, name, a, b, f1, sizeof f1) != 0)
                goto script_fail;
            fprintf(g,
                    "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\nset xlabel 'x_%zu'\n"
                    "set ylabel 'x_%zu'\nplot '%s' using 1:2 with points pt 7 ps 0.15 "
                    "lc rgb '#d7301f' notitle\n",
                    lo[a], hi[a], lo[b], hi[b], a + 1, b + 1, f1);
        }
        fputs("set key top right opaque box\n", g);
        for (size_t j = 0; j < m; j++) {
            if (write_marginal(sub, s, &pd, j, lo[j], hi[j], f1, f2, sizeof f1) != 0)
                goto script_fail;
            fprintf(g,
                    "set xrange [%.9g:%.9g]\nset autoscale y\nset xlabel 'x_%zu'\n"
                    "set ylabel 'density'\nplot '%s' using 1:2 with boxes fs solid 0.4 "
                    "lc rgb '#d7301f' title 'samples'",
                    lo[j], hi[j], j + 1, f1);
            if (f2[0])
                fprintf(g, ", '%s' using 1:2 with lines lw 2 lc rgb '#08306b' title 'exact'", f2);
            fputc('\n', g);
        }
        fputs("unset multiplot\n", g);
    }
    fputs("set output\n", g);
    if (fclose(g) != 0)
        goto done;
    g = NULL;
    struct stat st;
    if (run_gnuplot(sub, script) != 0) {
        remove(partial);
        goto done;
    }
    if (stat(partial, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        cli_error(sub, "--plot: gnuplot exited without writing %s", partial);
        remove(partial);
        goto done;
    }
    if (!(*partial_out = strdup(partial))) {
        cli_error(sub, "--plot: out of memory");
        remove(partial);
        goto done;
    }
    rc = CLI_OK;
    goto done;
script_fail:
    fclose(g);
done:
    remove_dir(&pd);
    return rc;
}

int cli_plot_commit(const char *sub, const char *png, char *partial)
{
    int rc = CLI_OK;
    if (rename(partial, png) != 0) {
        cli_error(sub, "--plot: cannot rename %s to %s: %s", partial, png, strerror(errno));
        remove(partial);
        rc = CLI_FAILED;
    }
    free(partial);
    return rc;
}

void cli_plot_discard(char *partial)
{
    if (!partial)
        return;
    remove(partial);
    free(partial);
}

int cli_plot(const char *sub, const cli_plot_spec *s)
{
    char *partial = NULL;
    int rc = cli_plot_render(sub, s, &partial);
    return rc == CLI_OK ? cli_plot_commit(sub, s->png, partial) : rc;
}

int cli_plot_available(const char *sub)
{
    /* posix_spawnp's own search, done ahead: every directory of PATH (empty = ".") */
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char full[4200];
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(full, sizeof full, "%.*s/gnuplot", len ? (int)len : 1, len ? p : ".");
        if (access(full, X_OK) == 0)
            return CLI_OK;
        if (!end)
            break;
        p = end;
    }
    cli_error(sub, "--plot: gnuplot not found on PATH; on Debian: apt-get install gnuplot-nox");
    return CLI_FAILED;
}
