/*
 * The diffsde command: a thin shell over the library. Each subcommand is one file exporting
 * one entry point; main.c holds the table. Exit codes: 0 success, 1 the run failed,
 * 2 usage error.
 */
#ifndef DIFFSDE_CLI_H
#define DIFFSDE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "diffsde.h"
#include "diffsde/likelihood.h"
#include "diffsde/ode.h"
#include "diffsde/sampler.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cli_demo(int argc, char **argv);
int cli_decode(int argc, char **argv);
int cli_encode(int argc, char **argv);
int cli_gmm(int argc, char **argv);
int cli_loglik(int argc, char **argv);
/* cli_sample is declared with the sample section below. */
int cli_version(int argc, char **argv);

/* Print "diffsde <sub>: <message>" on stderr (printf-style). */
void cli_error(const char *sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Parse a finite double / a non-negative integer for option --opt; print the error and
 * return -1 on failure. */
int cli_parse_double(const char *sub, const char *opt, const char *text, double *out);
int cli_parse_u64(const char *sub, const char *opt, const char *text, uint64_t *out);
/* A finite double > 0 / an integer in [min, SIZE_MAX] for option --opt (same conventions). */
int cli_parse_positive(const char *sub, const char *opt, const char *text, double *out);
int cli_parse_count(const char *sub, const char *opt, const char *text, uint64_t min,
                    size_t *out);

/* --sde NAME, repeated --sde-param KEY=VALUE, --t T: collected, then turned into an SDE. */
#define CLI_MAX_SDE_PARAMS 8
typedef struct cli_sde_opts {
    const char *name; /* NULL: no SDE (p0 itself) */
    size_t nparams;
    char key_store[CLI_MAX_SDE_PARAMS][32];
    const char *keys[CLI_MAX_SDE_PARAMS];
    double values[CLI_MAX_SDE_PARAMS];
    int have_t;
    double t;
} cli_sde_opts;
int cli_sde_add_param(const char *sub, cli_sde_opts *o, const char *text);
/* Create the SDE (or leave *sde NULL when no --sde was given); with --sde, --t is required and
 * checked against [0, T]. Returns a CLI exit code. */
int cli_sde_create(const char *sub, diffsde_ctx *ctx, const cli_sde_opts *o, diffsde_sde **sde);
/* Create the SDE o->name (required) with its --sde-param overrides, for subcommands without
 * --t (have_t is ignored). Returns a CLI exit code (CLI_USAGE for a bad name, key or value). */
int cli_sde_make(const char *sub, diffsde_ctx *ctx, const cli_sde_opts *o, diffsde_sde **sde);

/* Whether argv[1..] contains --help or -h. */
int cli_wants_help(int argc, char **argv);

/* The directory that will receive `path` (option --opt) must exist and be writable, and path
 * must name a file: found out before a long run rather than after it. Prints the error;
 * returns CLI_OK or CLI_FAILED. */
int cli_check_writable(const char *sub, const char *opt, const char *path);

/* Load the mixture `model` (gmm:...) and its exact score under sde. Prints the error; returns
 * CLI_OK or CLI_FAILED (nothing to free then). */
int cli_model_load(const char *sub, diffsde_ctx *ctx, const char *model, const diffsde_sde *sde,
                   diffsde_gmm **gmm, diffsde_score **score);

/* Read n points of dimension d from --in (.npy 1-D or 2-D, or CSV) into arr (free with
 * diffsde_array_free(ctx, arr)). Prints the error (unreadable, no rows, wrong dimension);
 * returns CLI_OK or CLI_FAILED (nothing to free then). */
int cli_read_points(const char *sub, diffsde_ctx *ctx, const char *path, size_t d,
                    diffsde_array *arr);

/* ---- flow-ODE options shared by sample --sampler ode, encode, decode and loglik (opts.c) ---- */

/* Which ODE options the command line gave, to refuse those that would have no effect. */
typedef struct cli_ode_given {
    int method, steps, grid, rho, rtol, atol, whole_batch;
} cli_ode_given;

/* Parse --method / --grid values; print the error (with the valid names) and return -1. */
int cli_parse_ode_method(const char *sub, const char *text, diffsde_ode_method *m);
int cli_parse_grid(const char *sub, const char *text, diffsde_time_grid *g);

/* Refuse given options that the method ignores: --steps, --grid and --rho with an adaptive
 * method, --rtol, --atol and --whole-batch with a fixed-grid one, --rho off the Karras grid.
 * Prints the error; returns CLI_OK or CLI_USAGE. */
int cli_ode_check_given(const char *sub, const diffsde_ode_options *o, const cli_ode_given *g);

/* The ODE's configuration as JSON members of obj (method, steps, grid, rho, rtol, atol,
 * max_steps, whole_batch, eps, denoise from the resolved options; null where the method does
 * not use a value). Returns 0, or -1 when out of memory. */
int cli_ode_config_json(json_t *obj, const diffsde_ode_options *o);
/* The counters of a solve as members of obj (nfe_per_sample, nfe_min, nfe_max, score_calls,
 * score_evals, denoise_calls, steps, accepted, rejected). Returns 0, or -1. */
int cli_ode_stats_json(json_t *obj, const diffsde_ode_stats *st);
/* Accumulate the counters of one chunk of a solve into a run total (nfe_per_sample is left
 * for the caller, who knows the number of samples). */
void cli_ode_stats_add(diffsde_ode_stats *total, const diffsde_ode_stats *chunk, int first);

/* The SDE's parameters as a JSON object (NULL when out of memory). */
json_t *cli_sde_params_json(const diffsde_sde *sde);
/* A JSON string of a command-line text, non-UTF-8 bytes replaced by '?' (NULL: no memory). */
json_t *cli_json_text(const char *str);
/* The command line as a JSON array starting with "diffsde" (NULL when out of memory). */
json_t *cli_json_argv(int argc, char **argv);

/* ---- diffsde sample (cmd_sample.c), shared with the demo ---------------------------------- */

/* Samples per sampler run: n samples are drawn in chunks of this many (sample0 offsets), which
 * bounds the sampler's workspace; per-sample methods give the same bits for any chunking. */
#define CLI_SAMPLE_CHUNK 4096

/* Everything that defines a run of `diffsde sample`. cli_sample_config_default() fills the
 * defaults; cli_sample_resolve() turns the per-SDE defaults (NaN snr and eps) into values. */
typedef struct cli_sample_config {
    const char *model;           /* gmm:FILE.json | gmm:BUILTIN (required) */
    cli_sde_opts sde;            /* --sde (default "vp") and --sde-param */
    diffsde_sampler_options opt; /* method and its options; snr/eps NaN until resolved */
    int ode;                     /* --sampler ode: the flow ODE instead of opt */
    diffsde_ode_options ode_opt; /* its options; once run, as resolved by the library */
    uint64_t n;                  /* number of samples (required, >= 1) */
    uint64_t seed;               /* Philox seed (default 0) */
    const char *out;             /* samples .npy/.csv (required) */
    const char *report;          /* JSON report, or NULL */
    const char *plot;            /* --plot FILE.png, or NULL */
    size_t plot_paths;           /* --plot-paths K: trajectories of the first K samples */
    int quiet;                   /* no progress line, no summary line */
    json_t *from;                /* --from-report: the parsed report, owning the strings
                                    above that came from it (json_decref when done) */
    int argc;                    /* the command line, recorded in the report */
    char **argv;
} cli_sample_config;

/* What a run produced besides the samples. */
typedef struct cli_sample_result {
    size_t d;                    /* dimension of the model */
    diffsde_sampler_stats stats; /* summed over the chunks; nfe_per_sample over all n */
    diffsde_ode_stats ode_stats; /* the same for --sampler ode, with nfe_min and nfe_max */
    double wall_seconds;         /* sampling wall time (all chunks, prior draw to denoising) */
    int have_metrics;            /* 1 when metrics were computed (mixture model, n >= 2) */
    uint64_t metrics_seed;       /* cli_metrics_seed(seed) */
    double metrics_seconds;      /* time spent on the metrics */
    double metrics_t;            /* time of the exact reference: 0 for p0 (denoised
                                    samples), eps for p_eps (the flow's value at eps) */
    diffsde_metrics metrics;     /* against the exact p_{metrics_t} */
} cli_sample_result;

void cli_sample_config_default(cli_sample_config *c);

/* The seed of the metrics' noise source, derived from the sampling seed S as
 * S XOR 0x6d657472696373 (the ASCII bytes of "metrics"): a different Philox key, so the exact
 * reference sets are independent of the sampler's draws whatever the streams. */
uint64_t cli_metrics_seed(uint64_t seed);

/* Run a configuration: load the model, create the SDE, sample in chunks (progress on stderr
 * when it is a terminal and !quiet), compute the metrics when `want_metrics`, write the
 * samples to c->out and, if c->report, the report — the report is written to a temporary
 * first and renamed only once the samples are in place, so on failure neither file appears.
 * Messages go to stderr prefixed with `sub`. Returns CLI_OK, CLI_FAILED or CLI_USAGE
 * (a configuration the library refuses). */
int cli_sample_execute(const char *sub, cli_sample_config *c, int want_metrics,
                       cli_sample_result *r);

int cli_sample(int argc, char **argv);

/* Most trajectories --plot-paths records. */
#define CLI_MAX_PLOT_PATHS 64

/* --from-report: read the report at `path` and fill c with the run it describes (model, SDE
 * and its parameters, sampler and every option, n, seed, output paths, plot). c->from keeps
 * the document alive for the strings. Checks that the chunk size of the report is this
 * build's when the result depends on it (batch norms, reference, whole batch), and warns on
 * stderr when the report comes from another library version. Prints the error; returns
 * CLI_OK, CLI_FAILED (unreadable) or CLI_USAGE (not a report of diffsde sample). */
int cli_sample_config_from_report(const char *sub, const char *path, cli_sample_config *c);

/* ---- progress line on stderr (progress.c) ------------------------------------------------- */

/* Monotonic clock in seconds. */
double cli_now(void);

typedef struct cli_progress {
    int enabled;       /* print at all: !quiet and stderr is a terminal */
    int shown;         /* a line is on the screen */
    double start;      /* cli_now() at cli_progress_start() */
    double last;       /* time of the last line printed */
    size_t width;      /* length of the last line, to blank it */
} cli_progress;

/* Start timing; enabled only when !quiet and isatty(stderr). */
void cli_progress_start(cli_progress *p, int quiet);
/* Show "P%  [chunk C/M]  step S  t T  NFE/sample F  elapsed E  left ~L", L extrapolated from
 * the fraction done (in [0, 1], over the whole run); the chunk only when nchunks > 1. Redrawn
 * in place at most 5 times a second (force: draw now). */
void cli_progress_update(cli_progress *p, double fraction, size_t chunk, size_t nchunks,
                         size_t step, double t, double nfe_per_sample, int force);
/* Erase the line. */
void cli_progress_end(cli_progress *p);

/* ---- JSON run reports (report.c) ----------------------------------------------------------- */

/* A JSON real, or null for NaN/Inf (JSON has no such numbers). */
json_t *cli_json_real(double v);
/* A JSON integer when v <= INT64_MAX, otherwise its decimal string (JSON integers beyond
 * 2^63 - 1 do not survive most readers). */
json_t *cli_json_u64(uint64_t v);
/* The metrics as a JSON object (NULL when out of memory). */
json_t *cli_report_metrics(const diffsde_metrics *m);
/* The report of a `diffsde <s>` sampling run (NULL when out of memory): program, version,
 * command line, the configuration with every effective value (SDE parameters included),
 * seed, n, d, the counters (nfe_per_sample, score_calls, score_evals, denoise_calls, steps,
 * accepted, rejected), wall_seconds, and the metrics (null when not computed; then
 * metrics_error says why, if given). */
json_t *cli_sample_report(const char *s, const cli_sample_config *c, const diffsde_sde *sde,
                          const cli_sample_result *r, const char *metrics_error);

/* Two-phase atomic write of a JSON document to `path`: prepare writes it completely to a new
 * temporary in the same directory (O_CREAT | O_EXCL, fsync'd) and returns its name in *tmp
 * (malloc'd); commit renames it over `path`; discard unlinks it. Each prints its error and
 * returns CLI_OK or CLI_FAILED; on failure nothing is left behind. */
int cli_report_prepare(const char *sub, const char *path, const json_t *doc, char **tmp);
int cli_report_commit(const char *sub, const char *path, char *tmp);
void cli_report_discard(char *tmp);

#endif /* DIFFSDE_CLI_H */
