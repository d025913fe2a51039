/*
 * The sampler driver and the predictors (sampler.h):
 * - agreement with the reference implementation: the recorded draws of
 *   fixtures/samplers_gmm3d.json replayed through a callback noise source (prior first, then
 *   per level the corrector draws and the predictor draw), reference mode, the exact gmm3d
 *   score, N = 25, n = 4: all 14 runs of the file (EM, reverse diffusion, ancestral, PC and
 *   EM + Langevin under VE, VP, sub-VP) reproduce x_out to 1e-12 of the run's largest |x_out|
 *   (absolute), every recorded draw is consumed once and the score calls equal the run's nfe;
 * - the predictors on the default grid with zero predictor noise on Gaussian data
 *   p0 = N(m, s0² I), against scalar recursions written here from the formulas of sampler.h,
 *   with and without the final Tweedie step (1e-13 of the largest value), and the times;
 * - refusals: VP tables with N ≤ βmax (EPARAM, naming the smallest valid N), ancestral on
 *   sub-VP and user SDEs, MALA without a log-density (EUNSUPPORTED), invalid options (EPARAM
 *   naming the option), names of methods, predictors and correctors;
 * - lifecycle (ESTATE before init, before done, after finish), run() = init + steps + finish
 *   bit for bit, the observer's period, re-initialisation with other shapes;
 * - reproducibility: same seed ⇒ bit-identical samples for batches of 1, 7 and all 23, for
 *   six configurations including MALA and adaptive-sde (and batch-averaged norms, which couple
 *   the samples, do change with the split: the check can fail);
 * - failures: NaN/Inf from the score, fatal and recoverable callback statuses, a state that
 *   overflows, a failing second corrector step, a failing denoising step, the observer
 *   stopping the run: the status, the sample/level/t in the message, x and t restored, and the
 *   run then continuing to exactly the clean run's output;
 * - statistics (score calls = N (1 + K·[corrector calls the score]) + [denoising], NFE per
 *   sample, denoising calls, MALA's accepted + rejected), reference mode's final predictor
 *   mean (denoise on) or last state (off), no allocation after init, no leak when the
 *   allocator fails at any call of new or init.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffsde/gmm.h"
#include "diffsde/io.h"
#include "diffsde/sampler.h"
#include "testutil.h"

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "../shared/fixtures"
#endif

#define SEED UINT64_C(0x5eed2024)

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

#define ok(expr, ctx)                                                                        \
    do {                                                                                     \
        int st_ = (expr);                                                                    \
        if (st_ != DIFFSDE_OK)                                                               \
            print_error("%s -> %s: %s\n", #expr, diffsde_status_name(st_), diffsde_errmsg(ctx)); \
        assert_int_equal(st_, DIFFSDE_OK);                                                   \
    } while (0)

static void assert_msg_has(const diffsde_ctx *ctx, const char *needle)
{
    const char *m = diffsde_errmsg(ctx);
    if (!strstr(m, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", m, needle);
        fail();
    }
}

/* Path of a fixture: $DIFFSDE_FIXTURES, $top_srcdir/tests/fixtures, the Makefile's
 * directories, beside this source file, ./tests/fixtures, then the shared originals. */
static void fixture_path(const char *name, char *path, size_t len)
{
    char here[4000], top[4000];
    const char *env = getenv("DIFFSDE_FIXTURES"), *src = getenv("top_srcdir");
    snprintf(top, sizeof top, "%s/tests/fixtures", src ? src : ".");
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash)
        snprintf(slash, sizeof here - (size_t)(slash - here), "/fixtures");
    else
        snprintf(here, sizeof here, "fixtures");
    const char *dirs[] = {env && *env ? env : top, top,
#ifdef DIFFSDE_TEST_FIXTURES_DIR
                          DIFFSDE_TEST_FIXTURES_DIR,
#endif
                          here, "tests/fixtures", FIXTURES_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, len, "%s/%s", dirs[i], name);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return;
        }
    }
    print_error("fixture %s not found (set DIFFSDE_FIXTURES)\n", name);
    fail();
}

/* Gaussian data p0 = N(m, s0² I), m_j = M0 + 0.25 j: score −(x − α m)/(α² s0² + σ²). The
 * callback can be told to misbehave at one call (0-based): plant a value at one sample and/or
 * return a status. */
#define M0 0.731
#define S0 1.385
typedef struct gauss {
    const diffsde_sde *sde;
    long calls;
    long fault_call; /* -1: never */
    int fault_status;
    int plant;       /* plant fault_value at (fault_sample, coordinate 0) */
    size_t fault_sample;
    double fault_value;
} gauss;

static double gauss_mean(size_t j)
{
    return M0 + 0.25 * (double)j;
}

static int gauss_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                    void *user)
{
    gauss *g = user;
    for (size_t i = 0; i < n; i++) {
        diffsde_sde_coefs c;
        if (diffsde_sde_coefs_at(g->sde, t[i], &c) != DIFFSDE_OK)
            return -100;
        double v = c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma;
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = -(x[i * d + j] - c.alpha * gauss_mean(j)) / v;
    }
    int st = 0;
    if (g->calls == g->fault_call) {
        if (g->plant)
            out[g->fault_sample * d] = g->fault_value;
        st = g->fault_status;
    }
    g->calls++;
    return st;
}

static void gauss_init(gauss *g, const diffsde_sde *sde)
{
    memset(g, 0, sizeof *g);
    g->sde = sde;
    g->fault_call = -1;
}

/* Observer recording a copy of the state after every `every`-th step. */
typedef struct recorder {
    size_t nd, cap, count;
    double *states; /* cap × nd */
    size_t steps[64];
    double t0[64];
    int stop_at;    /* return stop_code when this step count is reached (0: never) */
    int stop_code;
} recorder;

static int record_cb(size_t step, size_t n, size_t d, const double *t, const double *x,
                     void *user)
{
    recorder *r = user;
    assert_int_equal(n * d, r->nd);
    if (r->count < r->cap) {
        memcpy(r->states + r->count * r->nd, x, r->nd * sizeof *x);
        r->steps[r->count] = step;
        r->t0[r->count] = t[0];
        r->count++;
    }
    return (r->stop_at && (int)step == r->stop_at) ? r->stop_code : 0;
}

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3]; /* default VE, VP, sub-VP */
    diffsde_gmm *gmm3d;
    diffsde_score *score[3]; /* exact gmm3d score under sde[k] */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char path[4096];
    if (!f || diffsde_ctx_new(&f->ctx, NULL) ||
        diffsde_sde_new_ve(f->ctx, DIFFSDE_VE_SIGMA_MIN, DIFFSDE_VE_SIGMA_MAX, &f->sde[0]) ||
        diffsde_sde_new_vp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[1]) ||
        diffsde_sde_new_subvp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[2]))
        return -1;
    fixture_path("problem_gmm3d.json", path, sizeof path);
    if (diffsde_gmm_from_json_file(f->ctx, path, &f->gmm3d))
        return -1;
    for (int k = 0; k < 3; k++)
        if (diffsde_gmm_score_new(f->gmm3d, f->sde[k], &f->score[k]))
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < 3; k++) {
        diffsde_score_free(f->score[k]);
        diffsde_sde_free(f->sde[k]);
    }
    diffsde_gmm_free(f->gmm3d);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

static diffsde_sampler_options pc_opts(diffsde_predictor p, diffsde_corrector c, size_t N)
{
    diffsde_sampler_options o;
    diffsde_sampler_options_default(&o);
    o.predictor = p;
    o.corrector = c;
    o.steps = N;
    return o;
}

/* One complete run on a fresh sampler; returns the status. */
static int run_once(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                    const diffsde_sampler_options *o, const diffsde_noise *noise,
                    uint64_t sample0, size_t n, size_t d, double *x,
                    diffsde_sampler_stats *stats)
{
    diffsde_sampler *s;
    int st = diffsde_sampler_new(ctx, sde, score, o, &s);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_sampler_run(s, noise, sample0, n, d, x);
    if (stats)
        diffsde_sampler_get_stats(s, stats);
    diffsde_sampler_free(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* (1) Agreement with the reference implementation on recorded noise                          */

typedef struct replay {
    const json_t *noise; /* [position][sample][coordinate] */
    size_t K;            /* corrector draws per level, 0 without corrector */
    size_t calls, bad;
} replay;

/* (stream, step) → position in the recorded order: prior; then per level i the K corrector
 * draws (steps i·K .. i·K + K − 1) and the predictor draw (step i). */
static int replay_fn(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                     double *z, void *user)
{
    replay *r = user;
    size_t pos, K = r->K;
    r->calls++;
    if (stream == DIFFSDE_STREAM_PRIOR && step == 0)
        pos = 0;
    else if (stream == DIFFSDE_STREAM_PREDICTOR)
        pos = 1 + (size_t)step * (K + 1) + K;
    else if (stream == DIFFSDE_STREAM_CORRECTOR && K > 0)
        pos = 1 + (size_t)(step / K) * (K + 1) + (size_t)(step % K);
    else {
        r->bad++;
        return -1;
    }
    const json_t *row = json_array_get(r->noise, pos);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            const json_t *v = json_array_get(json_array_get(row, sample0 + i), j);
            if (!json_is_number(v)) {
                r->bad++;
                return -2;
            }
            z[i * d + j] = json_number_value(v);
        }
    return 0;
}

static int name_to_predictor(const char *name, diffsde_predictor *p)
{
    static const struct {
        const char *fixture;
        diffsde_predictor p;
    } map[] = {{"euler_maruyama", DIFFSDE_PREDICTOR_EULER_MARUYAMA},
               {"reverse_diffusion", DIFFSDE_PREDICTOR_REVERSE_DIFFUSION},
               {"ancestral_sampling", DIFFSDE_PREDICTOR_ANCESTRAL},
               {"none", DIFFSDE_PREDICTOR_NONE}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i].fixture) == 0) {
            *p = map[i].p;
            return 0;
        }
    return -1;
}

static void test_fixture_agreement(void **state)
{
    fixture *f = *state;
    char path[4096];
    json_error_t jerr;
    fixture_path("samplers_gmm3d.json", path, sizeof path);
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    const size_t n = (size_t)json_integer_value(json_object_get(root, "n"));
    const size_t N = (size_t)json_integer_value(json_object_get(root, "N"));
    const size_t K = (size_t)json_integer_value(json_object_get(root, "n_steps_each"));
    assert_int_equal(n, 4);
    assert_int_equal(N, 25);
    const size_t d = diffsde_gmm_dim(f->gmm3d);
    const json_t *runs = json_object_get(root, "runs"), *run;
    size_t idx, nruns = 0;
    double worst = 0.0;
    json_array_foreach (runs, idx, run) {
        const char *sde_name = json_string_value(json_object_get(run, "sde"));
        const char *pname = json_string_value(json_object_get(run, "predictor"));
        const char *cname = json_string_value(json_object_get(run, "corrector"));
        int k = strcmp(sde_name, "ve") == 0 ? 0 : strcmp(sde_name, "vp") == 0 ? 1 : 2;
        assert_string_equal(sde_name, diffsde_sde_name(f->sde[k]));

        diffsde_sampler_options o;
        diffsde_sampler_options_default(&o);
        o.reference = 1;
        o.steps = N;
        o.corrector_steps = K;
        o.snr = json_number_value(json_object_get(run, "snr"));
        o.eps = json_number_value(json_object_get(run, "eps"));
        assert_int_equal(name_to_predictor(pname, &o.predictor), 0);
        ok(diffsde_corrector_from_name(cname, &o.corrector), f->ctx);

        replay r = {json_object_get(run, "noise"), o.corrector ? K : 0, 0, 0};
        diffsde_noise *noise;
        ok(diffsde_noise_new_callback(f->ctx, replay_fn, &r, &noise), f->ctx);
        double x[4 * 3];
        diffsde_sampler_stats st;
        ok(run_once(f->ctx, f->sde[k], f->score[k], &o, noise, 0, n, d, x, &st), f->ctx);
        diffsde_noise_free(noise);

        /* every recorded draw consumed once, nothing else asked for */
        assert_int_equal(r.bad, 0);
        assert_int_equal(r.calls, json_array_size(r.noise));
        assert_int_equal(st.score_calls,
                         (uint64_t)json_integer_value(json_object_get(run, "nfe")));
        assert_int_equal(st.denoise_calls, 0);

        const json_t *xo = json_object_get(run, "x_out");
        double scale = 0.0, err = 0.0, ex[4 * 3];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                ex[i * d + j] = json_number_value(json_array_get(json_array_get(xo, i), j));
                scale = fmax(scale, fabs(ex[i * d + j]));
            }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                double e = ex[i * d + j];
                err = fmax(err, fabs(x[i * d + j] - e) / scale);
                assert_close(x[i * d + j], e, 0.0, 1e-12 * scale);
            }
        print_message("# fixture %s %s+%s: max |x - x_out| / max|x_out| = %.2e\n", sde_name,
                      pname, cname, err);
        worst = fmax(worst, err);
        nruns++;
    }
    assert_int_equal(nruns, 14);
    print_message("# fixture agreement: %zu runs, worst relative error %.2e (tolerance 1e-12)\n",
                  nruns, worst);
    json_decref(root);
}

/* ---------------------------------------------------------------------------------------- */
/* (2) The predictors on the default grid, noise-free, against recursions written here        */

/* Prior draws: a fixed pattern; every other stream: zeros. */
static double pattern(uint64_t sample, size_t j)
{
    return 0.3 * (double)(sample + 1) - 0.7 * (double)j - 0.2;
}

static int pattern_fn(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                      double *z, void *user)
{
    (void)step;
    (void)user;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            z[i * d + j] = stream == DIFFSDE_STREAM_PRIOR ? pattern(sample0 + i, j) : 0.0;
    return 0;
}

/* One noise-free predictor step of the recursion, from the formulas of sampler.h. */
static void expected_step(const diffsde_sde *sde, diffsde_ctx *ctx, int p, size_t N,
                          const double *table, double ti, double dt, size_t nd, size_t d,
                          double *e)
{
    diffsde_sde_coefs c;
    diffsde_sde_discrete dd;
    ok(diffsde_sde_coefs_at(sde, ti, &c), ctx);
    ok(diffsde_sde_discretize(sde, N, ti, &dd), ctx);
    const double v = c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma;
    const size_t j = dd.index;
    const int ve = diffsde_sde_get_kind(sde) == DIFFSDE_SDE_VE;
    for (size_t q = 0; q < nd; q++) {
        double sc = -(e[q] - c.alpha * gauss_mean(q % d)) / v;
        switch (p) {
        case DIFFSDE_PREDICTOR_EULER_MARUYAMA: /* x − [f x − g² s] dt */
            e[q] = e[q] - (c.f * e[q] - c.g2 * sc) * dt;
            break;
        case DIFFSDE_PREDICTOR_REVERSE_DIFFUSION: /* x − f_coef x + G² s */
            e[q] = e[q] - dd.f_coef * e[q] + dd.G * dd.G * sc;
            break;
        case DIFFSDE_PREDICTOR_ANCESTRAL:
            if (ve) {
                double prev = j > 0 ? table[j - 1] : 0.0;
                e[q] = e[q] + (table[j] * table[j] - prev * prev) * sc;
            } else {
                e[q] = (e[q] + table[j] * sc) / sqrt(1.0 - table[j]);
            }
            break;
        default:
            break;
        }
    }
}

static void test_default_grid_noise_free(void **state)
{
    fixture *f = *state;
    enum { n = 3, d = 2, N = 30 };
    diffsde_noise *noise;
    ok(diffsde_noise_new_callback(f->ctx, pattern_fn, NULL, &noise), f->ctx);
    double worst = 0.0;
    for (int k = 0; k < 3; k++) {
        const diffsde_sde *sde = f->sde[k];
        double T, eps, pstd, table[N];
        ok(diffsde_sde_time_range(sde, NULL, &T), f->ctx);
        ok(diffsde_sde_default_eps(sde, &eps), f->ctx);
        ok(diffsde_sde_prior_std(sde, &pstd), f->ctx);
        ok(diffsde_sde_discrete_table(sde, N, table), f->ctx);
        for (int p = 0; p < 4; p++) {
            if (p == DIFFSDE_PREDICTOR_ANCESTRAL && k == 2)
                continue;
            for (int den = 0; den < 2; den++) {
                gauss g;
                gauss_init(&g, sde);
                diffsde_score *score;
                ok(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &score), f->ctx);
                diffsde_sampler_options o =
                    pc_opts((diffsde_predictor)p, DIFFSDE_CORRECTOR_NONE, N);
                o.denoise = den;
                diffsde_sampler *s;
                ok(diffsde_sampler_new(f->ctx, sde, score, &o, &s), f->ctx);
                double x[n * d], e[n * d], tv[n];
                ok(diffsde_sampler_init(s, noise, 0, n, d, x), f->ctx);
                for (size_t q = 0; q < n * d; q++) {
                    e[q] = pstd * pattern(q / d, q % d);
                    assert_true(x[q] == e[q]);
                }
                ok(diffsde_sampler_get_times(s, tv), f->ctx);
                assert_true(tv[0] == T && tv[n - 1] == T);
                for (size_t i = 0; i < N; i++) {
                    double ti = T - (double)i * (T - eps) / N;
                    double tn = i + 1 == N ? eps : T - (double)(i + 1) * (T - eps) / N;
                    expected_step(sde, f->ctx, p, N, table, ti, ti - tn, n * d, d, e);
                    assert_false(diffsde_sampler_done(s));
                    ok(diffsde_sampler_step(s, x), f->ctx);
                    ok(diffsde_sampler_get_times(s, tv), f->ctx);
                    for (size_t q = 0; q < n; q++)
                        assert_close(tv[q], tn, 0.0, 4 * DBL_EPSILON * T);
                }
                assert_true(diffsde_sampler_done(s));
                assert_true(tv[0] == eps); /* the grid ends on ε exactly */
                ok(diffsde_sampler_finish(s, x), f->ctx);
                if (den) { /* Tweedie: E[x0 | x_ε] = m + α s0² (x − α m)/v */
                    diffsde_sde_coefs c;
                    ok(diffsde_sde_coefs_at(sde, eps, &c), f->ctx);
                    double v = c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma;
                    for (size_t q = 0; q < n * d; q++) {
                        double m = gauss_mean(q % d);
                        e[q] = m + c.alpha * S0 * S0 * (e[q] - c.alpha * m) / v;
                    }
                }
                double scale = 0.0;
                for (size_t q = 0; q < n * d; q++)
                    scale = fmax(scale, fabs(e[q]));
                for (size_t q = 0; q < n * d; q++) {
                    worst = fmax(worst, fabs(x[q] - e[q]) / scale);
                    assert_close(x[q], e[q], 0.0, 1e-13 * scale);
                }
                diffsde_sampler_stats st;
                ok(diffsde_sampler_get_stats(s, &st), f->ctx);
                uint64_t calls = p == DIFFSDE_PREDICTOR_NONE ? 0 : N;
                assert_int_equal(st.score_calls, calls + (uint64_t)den);
                assert_int_equal(st.denoise_calls, (uint64_t)den);
                assert_int_equal(g.calls, (long)(calls + (uint64_t)den));
                diffsde_sampler_free(s);
                diffsde_score_free(score);
            }
        }
    }
    diffsde_noise_free(noise);
    print_message("# default grid, noise-free recursions: worst relative error %.2e\n", worst);
}

/* ---------------------------------------------------------------------------------------- */
/* (3) Refusals and option validation                                                         */

/* A VE-like user SDE: σ(t) = a b^t, f = 0, g² = 2 log(b) σ², α = 1. */
static double u_f(double t, void *u)
{
    (void)t;
    (void)u;
    return 0.0;
}
static double u_sigma(double t, void *u)
{
    (void)u;
    return 0.02 * pow(1500.0, t);
}
static double u_g2(double t, void *u)
{
    double s = u_sigma(t, u);
    return 2.0 * log(1500.0) * s * s;
}
static double u_alpha(double t, void *u)
{
    (void)t;
    (void)u;
    return 1.0;
}

static void expect_new(fixture *f, const diffsde_sde *sde, const diffsde_score *score,
                       const diffsde_sampler_options *o, int status, const char *needle)
{
    diffsde_sampler *s = (diffsde_sampler *)&s; /* must be reset to NULL on failure */
    int st = diffsde_sampler_new(f->ctx, sde, score, o, &s);
    if (st != status)
        print_error("expected %s, got %s: %s\n", diffsde_status_name(status),
                    diffsde_status_name(st), diffsde_errmsg(f->ctx));
    assert_int_equal(st, status);
    if (status != DIFFSDE_OK) {
        assert_null(s);
        if (needle)
            assert_msg_has(f->ctx, needle);
        return;
    }
    /* accepted: a short run must give finite samples */
    diffsde_noise *noise;
    double x[5 * 3];
    ok(diffsde_noise_new_philox(f->ctx, SEED, &noise), f->ctx);
    ok(diffsde_sampler_run(s, noise, 0, 5, 3, x), f->ctx);
    for (size_t q = 0; q < 15; q++)
        assert_true(isfinite(x[q]));
    diffsde_noise_free(noise);
    diffsde_sampler_free(s);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    const diffsde_sde *ve = f->sde[0], *vp = f->sde[1], *subvp = f->sde[2];
    diffsde_sampler_options o;

    /* VP DDPM table: N = 20 has beta_max/N = 1 (score_sde returns NaN); N = 21 is fine */
    diffsde_predictor tab[2] = {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_PREDICTOR_ANCESTRAL};
    for (int p = 0; p < 2; p++) {
        o = pc_opts(tab[p], DIFFSDE_CORRECTOR_NONE, 20);
        expect_new(f, vp, f->score[1], &o, DIFFSDE_EPARAM, "use at least N = 21 steps");
        assert_msg_has(f->ctx, "beta_max/N = 20/20 = 1 >= 1");
        assert_msg_has(f->ctx, diffsde_predictor_name(tab[p]));
        o.steps = 16;
        expect_new(f, vp, f->score[1], &o, DIFFSDE_EPARAM, "= 1.25 >= 1: use at least N = 21");
        o.steps = 21;
        expect_new(f, vp, f->score[1], &o, DIFFSDE_OK, NULL);
    }
    /* the corrector's table (a = 1 − b_j) on VP and sub-VP; EM alone needs none */
    o = pc_opts(DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_LANGEVIN, 20);
    expect_new(f, vp, f->score[1], &o, DIFFSDE_EPARAM, "langevin corrector");
    expect_new(f, subvp, f->score[2], &o, DIFFSDE_EPARAM, "use at least N = 21 steps");
    o.corrector = DIFFSDE_CORRECTOR_NONE;
    expect_new(f, vp, f->score[1], &o, DIFFSDE_OK, NULL);
    /* sub-VP reverse diffusion is the generic discretisation: no table, any N ≥ 2 */
    o = pc_opts(DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_NONE, 20);
    expect_new(f, subvp, f->score[2], &o, DIFFSDE_OK, NULL);
    /* VE has no such limit */
    o = pc_opts(DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_LANGEVIN, 5);
    expect_new(f, ve, f->score[0], &o, DIFFSDE_OK, NULL);
    /* the smallest valid N for a non-integer beta_max */
    diffsde_sde *vp75;
    ok(diffsde_sde_new_vp(f->ctx, 0.1, 7.5, &vp75), f->ctx);
    diffsde_score *sc75;
    ok(diffsde_gmm_score_new(f->gmm3d, vp75, &sc75), f->ctx);
    o = pc_opts(DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_NONE, 7);
    expect_new(f, vp75, sc75, &o, DIFFSDE_EPARAM, "use at least N = 8 steps");
    o.steps = 8;
    expect_new(f, vp75, sc75, &o, DIFFSDE_OK, NULL);
    diffsde_score_free(sc75);
    diffsde_sde_free(vp75);
    /* an absurd beta_max is refused just as quickly */
    ok(diffsde_sde_new_vp(f->ctx, 0.1, 1e300, &vp75), f->ctx);
    ok(diffsde_gmm_score_new(f->gmm3d, vp75, &sc75), f->ctx);
    o.steps = 1000;
    expect_new(f, vp75, sc75, &o, DIFFSDE_EPARAM, "use at least N = ");
    diffsde_score_free(sc75);
    diffsde_sde_free(vp75);

    /* ancestral: VE and VP only */
    o = pc_opts(DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_NONE, 50);
    expect_new(f, subvp, f->score[2], &o, DIFFSDE_EUNSUPPORTED, "ancestral");
    diffsde_sde_user def = {u_f, u_g2, u_alpha, u_sigma, NULL, 1.0, 0.0};
    diffsde_sde *user;
    ok(diffsde_sde_new_user(f->ctx, &def, &user), f->ctx);
    diffsde_score *us;
    ok(diffsde_gmm_score_new(f->gmm3d, user, &us), f->ctx);
    expect_new(f, user, us, &o, DIFFSDE_EUNSUPPORTED, "ancestral");
    o.predictor = DIFFSDE_PREDICTOR_REVERSE_DIFFUSION;
    o.corrector = DIFFSDE_CORRECTOR_LANGEVIN;
    expect_new(f, user, us, &o, DIFFSDE_OK, NULL);
    diffsde_score_free(us);
    diffsde_sde_free(user);

    /* MALA needs the model's log-density */
    gauss g;
    gauss_init(&g, vp);
    diffsde_score *plain;
    ok(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &plain), f->ctx);
    o = pc_opts(DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_MALA, 50);
    expect_new(f, vp, plain, &o, DIFFSDE_EUNSUPPORTED, "log-density");
    expect_new(f, vp, f->score[1], &o, DIFFSDE_OK, NULL);
    diffsde_score_free(plain);

    /* the adaptive method ignores the predictor and corrector */
    o = pc_opts(DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_MALA, 5);
    o.method = DIFFSDE_SAMPLER_ADAPTIVE_SDE;
    expect_new(f, subvp, f->score[2], &o, DIFFSDE_OK, NULL);
}

static void test_options(void **state)
{
    fixture *f = *state;
    const diffsde_sde *vp = f->sde[1];
    const diffsde_score *sc = f->score[1];
    diffsde_sampler_options o, d;
    diffsde_sampler_options_default(&d);
    assert_int_equal(d.method, DIFFSDE_SAMPLER_PC);
    assert_int_equal(d.predictor, DIFFSDE_PREDICTOR_REVERSE_DIFFUSION);
    assert_int_equal(d.corrector, DIFFSDE_CORRECTOR_LANGEVIN);
    assert_int_equal(d.steps, 1000);
    assert_int_equal(d.corrector_steps, 1);
    assert_true(isnan(d.snr) && isnan(d.eps));
    assert_int_equal(d.denoise, 1);
    assert_int_equal(d.reference, 0);
    assert_int_equal(d.batch_norms, 0);
    assert_true(d.rtol == 0.05 && d.atol == 0.01);
    assert_int_equal(d.max_steps, 100000);

    static const struct {
        const char *key;
        int which;
        double value;
    } bad[] = {{"steps", 0, 1},         {"steps", 0, 0},          {"corrector_steps", 1, 0},
               {"snr", 2, 0},           {"snr", 2, -0.16},        {"snr", 2, INFINITY},
               {"eps", 3, 1.0},         {"eps", 3, 1.5},          {"eps", 3, 0.0},
               {"eps", 3, -1e-3},       {"denoise", 4, 2},        {"reference", 5, -1},
               {"batch_norms", 6, 3},   {"rtol", 7, 0},           {"atol", 8, NAN},
               {"max_steps", 9, 0},     {"predictor", 10, 4},     {"corrector", 11, 4},
               {"method", 12, 2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = d;
        double v = bad[i].value;
        switch (bad[i].which) {
        case 0: o.steps = (size_t)v; break;
        case 1: o.corrector_steps = (size_t)v; break;
        case 2: o.snr = v; break;
        case 3: o.eps = v; break;
        case 4: o.denoise = (int)v; break;
        case 5: o.reference = (int)v; break;
        case 6: o.batch_norms = (int)v; break;
        case 7: o.rtol = v; break;
        case 8: o.atol = v; break;
        case 9: o.max_steps = (size_t)v; break;
        case 10: o.predictor = (diffsde_predictor)(int)v; break;
        case 11: o.corrector = (diffsde_corrector)(int)v; break;
        default: o.method = (diffsde_sampler_method)(int)v; break;
        }
        char needle[64];
        snprintf(needle, sizeof needle, "option %s (", bad[i].key);
        expect_new(f, vp, sc, &o, DIFFSDE_EPARAM, needle);
    }
    /* defaults: NULL options, NaN snr/eps */
    diffsde_sampler *s;
    ok(diffsde_sampler_new(f->ctx, vp, sc, NULL, &s), f->ctx);
    assert_int_equal(diffsde_sampler_set_observer(s, record_cb, NULL, 0), DIFFSDE_EPARAM);
    assert_msg_has(f->ctx, "every (0)");
    ok(diffsde_sampler_set_observer(s, NULL, NULL, 0), f->ctx);
    diffsde_sampler_free(s);
    diffsde_sampler_free(NULL);
    assert_int_equal(diffsde_sampler_new(NULL, vp, sc, NULL, &s), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_new(f->ctx, NULL, sc, NULL, &s), DIFFSDE_ENULL);
    assert_null(s);
    assert_int_equal(diffsde_sampler_new(f->ctx, vp, NULL, NULL, &s), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_new(f->ctx, vp, sc, NULL, NULL), DIFFSDE_ENULL);

    /* names */
    for (int m = 0; m < 2; m++) {
        diffsde_sampler_method back;
        ok(diffsde_sampler_method_from_name(diffsde_sampler_method_name((diffsde_sampler_method)m),
                                            &back), f->ctx);
        assert_int_equal(back, m);
    }
    for (int p = 0; p < 4; p++) {
        diffsde_predictor back;
        ok(diffsde_predictor_from_name(diffsde_predictor_name((diffsde_predictor)p), &back),
           f->ctx);
        assert_int_equal(back, p);
    }
    for (int c = 0; c < 4; c++) {
        diffsde_corrector back;
        ok(diffsde_corrector_from_name(diffsde_corrector_name((diffsde_corrector)c), &back),
           f->ctx);
        assert_int_equal(back, c);
    }
    assert_string_equal(diffsde_sampler_method_name(DIFFSDE_SAMPLER_ADAPTIVE_SDE),
                        "adaptive-sde");
    assert_string_equal(diffsde_predictor_name(DIFFSDE_PREDICTOR_EULER_MARUYAMA),
                        "euler-maruyama");
    assert_string_equal(diffsde_corrector_name(DIFFSDE_CORRECTOR_ALD), "ald");
    assert_string_equal(diffsde_predictor_name((diffsde_predictor)9), "");
    assert_string_equal(diffsde_corrector_name((diffsde_corrector)-1), "");
    assert_string_equal(diffsde_sampler_method_name((diffsde_sampler_method)2), "");
    diffsde_predictor p;
    diffsde_corrector c;
    diffsde_sampler_method m;
    assert_int_equal(diffsde_predictor_from_name("euler_maruyama", &p), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_corrector_from_name("Langevin", &c), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sampler_method_from_name("ode", &m), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_predictor_from_name(NULL, &p), DIFFSDE_ENULL);
    assert_int_equal(diffsde_corrector_from_name("none", NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_method_from_name(NULL, &m), DIFFSDE_ENULL);
}

/* ---------------------------------------------------------------------------------------- */
/* (4) Lifecycle                                                                              */

static void test_lifecycle(void **state)
{
    fixture *f = *state;
    enum { n = 6, d = 3, N = 25 };
    const diffsde_sde *vp = f->sde[1];
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, SEED, &noise), f->ctx);
    diffsde_sampler_options o =
        pc_opts(DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_LANGEVIN, N);
    diffsde_sampler *s;
    ok(diffsde_sampler_new(f->ctx, vp, f->score[1], &o, &s), f->ctx);
    double x[n * d], y[n * d], t[n];

    /* nothing before init */
    assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_ESTATE);
    assert_msg_has(f->ctx, "diffsde_sampler_init");
    assert_int_equal(diffsde_sampler_finish(s, x), DIFFSDE_ESTATE);
    assert_int_equal(diffsde_sampler_get_times(s, t), DIFFSDE_ESTATE);
    assert_int_equal(diffsde_sampler_done(s), 0);
    assert_int_equal(diffsde_sampler_done(NULL), 0);
    assert_int_equal(diffsde_sampler_step(NULL, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_get_stats(s, NULL), DIFFSDE_ENULL);

    /* a failed init leaves no run */
    assert_int_equal(diffsde_sampler_init(s, noise, 0, 0, d, x), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sampler_init(s, noise, 0, n, 0, x), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sampler_init(s, NULL, 0, n, d, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_init(s, noise, 0, n, d, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sampler_init(s, noise, DIFFSDE_NOISE_MAX_SAMPLES - 2, n, d, x),
                     DIFFSDE_ERANGE);
    assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_ESTATE);

    /* init + steps + finish by hand */
    ok(diffsde_sampler_init(s, noise, 3, n, d, x), f->ctx);
    assert_int_equal(diffsde_sampler_finish(s, x), DIFFSDE_ESTATE);
    assert_msg_has(f->ctx, "not done");
    size_t steps = 0;
    while (!diffsde_sampler_done(s)) {
        ok(diffsde_sampler_step(s, x), f->ctx);
        steps++;
    }
    assert_int_equal(steps, N);
    assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_ESTATE);
    assert_msg_has(f->ctx, "diffsde_sampler_finish");
    ok(diffsde_sampler_finish(s, x), f->ctx);
    assert_int_equal(diffsde_sampler_done(s), 1);
    assert_int_equal(diffsde_sampler_finish(s, x), DIFFSDE_ESTATE);
    assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_ESTATE);
    ok(diffsde_sampler_get_times(s, t), f->ctx);
    diffsde_sampler_stats st1, st2;
    ok(diffsde_sampler_get_stats(s, &st1), f->ctx);

    /* run() on the same sampler and on a fresh one: bit for bit */
    ok(diffsde_sampler_run(s, noise, 3, n, d, y), f->ctx);
    assert_memory_equal(x, y, sizeof x);
    ok(diffsde_sampler_get_stats(s, &st2), f->ctx);
    assert_int_equal(st1.score_calls, st2.score_calls);
    assert_int_equal(st1.score_evals, st2.score_evals);
    assert_int_equal(st1.steps, st2.steps);
    ok(run_once(f->ctx, vp, f->score[1], &o, noise, 3, n, d, y, NULL), f->ctx);
    assert_memory_equal(x, y, sizeof x);

    /* the observer every 4th step and after the last: steps 4, 8, ..., 24, 25; clearing it
     * changes nothing */
    double states[7 * n * d];
    recorder rec = {n * d, 7, 0, states, {0}, {0}, 0, 0};
    ok(diffsde_sampler_set_observer(s, record_cb, &rec, 4), f->ctx);
    ok(diffsde_sampler_run(s, noise, 3, n, d, y), f->ctx);
    assert_memory_equal(x, y, sizeof x);
    assert_int_equal(rec.count, 7);
    for (size_t i = 0; i < 7; i++) {
        size_t expect = i < 6 ? 4 * (i + 1) : N;
        assert_int_equal(rec.steps[i], expect);
        assert_close(rec.t0[i], 1.0 - (double)expect * (1.0 - 1e-3) / N, 0.0,
                     4 * DBL_EPSILON);
    }
    ok(diffsde_sampler_set_observer(s, NULL, NULL, 0), f->ctx);
    ok(diffsde_sampler_run(s, noise, 3, n, d, y), f->ctx);
    assert_memory_equal(x, y, sizeof x);
    assert_int_equal(rec.count, 7);

    /* re-initialisation with larger and smaller runs gives what fresh samplers give */
    const size_t ns[] = {2, 40, 9, 40, 1};
    for (size_t r = 0; r < sizeof ns / sizeof ns[0]; r++) {
        double *a = malloc(ns[r] * d * sizeof *a), *b = malloc(ns[r] * d * sizeof *b);
        assert_non_null(a);
        assert_non_null(b);
        ok(diffsde_sampler_run(s, noise, 11, ns[r], d, a), f->ctx);
        ok(run_once(f->ctx, vp, f->score[1], &o, noise, 11, ns[r], d, b, NULL), f->ctx);
        assert_memory_equal(a, b, ns[r] * d * sizeof *a);
        free(a);
        free(b);
    }
    diffsde_sampler_free(s);
    diffsde_noise_free(noise);
}

/* ---------------------------------------------------------------------------------------- */
/* (5) Reproducibility: bit-identical whatever the batch split                                */

static void test_reproducibility(void **state)
{
    fixture *f = *state;
    enum { n = 23, d = 3, N = 40 };
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, SEED, &noise), f->ctx);
    static const struct {
        int sde;
        int method;
        diffsde_predictor p;
        diffsde_corrector c;
        size_t K;
        int reference;
    } cfg[] = {
        {1, 0, DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE, 1, 0},
        {1, 0, DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_LANGEVIN, 2, 0},
        {0, 0, DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_ALD, 1, 0},
        {2, 0, DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_MALA, 2, 0},
        {0, 0, DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_NONE, 1, 1},
        {1, 1, DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_NONE, 1, 0},
    };
    const size_t batch[] = {1, 7};
    double all[n * d], part[n * d], again[n * d];
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        diffsde_sampler_options o = pc_opts(cfg[c].p, cfg[c].c, N);
        o.method = (diffsde_sampler_method)cfg[c].method;
        o.corrector_steps = cfg[c].K;
        o.reference = cfg[c].reference;
        const diffsde_sde *sde = f->sde[cfg[c].sde];
        const diffsde_score *sc = f->score[cfg[c].sde];
        ok(run_once(f->ctx, sde, sc, &o, noise, 0, n, d, all, NULL), f->ctx);
        ok(run_once(f->ctx, sde, sc, &o, noise, 0, n, d, again, NULL), f->ctx);
        assert_memory_equal(all, again, sizeof all);
        for (size_t q = 0; q < n * d; q++)
            assert_true(isfinite(all[q]));
        diffsde_sampler *s;
        ok(diffsde_sampler_new(f->ctx, sde, sc, &o, &s), f->ctx);
        for (size_t b = 0; b < 2; b++) {
            memset(part, 0, sizeof part);
            for (size_t i0 = 0; i0 < n; i0 += batch[b]) {
                size_t m = n - i0 < batch[b] ? n - i0 : batch[b];
                ok(diffsde_sampler_run(s, noise, i0, m, d, part + i0 * d), f->ctx);
            }
            if (memcmp(all, part, sizeof all) != 0)
                print_error("config %zu, batches of %zu differ from one batch of %d\n", c,
                            batch[b], (int)n);
            assert_memory_equal(all, part, sizeof all);
        }
        diffsde_sampler_free(s);
    }
    /* the batch-averaged Langevin norms (reference) couple the samples: a different split
     * must change the result, which shows that the check above can fail */
    diffsde_sampler_options o =
        pc_opts(DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_LANGEVIN, N);
    o.batch_norms = 1;
    ok(run_once(f->ctx, f->sde[1], f->score[1], &o, noise, 0, n, d, all, NULL), f->ctx);
    for (size_t i0 = 0; i0 < n; i0 += 7)
        ok(run_once(f->ctx, f->sde[1], f->score[1], &o, noise, i0, n - i0 < 7 ? n - i0 : 7, d,
                    part + i0 * d, NULL),
           f->ctx);
    assert_true(memcmp(all, part, sizeof all) != 0);
    diffsde_noise_free(noise);
}

/* ---------------------------------------------------------------------------------------- */
/* (6) Failures: status, message, x and t restored, and the run continues unchanged           */

enum { FN = 8, FD = 2, FSTEPS = 10 };

typedef struct failrun {
    fixture *f;
    gauss g;
    diffsde_score *score;
    diffsde_noise *noise;
    diffsde_sampler *s;
    double eps;
    recorder rec;
    double states[FSTEPS * FN * FD];
    double clean[FN * FD];
} failrun;

static void failrun_open(failrun *fr, fixture *f, int k, diffsde_corrector c, size_t K)
{
    memset(fr, 0, sizeof *fr);
    fr->f = f;
    gauss_init(&fr->g, f->sde[k]);
    ok(diffsde_sde_default_eps(f->sde[k], &fr->eps), f->ctx);
    ok(diffsde_score_new(f->ctx, gauss_cb, &fr->g, DIFFSDE_PARAM_SCORE, &fr->score), f->ctx);
    ok(diffsde_noise_new_philox(f->ctx, SEED, &fr->noise), f->ctx);
    diffsde_sampler_options o = pc_opts(DIFFSDE_PREDICTOR_EULER_MARUYAMA, c, FSTEPS);
    o.corrector_steps = K;
    ok(diffsde_sampler_new(f->ctx, f->sde[k], fr->score, &o, &fr->s), f->ctx);
    ok(diffsde_sampler_run(fr->s, fr->noise, 0, FN, FD, fr->clean), f->ctx);
    fr->rec.nd = FN * FD;
    fr->rec.cap = FSTEPS;
    fr->rec.states = fr->states;
    ok(diffsde_sampler_set_observer(fr->s, record_cb, &fr->rec, 1), f->ctx);
}

static void failrun_close(failrun *fr)
{
    diffsde_sampler_free(fr->s);
    diffsde_noise_free(fr->noise);
    diffsde_score_free(fr->score);
}

/* Start a run whose score misbehaves at callback call `call` (counted from the run's start),
 * step until the failing step, check the status and that x and t are those after `level`
 * completed levels; then carry on and check the run ends exactly as the clean one. */
static void fail_at(failrun *fr, long call, int status, int plant, double value,
                    size_t fail_level, int expect, const char *needle)
{
    diffsde_ctx *ctx = fr->f->ctx;
    double x[FN * FD], x0[FN * FD], t[FN];
    fr->rec.count = 0;
    fr->g.calls = 0;
    fr->g.fault_call = call;
    fr->g.fault_status = status;
    fr->g.plant = plant;
    fr->g.fault_sample = 5;
    fr->g.fault_value = value;
    ok(diffsde_sampler_init(fr->s, fr->noise, 0, FN, FD, x), ctx);
    memcpy(x0, x, sizeof x);
    for (size_t i = 0; i < fail_level; i++)
        ok(diffsde_sampler_step(fr->s, x), ctx);
    char tmsg[64];
    ok(diffsde_sampler_get_times(fr->s, t), ctx);
    snprintf(tmsg, sizeof tmsg, "t=%.17g", t[0]);
    assert_int_equal(diffsde_sampler_step(fr->s, x), expect);
    if (needle)
        assert_msg_has(ctx, needle);
    assert_msg_has(ctx, tmsg);
    /* the state after fail_level levels: x as the observer saw it, and t */
    assert_int_equal(fr->rec.count, fail_level);
    assert_memory_equal(x, fail_level ? fr->states + (fail_level - 1) * FN * FD : x0, sizeof x);
    ok(diffsde_sampler_get_times(fr->s, t), ctx);
    double T = 1.0, eps = fr->eps;
    double expect_t = fail_level == 0 ? T : T - (double)fail_level * (T - eps) / FSTEPS;
    assert_close(t[0], expect_t, 0.0, 4 * DBL_EPSILON);
    assert_true(t[FN - 1] == t[0]);
    /* carry on: identical to the clean run */
    while (!diffsde_sampler_done(fr->s))
        ok(diffsde_sampler_step(fr->s, x), ctx);
    ok(diffsde_sampler_finish(fr->s, x), ctx);
    assert_memory_equal(x, fr->clean, sizeof x);
}

static void test_failures(void **state)
{
    fixture *f = *state;
    failrun fr;

    failrun_open(&fr, f, 1, DIFFSDE_CORRECTOR_NONE, 1);
    /* NaN from the score at level 3 (the 4th call), sample 5 */
    fail_at(&fr, 3, 0, 1, NAN, 3, DIFFSDE_ENONFINITE, "sample 5");
    assert_msg_has(f->ctx, "level 3 (step 4 of 10)");
    assert_msg_has(f->ctx, "coordinate 0");
    /* Inf likewise */
    fail_at(&fr, 3, 0, 1, INFINITY, 3, DIFFSDE_ENONFINITE, "sample 5");
    /* fatal and recoverable statuses */
    fail_at(&fr, 3, -7, 0, 0.0, 3, DIFFSDE_ECALLBACK, "-7");
    fail_at(&fr, 0, -7, 0, 0.0, 0, DIFFSDE_ECALLBACK, "level 0");
    fail_at(&fr, 3, 1, 0, 0.0, 3, DIFFSDE_ERETRY, "level 3");
    /* a finite score that makes the state overflow: found in the new state */
    fail_at(&fr, 3, 0, 1, DBL_MAX, 3, DIFFSDE_ENONFINITE, "new state");
    assert_msg_has(f->ctx, "sample 5");

    /* the denoising call fails: x stays the state at ε, finish can be called again */
    double x[FN * FD];
    fr.g.calls = 0;
    fr.g.fault_call = FSTEPS;
    fr.g.fault_status = -3;
    fr.g.plant = 0;
    fr.rec.count = 0;
    ok(diffsde_sampler_init(fr.s, fr.noise, 0, FN, FD, x), f->ctx);
    while (!diffsde_sampler_done(fr.s))
        ok(diffsde_sampler_step(fr.s, x), f->ctx);
    assert_int_equal(diffsde_sampler_finish(fr.s, x), DIFFSDE_ECALLBACK);
    assert_msg_has(f->ctx, "denoising step at t=0.001");
    assert_memory_equal(x, fr.states + (FSTEPS - 1) * FN * FD, sizeof x);
    assert_int_equal(diffsde_sampler_done(fr.s), 1);
    ok(diffsde_sampler_finish(fr.s, x), f->ctx);
    assert_memory_equal(x, fr.clean, sizeof x);

    /* the observer stops the run after step 4: x is the state it saw, the step stands */
    fr.g.fault_call = -1;
    fr.rec.count = 0;
    fr.rec.stop_at = 4;
    fr.rec.stop_code = 42;
    assert_int_equal(diffsde_sampler_run(fr.s, fr.noise, 0, FN, FD, x), DIFFSDE_ECALLBACK);
    assert_msg_has(f->ctx, "observer returned 42");
    assert_int_equal(fr.rec.count, 4);
    assert_memory_equal(x, fr.states + 3 * FN * FD, sizeof x);
    fr.rec.stop_at = 0;
    while (!diffsde_sampler_done(fr.s))
        ok(diffsde_sampler_step(fr.s, x), f->ctx);
    ok(diffsde_sampler_finish(fr.s, x), f->ctx);
    assert_memory_equal(x, fr.clean, sizeof x);

    /* run() reports the failure with x as before the failing step */
    fr.rec.count = 0;
    fr.g.calls = 0;
    fr.g.fault_call = 5;
    fr.g.fault_status = -2;
    assert_int_equal(diffsde_sampler_run(fr.s, fr.noise, 0, FN, FD, x), DIFFSDE_ECALLBACK);
    assert_memory_equal(x, fr.states + 4 * FN * FD, sizeof x);
    failrun_close(&fr);

    /* two corrector steps per level: a failure in the second undoes the first too */
    failrun_open(&fr, f, 0, DIFFSDE_CORRECTOR_LANGEVIN, 2); /* VE: any N */
    /* calls: level 0 → 0, 1, 2; level 1 → corrector 3, 4, predictor 5 */
    fail_at(&fr, 4, -11, 0, 0.0, 1, DIFFSDE_ECALLBACK, "-11");
    fail_at(&fr, 4, 0, 1, NAN, 1, DIFFSDE_ENONFINITE, "sample 5");
    fail_at(&fr, 5, 2, 0, 0.0, 1, DIFFSDE_ERETRY, "level 1");
    failrun_close(&fr);

    /* a global sample index is named when the batch does not start at 0 */
    failrun_open(&fr, f, 1, DIFFSDE_CORRECTOR_NONE, 1);
    fr.g.calls = 0;
    fr.g.fault_call = 2;
    fr.g.fault_status = 0;
    fr.g.plant = 1;
    fr.g.fault_sample = 5;
    fr.g.fault_value = DBL_MAX;
    ok(diffsde_sampler_init(fr.s, fr.noise, 1000, FN, FD, x), f->ctx);
    ok(diffsde_sampler_step(fr.s, x), f->ctx);
    ok(diffsde_sampler_step(fr.s, x), f->ctx);
    assert_int_equal(diffsde_sampler_step(fr.s, x), DIFFSDE_ENONFINITE);
    assert_msg_has(f->ctx, "sample 5 (global sample 1005)");
    fr.g.calls = 0;
    fr.g.fault_call = 0;
    fr.g.fault_value = NAN;
    ok(diffsde_sampler_init(fr.s, fr.noise, 1000, FN, FD, x), f->ctx);
    assert_int_equal(diffsde_sampler_step(fr.s, x), DIFFSDE_ENONFINITE);
    assert_msg_has(f->ctx, "starts at global sample 1000");
    assert_msg_has(f->ctx, "sample 5,");
    failrun_close(&fr);
}

/* ---------------------------------------------------------------------------------------- */
/* (7) Statistics                                                                             */

static int gauss_logp(size_t n, size_t d, const double *t, const double *x, double *logp,
                      void *user)
{
    gauss *g = user;
    for (size_t i = 0; i < n; i++) {
        diffsde_sde_coefs c;
        if (diffsde_sde_coefs_at(g->sde, t[i], &c) != DIFFSDE_OK)
            return -100;
        double v = c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma, q = 0.0;
        for (size_t j = 0; j < d; j++) {
            double r = x[i * d + j] - c.alpha * gauss_mean(j);
            q += r * r;
        }
        logp[i] = -0.5 * q / v - 0.5 * (double)d * log(2.0 * 3.14159265358979323846 * v);
    }
    return 0;
}

static void test_stats(void **state)
{
    fixture *f = *state;
    enum { n = 9, d = 2, N = 30 };
    static const struct {
        diffsde_predictor p;
        diffsde_corrector c;
        size_t K;
        int denoise, reference;
        uint64_t calls_per_level; /* score calls of one level */
    } cfg[] = {
        {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_LANGEVIN, 2, 1, 0, 3},
        {DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE, 1, 1, 0, 1},
        {DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE, 1, 0, 0, 1},
        {DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_ALD, 3, 1, 1, 4},
        {DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_LANGEVIN, 1, 1, 0, 1},
        {DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_NONE, 1, 1, 0, 0},
        /* MALA: score at x and at the proposal for k = 0, at the proposal for k > 0 */
        {DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_MALA, 2, 1, 0, 4},
    };
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, SEED, &noise), f->ctx);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        gauss g;
        gauss_init(&g, f->sde[1]);
        diffsde_score *sc;
        ok(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
        ok(diffsde_score_set_logp(sc, gauss_logp), f->ctx);
        diffsde_sampler_options o = pc_opts(cfg[c].p, cfg[c].c, N);
        o.corrector_steps = cfg[c].K;
        o.denoise = cfg[c].denoise;
        o.reference = cfg[c].reference;
        double x[n * d];
        diffsde_sampler_stats st;
        ok(run_once(f->ctx, f->sde[1], sc, &o, noise, 0, n, d, x, &st), f->ctx);
        /* reference mode returns the last predictor mean: no denoising call */
        uint64_t den = (uint64_t)(cfg[c].denoise && !cfg[c].reference);
        uint64_t calls = N * cfg[c].calls_per_level + den;
        assert_int_equal(st.steps, N);
        assert_int_equal(st.score_calls, calls);
        assert_int_equal((uint64_t)g.calls, calls);
        assert_int_equal(st.score_evals, calls * n);
        assert_true(st.nfe_per_sample == (double)calls);
        assert_int_equal(st.denoise_calls, den);
        if (cfg[c].c == DIFFSDE_CORRECTOR_MALA) {
            assert_int_equal(st.accepted + st.rejected, (uint64_t)N * cfg[c].K * n);
            assert_true(st.accepted > 0);
        } else {
            assert_int_equal(st.accepted, 0);
            assert_int_equal(st.rejected, 0);
        }
        assert_true(st.wall_seconds >= 0.0 && st.wall_seconds < 60.0);
        diffsde_score_free(sc);
    }

    /* adaptive: the solver's counters, with the driver's denoising call added */
    gauss g;
    gauss_init(&g, f->sde[1]);
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    diffsde_sampler_options o = pc_opts(DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_NONE, N);
    o.method = DIFFSDE_SAMPLER_ADAPTIVE_SDE;
    diffsde_sampler *s;
    ok(diffsde_sampler_new(f->ctx, f->sde[1], sc, &o, &s), f->ctx);
    double x[n * d], t[n];
    ok(diffsde_sampler_init(s, noise, 0, n, d, x), f->ctx);
    size_t calls = 0;
    while (!diffsde_sampler_done(s)) {
        ok(diffsde_sampler_step(s, x), f->ctx);
        calls++;
        assert_true(calls < 100000);
    }
    ok(diffsde_sampler_get_times(s, t), f->ctx);
    for (size_t i = 0; i < n; i++)
        assert_true(t[i] == 1e-3);
    ok(diffsde_sampler_finish(s, x), f->ctx);
    diffsde_sampler_stats st;
    ok(diffsde_sampler_get_stats(s, &st), f->ctx);
    assert_int_equal(st.score_calls, (uint64_t)g.calls);
    assert_int_equal(st.denoise_calls, 1);
    assert_true(st.accepted >= n);
    assert_true(st.steps >= 1 && st.steps <= calls);
    assert_true(st.nfe_per_sample == (double)st.score_evals / n);
    print_message("# adaptive-sde through the driver: %zu step calls, %.1f NFE per sample, "
                  "%" PRIu64 " accepted, %" PRIu64 " rejected\n",
                  calls, st.nfe_per_sample, st.accepted, st.rejected);
    diffsde_sampler_free(s);
    diffsde_score_free(sc);
    diffsde_noise_free(noise);
}

/* ---------------------------------------------------------------------------------------- */
/* (8) Denoising in reference mode: the last predictor mean, or x itself when off              */

static void test_reference_denoise(void **state)
{
    fixture *f = *state;
    enum { n = 4, d = 3, N = 25 };
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, SEED, &noise), f->ctx);
    for (int k = 0; k < 3; k++) {
        double eps, T;
        ok(diffsde_sde_default_eps(f->sde[k], &eps), f->ctx);
        ok(diffsde_sde_time_range(f->sde[k], NULL, &T), f->ctx);
        double x_on[n * d], x_off[n * d], last[n * d];
        recorder rec = {n * d, 1, 0, last, {0}, {0}, 0, 0};
        diffsde_sampler_options o =
            pc_opts(DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE, N);
        o.reference = 1;
        diffsde_sampler *s;
        ok(diffsde_sampler_new(f->ctx, f->sde[k], f->score[k], &o, &s), f->ctx);
        ok(diffsde_sampler_run(s, noise, 0, n, d, x_on), f->ctx);
        diffsde_sampler_free(s);
        o.denoise = 0;
        ok(diffsde_sampler_new(f->ctx, f->sde[k], f->score[k], &o, &s), f->ctx);
        ok(diffsde_sampler_set_observer(s, record_cb, &rec, N), f->ctx);
        ok(diffsde_sampler_run(s, noise, 0, n, d, x_off), f->ctx);
        diffsde_sampler_stats st;
        ok(diffsde_sampler_get_stats(s, &st), f->ctx);
        assert_int_equal(st.score_calls, N);
        diffsde_sampler_free(s);
        /* off: x at the end of the last step, as the observer saw it */
        assert_int_equal(rec.count, 1);
        assert_int_equal(rec.steps[0], N);
        assert_true(rec.t0[0] == eps);
        assert_memory_equal(x_off, last, sizeof last);
        /* on: minus the last step's noise g(t_{N−1}) √(T/N) z, t_{N−1} = ε */
        diffsde_sde_coefs c;
        ok(diffsde_sde_coefs_at(f->sde[k], eps, &c), f->ctx);
        for (size_t q = 0; q < n * d; q++) {
            double z = diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_PREDICTOR, q / d, N - 1, q % d);
            double mean = x_off[q] - c.g * sqrt(T / N) * z;
            assert_close(x_on[q], mean, 0.0, 1e-14 * fmax(1.0, fabs(x_off[q])));
            assert_true(x_on[q] != x_off[q]);
        }
    }
    diffsde_noise_free(noise);
}

/* ---------------------------------------------------------------------------------------- */
/* (9) Memory: nothing allocated after init, nothing leaked when an allocation fails          */

static void test_allocation(void **state)
{
    (void)state;
    enum { n = 50, d = 3, N = 25 };
    static const struct {
        int method;
        diffsde_predictor p;
        diffsde_corrector c;
        size_t K;
    } cfg[] = {
        {0, DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_LANGEVIN, 2},
        {0, DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_NONE, 1},
        {0, DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_ALD, 1},
        {0, DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_MALA, 3},
        {1, DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_NONE, 1},
    };
    tu_alloc a = {0, 0, 0};
    diffsde_allocator al = tu_allocator(&a);
    diffsde_ctx *ctx;
    assert_int_equal(diffsde_ctx_new(&ctx, &al), DIFFSDE_OK);
    diffsde_sde *vp;
    ok(diffsde_sde_new_vp(ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &vp), ctx);
    gauss g;
    gauss_init(&g, vp);
    diffsde_score *sc;
    ok(diffsde_score_new(ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &sc), ctx);
    ok(diffsde_score_set_logp(sc, gauss_logp), ctx);
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    double *x = malloc(2 * n * d * sizeof *x);
    assert_non_null(x);

    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        diffsde_sampler_options o = pc_opts(cfg[c].p, cfg[c].c, N);
        o.method = (diffsde_sampler_method)cfg[c].method;
        o.corrector_steps = cfg[c].K;
        diffsde_sampler *s;
        ok(diffsde_sampler_new(ctx, vp, sc, &o, &s), ctx);
        ok(diffsde_sampler_init(s, noise, 0, n, d, x), ctx);
        long calls = a.calls;
        while (!diffsde_sampler_done(s))
            ok(diffsde_sampler_step(s, x), ctx);
        ok(diffsde_sampler_finish(s, x), ctx);
        diffsde_sampler_stats st;
        double t[n];
        ok(diffsde_sampler_get_stats(s, &st), ctx);
        ok(diffsde_sampler_get_times(s, t), ctx);
        assert_int_equal(a.calls, calls);
        /* a run of the same or a smaller shape reuses the workspace (the adaptive solver is
         * sized for one shape: it is rebuilt when the shape changes) */
        ok(diffsde_sampler_run(s, noise, 7, n, d, x), ctx);
        assert_int_equal(a.calls, calls);
        if (cfg[c].method == 0) {
            ok(diffsde_sampler_run(s, noise, 7, n / 2, d, x), ctx);
            ok(diffsde_sampler_run(s, noise, 7, n, d - 1, x), ctx);
            assert_int_equal(a.calls, calls);
        }
        ok(diffsde_sampler_run(s, noise, 7, 2 * n, d, x), ctx); /* larger: allocates */
        assert_true(a.calls > calls);
        diffsde_sampler_free(s);

        /* the allocator fails at the k-th call of new + init, for every k */
        long live0 = a.live, k;
        for (k = 1; k < 100; k++) {
            a.fail_at = a.calls + k;
            int st1 = diffsde_sampler_new(ctx, vp, sc, &o, &s), st2 = DIFFSDE_OK;
            if (st1 == DIFFSDE_OK)
                st2 = diffsde_sampler_init(s, noise, 0, n, d, x);
            a.fail_at = 0;
            if (st1 == DIFFSDE_OK && st2 == DIFFSDE_OK) {
                while (!diffsde_sampler_done(s))
                    ok(diffsde_sampler_step(s, x), ctx);
                ok(diffsde_sampler_finish(s, x), ctx);
                diffsde_sampler_free(s);
                assert_int_equal(a.live, live0);
                break;
            }
            assert_int_equal(st1 != DIFFSDE_OK ? st1 : st2, DIFFSDE_ENOMEM);
            if (st1 != DIFFSDE_OK)
                assert_null(s);
            else
                assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_ESTATE);
            diffsde_sampler_free(st1 == DIFFSDE_OK ? s : NULL);
            assert_int_equal(a.live, live0);
        }
        assert_true(k > 1 && k < 100);
    }
    free(x);
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
    diffsde_sde_free(vp);
    diffsde_ctx_free(ctx);
    assert_int_equal(a.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_agreement),
        cmocka_unit_test(test_default_grid_noise_free),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_reproducibility),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_reference_denoise),
        cmocka_unit_test(test_allocation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
