/*
 * diffsde loglik: log p_eps(x) of each point of --in through the probability-flow ODE
 * (instantaneous change of variables, diffsde/likelihood.h), written as one value per input
 * row; the mean, its standard error and bits per dimension on stdout and in the report.
 *
 * Two figures make the result checkable on a mixture model, where the exact answer is known:
 * - the prior mismatch, mean over the points of log prior(x(T)) − log p_T(x(T)) at their
 *   latents: what the standard prior as terminal density adds to log p (of order 1e-3–1e-2
 *   nats on the standard problems); with --terminal exact it is not in log p;
 * - the exact log p_eps of the same points (of the dequantised points with --dequantize,
 *   drawn again here from the same documented stream) and the mean error against it, which
 *   with --terminal exact is the integration and divergence error alone.
 *
 * Exit status: 0 success; 1 the run failed (input unreadable or of the wrong dimension, a
 * failed solve, an output that cannot be written); 2 usage error (including configurations
 * the library refuses: a few-step method, dequantisation without a bin width). On failure no
 * output file is written.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char sub[] = "loglik";

/* score_sde's likelihood eps, the library's default for every SDE. */
#define LOGLIK_EPS 1e-5

static void help(void)
{
    printf(
        "usage: diffsde loglik --model MODEL --in FILE --out FILE [options]\n"
        "\n"
        "Computes log p_eps(x) for each point x of FILE by integrating the probability-\n"
        "flow ODE from eps to T together with the divergence of its drift:\n"
        "  log p_eps(x) = log p_T(x(T)) + int_eps^T div v(x(t), t) dt,\n"
        "and prints the mean, its standard error and bits per dimension. With a mixture\n"
        "model it also reports the exact log p_eps of the points and the error against it.\n"
        "\n"
        "model and SDE:\n"
        "  --model MODEL        gmm:FILE.json or gmm:NAME, NAME one of ring8, grid25,\n"
        "                       gauss1, random:D,K,SEED (required)\n"
        "  --sde SDE            ve, vp or subvp (default: vp)\n"
        "  --sde-param K=V      override an SDE parameter, repeatable: sigma_min,\n"
        "                       sigma_max for ve; beta_min, beta_max for vp and subvp\n"
        "                       (default: the SDE's own: 0.01, 50; 0.1, 20)\n"
        "  --eps E              time of the data, 0 < E < T (default: 1e-5 for every SDE)\n"
        "likelihood:\n"
        "  --divergence D       exact (the model's divergence, or d finite differences)\n"
        "                       or hutchinson (a fixed-probe estimate) (default: exact)\n"
        "  --probes K           Hutchinson probes averaged, K >= 1 (hutchinson; default: 1)\n"
        "  --probe P            rademacher or gaussian (hutchinson; default: rademacher)\n"
        "  --terminal T         density at T closing the formula: prior (the SDE's\n"
        "                       N(0, s^2 I)) or exact (the model's own log p_T)\n"
        "                       (default: prior)\n"
        "  --bin-width B        width of the data's quantisation bins in the units the\n"
        "                       model sees (8-bit images scaled to [-1, 1]: 2/256), >= 0;\n"
        "                       bits/dim are then those of the discrete data:\n"
        "                       -(log p + d log B)/(d log 2) (default: 0, continuous data:\n"
        "                       -log p/(d log 2))\n"
        "  --dequantize         evaluate at x + B u, u uniform in [0, 1)^d (needs\n"
        "                       --bin-width) (default: off)\n"
        "  --seed S             Philox seed of the probes and the dequantisation\n"
        "                       (hutchinson or --dequantize; default: 0)\n");
    printf(
        "integrator:\n"
        "  --method M           euler, heun, rk4 (fixed grid); rk45, cvode-adams,\n"
        "                       cvode-bdf, arkode-dp, gsl-rkf45, gsl-rk8pd, gsl-msadams\n"
        "                       (adaptive) (default: rk45)\n"
        "  --rtol R             relative tolerance, > 0 (adaptive methods; default: 1e-5)\n"
        "  --atol A             absolute tolerance, > 0 (adaptive methods; default: 1e-5)\n"
        "  --steps N            steps of a fixed-grid method, N >= 1 (default: 100)\n"
        "input and output:\n"
        "  --in FILE            the points, .npy (float64/float32) or .csv, shape (n, d)\n"
        "                       (required)\n"
        "  --out FILE           log p of each point in nats, .npy float64 of shape (n,),\n"
        "                       or one value per line if FILE ends in .csv; written\n"
        "                       atomically (required)\n"
        "  --report FILE        JSON report: configuration with every default filled in,\n"
        "                       library version, seed, n, d, mean, std_error, bpd,\n"
        "                       nfe_per_sample, the prior-mismatch term and, for\n"
        "                       mixtures, the exact mean and the mean error (default:\n"
        "                       none)\n"
        "  --quiet              no progress line, no summary (default: a progress line\n"
        "                       on stderr if it is a terminal and the points are more\n"
        "                       than one chunk, the summary on stdout)\n"
        "  --help               this text\n"
        "\n"
        "Options that would have no effect (--probes, --probe without hutchinson;\n"
        "--seed without hutchinson or --dequantize; --steps with an adaptive method;\n"
        "--rtol, --atol with a fixed-grid one) are usage errors.\n"
        "\n"
        "exit status: 0 success, 1 the run failed, 2 usage error; on failure no output\n"
        "file is written.\n"
        "\n"
        "examples:\n"
        "  diffsde gmm sample --model gmm:ring8 --n 1000 --seed 1 --out x.npy\n"
        "  diffsde loglik --model gmm:ring8 --sde vp --in x.npy --out logp.npy \\\n"
        "      --divergence exact --terminal exact --rtol 1e-8 --atol 1e-8\n"
        "  diffsde loglik --model gmm:ring8 --in x.npy --out logp.npy \\\n"
        "      --divergence hutchinson --probes 4 --probe gaussian --seed 7\n");
}

typedef struct loglik_opts {
    const char *model, *in, *out, *report;
    cli_sde_opts sde;
    diffsde_loglik_options ll;
    uint64_t seed;
    int quiet;
    int argc;
    char **argv;
} loglik_opts;

static int parse(int argc, char **argv, loglik_opts *o)
{
    enum {
        O_MODEL = 1, O_SDE, O_SDE_PARAM, O_EPS, O_DIV, O_PROBES, O_PROBE, O_TERMINAL, O_BIN,
        O_DEQUANT, O_SEED, O_METHOD, O_RTOL, O_ATOL, O_STEPS, O_IN, O_OUT, O_REPORT, O_QUIET
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"sde", required_argument, NULL, O_SDE},
        {"sde-param", required_argument, NULL, O_SDE_PARAM},
        {"eps", required_argument, NULL, O_EPS},
        {"divergence", required_argument, NULL, O_DIV},
        {"probes", required_argument, NULL, O_PROBES},
        {"probe", required_argument, NULL, O_PROBE},
        {"terminal", required_argument, NULL, O_TERMINAL},
        {"bin-width", required_argument, NULL, O_BIN},
        {"dequantize", no_argument, NULL, O_DEQUANT},
        {"seed", required_argument, NULL, O_SEED},
        {"method", required_argument, NULL, O_METHOD},
        {"rtol", required_argument, NULL, O_RTOL},
        {"atol", required_argument, NULL, O_ATOL},
        {"steps", required_argument, NULL, O_STEPS},
        {"in", required_argument, NULL, O_IN},
        {"out", required_argument, NULL, O_OUT},
        {"report", required_argument, NULL, O_REPORT},
        {"quiet", no_argument, NULL, O_QUIET},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->sde.name = "vp";
    diffsde_loglik_options_default(&o->ll);
    o->ll.ode.eps = LOGLIK_EPS;
    diffsde_ode_options *ode = &o->ll.ode;
    cli_ode_given g = {0};
    int have_probes = 0, have_probe = 0, have_seed = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long_only(argc, argv, ":", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case O_MODEL: o->model = optarg; break;
        case O_SDE: o->sde.name = optarg; break;
        case O_SDE_PARAM: bad = cli_sde_add_param(sub, &o->sde, optarg); break;
        case O_EPS: bad = cli_parse_positive(sub, "eps", optarg, &ode->eps); break;
        case O_DIV:
            if (diffsde_divergence_from_name(optarg, &o->ll.divergence) != DIFFSDE_OK) {
                cli_error(sub, "--divergence: unknown divergence '%s' (exact or hutchinson)",
                          optarg);
                bad = 1;
            }
            break;
        case O_PROBES:
            have_probes = 1;
            bad = cli_parse_count(sub, "probes", optarg, 1, &o->ll.probes);
            break;
        case O_PROBE:
            have_probe = 1;
            if (diffsde_probe_from_name(optarg, &o->ll.probe) != DIFFSDE_OK) {
                cli_error(sub, "--probe: unknown probe '%s' (rademacher or gaussian)", optarg);
                bad = 1;
            }
            break;
        case O_TERMINAL:
            if (diffsde_terminal_from_name(optarg, &o->ll.terminal) != DIFFSDE_OK) {
                cli_error(sub, "--terminal: unknown terminal density '%s' (prior or exact)",
                          optarg);
                bad = 1;
            }
            break;
        case O_BIN:
            bad = cli_parse_double(sub, "bin-width", optarg, &o->ll.bin_width);
            if (!bad && !(o->ll.bin_width >= 0)) {
                cli_error(sub, "--bin-width: must be >= 0 (got %s)", optarg);
                bad = 1;
            }
            break;
        case O_DEQUANT: o->ll.dequantize = 1; break;
        case O_SEED: have_seed = 1; bad = cli_parse_u64(sub, "seed", optarg, &o->seed); break;
        case O_METHOD: g.method = 1; bad = cli_parse_ode_method(sub, optarg, &ode->method); break;
        case O_RTOL: g.rtol = 1; bad = cli_parse_positive(sub, "rtol", optarg, &ode->rtol); break;
        case O_ATOL: g.atol = 1; bad = cli_parse_positive(sub, "atol", optarg, &ode->atol); break;
        case O_STEPS:
            g.steps = 1;
            bad = cli_parse_count(sub, "steps", optarg, 1, &ode->steps);
            break;
        case O_IN: o->in = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_REPORT: o->report = optarg; break;
        case O_QUIET: o->quiet = 1; break;
        case ':':
            cli_error(sub, "option %s needs a value (see diffsde loglik --help)",
                      argv[optind - 1]);
            return CLI_USAGE;
        default:
            cli_error(sub, "unknown option '%s' (see diffsde loglik --help)", argv[optind - 1]);
            return CLI_USAGE;
        }
        if (bad)
            return CLI_USAGE;
    }
    if (optind < argc) {
        cli_error(sub, "unexpected argument '%s' (see diffsde loglik --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!o->model) {
        cli_error(sub, "--model is required (e.g. --model gmm:ring8)");
        return CLI_USAGE;
    }
    if (!o->in || !o->out) {
        cli_error(sub, "--%s is required (e.g. --%s %s)", o->in ? "out" : "in",
                  o->in ? "out" : "in", o->in ? "logp.npy" : "data.npy");
        return CLI_USAGE;
    }
    if (strcmp(o->in, o->out) == 0 || (o->report && (strcmp(o->report, o->out) == 0 ||
                                                     strcmp(o->report, o->in) == 0))) {
        cli_error(sub, "--in, --out and --report must name different files");
        return CLI_USAGE;
    }
    int hutchinson = o->ll.divergence == DIFFSDE_DIVERGENCE_HUTCHINSON;
    if ((have_probes || have_probe) && !hutchinson) {
        cli_error(sub, "%s applies to --divergence hutchinson only",
                  have_probes ? "--probes" : "--probe");
        return CLI_USAGE;
    }
    if (o->ll.dequantize && !(o->ll.bin_width > 0)) {
        cli_error(sub, "--dequantize needs --bin-width B > 0 (the width of the data's bins)");
        return CLI_USAGE;
    }
    if (have_seed && !hutchinson && !o->ll.dequantize) {
        cli_error(sub, "--seed has no effect without --divergence hutchinson or --dequantize");
        return CLI_USAGE;
    }
    return cli_ode_check_given(sub, ode, &g);
}

/* What a run computed besides the values. */
typedef struct loglik_summary {
    size_t n, d;
    double mean, std_error, bpd;
    diffsde_ode_stats ode;
    uint64_t div_calls;
    double mismatch_mean, mismatch_se; /* log prior(x_T) − log p_T(x_T) at the latents */
    int have_exact;
    double exact_mean, error_mean, error_se, error_max; /* vs the exact log p_eps */
    double wall_seconds;
} loglik_summary;

/* Mean and standard error (sd/√n, 0 for n = 1) of n values a_i − b_i (b NULL: of a). */
static void mean_se(size_t n, const double *a, const double *b, double *mean, double *se)
{
    double m = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        m += a[i] - (b ? b[i] : 0);
    m /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double e = a[i] - (b ? b[i] : 0) - m;
        ss += e * e;
    }
    *mean = m;
    *se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0;
}

/* Evaluate log p for all points in chunks (probes and dequantisation are indexed by the
 * global point, so the chunking changes nothing). */
static int evaluate(diffsde_ctx *ctx, diffsde_loglik *ll, const diffsde_noise *noise, size_t n,
                    size_t d, const double *x, double *logp, double *latent, loglik_summary *s,
                    int quiet, double T)
{
    size_t chunk = n < CLI_SAMPLE_CHUNK ? n : CLI_SAMPLE_CHUNK;
    size_t nchunks = (n + chunk - 1) / chunk;
    /* No step hook: the progress line (a terminal only) advances by chunks. */
    cli_progress prog;
    cli_progress_start(&prog, quiet || nchunks == 1);
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t nc = n - i0 < chunk ? n - i0 : chunk;
        if (diffsde_loglik_eval(ll, noise, (uint64_t)i0, nc, d, x + i0 * d, logp + i0,
                                latent + i0 * d, NULL, NULL) != DIFFSDE_OK) {
            cli_progress_end(&prog);
            if (nc < n)
                cli_error(sub, "points %zu..%zu: %s", i0, i0 + nc - 1, diffsde_errmsg(ctx));
            else
                cli_error(sub, "%s", diffsde_errmsg(ctx));
            return CLI_FAILED;
        }
        diffsde_loglik_stats st;
        diffsde_loglik_get_stats(ll, &st);
        cli_ode_stats_add(&s->ode, &st.ode, i0 == 0);
        s->div_calls += st.div_calls;
        cli_progress_update(&prog, (double)(i0 + nc) / (double)n, i0 / chunk + 1, nchunks,
                            s->ode.steps, T, (double)s->ode.score_evals / (double)(i0 + nc), 1);
    }
    cli_progress_end(&prog);
    s->ode.nfe_per_sample = (double)s->ode.score_evals / (double)n;
    return CLI_OK;
}

/* The prior-mismatch term at the latents and the exact log p_eps of the (dequantised)
 * points. A failure here is reported (exit 1): these are what the run is checked by. */
static int check_exact(diffsde_ctx *ctx, const loglik_opts *o, const diffsde_sde *sde,
                       const diffsde_gmm *gmm, const diffsde_score *score,
                       const diffsde_noise *noise, const double *x, const double *logp,
                       const double *latent, loglik_summary *s)
{
    size_t n = s->n, d = s->d;
    double T;
    diffsde_sde_time_range(sde, NULL, &T);
    double *t = malloc(n * sizeof *t), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    double *xq = o->ll.dequantize ? malloc(n * d * sizeof *xq) : NULL;
    diffsde_gmm_eval *ev = NULL;
    int rc = CLI_OK;
    if (!t || !a || !b || (o->ll.dequantize && !xq)) {
        cli_error(sub, "out of memory");
        rc = CLI_FAILED;
    }
    if (rc == CLI_OK) {
        for (size_t i = 0; i < n; i++)
            t[i] = T;
        if (diffsde_sde_prior_logpdf(sde, n, d, latent, a) != DIFFSDE_OK ||
            diffsde_score_eval_logp(score, n, d, t, latent, b) != DIFFSDE_OK) {
            cli_error(sub, "log-density at the latents: %s", diffsde_errmsg(ctx));
            rc = CLI_FAILED;
        } else {
            mean_se(n, a, b, &s->mismatch_mean, &s->mismatch_se);
        }
    }
    const double *pts = x;
    if (rc == CLI_OK && o->ll.dequantize) {
        /* The library's documented draw: u of stream DEQUANT, step 0, point sample0 + i. */
        if (diffsde_noise_fill_uniform(noise, DIFFSDE_STREAM_DEQUANT, 0, 0, n, d, xq) !=
            DIFFSDE_OK) {
            cli_error(sub, "dequantisation noise: %s", diffsde_errmsg(ctx));
            rc = CLI_FAILED;
        } else {
            for (size_t k = 0; k < n * d; k++)
                xq[k] = x[k] + o->ll.bin_width * xq[k];
            pts = xq;
        }
    }
    if (rc == CLI_OK) {
        for (size_t i = 0; i < n; i++)
            t[i] = o->ll.ode.eps;
        if (diffsde_gmm_eval_new(gmm, sde, &ev) != DIFFSDE_OK ||
            diffsde_gmm_evaluate(ev, n, t, pts, a, NULL, NULL, NULL) != DIFFSDE_OK) {
            cli_error(sub, "exact log p_eps: %s", diffsde_errmsg(ctx));
            rc = CLI_FAILED;
        }
    }
    if (rc == CLI_OK) {
        double se;
        s->have_exact = 1;
        mean_se(n, a, NULL, &s->exact_mean, &se);
        mean_se(n, logp, a, &s->error_mean, &s->error_se);
        s->error_max = 0;
        for (size_t i = 0; i < n; i++)
            s->error_max = fmax(s->error_max, fabs(logp[i] - a[i]));
    }
    diffsde_gmm_eval_free(ev);
    free(xq);
    free(b);
    free(a);
    free(t);
    return rc;
}

static json_t *report(const loglik_opts *o, const diffsde_sde *sde, const loglik_summary *s)
{
    json_t *doc = json_object(), *cfg = json_object(), *params = cli_sde_params_json(sde),
           *args = cli_json_argv(o->argc, o->argv), *ex = json_object();
    int bad = !doc || !cfg || !params || !args || !ex;
    if (bad) {
        json_decref(doc);
        json_decref(cfg);
        json_decref(params);
        json_decref(args);
        json_decref(ex);
        return NULL;
    }
    const diffsde_loglik_options *l = &o->ll;
    int hutchinson = l->divergence == DIFFSDE_DIVERGENCE_HUTCHINSON;
    bad |= json_object_set_new(cfg, "model", cli_json_text(o->model)) != 0;
    bad |= json_object_set_new(cfg, "sde", json_string(diffsde_sde_name(sde))) != 0;
    bad |= json_object_set_new(cfg, "sde_params", params) != 0;
    bad |= json_object_set_new(cfg, "divergence",
                               json_string(diffsde_divergence_name(l->divergence))) != 0;
    bad |= json_object_set_new(cfg, "probes",
                               hutchinson ? cli_json_u64(l->probes) : json_null()) != 0;
    bad |= json_object_set_new(cfg, "probe", hutchinson ? json_string(diffsde_probe_name(
                                                              l->probe))
                                                        : json_null()) != 0;
    bad |= json_object_set_new(cfg, "terminal",
                               json_string(diffsde_terminal_name(l->terminal))) != 0;
    bad |= json_object_set_new(cfg, "bin_width", cli_json_real(l->bin_width)) != 0;
    bad |= json_object_set_new(cfg, "dequantize", json_boolean(l->dequantize)) != 0;
    bad |= cli_ode_config_json(cfg, &l->ode) != 0;
    bad |= json_object_set_new(cfg, "in", cli_json_text(o->in)) != 0;
    bad |= json_object_set_new(cfg, "out", cli_json_text(o->out)) != 0;
    bad |= json_object_set_new(cfg, "report", cli_json_text(o->report)) != 0;
    bad |= json_object_set_new(cfg, "quiet", json_boolean(o->quiet)) != 0;
    bad |= json_object_set_new(cfg, "chunk", json_integer(CLI_SAMPLE_CHUNK)) != 0;
    bad |= json_object_set_new(doc, "program", json_string("diffsde loglik")) != 0;
    bad |= json_object_set_new(doc, "version", json_string(diffsde_version_string())) != 0;
    bad |= json_object_set_new(doc, "command_line", args) != 0;
    bad |= json_object_set_new(doc, "config", cfg) != 0;
    bad |= json_object_set_new(doc, "seed", cli_json_u64(o->seed)) != 0;
    bad |= json_object_set_new(doc, "n", cli_json_u64(s->n)) != 0;
    bad |= json_object_set_new(doc, "d", cli_json_u64(s->d)) != 0;
    bad |= json_object_set_new(doc, "mean", cli_json_real(s->mean)) != 0;
    bad |= json_object_set_new(doc, "std_error", cli_json_real(s->std_error)) != 0;
    bad |= json_object_set_new(doc, "bpd", cli_json_real(s->bpd)) != 0;
    bad |= json_object_set_new(doc, "prior_mismatch", cli_json_real(s->mismatch_mean)) != 0;
    bad |= json_object_set_new(doc, "prior_mismatch_se", cli_json_real(s->mismatch_se)) != 0;
    bad |= json_object_set_new(doc, "prior_mismatch_in_logp",
                               json_boolean(l->terminal == DIFFSDE_TERMINAL_PRIOR)) != 0;
    bad |= cli_ode_stats_json(doc, &s->ode) != 0;
    bad |= json_object_set_new(doc, "div_calls", cli_json_u64(s->div_calls)) != 0;
    bad |= json_object_set_new(doc, "wall_seconds", cli_json_real(s->wall_seconds)) != 0;
    if (s->have_exact) {
        bad |= json_object_set_new(ex, "at", json_string(l->dequantize ? "dequantised points"
                                                                        : "input points")) != 0;
        bad |= json_object_set_new(ex, "mean", cli_json_real(s->exact_mean)) != 0;
        bad |= json_object_set_new(ex, "error_mean", cli_json_real(s->error_mean)) != 0;
        bad |= json_object_set_new(ex, "error_se", cli_json_real(s->error_se)) != 0;
        bad |= json_object_set_new(ex, "error_max_abs", cli_json_real(s->error_max)) != 0;
        bad |= json_object_set_new(doc, "exact", ex) != 0;
    } else {
        json_decref(ex);
        bad |= json_object_set_new(doc, "exact", json_null()) != 0;
    }
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void summary(const loglik_opts *o, const loglik_summary *s)
{
    printf("log p_eps over %zu points of dimension %zu (eps = %g, %s divergence, terminal "
           "%s): mean %.10g nats, standard error %.3g, %.6g bits/dim%s\n",
           s->n, s->d, o->ll.ode.eps, diffsde_divergence_name(o->ll.divergence),
           diffsde_terminal_name(o->ll.terminal), s->mean, s->std_error, s->bpd,
           o->ll.bin_width > 0 ? " (discrete data)" : "");
    printf("prior mismatch at the latents, mean log prior - log p_T: %.4g nats (se %.2g)%s\n",
           s->mismatch_mean, s->mismatch_se,
           o->ll.terminal == DIFFSDE_TERMINAL_PRIOR ? ", included in log p" : ", not in log p");
    if (s->have_exact)
        printf("exact log p_eps: mean %.10g; error of log p: mean %.3g (se %.2g), max |error| "
               "%.3g\n",
               s->exact_mean, s->error_mean, s->error_se, s->error_max);
    printf("%.4g score evaluations per point, %.3g s; wrote %s\n", s->ode.nfe_per_sample,
           s->wall_seconds, o->out);
}

int cli_loglik(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        help();
        return CLI_OK;
    }
    loglik_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    o.argc = argc;
    o.argv = argv;
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK) {
        cli_error(sub, "cannot create a context (out of memory)");
        return CLI_FAILED;
    }
    diffsde_sde *sde = NULL;
    diffsde_gmm *gmm = NULL;
    diffsde_score *score = NULL;
    diffsde_loglik *ll = NULL;
    diffsde_noise *noise = NULL;
    diffsde_array pts = {0, 0, 0, NULL};
    double *logp = NULL, *latent = NULL;
    json_t *doc = NULL;
    char *report_tmp = NULL;
    loglik_summary s;
    memset(&s, 0, sizeof s);
    double start = cli_now();
    rc = cli_sde_make(sub, ctx, &o.sde, &sde);
    if (rc == CLI_OK) {
        double T;
        diffsde_sde_time_range(sde, NULL, &T);
        if (!(o.ll.ode.eps < T)) {
            cli_error(sub, "--eps: must be in (0, T) = (0, %g) for --sde %s (got %g)", T,
                      diffsde_sde_name(sde), o.ll.ode.eps);
            rc = CLI_USAGE;
        }
    }
    if (rc == CLI_OK)
        rc = cli_model_load(sub, ctx, o.model, sde, &gmm, &score);
    if (rc == CLI_OK) {
        int st = diffsde_loglik_new(ctx, sde, score, &o.ll, &ll);
        if (st != DIFFSDE_OK) {
            int usage = st == DIFFSDE_EPARAM || st == DIFFSDE_EUNSUPPORTED;
            cli_error(sub, "%s%s", diffsde_errmsg(ctx),
                      usage ? " (see diffsde loglik --help)" : "");
            rc = usage ? CLI_USAGE : CLI_FAILED;
        }
    }
    if (rc == CLI_OK)
        rc = cli_check_writable(sub, "out", o.out);
    if (rc == CLI_OK && o.report)
        rc = cli_check_writable(sub, "report", o.report);
    if (rc == CLI_OK && diffsde_noise_new_philox(ctx, o.seed, &noise) != DIFFSDE_OK) {
        cli_error(sub, "%s", diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    s.d = gmm ? diffsde_gmm_dim(gmm) : 0;
    if (rc == CLI_OK)
        rc = cli_read_points(sub, ctx, o.in, s.d, &pts);
    if (rc == CLI_OK) {
        s.n = pts.rows;
        logp = malloc(s.n * sizeof *logp);
        latent = pts.rows <= SIZE_MAX / sizeof(double) / s.d
                     ? malloc(s.n * s.d * sizeof *latent) : NULL;
        if (!logp || !latent) {
            cli_error(sub, "out of memory for %zu points", s.n);
            rc = CLI_FAILED;
        }
    }
    if (rc == CLI_OK) {
        double T;
        diffsde_sde_time_range(sde, NULL, &T);
        rc = evaluate(ctx, ll, noise, s.n, s.d, pts.data, logp, latent, &s, o.quiet, T);
    }
    if (rc == CLI_OK) {
        mean_se(s.n, logp, NULL, &s.mean, &s.std_error);
        s.bpd = diffsde_bits_per_dim(s.mean, s.d, o.ll.bin_width);
        rc = check_exact(ctx, &o, sde, gmm, score, noise, pts.data, logp, latent, &s);
        s.wall_seconds = cli_now() - start;
    }
    if (rc == CLI_OK && o.report) {
        doc = report(&o, sde, &s);
        if (!doc) {
            cli_error(sub, "out of memory while building the report");
            rc = CLI_FAILED;
        } else {
            rc = cli_report_prepare(sub, o.report, doc, &report_tmp);
        }
    }
    if (rc == CLI_OK && diffsde_array_write(ctx, o.out, 1, s.n, 1, logp) != DIFFSDE_OK) {
        cli_error(sub, "--out: %s", diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    if (report_tmp) {
        if (rc == CLI_OK)
            rc = cli_report_commit(sub, o.report, report_tmp);
        else
            cli_report_discard(report_tmp);
    }
    if (rc == CLI_OK && !o.quiet)
        summary(&o, &s);
    json_decref(doc);
    free(latent);
    free(logp);
    diffsde_array_free(ctx, &pts);
    diffsde_noise_free(noise);
    diffsde_loglik_free(ll);
    diffsde_score_free(score);
    diffsde_gmm_free(gmm);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    return rc;
}
