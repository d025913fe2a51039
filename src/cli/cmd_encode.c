/*
 * diffsde encode / decode: carry points through the probability-flow ODE, data at eps up to
 * latents at T (encode) or latents at T down to eps (decode, without denoising, so that it
 * inverts encode to the integrator's tolerance). One file for both: they differ only in the
 * direction and in the words of the messages.
 *
 * Points are read from --in (.npy or CSV, shape (n, d), or (n,) when d = 1) and written to
 * --out with shape (n, d), atomically; with --report a JSON report of the configuration and
 * the counters is committed only after the points are in place. Exit status: 0 success;
 * 1 the run failed (input unreadable or of the wrong dimension, a failed solve, an output
 * that cannot be written); 2 usage error (including options the integrator refuses).
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct coder {
    const char *sub;   /* "encode" or "decode" */
    int encode;
    const char *from, *to; /* "data at eps" / "latents at T" */
} coder;

static const coder enc = {"encode", 1, "data at eps", "latents at T"};
static const coder dec = {"decode", 0, "latents at T", "data at eps"};

static void help(const coder *k)
{
    printf("usage: diffsde %s --model MODEL --in FILE --out FILE [options]\n"
           "\n"
           "Integrates the probability-flow ODE dx/dt = f x - g^2/2 s(x, t) of the model's\n"
           "exact score from %s to %s, each point on its own: with the\n"
           "default per-point step control a point's result does not depend on the others.\n"
           "%s\n"
           "\n",
           k->sub, k->from, k->to,
           k->encode ? "diffsde decode inverts it to the integrator's tolerance."
                     : "It inverts diffsde encode to the integrator's tolerance (no denoising).");
    printf("model and SDE:\n"
           "  --model MODEL        gmm:FILE.json or gmm:NAME, NAME one of ring8, grid25,\n"
           "                       gauss1, random:D,K,SEED (required)\n"
           "  --sde SDE            ve, vp or subvp (default: vp)\n"
           "  --sde-param K=V      override an SDE parameter, repeatable: sigma_min,\n"
           "                       sigma_max for ve; beta_min, beta_max for vp and subvp\n"
           "                       (default: the SDE's own: 0.01, 50; 0.1, 20)\n"
           "  --eps E              the data end of the flow, 0 < E < T (default: 1e-5 for\n"
           "                       ve, 1e-3 for vp and subvp, as diffsde sample)\n"
           "integrator:\n"
           "  --method M           euler, heun, rk4 (fixed grid); rk45, cvode-adams,\n"
           "                       cvode-bdf, arkode-dp, gsl-rkf45, gsl-rk8pd, gsl-msadams\n"
           "                       (adaptive); ddim, dpm-solver++2m, edm-heun (few-step)\n"
           "                       (default: rk45)\n"
           "  --rtol R             relative tolerance, > 0 (adaptive methods; default: 1e-5)\n"
           "  --atol A             absolute tolerance, > 0 (adaptive methods; default: 1e-5)\n"
           "  --whole-batch        adaptive methods: one step size for all the points of a\n"
           "                       chunk of %d (default: per point)\n"
           "  --steps N            steps of a fixed-grid or few-step method, N >= 1\n"
           "                       (default: 100 for euler, heun, rk4; 20 for ddim and\n"
           "                       dpm-solver++2m; 18 for edm-heun)\n"
           "  --grid G             uniform, logsnr or karras (fixed-grid and few-step\n"
           "                       methods; default: uniform; karras for dpm-solver++2m\n"
           "                       and edm-heun)\n"
           "  --rho R              exponent of the karras grid, > 0 (default: 7)\n",
           CLI_SAMPLE_CHUNK);
    printf("input and output:\n"
           "  --in FILE            %s, .npy (float64/float32) or .csv, shape (n, d)\n"
           "                       (required)\n"
           "  --out FILE           %s, shape (n, d): .npy float64, or CSV if FILE\n"
           "                       ends in .csv; written atomically (required)\n"
           "  --report FILE        JSON report: configuration with every default filled in,\n"
           "                       library version, n, d, nfe_per_sample, nfe_min, nfe_max,\n"
           "                       score_calls, accepted, rejected, wall_seconds (default:\n"
           "                       none)\n"
           "  --quiet              no progress line, no summary line (default: a progress\n"
           "                       line on stderr if it is a terminal and the points are\n"
           "                       more than one chunk, a summary on stdout)\n"
           "  --help               this text\n"
           "\n"
           "Options that would have no effect (--steps, --grid, --rho with an adaptive\n"
           "method; --rtol, --atol, --whole-batch with a fixed-grid one; --rho off the\n"
           "karras grid) are usage errors.\n"
           "\n"
           "exit status: 0 success, 1 the run failed, 2 usage error; on failure no output\n"
           "file is written.\n"
           "\n"
           "example:\n"
           "  diffsde %s --model gmm:ring8 --sde vp --method rk45 --rtol 1e-6 \\\n"
           "      --atol 1e-6 --in %s --out %s\n",
           k->encode ? "the data" : "the latents", k->encode ? "the latents" : "the data",
           k->sub, k->encode ? "x.npy" : "z.npy", k->encode ? "z.npy" : "x_back.npy");
}

typedef struct coder_opts {
    const char *model, *in, *out, *report;
    cli_sde_opts sde;
    diffsde_ode_options ode;
    int quiet;
} coder_opts;

static int parse(const char *sub, int argc, char **argv, coder_opts *o)
{
    enum {
        O_MODEL = 1, O_SDE, O_SDE_PARAM, O_EPS, O_METHOD, O_RTOL, O_ATOL, O_WHOLE, O_STEPS,
        O_GRID, O_RHO, O_IN, O_OUT, O_REPORT, O_QUIET
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"sde", required_argument, NULL, O_SDE},
        {"sde-param", required_argument, NULL, O_SDE_PARAM},
        {"eps", required_argument, NULL, O_EPS},
        {"method", required_argument, NULL, O_METHOD},
        {"rtol", required_argument, NULL, O_RTOL},
        {"atol", required_argument, NULL, O_ATOL},
        {"whole-batch", no_argument, NULL, O_WHOLE},
        {"steps", required_argument, NULL, O_STEPS},
        {"grid", required_argument, NULL, O_GRID},
        {"rho", required_argument, NULL, O_RHO},
        {"in", required_argument, NULL, O_IN},
        {"out", required_argument, NULL, O_OUT},
        {"report", required_argument, NULL, O_REPORT},
        {"quiet", no_argument, NULL, O_QUIET},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->sde.name = "vp";
    diffsde_ode_options_default(&o->ode);
    o->ode.eps = NAN;
    cli_ode_given g = {0};
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long_only(argc, argv, ":", longopts, NULL)) != -1) {
        int bad = 0;
        uint64_t v;
        switch (ch) {
        case O_MODEL: o->model = optarg; break;
        case O_SDE: o->sde.name = optarg; break;
        case O_SDE_PARAM: bad = cli_sde_add_param(sub, &o->sde, optarg); break;
        case O_EPS: bad = cli_parse_positive(sub, "eps", optarg, &o->ode.eps); break;
        case O_METHOD: g.method = 1; bad = cli_parse_ode_method(sub, optarg, &o->ode.method); break;
        case O_RTOL: g.rtol = 1; bad = cli_parse_positive(sub, "rtol", optarg, &o->ode.rtol); break;
        case O_ATOL: g.atol = 1; bad = cli_parse_positive(sub, "atol", optarg, &o->ode.atol); break;
        case O_WHOLE: g.whole_batch = 1; o->ode.whole_batch = 1; break;
        case O_STEPS:
            g.steps = 1;
            bad = cli_parse_u64(sub, "steps", optarg, &v);
            if (!bad && (v < 1 || v > (uint64_t)SIZE_MAX)) {
                cli_error(sub, "--steps: must be at least 1 (got %s)", optarg);
                bad = 1;
            }
            o->ode.steps = (size_t)v;
            break;
        case O_GRID: g.grid = 1; bad = cli_parse_grid(sub, optarg, &o->ode.grid); break;
        case O_RHO: g.rho = 1; bad = cli_parse_positive(sub, "rho", optarg, &o->ode.rho); break;
        case O_IN: o->in = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_REPORT: o->report = optarg; break;
        case O_QUIET: o->quiet = 1; break;
        case ':':
            cli_error(sub, "option %s needs a value (see diffsde %s --help)", argv[optind - 1],
                      sub);
            return CLI_USAGE;
        default:
            cli_error(sub, "unknown option '%s' (see diffsde %s --help)", argv[optind - 1], sub);
            return CLI_USAGE;
        }
        if (bad)
            return CLI_USAGE;
    }
    if (optind < argc) {
        cli_error(sub, "unexpected argument '%s' (see diffsde %s --help)", argv[optind], sub);
        return CLI_USAGE;
    }
    if (!o->model) {
        cli_error(sub, "--model is required (e.g. --model gmm:ring8)");
        return CLI_USAGE;
    }
    if (!o->in || !o->out) {
        cli_error(sub, "--%s is required (e.g. --%s %s)", o->in ? "out" : "in",
                  o->in ? "out" : "in", o->in ? "out.npy" : "points.npy");
        return CLI_USAGE;
    }
    if (o->report && (strcmp(o->report, o->out) == 0 || strcmp(o->report, o->in) == 0)) {
        cli_error(sub, "--report names the same file as --%s ('%s')",
                  strcmp(o->report, o->out) == 0 ? "out" : "in", o->report);
        return CLI_USAGE;
    }
    return cli_ode_check_given(sub, &o->ode, &g);
}

static json_t *report(const coder *k, const coder_opts *o, const diffsde_sde *sde, size_t n,
                      size_t d, const diffsde_ode_stats *st, double wall, int argc, char **argv)
{
    char program[32];
    snprintf(program, sizeof program, "diffsde %s", k->sub);
    json_t *doc = json_object(), *cfg = json_object(), *params = cli_sde_params_json(sde),
           *args = cli_json_argv(argc, argv);
    int bad = !doc || !cfg || !params || !args;
    if (bad) {
        json_decref(doc);
        json_decref(cfg);
        json_decref(params);
        json_decref(args);
        return NULL;
    }
    bad |= json_object_set_new(cfg, "model", cli_json_text(o->model)) != 0;
    bad |= json_object_set_new(cfg, "sde", json_string(diffsde_sde_name(sde))) != 0;
    bad |= json_object_set_new(cfg, "sde_params", params) != 0;
    bad |= json_object_set_new(cfg, "direction",
                               json_string(k->encode ? "eps to T" : "T to eps")) != 0;
    bad |= cli_ode_config_json(cfg, &o->ode) != 0;
    bad |= json_object_set_new(cfg, "in", cli_json_text(o->in)) != 0;
    bad |= json_object_set_new(cfg, "out", cli_json_text(o->out)) != 0;
    bad |= json_object_set_new(cfg, "report", cli_json_text(o->report)) != 0;
    bad |= json_object_set_new(cfg, "quiet", json_boolean(o->quiet)) != 0;
    bad |= json_object_set_new(cfg, "chunk", json_integer(CLI_SAMPLE_CHUNK)) != 0;
    bad |= json_object_set_new(doc, "program", json_string(program)) != 0;
    bad |= json_object_set_new(doc, "version", json_string(diffsde_version_string())) != 0;
    bad |= json_object_set_new(doc, "command_line", args) != 0;
    bad |= json_object_set_new(doc, "config", cfg) != 0;
    bad |= json_object_set_new(doc, "n", cli_json_u64(n)) != 0;
    bad |= json_object_set_new(doc, "d", cli_json_u64(d)) != 0;
    bad |= cli_ode_stats_json(doc, st) != 0;
    bad |= json_object_set_new(doc, "wall_seconds", cli_json_real(wall)) != 0;
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Solve all n points chunk by chunk (per-point control: the chunking changes nothing). */
static int solve(const coder *k, diffsde_ctx *ctx, diffsde_ode *ode, size_t n, size_t d,
                 double *x, diffsde_ode_stats *total, int quiet, double t_end)
{
    size_t chunk = n < CLI_SAMPLE_CHUNK ? n : CLI_SAMPLE_CHUNK;
    size_t nchunks = (n + chunk - 1) / chunk;
    /* The solver has no step hook: the progress line (a terminal only) advances by chunks. */
    cli_progress prog;
    cli_progress_start(&prog, quiet || nchunks == 1);
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t nc = n - i0 < chunk ? n - i0 : chunk;
        int st = k->encode ? diffsde_ode_encode(ode, nc, d, x + i0 * d)
                           : diffsde_ode_decode(ode, nc, d, x + i0 * d);
        if (st != DIFFSDE_OK) {
            cli_progress_end(&prog);
            if (nc < n)
                cli_error(k->sub, "points %zu..%zu: %s", i0, i0 + nc - 1, diffsde_errmsg(ctx));
            else
                cli_error(k->sub, "%s", diffsde_errmsg(ctx));
            return CLI_FAILED;
        }
        diffsde_ode_stats cs;
        diffsde_ode_get_stats(ode, &cs);
        cli_ode_stats_add(total, &cs, i0 == 0);
        cli_progress_update(&prog, (double)(i0 + nc) / (double)n, i0 / chunk + 1, nchunks,
                            total->steps, t_end,
                            (double)total->score_evals / (double)(i0 + nc), 1);
    }
    cli_progress_end(&prog);
    total->nfe_per_sample = (double)total->score_evals / (double)n;
    return CLI_OK;
}

static int run(const coder *k, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        help(k);
        return CLI_OK;
    }
    coder_opts o;
    int rc = parse(k->sub, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK) {
        cli_error(k->sub, "cannot create a context (out of memory)");
        return CLI_FAILED;
    }
    diffsde_sde *sde = NULL;
    diffsde_gmm *gmm = NULL;
    diffsde_score *score = NULL;
    diffsde_ode *ode = NULL;
    diffsde_array pts = {0, 0, 0, NULL};
    diffsde_ode_stats st;
    memset(&st, 0, sizeof st);
    json_t *doc = NULL;
    char *report_tmp = NULL;
    double start = cli_now(), wall = 0;
    rc = cli_sde_make(k->sub, ctx, &o.sde, &sde);
    if (rc == CLI_OK) {
        double T;
        diffsde_sde_time_range(sde, NULL, &T);
        if (isnan(o.ode.eps))
            diffsde_sde_default_eps(sde, &o.ode.eps);
        if (!(o.ode.eps < T)) {
            cli_error(k->sub, "--eps: must be in (0, T) = (0, %g) for --sde %s (got %g)", T,
                      diffsde_sde_name(sde), o.ode.eps);
            rc = CLI_USAGE;
        }
    }
    if (rc == CLI_OK)
        rc = cli_model_load(k->sub, ctx, o.model, sde, &gmm, &score);
    if (rc == CLI_OK) {
        int s = diffsde_ode_new(ctx, sde, score, &o.ode, &ode);
        if (s != DIFFSDE_OK) {
            int usage = s == DIFFSDE_EPARAM || s == DIFFSDE_EUNSUPPORTED;
            cli_error(k->sub, "%s%s%s", diffsde_errmsg(ctx), usage ? " (see diffsde " : "",
                      usage ? (k->encode ? "encode --help)" : "decode --help)") : "");
            rc = usage ? CLI_USAGE : CLI_FAILED;
        } else {
            diffsde_ode_get_options(ode, &o.ode);
        }
    }
    if (rc == CLI_OK)
        rc = cli_check_writable(k->sub, "out", o.out);
    if (rc == CLI_OK && o.report)
        rc = cli_check_writable(k->sub, "report", o.report);
    size_t d = gmm ? diffsde_gmm_dim(gmm) : 0;
    if (rc == CLI_OK)
        rc = cli_read_points(k->sub, ctx, o.in, d, &pts);
    if (rc == CLI_OK) {
        double T;
        diffsde_sde_time_range(sde, NULL, &T);
        rc = solve(k, ctx, ode, pts.rows, d, pts.data, &st, o.quiet,
                   k->encode ? T : o.ode.eps);
        wall = cli_now() - start;
    }
    if (rc == CLI_OK && o.report) {
        doc = report(k, &o, sde, pts.rows, d, &st, wall, argc, argv);
        if (!doc) {
            cli_error(k->sub, "out of memory while building the report");
            rc = CLI_FAILED;
        } else {
            rc = cli_report_prepare(k->sub, o.report, doc, &report_tmp);
        }
    }
    if (rc == CLI_OK &&
        diffsde_array_write(ctx, o.out, 2, pts.rows, d, pts.data) != DIFFSDE_OK) {
        cli_error(k->sub, "--out: %s", diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    if (report_tmp) {
        if (rc == CLI_OK)
            rc = cli_report_commit(k->sub, o.report, report_tmp);
        else
            cli_report_discard(report_tmp);
    }
    if (rc == CLI_OK && !o.quiet)
        printf("%sd %zu points of dimension %zu from %s to %s (%s, %.4g score evaluations "
               "per point, %.3g s)\n",
               k->sub, pts.rows, d, o.in, o.out, diffsde_ode_method_name(o.ode.method),
               st.nfe_per_sample, wall);
    json_decref(doc);
    diffsde_array_free(ctx, &pts);
    diffsde_ode_free(ode);
    diffsde_score_free(score);
    diffsde_gmm_free(gmm);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    return rc;
}

int cli_encode(int argc, char **argv)
{
    return run(&enc, argc, argv);
}

int cli_decode(int argc, char **argv)
{
    return run(&dec, argc, argv);
}
