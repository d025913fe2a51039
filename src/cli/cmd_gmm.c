/*
 * diffsde gmm: the exact Gaussian-mixture oracle from the command line.
 *   describe  the model's components and the moments of p0 (or of p_t with --sde/--t)
 *   score     exact ∇ log p_t at the points of --in, shape (n, d)
 *   logpdf    exact log p_t at the points of --in, shape (n,)
 *   sample    exact samples from p_t, shape (n, d)
 * Without --sde/--t every action refers to p0 itself.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char sub[] = "gmm";

static void help(void)
{
    printf(
        "usage: diffsde gmm describe --model MODEL [--sde SDE --t T]\n"
        "       diffsde gmm score    --model MODEL [--sde SDE --t T] --in X.npy --out S.npy\n"
        "       diffsde gmm logpdf   --model MODEL [--sde SDE --t T] --in X.npy --out L.npy\n"
        "       diffsde gmm sample   --model MODEL [--sde SDE --t T] --n N --seed S --out X.npy\n"
        "\n"
        "The exact Gaussian mixture p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I).\n"
        "Without --sde and --t, every action refers to p0 itself.\n"
        "\n"
        "options:\n"
        "  --model MODEL        gmm:FILE.json or gmm:NAME, NAME one of ring8, grid25, gauss1,\n"
        "                       random:D,K,SEED (required)\n"
        "  --sde SDE            ve, vp or subvp (default: none, i.e. p0)\n"
        "  --sde-param K=V      override an SDE parameter (sigma_min, sigma_max, beta_min,\n"
        "                       beta_max); repeatable (default: the SDE's defaults)\n"
        "  --t T                time in [0, 1] (required with --sde)\n"
        "  --in FILE            points, .npy (float64/float32, C order) or .csv, shape (n, d)\n"
        "                       (score and logpdf; required)\n"
        "  --out FILE           result, .npy float64 or .csv; written atomically (score,\n"
        "                       logpdf and sample; required)\n"
        "  --n N                number of samples (sample; required, >= 1)\n"
        "  --seed S             Philox seed, 0 .. 2^64-1 (sample; default: 0)\n"
        "  --help               this text\n"
        "\n"
        "exit status: 0 success, 1 the run failed (model or input unreadable, wrong\n"
        "dimension, an output that cannot be written), 2 usage error.\n"
        "\n"
        "examples:\n"
        "  diffsde gmm describe --model gmm:ring8\n"
        "  diffsde gmm sample --model gmm:ring8 --sde vp --t 0.5 --n 1000 --seed 1 --out x.npy\n"
        "  diffsde gmm score --model gmm:ring8 --sde vp --t 0.5 --in x.npy --out s.npy\n");
}

typedef struct gmm_opts {
    const char *action, *model, *in, *out;
    cli_sde_opts sde;
    int have_n;
    uint64_t n, seed;
} gmm_opts;

static int parse(int argc, char **argv, gmm_opts *o)
{
    enum { O_MODEL = 1, O_SDE, O_SDE_PARAM, O_T, O_IN, O_OUT, O_N, O_SEED };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"sde", required_argument, NULL, O_SDE},
        {"sde-param", required_argument, NULL, O_SDE_PARAM},
        {"t", required_argument, NULL, O_T},
        {"in", required_argument, NULL, O_IN},
        {"out", required_argument, NULL, O_OUT},
        {"n", required_argument, NULL, O_N},
        {"seed", required_argument, NULL, O_SEED},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    if (argc < 2 || argv[1][0] == '-') {
        cli_error(sub, "expected an action: describe, score, logpdf or sample (see --help)");
        return CLI_USAGE;
    }
    o->action = argv[1];
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long_only(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_SDE: o->sde.name = optarg; break;
        case O_SDE_PARAM:
            if (cli_sde_add_param(sub, &o->sde, optarg) != 0)
                return CLI_USAGE;
            break;
        case O_T:
            if (cli_parse_double(sub, "t", optarg, &o->sde.t) != 0)
                return CLI_USAGE;
            o->sde.have_t = 1;
            break;
        case O_IN: o->in = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_N:
            if (cli_parse_u64(sub, "n", optarg, &o->n) != 0)
                return CLI_USAGE;
            o->have_n = 1;
            break;
        case O_SEED:
            if (cli_parse_u64(sub, "seed", optarg, &o->seed) != 0)
                return CLI_USAGE;
            break;
        case ':':
            cli_error(sub, "option %s needs a value (see diffsde gmm --help)", argv[optind - 1]);
            return CLI_USAGE;
        default:
            cli_error(sub, "unknown option '%s' (see diffsde gmm --help)", argv[optind - 1]);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error(sub, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    int is_eval = !strcmp(o->action, "score") || !strcmp(o->action, "logpdf");
    int is_sample = !strcmp(o->action, "sample");
    if (!is_eval && !is_sample && strcmp(o->action, "describe") != 0) {
        cli_error(sub, "unknown action '%s' (describe, score, logpdf or sample)", o->action);
        return CLI_USAGE;
    }
    if (!o->model) {
        cli_error(sub, "--model is required (e.g. --model gmm:ring8)");
        return CLI_USAGE;
    }
    if (is_eval && (!o->in || !o->out)) {
        cli_error(sub, "%s needs --in and --out", o->action);
        return CLI_USAGE;
    }
    if (is_sample && (!o->have_n || o->n == 0 || !o->out)) {
        cli_error(sub, "sample needs --n N (N >= 1) and --out");
        return CLI_USAGE;
    }
    if (!is_eval && o->in) {
        cli_error(sub, "--in is only for score and logpdf");
        return CLI_USAGE;
    }
    if (!is_sample && (o->have_n || o->seed)) {
        cli_error(sub, "--n and --seed are only for sample");
        return CLI_USAGE;
    }
    if (!strcmp(o->action, "describe") && o->out) {
        cli_error(sub, "describe prints to stdout; --out is not used");
        return CLI_USAGE;
    }
    return CLI_OK;
}

static void print_matrix_row(const double *v, size_t d)
{
    for (size_t j = 0; j < d; j++)
        printf("%s%.6g", j ? ", " : "[", v[j]);
    printf("]");
}

static int describe(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                    const gmm_opts *o)
{
    size_t d = diffsde_gmm_dim(gmm), K = diffsde_gmm_ncomponents(gmm);
    double *mean = malloc(d * sizeof *mean), *cov = malloc(d * d * sizeof *cov);
    if (!mean || !cov) {
        free(mean);
        free(cov);
        cli_error(sub, "out of memory");
        return CLI_FAILED;
    }
    printf("model %s: dimension %zu, %zu component%s\n", o->model, d, K, K == 1 ? "" : "s");
    const size_t show = d <= 4 ? d : 4;
    for (size_t k = 0; k < K; k++) {
        double w;
        diffsde_gmm_component(gmm, k, &w, mean, cov);
        double tr = 0;
        for (size_t j = 0; j < d; j++)
            tr += cov[j * d + j];
        printf("  component %zu: weight %.6g, mean ", k, w);
        print_matrix_row(mean, show);
        printf("%s, trace(cov) %.6g\n", show < d ? " ..." : "", tr);
    }
    int rc = diffsde_gmm_moments(gmm, sde, o->sde.t, mean, cov);
    if (rc != DIFFSDE_OK) {
        cli_error(sub, "%s", diffsde_errmsg(ctx));
    } else {
        if (sde)
            printf("p_t under %s at t = %g:\n", diffsde_sde_name(sde), o->sde.t);
        else
            printf("p0:\n");
        printf("  mean ");
        print_matrix_row(mean, show);
        printf("%s\n  covariance", show < d ? " ..." : "");
        for (size_t i = 0; i < show; i++) {
            printf("%s", i ? "\n             " : " ");
            print_matrix_row(cov + i * d, show);
        }
        printf("%s\n", show < d ? " ..." : "");
    }
    free(mean);
    free(cov);
    return rc == DIFFSDE_OK ? CLI_OK : CLI_FAILED;
}

static int evaluate(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                    const gmm_opts *o)
{
    size_t d = diffsde_gmm_dim(gmm);
    diffsde_array in = {0};
    if (diffsde_array_read(ctx, o->in, &in) != DIFFSDE_OK) {
        cli_error(sub, "%s", diffsde_errmsg(ctx));
        return CLI_FAILED;
    }
    /* A 1-D array is n points of a 1-D model. */
    size_t n = in.rows, cols = in.ndim == 1 ? 1 : in.cols;
    if (cols != d) {
        cli_error(sub, "--in %s: points have %zu coordinates, the model has dimension %zu",
                  o->in, cols, d);
        diffsde_array_free(ctx, &in);
        return CLI_FAILED;
    }
    int score = !strcmp(o->action, "score");
    double *t = malloc((n ? n : 1) * sizeof *t);
    double *res = malloc((n ? n : 1) * (score ? d : 1) * sizeof *res);
    diffsde_gmm_eval *ev = NULL;
    int status = CLI_FAILED;
    if (!t || !res) {
        cli_error(sub, "out of memory for %zu points", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        t[i] = o->sde.t;
    if (diffsde_gmm_eval_new(gmm, sde, &ev) != DIFFSDE_OK ||
        diffsde_gmm_evaluate(ev, n, t, in.data, score ? NULL : res, score ? res : NULL, NULL,
                             NULL) != DIFFSDE_OK ||
        diffsde_array_write(ctx, o->out, score ? 2 : 1, n, score ? d : 1, res) != DIFFSDE_OK) {
        cli_error(sub, "%s", diffsde_errmsg(ctx));
        goto done;
    }
    status = CLI_OK;
done:
    diffsde_gmm_eval_free(ev);
    free(t);
    free(res);
    diffsde_array_free(ctx, &in);
    return status;
}

static int sample(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                  const gmm_opts *o)
{
    size_t d = diffsde_gmm_dim(gmm);
    if (o->n > SIZE_MAX / sizeof(double) / d) {
        cli_error(sub, "--n %llu samples of dimension %zu do not fit in memory",
                  (unsigned long long)o->n, d);
        return CLI_FAILED;
    }
    size_t n = (size_t)o->n;
    double *x = malloc(n * d * sizeof *x);
    diffsde_gmm_eval *ev = NULL;
    diffsde_noise *noise = NULL;
    int status = CLI_FAILED;
    if (!x) {
        cli_error(sub, "out of memory for %zu samples", n);
        return CLI_FAILED;
    }
    if (diffsde_noise_new_philox(ctx, o->seed, &noise) != DIFFSDE_OK ||
        diffsde_gmm_eval_new(gmm, sde, &ev) != DIFFSDE_OK ||
        diffsde_gmm_sample(ev, noise, o->sde.t, 0, n, x) != DIFFSDE_OK ||
        diffsde_array_write(ctx, o->out, 2, n, d, x) != DIFFSDE_OK) {
        cli_error(sub, "%s", diffsde_errmsg(ctx));
    } else {
        status = CLI_OK;
    }
    diffsde_gmm_eval_free(ev);
    diffsde_noise_free(noise);
    free(x);
    return status;
}

int cli_gmm(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        help();
        return CLI_OK;
    }
    gmm_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK) {
        cli_error(sub, "cannot create a context (out of memory)");
        return CLI_FAILED;
    }
    diffsde_sde *sde = NULL;
    diffsde_gmm *gmm = NULL;
    rc = cli_sde_create(sub, ctx, &o.sde, &sde);
    if (rc == CLI_OK && diffsde_gmm_load(ctx, o.model, &gmm) != DIFFSDE_OK) {
        cli_error(sub, "--model %s: %s", o.model, diffsde_errmsg(ctx));
        rc = CLI_FAILED;
    }
    if (rc == CLI_OK) {
        if (!strcmp(o.action, "describe"))
            rc = describe(ctx, gmm, sde, &o);
        else if (!strcmp(o.action, "sample"))
            rc = sample(ctx, gmm, sde, &o);
        else
            rc = evaluate(ctx, gmm, sde, &o);
    }
    diffsde_gmm_free(gmm);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    return rc;
}
