/*
 * diffsde sample: draw samples by running the reverse SDE of a forward SDE with a model's
 * score (--sampler pc, adaptive-sde) or its probability-flow ODE (--sampler ode), write them
 * as .npy (or CSV) atomically and, with --report, a JSON report holding the full
 * configuration, the counters and — for a Gaussian-mixture model — the metrics against the
 * exact density of what was sampled: p0 for denoised samples, p_eps for the flow's value at
 * eps (the ODE's default), since x(eps) is a sample of p_eps and not of p0.
 *
 * Exit status: 0 success; 1 the run failed (model file unreadable, NaN during sampling, an
 * output that cannot be written); 2 usage error: an unknown option, a bad value, or a
 * configuration the sampler refuses before running (ancestral with sub-VP, VP reverse
 * diffusion or ancestral with N <= beta_max; whole-batch with a fixed-grid method). On any
 * failure no output file is created or changed.
 */

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/plot.h"
#include "cli/sample_paths.h"

static const char sub[] = "sample";

static void help(void)
{
    printf(
        "usage: diffsde sample --model MODEL --n N --out FILE [options]\n"
        "\n"
        "Draws N samples by running the reverse-time SDE from the prior at T down to eps\n"
        "with the model's score, then (by default) one Tweedie denoising step; or, with\n"
        "--sampler ode, by integrating the probability-flow ODE from the prior draw down\n"
        "to eps (no denoising by default: x(eps) is a sample of p_eps). Same seed and\n"
        "options give the same bits, whatever the machine load or the chunking (except\n"
        "with --batch-norms, --reference or --whole-batch).\n"
        "\n"
        "model and SDE:\n"
        "  --model MODEL        gmm:FILE.json or gmm:NAME, NAME one of ring8, grid25,\n"
        "                       gauss1, random:D,K,SEED; sampled with the exact score\n"
        "                       of the mixture (required)\n"
        "  --sde SDE            ve, vp or subvp (default: vp)\n"
        "  --sde-param K=V      override an SDE parameter, repeatable: sigma_min,\n"
        "                       sigma_max for ve (defaults 0.01, 50); beta_min, beta_max\n"
        "                       for vp and subvp (defaults 0.1, 20)\n");
    printf(
        "sampler:\n"
        "  --sampler S          pc (predictor-corrector on a fixed grid), adaptive-sde\n"
        "                       (per-sample step control) or ode (the probability-flow\n"
        "                       ODE, deterministic given the prior draw) (default: pc)\n"
        "  --predictor P        euler-maruyama, reverse-diffusion, ancestral (ve and vp\n"
        "                       only) or none (pc; default: reverse-diffusion)\n"
        "  --corrector C        langevin, ald, mala or none (pc; default: langevin)\n"
        "  --snr R              corrector signal-to-noise ratio, > 0 (pc; default: 0.16\n"
        "                       for ve, 0.01 for vp and subvp)\n"
        "  --steps N            number of levels, N >= 2 (pc; default: 1000); with ode,\n"
        "                       steps of a fixed-grid or few-step method, N >= 1\n"
        "                       (default: 100 for euler, heun, rk4; 20 for ddim and\n"
        "                       dpm-solver++2m; 18 for edm-heun, NFE 2N-1)\n"
        "  --corrector-steps K  corrector steps per level, K >= 1 (pc; default: 1)\n"
        "  --eps E              final time, 0 < E < T (default: 1e-5 for ve, 1e-3 for\n"
        "                       vp and subvp)\n"
        "  --denoise            end with one Tweedie step x0 = (x + sigma(eps)^2 s)/alpha\n"
        "                       (default: on for pc and adaptive-sde, off for ode)\n"
        "  --no-denoise         return x at eps, without the final Tweedie step\n"
        "  --rtol R             relative tolerance, > 0 (adaptive-sde: default 0.05;\n"
        "                       ode with an adaptive method: default 1e-5)\n"
        "  --atol A             absolute tolerance, > 0 (adaptive-sde: default 0.01;\n"
        "                       ode with an adaptive method: default 1e-5)\n"
        "  --reference          score_sde's conventions exactly: its time grid,\n"
        "                       batch-averaged Langevin norms, the last predictor mean\n"
        "                       returned (pc; default: off)\n"
        "  --batch-norms        Langevin step from batch-averaged norms, as score_sde\n"
        "                       (pc; default: off, per-sample norms). The batch is a\n"
        "                       chunk of %d samples: with this option or --reference\n"
        "                       the result depends on N\n",
        CLI_SAMPLE_CHUNK);
    printf(
        "ode (--sampler ode):\n"
        "  --method M           euler, heun, rk4 (fixed grid); rk45 (Dormand-Prince 5(4),\n"
        "                       per-sample step control), cvode-adams, cvode-bdf,\n"
        "                       arkode-dp, gsl-rkf45, gsl-rk8pd, gsl-msadams (adaptive);\n"
        "                       ddim, dpm-solver++2m, edm-heun (few-step) (default: rk45)\n"
        "  --grid G             time grid of fixed-grid and few-step methods: uniform,\n"
        "                       logsnr or karras (default: uniform; karras for\n"
        "                       dpm-solver++2m and edm-heun)\n"
        "  --rho R              exponent of the karras grid, > 0 (default: 7)\n"
        "  --whole-batch        adaptive methods: one step size for the whole chunk, as\n"
        "                       one flattened system (score_sde's convention; the result\n"
        "                       then depends on the chunk) (default: per sample)\n");
    printf(
        "run and output:\n"
        "  --n N                number of samples, >= 1 (required)\n"
        "  --seed S             Philox seed, 0 .. 2^64-1 (default: 0)\n"
        "  --out FILE           the samples, shape (N, d): .npy float64, or CSV if FILE\n"
        "                       ends in .csv; written atomically (required)\n"
        "  --report FILE        JSON report: the configuration with every default filled\n"
        "                       in, library version, seed, nfe_per_sample, score_calls,\n"
        "                       wall_seconds (ode: nfe_min, nfe_max, accepted, rejected)\n"
        "                       and, for mixtures, the metrics against the exact p0\n"
        "                       (denoised samples) or p_eps (without denoising), seeded\n"
        "                       with S XOR 0x6d657472696373 (default: none)\n"
        "  --plot FILE.png      a picture of the samples (gnuplot, pngcairo): for d = 2\n"
        "                       a scatter over the exact density's contours, for d > 2\n"
        "                       pairwise scatters of the first 3 coordinates and their\n"
        "                       histograms against the exact marginals, for d = 1 the\n"
        "                       histogram against the exact density; the density is p0,\n"
        "                       or p_eps for --sampler ode without --denoise (as the\n"
        "                       metrics); written atomically (default: none)\n"
        "  --plot-paths K       also draw the trajectories of the first K samples, from\n"
        "                       the prior to where they land, 0 <= K <= %d (2-D models\n"
        "                       only; needs --plot; default: 0). pc and adaptive-sde\n"
        "                       record the sampler's own states; for ode the first K\n"
        "                       prior draws are integrated again segment by segment:\n"
        "                       euler, heun, rk4 and ddim along their own grid, one step\n"
        "                       per segment, through the very states of the samples;\n"
        "                       the other methods with the same integrator over 100\n"
        "                       log-SNR segments, a separate solve that agrees with the\n"
        "                       samples to the method's accuracy\n"
        "  --from-report FILE   rerun the run a --report FILE describes, bit for bit\n"
        "                       (model, SDE, sampler and every option, n, seed, plot);\n"
        "                       only --out, --report, --plot and --quiet may be given\n"
        "                       with it, to redirect the outputs (default: the paths in\n"
        "                       the report, relative to the current directory)\n"
        "  --quiet              no progress line, no summary (default: a progress line\n"
        "                       on stderr if it is a terminal, a summary on stdout)\n"
        "  --help               this text\n"
        "\n"
        "Options that would have no effect (pc options with adaptive-sde or ode, ode\n"
        "options with pc or adaptive-sde, --rtol/--atol with pc, --snr, --corrector-steps\n"
        "or --batch-norms with --corrector none; with ode, --steps/--grid/--rho with an\n"
        "adaptive method, --rtol/--atol/--whole-batch with a fixed-grid one, --rho off\n"
        "the karras grid) are usage errors.\n"
        "\n"
        "exit status: 0 success, 1 the run failed, 2 usage error (including\n"
        "configurations the sampler refuses). A run fails when a model file or report\n"
        "is unreadable, a solve fails, an output cannot be written, or gnuplot is\n"
        "missing or fails. On failure no output file (samples, report, picture) is\n"
        "created or changed.\n"
        "\n"
        "examples:\n"
        "  diffsde sample --model gmm:ring8 --sde vp --sampler pc \\\n"
        "      --predictor reverse-diffusion --corrector langevin --snr 0.16 \\\n"
        "      --steps 1000 --n 10000 --seed 1 --out samples.npy --report run.json\n"
        "  diffsde sample --model gmm:ring8 --sde vp --sampler ode --method rk45 \\\n"
        "      --rtol 1e-5 --atol 1e-5 --n 10000 --seed 1 --out flow.npy --report flow.json\n"
        "  diffsde sample --model gmm:ring8 --sampler ode --method dpm-solver++2m \\\n"
        "      --steps 10 --grid logsnr --n 10000 --out fast.npy\n"
        "  diffsde sample --model gmm:ring8 --n 10000 --seed 1 --out ring8.npy \\\n"
        "      --plot ring8.png --plot-paths 8\n"
        "  diffsde sample --from-report run.json --out again.npy --report again.json\n",
        CLI_MAX_PLOT_PATHS);
}

uint64_t cli_metrics_seed(uint64_t seed)
{
    return seed ^ UINT64_C(0x6d657472696373);
}

void cli_sample_config_default(cli_sample_config *c)
{
    memset(c, 0, sizeof *c);
    c->sde.name = "vp";
    diffsde_sampler_options_default(&c->opt);
    c->opt.snr = NAN;
    c->opt.eps = NAN;
    diffsde_ode_options_default(&c->ode_opt);
    c->ode_opt.eps = NAN;
}

/* Which options were given, to refuse those that would have no effect. */
enum { G_PRED, G_CORR, G_SNR, G_CSTEPS, G_REF, G_BATCH, G_COUNT };
static const char *const given_names[G_COUNT] = {
    "--predictor", "--corrector", "--snr", "--corrector-steps", "--reference", "--batch-norms"};

/* Options shared by the samplers whose meaning or default depends on the sampler, kept until
 * the sampler is known (the command line is read in any order). */
typedef struct shared_opts {
    const char *steps_text;
    size_t steps;
    int have_rtol, have_atol, denoise; /* denoise: -1 not given */
    double rtol, atol, eps;
} shared_opts;

/* Check the pc / adaptive-sde options and move the shared ones into c->opt. */
static int finish_sde(cli_sample_config *c, const shared_opts *sh, const int *given,
                      const cli_ode_given *og)
{
    diffsde_sampler_options *o = &c->opt;
    const char *ode_only = og->method ? "--method" : og->grid ? "--grid" : og->rho ? "--rho"
                           : og->whole_batch ? "--whole-batch" : NULL;
    if (ode_only) {
        cli_error(sub, "%s applies to --sampler ode only", ode_only);
        return CLI_USAGE;
    }
    if (o->method == DIFFSDE_SAMPLER_ADAPTIVE_SDE) {
        for (int g = G_PRED; g < G_COUNT; g++)
            if (given[g]) {
                cli_error(sub, "%s applies to --sampler pc only", given_names[g]);
                return CLI_USAGE;
            }
        if (sh->steps_text) {
            cli_error(sub, "--steps applies to --sampler pc only (and to the fixed-grid "
                      "methods of --sampler ode)");
            return CLI_USAGE;
        }
    } else {
        if (sh->have_rtol || sh->have_atol) {
            cli_error(sub, "%s applies to --sampler adaptive-sde only (and to the adaptive "
                      "methods of --sampler ode)", sh->have_rtol ? "--rtol" : "--atol");
            return CLI_USAGE;
        }
        static const int corrector_only[] = {G_SNR, G_CSTEPS, G_BATCH};
        for (size_t k = 0; k < 3 && o->corrector == DIFFSDE_CORRECTOR_NONE; k++)
            if (given[corrector_only[k]]) {
                cli_error(sub, "%s has no effect with --corrector none",
                          given_names[corrector_only[k]]);
                return CLI_USAGE;
            }
        if (sh->steps_text) {
            if (sh->steps < 2) {
                cli_error(sub, "--steps: must be at least 2 (got %s)", sh->steps_text);
                return CLI_USAGE;
            }
            o->steps = sh->steps;
        }
    }
    if (sh->have_rtol)
        o->rtol = sh->rtol;
    if (sh->have_atol)
        o->atol = sh->atol;
    if (sh->denoise >= 0)
        o->denoise = sh->denoise;
    o->eps = sh->eps;
    return CLI_OK;
}

/* Check the ode options and move the shared ones into c->ode_opt. */
static int finish_ode(cli_sample_config *c, const shared_opts *sh, const int *given,
                      cli_ode_given *og)
{
    diffsde_ode_options *o = &c->ode_opt;
    for (int g = G_PRED; g < G_COUNT; g++)
        if (given[g]) {
            cli_error(sub, "%s applies to --sampler pc only", given_names[g]);
            return CLI_USAGE;
        }
    og->steps = sh->steps_text != NULL;
    og->rtol = sh->have_rtol;
    og->atol = sh->have_atol;
    if (cli_ode_check_given(sub, o, og) != CLI_OK)
        return CLI_USAGE;
    if (sh->steps_text)
        o->steps = sh->steps; /* >= 1 already */
    if (sh->have_rtol)
        o->rtol = sh->rtol;
    if (sh->have_atol)
        o->atol = sh->atol;
    o->denoise = sh->denoise > 0;
    c->opt.eps = sh->eps; /* resolve() fills the SDE's default and checks it for both */
    return CLI_OK;
}

/* --out, --report and --plot must name different files. */
static int distinct_outputs(const cli_sample_config *c)
{
    const char *a = NULL, *b = NULL;
    if (c->report && strcmp(c->report, c->out) == 0)
        a = "--report", b = "--out";
    else if (c->plot && strcmp(c->plot, c->out) == 0)
        a = "--plot", b = "--out";
    else if (c->plot && c->report && strcmp(c->plot, c->report) == 0)
        a = "--plot", b = "--report";
    if (!a)
        return CLI_OK;
    cli_error(sub, "%s and %s name the same file '%s'", a, b, strcmp(a, "--plot") ? c->out
                                                                      : c->plot);
    return CLI_USAGE;
}

/* --from-report: the report defines the run; the command line may only redirect its outputs
 * (--out, --report, --plot) and silence it (--quiet). */
static int from_report(cli_sample_config *c, const char *path, const char *defining)
{
    if (defining) {
        cli_error(sub, "--%s cannot be combined with --from-report: the report defines the run "
                  "(only --out, --report, --plot and --quiet may be given with it)", defining);
        return CLI_USAGE;
    }
    const char *out = c->out, *report = c->report, *plot = c->plot;
    int quiet = c->quiet;
    int rc = cli_sample_config_from_report(sub, path, c);
    if (rc != CLI_OK)
        return rc;
    if (out)
        c->out = out;
    if (report)
        c->report = report;
    if (plot)
        c->plot = plot;
    c->quiet = quiet; /* how the rerun talks is this command line's business */
    if (c->plot_paths && !c->plot)
        c->plot_paths = 0;
    return distinct_outputs(c);
}

static int parse(int argc, char **argv, cli_sample_config *c)
{
    enum {
        O_MODEL = 1, O_SDE, O_SDE_PARAM, O_SAMPLER, O_PRED, O_CORR, O_SNR, O_STEPS, O_CSTEPS,
        O_EPS, O_DENOISE, O_NO_DENOISE, O_RTOL, O_ATOL, O_N, O_SEED, O_OUT, O_REPORT, O_REF,
        O_BATCH, O_QUIET, O_METHOD, O_GRID, O_RHO, O_WHOLE, O_PLOT, O_PLOT_PATHS, O_FROM
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"sde", required_argument, NULL, O_SDE},
        {"sde-param", required_argument, NULL, O_SDE_PARAM},
        {"sampler", required_argument, NULL, O_SAMPLER},
        {"predictor", required_argument, NULL, O_PRED},
        {"corrector", required_argument, NULL, O_CORR},
        {"snr", required_argument, NULL, O_SNR},
        {"steps", required_argument, NULL, O_STEPS},
        {"corrector-steps", required_argument, NULL, O_CSTEPS},
        {"eps", required_argument, NULL, O_EPS},
        {"denoise", no_argument, NULL, O_DENOISE},
        {"no-denoise", no_argument, NULL, O_NO_DENOISE},
        {"rtol", required_argument, NULL, O_RTOL},
        {"atol", required_argument, NULL, O_ATOL},
        {"n", required_argument, NULL, O_N},
        {"seed", required_argument, NULL, O_SEED},
        {"out", required_argument, NULL, O_OUT},
        {"report", required_argument, NULL, O_REPORT},
        {"reference", no_argument, NULL, O_REF},
        {"batch-norms", no_argument, NULL, O_BATCH},
        {"quiet", no_argument, NULL, O_QUIET},
        {"method", required_argument, NULL, O_METHOD},
        {"grid", required_argument, NULL, O_GRID},
        {"rho", required_argument, NULL, O_RHO},
        {"whole-batch", no_argument, NULL, O_WHOLE},
        {"plot", required_argument, NULL, O_PLOT},
        {"plot-paths", required_argument, NULL, O_PLOT_PATHS},
        {"from-report", required_argument, NULL, O_FROM},
        {NULL, 0, NULL, 0}};
    int given[G_COUNT] = {0};
    const char *from = NULL, *defining = NULL; /* defining: an option --from-report excludes */
    int have_paths = 0;
    cli_ode_given og = {0};
    shared_opts sh = {NULL, 0, 0, 0, -1, 0, 0, NAN};
    int have_n = 0;
    uint64_t n_paths = 0;
    diffsde_sampler_options *o = &c->opt;
    optind = 1;
    opterr = 0;
    int ch;
    int li = -1;
    while ((ch = getopt_long_only(argc, argv, ":", longopts, &li)) != -1) {
        int bad = 0;
        if (ch != O_OUT && ch != O_REPORT && ch != O_PLOT && ch != O_QUIET && ch != O_FROM &&
            ch != ':' && ch != '?' && li >= 0 && !defining)
            defining = longopts[li].name;
        li = -1;
        switch (ch) {
        case O_MODEL: c->model = optarg; break;
        case O_SDE: c->sde.name = optarg; break;
        case O_SDE_PARAM: bad = cli_sde_add_param(sub, &c->sde, optarg); break;
        case O_SAMPLER:
            c->ode = strcmp(optarg, "ode") == 0;
            if (!c->ode && diffsde_sampler_method_from_name(optarg, &o->method) != DIFFSDE_OK) {
                cli_error(sub, "--sampler: unknown sampler '%s' (pc, adaptive-sde or ode)",
                          optarg);
                bad = 1;
            }
            break;
        case O_PRED:
            given[G_PRED] = 1;
            if (diffsde_predictor_from_name(optarg, &o->predictor) != DIFFSDE_OK) {
                cli_error(sub, "--predictor: unknown predictor '%s' (euler-maruyama, "
                          "reverse-diffusion, ancestral or none)", optarg);
                bad = 1;
            }
            break;
        case O_CORR:
            given[G_CORR] = 1;
            if (diffsde_corrector_from_name(optarg, &o->corrector) != DIFFSDE_OK) {
                cli_error(sub, "--corrector: unknown corrector '%s' (langevin, ald, mala or "
                          "none)", optarg);
                bad = 1;
            }
            break;
        case O_SNR: given[G_SNR] = 1; bad = cli_parse_positive(sub, "snr", optarg, &o->snr); break;
        case O_STEPS:
            /* The minimum (pc 2, ode 1) is checked once the sampler is known. */
            sh.steps_text = optarg;
            {
                uint64_t v;
                bad = cli_parse_u64(sub, "steps", optarg, &v);
                sh.steps = v > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)v;
            }
            break;
        case O_CSTEPS:
            given[G_CSTEPS] = 1;
            bad = cli_parse_count(sub, "corrector-steps", optarg, 1, &o->corrector_steps);
            break;
        case O_EPS: bad = cli_parse_positive(sub, "eps", optarg, &sh.eps); break;
        case O_DENOISE: sh.denoise = 1; break;
        case O_NO_DENOISE: sh.denoise = 0; break;
        case O_RTOL:
            sh.have_rtol = 1;
            bad = cli_parse_positive(sub, "rtol", optarg, &sh.rtol);
            break;
        case O_ATOL:
            sh.have_atol = 1;
            bad = cli_parse_positive(sub, "atol", optarg, &sh.atol);
            break;
        case O_N:
            have_n = 1;
            bad = cli_parse_u64(sub, "n", optarg, &c->n);
            if (!bad && (c->n == 0 || c->n > DIFFSDE_NOISE_MAX_SAMPLES / 4)) {
                cli_error(sub, "--n: must be in 1 .. 2^46 (got %s)", optarg);
                bad = 1;
            }
            break;
        case O_SEED: bad = cli_parse_u64(sub, "seed", optarg, &c->seed); break;
        case O_OUT: c->out = optarg; break;
        case O_REPORT: c->report = optarg; break;
        case O_REF: given[G_REF] = 1; o->reference = 1; break;
        case O_BATCH: given[G_BATCH] = 1; o->batch_norms = 1; break;
        case O_QUIET: c->quiet = 1; break;
        case O_METHOD:
            og.method = 1;
            bad = cli_parse_ode_method(sub, optarg, &c->ode_opt.method);
            break;
        case O_GRID: og.grid = 1; bad = cli_parse_grid(sub, optarg, &c->ode_opt.grid); break;
        case O_RHO:
            og.rho = 1;
            bad = cli_parse_positive(sub, "rho", optarg, &c->ode_opt.rho);
            break;
        case O_WHOLE: og.whole_batch = 1; c->ode_opt.whole_batch = 1; break;
        case O_PLOT: c->plot = optarg; break;
        case O_PLOT_PATHS:
            have_paths = 1;
            bad = cli_parse_u64(sub, "plot-paths", optarg, &n_paths);
            if (!bad && n_paths > CLI_MAX_PLOT_PATHS) {
                cli_error(sub, "--plot-paths: at most %d (got %s)", CLI_MAX_PLOT_PATHS, optarg);
                bad = 1;
            }
            break;
        case O_FROM: from = optarg; break;
        case ':':
            cli_error(sub, "option %s needs a value (see diffsde sample --help)",
                      argv[optind - 1]);
            return CLI_USAGE;
        default:
            cli_error(sub, "unknown option '%s' (see diffsde sample --help)", argv[optind - 1]);
            return CLI_USAGE;
        }
        if (bad)
            return CLI_USAGE;
    }
    if (optind < argc) {
        cli_error(sub, "unexpected argument '%s' (see diffsde sample --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (from)
        return from_report(c, from, defining);
    if (!c->model) {
        cli_error(sub, "--model is required (e.g. --model gmm:ring8)");
        return CLI_USAGE;
    }
    c->plot_paths = (size_t)n_paths;
    if (have_paths && !c->plot) {
        cli_error(sub, "--plot-paths needs --plot FILE.png");
        return CLI_USAGE;
    }
    if (!have_n) {
        cli_error(sub, "--n is required (the number of samples, e.g. --n 10000)");
        return CLI_USAGE;
    }
    if (!c->out) {
        cli_error(sub, "--out is required (e.g. --out samples.npy)");
        return CLI_USAGE;
    }
    if (distinct_outputs(c) != CLI_OK)
        return CLI_USAGE;
    if (c->ode && sh.steps_text && sh.steps < 1) {
        cli_error(sub, "--steps: must be at least 1 (got %s)", sh.steps_text);
        return CLI_USAGE;
    }
    /* Options that would have no effect are refused, so nobody believes they changed a run. */
    return c->ode ? finish_ode(c, &sh, given, &og) : finish_sde(c, &sh, given, &og);
}

/* Fill the SDE-dependent defaults (snr, eps) and check eps against T. */
static int resolve(const char *s, cli_sample_config *c, const diffsde_sde *sde)
{
    double T, eps;
    diffsde_sde_time_range(sde, NULL, &T);
    if (isnan(c->opt.snr))
        c->opt.snr = diffsde_sde_get_kind(sde) == DIFFSDE_SDE_VE ? 0.16 : 0.01;
    if (isnan(c->opt.eps)) {
        diffsde_sde_default_eps(sde, &eps);
        c->opt.eps = eps;
    }
    if (!(c->opt.eps > 0 && c->opt.eps < T)) {
        cli_error(s, "--eps: must be in (0, T) = (0, %g) for --sde %s (got %g)", T,
                  diffsde_sde_name(sde), c->opt.eps);
        return CLI_USAGE;
    }
    c->ode_opt.eps = c->opt.eps;
    return CLI_OK;
}

/* Run the sampler over all n samples, chunk by chunk, into x (n × d). */
static int draw(const char *s, diffsde_ctx *ctx, diffsde_sampler *smp, const diffsde_noise *noise,
                const cli_sample_config *c, const diffsde_sde *sde, size_t d, double *x,
                cli_sample_result *r, cli_path_rec *pr)
{
    size_t n = (size_t)c->n, chunk = n < CLI_SAMPLE_CHUNK ? n : CLI_SAMPLE_CHUNK;
    double *times = malloc(chunk * sizeof *times);
    if (!times) {
        cli_error(s, "out of memory");
        return CLI_FAILED;
    }
    double T;
    diffsde_sde_time_range(sde, NULL, &T);
    const double span = T - c->opt.eps;
    cli_progress prog;
    cli_progress_start(&prog, c->quiet);
    memset(&r->stats, 0, sizeof r->stats);
    int rc = DIFFSDE_OK;
    for (size_t i0 = 0; i0 < n && rc == DIFFSDE_OK; i0 += chunk) {
        size_t nc = n - i0 < chunk ? n - i0 : chunk;
        double *xc = x + i0 * d;
        diffsde_sampler_stats st;
        rc = diffsde_sampler_init(smp, noise, (uint64_t)i0, nc, d, xc);
        if (rc == DIFFSDE_OK && pr && i0 == 0) {
            cli_paths_add(pr, xc); /* the prior draw */
            rc = diffsde_sampler_set_observer(smp, cli_paths_observe, pr, 1);
        }
        while (rc == DIFFSDE_OK && !diffsde_sampler_done(smp)) {
            rc = diffsde_sampler_step(smp, xc);
            if (rc != DIFFSDE_OK || !prog.enabled)
                continue;
            /* The slowest sample (largest t) measures the progress of the chunk. */
            double tmax = 0;
            diffsde_sampler_get_times(smp, times);
            for (size_t i = 0; i < nc; i++)
                tmax = times[i] > tmax ? times[i] : tmax;
            diffsde_sampler_get_stats(smp, &st);
            double fc = span > 0 ? (T - tmax) / span : 1;
            fc = fc < 0 ? 0 : fc > 1 ? 1 : fc;
            cli_progress_update(&prog, ((double)i0 + fc * (double)nc) / (double)n,
                                i0 / chunk + 1, (n + chunk - 1) / chunk, st.steps, tmax,
                                (double)st.score_evals / (double)nc, 0);
        }
        if (rc == DIFFSDE_OK)
            rc = diffsde_sampler_finish(smp, xc);
        if (rc == DIFFSDE_OK && pr && i0 == 0) {
            cli_paths_add(pr, xc); /* after the denoising step, where the sample lands */
            rc = diffsde_sampler_set_observer(smp, NULL, NULL, 1);
        }
        if (rc == DIFFSDE_OK) {
            diffsde_sampler_get_stats(smp, &st);
            r->stats.steps = st.steps > r->stats.steps ? st.steps : r->stats.steps;
            r->stats.score_calls += st.score_calls;
            r->stats.score_evals += st.score_evals;
            r->stats.denoise_calls += st.denoise_calls;
            r->stats.accepted += st.accepted;
            r->stats.rejected += st.rejected;
            r->stats.wall_seconds += st.wall_seconds;
        } else if (nc < n) {
            cli_progress_end(&prog);
            cli_error(s, "samples %zu..%zu: %s", i0, i0 + nc - 1, diffsde_errmsg(ctx));
        } else {
            cli_progress_end(&prog);
            cli_error(s, "%s", diffsde_errmsg(ctx));
        }
    }
    cli_progress_end(&prog);
    r->stats.nfe_per_sample = (double)r->stats.score_evals / (double)n;
    r->wall_seconds = cli_now() - prog.start;
    free(times);
    return rc == DIFFSDE_OK ? CLI_OK : CLI_FAILED;
}

/* Integrate the flow ODE for all n samples, chunk by chunk, into x (n × d). The library has no
 * step hook, so the progress line advances by chunks. */
static int draw_ode(const char *s, diffsde_ctx *ctx, diffsde_ode *ode, const diffsde_noise *noise,
                    const cli_sample_config *c, size_t d, double *x, cli_sample_result *r)
{
    size_t n = (size_t)c->n, chunk = n < CLI_SAMPLE_CHUNK ? n : CLI_SAMPLE_CHUNK;
    size_t nchunks = (n + chunk - 1) / chunk;
    cli_progress prog;
    cli_progress_start(&prog, c->quiet);
    memset(&r->ode_stats, 0, sizeof r->ode_stats);
    int rc = DIFFSDE_OK;
    for (size_t i0 = 0; i0 < n && rc == DIFFSDE_OK; i0 += chunk) {
        size_t nc = n - i0 < chunk ? n - i0 : chunk;
        rc = diffsde_ode_sample(ode, noise, (uint64_t)i0, nc, d, x + i0 * d);
        if (rc != DIFFSDE_OK) {
            cli_progress_end(&prog);
            if (nc < n)
                cli_error(s, "samples %zu..%zu: %s", i0, i0 + nc - 1, diffsde_errmsg(ctx));
            else
                cli_error(s, "%s", diffsde_errmsg(ctx));
            break;
        }
        diffsde_ode_stats st;
        diffsde_ode_get_stats(ode, &st);
        cli_ode_stats_add(&r->ode_stats, &st, i0 == 0);
        if (nchunks > 1)
            cli_progress_update(&prog, (double)(i0 + nc) / (double)n, i0 / chunk + 1, nchunks,
                                r->ode_stats.steps, c->ode_opt.eps,
                                (double)r->ode_stats.score_evals / (double)(i0 + nc), 1);
    }
    cli_progress_end(&prog);
    r->ode_stats.nfe_per_sample = (double)r->ode_stats.score_evals / (double)n;
    r->wall_seconds = cli_now() - prog.start;
    return rc == DIFFSDE_OK ? CLI_OK : CLI_FAILED;
}

/* Metrics against the exact density of what was sampled: p0 for denoised samples, p_eps for
 * the flow's value at eps. A failure here (e.g. a sample so far out that log p underflows)
 * does not fail the run: the samples are written, the report says why. */
static void measure(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                    const cli_sample_config *c, const double *x, cli_sample_result *r,
                    char *err, size_t errlen)
{
    diffsde_noise *mnoise = NULL;
    double t0 = cli_now();
    r->metrics_seed = cli_metrics_seed(c->seed);
    /* pc and adaptive-sde keep p0 as their reference whatever --no-denoise says (their
     * reports mean what they meant); the ODE is measured where it ends. */
    r->metrics_t = c->ode && !c->ode_opt.denoise ? c->ode_opt.eps : 0;
    if (diffsde_noise_new_philox(ctx, r->metrics_seed, &mnoise) == DIFFSDE_OK &&
        diffsde_metrics_compute(ctx, gmm, r->metrics_t > 0 ? sde : NULL, r->metrics_t, mnoise,
                                (size_t)c->n, x, NULL, &r->metrics) == DIFFSDE_OK)
        r->have_metrics = 1;
    else
        snprintf(err, errlen, "%s", diffsde_errmsg(ctx));
    r->metrics_seconds = cli_now() - t0;
    diffsde_noise_free(mnoise);
}

/* A configuration the library refuses before running is a usage error (exit 2). */
static int refused(const char *s, diffsde_ctx *ctx, int st)
{
    int usage = st == DIFFSDE_EPARAM || st == DIFFSDE_EUNSUPPORTED;
    if (usage)
        cli_error(s, "%s (see diffsde %s --help)", diffsde_errmsg(ctx), s);
    else
        cli_error(s, "%s", diffsde_errmsg(ctx));
    return usage ? CLI_USAGE : CLI_FAILED;
}

/* Render --plot against the exact density at the metrics' time: p_eps for the flow's value at
 * eps (--sampler ode without denoising), p0 otherwise. */
static int plot(const char *s, const cli_sample_config *c, const diffsde_gmm *gmm,
                const diffsde_sde *sde, size_t d, const double *x, const cli_path_rec *pr,
                char **tmp)
{
    double t = c->ode && !c->ode_opt.denoise ? c->ode_opt.eps : 0;
    char title[512], how[160];
    if (c->ode)
        snprintf(how, sizeof how, "flow ODE, %s", diffsde_ode_method_name(c->ode_opt.method));
    else if (c->opt.method == DIFFSDE_SAMPLER_PC)
        snprintf(how, sizeof how, "pc, %s + %s, %zu levels",
                 diffsde_predictor_name(c->opt.predictor),
                 diffsde_corrector_name(c->opt.corrector), c->opt.steps);
    else
        snprintf(how, sizeof how, "adaptive-sde, rtol %g", c->opt.rtol);
    const char *model = strncmp(c->model, "gmm:", 4) == 0 ? c->model + 4 : c->model;
    if (t > 0)
        snprintf(title, sizeof title, "%s: %s, %s, n = %llu, seed %llu; exact p_eps, eps = %g",
                 model, how, c->sde.name, (unsigned long long)c->n,
                 (unsigned long long)c->seed, t);
    else
        snprintf(title, sizeof title, "%s: %s, %s, n = %llu, seed %llu; exact p0", model, how,
                 c->sde.name, (unsigned long long)c->n, (unsigned long long)c->seed);
    /* gnuplot's single-quoted title cannot hold a quote. */
    for (char *q = title; *q; q++)
        if (*q == '\'' || *q == '\n')
            *q = '?';
    double *traj = NULL;
    if (pr && !(traj = cli_paths_layout(pr))) {
        cli_error(s, "out of memory");
        return CLI_FAILED;
    }
    cli_plot_spec spec = {c->plot, title, (size_t)c->n, d, x, gmm, t > 0 ? sde : NULL, t,
                          pr ? pr->k : 0, pr ? pr->npts : 0, traj};
    int rc = cli_plot_render(s, &spec, tmp);
    free(traj);
    return rc;
}

int cli_sample_execute(const char *s, cli_sample_config *c, int want_metrics,
                       cli_sample_result *r)
{
    memset(r, 0, sizeof *r);
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK) {
        cli_error(s, "cannot create a context (out of memory)");
        return CLI_FAILED;
    }
    diffsde_sde *sde = NULL;
    diffsde_gmm *gmm = NULL;
    diffsde_score *score = NULL;
    diffsde_sampler *smp = NULL;
    diffsde_ode *ode = NULL;
    diffsde_noise *noise = NULL;
    double *x = NULL;
    char *report_tmp = NULL, *plot_tmp = NULL, merr[DIFFSDE_ERRMSG_CAPACITY] = "";
    cli_path_rec paths = {0, 0, 0, 0, NULL}, *pr = NULL;
    json_t *doc = NULL;
    int rc = cli_sde_make(s, ctx, &c->sde, &sde);
    if (rc == CLI_OK)
        rc = resolve(s, c, sde);
    if (rc == CLI_OK)
        rc = cli_model_load(s, ctx, c->model, sde, &gmm, &score);
    if (rc == CLI_OK && c->ode) {
        int st = diffsde_ode_new(ctx, sde, score, &c->ode_opt, &ode);
        if (st != DIFFSDE_OK)
            rc = refused(s, ctx, st);
        else
            diffsde_ode_get_options(ode, &c->ode_opt); /* the report shows resolved values */
    } else if (rc == CLI_OK) {
        int st = diffsde_sampler_new(ctx, sde, score, &c->opt, &smp);
        if (st != DIFFSDE_OK)
            rc = refused(s, ctx, st);
    }
    if (rc == CLI_OK)
        rc = cli_check_writable(s, "out", c->out);
    if (rc == CLI_OK && c->report)
        rc = cli_check_writable(s, "report", c->report);
    if (rc == CLI_OK && c->plot) {
        rc = cli_check_writable(s, "plot", c->plot);
        if (rc == CLI_OK)
            rc = cli_plot_available(s);
    }
    if (rc == CLI_OK && c->plot && c->plot_paths > 0) {
        if (diffsde_gmm_dim(gmm) != 2) {
            cli_error(s, "--plot-paths: paths are drawn for 2-D models only (%s has dimension "
                      "%zu)", c->model, diffsde_gmm_dim(gmm));
            rc = CLI_USAGE;
        } else if (cli_paths_init(&paths, c->plot_paths < c->n ? c->plot_paths
                                                           : (size_t)c->n) != 0) {
            cli_error(s, "out of memory");
            rc = CLI_FAILED;
        } else {
            pr = &paths;
        }
    }
    if (rc == CLI_OK) {
        r->d = diffsde_gmm_dim(gmm);
        if (c->n > SIZE_MAX / sizeof(double) / r->d ||
            !(x = malloc((size_t)c->n * r->d * sizeof *x))) {
            cli_error(s, "out of memory for %llu samples of dimension %zu",
                      (unsigned long long)c->n, r->d);
            rc = CLI_FAILED;
        }
    }
    if (rc == CLI_OK && diffsde_noise_new_philox(ctx, c->seed, &noise) != DIFFSDE_OK) {
        cli_error(s, "%s", diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    if (rc == CLI_OK)
        rc = c->ode ? draw_ode(s, ctx, ode, noise, c, r->d, x, r)
                    : draw(s, ctx, smp, noise, c, sde, r->d, x, r, pr);
    if (rc == CLI_OK && c->ode && pr)
        rc = cli_paths_ode(s, ctx, ode, sde, score, noise, c, pr);
    if (rc == CLI_OK && want_metrics && c->n >= 2) {
        measure(ctx, gmm, sde, c, x, r, merr, sizeof merr);
        if (!r->have_metrics)
            cli_error(s, "warning: metrics not computed: %s", merr);
    }
    if (rc == CLI_OK && c->plot)
        rc = plot(s, c, gmm, sde, r->d, x, pr, &plot_tmp);
    if (rc == CLI_OK && c->report) {
        doc = cli_sample_report(s, c, sde, r, r->have_metrics || c->n < 2 ? NULL : merr);
        if (!doc) {
            cli_error(s, "out of memory while building the report");
            rc = CLI_FAILED;
        } else {
            rc = cli_report_prepare(s, c->report, doc, &report_tmp);
        }
    }
    if (rc == CLI_OK && diffsde_array_write(ctx, c->out, 2, (size_t)c->n, r->d, x) != DIFFSDE_OK) {
        cli_error(s, "--out: %s", diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    /* The samples are in place: the picture, then the report, which describes them all. */
    if (plot_tmp) {
        if (rc == CLI_OK)
            rc = cli_plot_commit(s, c->plot, plot_tmp);
        else
            cli_plot_discard(plot_tmp);
    }
    if (report_tmp) {
        if (rc == CLI_OK)
            rc = cli_report_commit(s, c->report, report_tmp);
        else
            cli_report_discard(report_tmp);
    }
    json_decref(doc);
    free(paths.buf);
    free(x);
    diffsde_noise_free(noise);
    diffsde_ode_free(ode);
    diffsde_sampler_free(smp);
    diffsde_score_free(score);
    diffsde_gmm_free(gmm);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    return rc;
}

int cli_sample(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        help();
        return CLI_OK;
    }
    cli_sample_config c;
    cli_sample_config_default(&c);
    int rc = parse(argc, argv, &c);
    if (rc != CLI_OK) {
        json_decref(c.from);
        return rc;
    }
    c.argc = argc;
    c.argv = argv;
    cli_sample_result r;
    rc = cli_sample_execute(sub, &c, c.report != NULL, &r);
    if (rc == CLI_OK && !c.quiet)
        printf("wrote %llu samples of dimension %zu to %s%s%s%s%s (%.4g score evaluations "
               "per sample, %.3g s)\n",
               (unsigned long long)c.n, r.d, c.out, c.report ? ", the report to " : "",
               c.report ? c.report : "", c.plot ? ", the picture to " : "",
               c.plot ? c.plot : "",
               c.ode ? r.ode_stats.nfe_per_sample : r.stats.nfe_per_sample, r.wall_seconds);
    json_decref(c.from);
    return rc;
}
