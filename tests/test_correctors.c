/*
 * The correctors (none, langevin, ald, mala), through the public sampler API with the
 * predictor "none" where a corrector is tested alone (the host may overwrite x between
 * steps, so a level can start from any chosen state):
 * - fixture agreement: the PC (reverse diffusion + Langevin) and EM + Langevin runs of
 *   fixtures/samplers_gmm3d.json, replayed in reference mode (batch-averaged norms), give
 *   x_out to 1e-12 of max|x_out| for VE, VP and sub-VP;
 * - Langevin and ALD steps against values computed by hand for a 2-sample batch (fixed score,
 *   recorded noise): per-sample and batch norms, a = 1 − b_j on VP at two levels, the zero
 *   score guard, the noise step index i·K + k;
 * - MALA: one-sample-at-a-time reconstruction of the Metropolis–Hastings decisions of two
 *   steps from the Philox draws (proposal, ratio, acceptance, cache across the K steps);
 *   statistical invariance of p_t from exact samples (gauss1 and ring8), with the unadjusted
 *   kernel (ALD, same step) checked against its exact Gaussian recursion as the power check;
 * - the log-density plumbing of MALA: a model without log-density, callback failures
 *   (recoverable, fatal, NaN), a noise source without uniforms: status, message, x unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "diffsde/gmm.h"
#include "diffsde/io.h"
#include "diffsde/sampler.h"
#include "testutil.h"

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "../shared/fixtures"
#endif

#define PI 3.14159265358979323846

static void ok_(int st, const diffsde_ctx *ctx, const char *expr, const char *file, int line)
{
    if (st != DIFFSDE_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s -> %s: %s", expr, diffsde_status_name(st),
                 diffsde_errmsg(ctx));
        tu_fail_msg(msg, file, line);
    }
}
#define ok(expr, ctx) ok_((expr), (ctx), #expr, __FILE__, __LINE__)

static void has_(const diffsde_ctx *ctx, const char *needle, const char *file, int line)
{
    if (!strstr(diffsde_errmsg(ctx), needle)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "message \"%s\" lacks \"%s\"", diffsde_errmsg(ctx), needle);
        tu_fail_msg(msg, file, line);
    }
}
#define assert_msg_has(ctx, needle) has_((ctx), (needle), __FILE__, __LINE__)

/* tests/fixtures (via $DIFFSDE_FIXTURES, $top_srcdir, the source's directory, the working
 * directory), then the shared originals. */
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
    const char *dirs[] = {env && *env ? env : top, top, here, "tests/fixtures", FIXTURES_DIR};
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

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3]; /* VE, VP, sub-VP with the default parameters */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) ||
        diffsde_sde_new_ve(f->ctx, DIFFSDE_VE_SIGMA_MIN, DIFFSDE_VE_SIGMA_MAX, &f->sde[0]) ||
        diffsde_sde_new_vp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[1]) ||
        diffsde_sde_new_subvp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[2]))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < 3; k++)
        diffsde_sde_free(f->sde[k]);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* Options of a corrector-only level: predictor none, no denoising. */
static diffsde_sampler_options corr_opts(diffsde_corrector c, size_t N, size_t K, double snr)
{
    diffsde_sampler_options o;
    diffsde_sampler_options_default(&o);
    o.predictor = DIFFSDE_PREDICTOR_NONE;
    o.corrector = c;
    o.steps = N;
    o.corrector_steps = K;
    o.snr = snr;
    o.denoise = 0;
    return o;
}

/* ---- 1. fixture agreement ------------------------------------------------------------- */

/* The recorded draws in consumption order: prior, then per level the corrector's and the
 * predictor's (one corrector step per level). */
typedef struct replay {
    const double *z; /* (2N + 1) × n × d */
    size_t N, n, d;
    int bad;
} replay;

static int replay_fn(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                     double *z, void *user)
{
    replay *r = user;
    size_t idx;
    if (stream == DIFFSDE_STREAM_PRIOR && step == 0)
        idx = 0;
    else if (stream == DIFFSDE_STREAM_CORRECTOR && step < r->N)
        idx = 1 + 2 * (size_t)step;
    else if (stream == DIFFSDE_STREAM_PREDICTOR && step < r->N)
        idx = 2 + 2 * (size_t)step;
    else
        return r->bad = 1;
    if (d != r->d || sample0 + n > r->n)
        return r->bad = 2;
    memcpy(z, r->z + (idx * r->n + sample0) * d, n * d * sizeof *z);
    return 0;
}

static void test_fixture_langevin(void **state)
{
    fixture *f = *state;
    char path[4096];
    json_error_t jerr;
    fixture_path("problem_gmm3d.json", path, sizeof path);
    diffsde_gmm *gmm;
    ok(diffsde_gmm_from_json_file(f->ctx, path, &gmm), f->ctx);
    fixture_path("samplers_gmm3d.json", path, sizeof path);
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    const size_t n = (size_t)json_integer_value(json_object_get(root, "n"));
    const size_t N = (size_t)json_integer_value(json_object_get(root, "N"));
    const size_t d = diffsde_gmm_dim(gmm);
    assert_int_equal(json_integer_value(json_object_get(root, "n_steps_each")), 1);
    double *z = malloc((2 * N + 1) * n * d * sizeof *z), x[64];
    assert_non_null(z);
    assert_true(n * d <= 64);
    size_t idx, nruns = 0;
    double worst = 0;
    json_t *run;
    json_array_foreach (json_object_get(root, "runs"), idx, run) {
        if (strcmp(json_string_value(json_object_get(run, "corrector")), "langevin") != 0)
            continue;
        const char *sname = json_string_value(json_object_get(run, "sde"));
        const char *pname = json_string_value(json_object_get(run, "predictor"));
        int k = strcmp(sname, "ve") == 0 ? 0 : strcmp(sname, "vp") == 0 ? 1 : 2;
        assert_string_equal(sname, diffsde_sde_name(f->sde[k]));
        const json_t *jz = json_object_get(run, "noise");
        assert_int_equal(json_array_size(jz), 2 * N + 1);
        for (size_t a = 0; a < 2 * N + 1; a++)
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < d; j++)
                    z[(a * n + i) * d + j] = json_number_value(
                        json_array_get(json_array_get(json_array_get(jz, a), i), j));

        diffsde_sampler_options o = corr_opts(DIFFSDE_CORRECTOR_LANGEVIN, N, 1,
                                              json_number_value(json_object_get(run, "snr")));
        o.predictor = strcmp(pname, "reverse_diffusion") == 0
                          ? DIFFSDE_PREDICTOR_REVERSE_DIFFUSION
                          : DIFFSDE_PREDICTOR_EULER_MARUYAMA;
        assert_true(o.predictor == DIFFSDE_PREDICTOR_REVERSE_DIFFUSION ||
                    strcmp(pname, "euler_maruyama") == 0);
        o.reference = 1;
        o.denoise = 1; /* in reference mode: return the last predictor's mean */
        o.eps = json_number_value(json_object_get(run, "eps"));
        replay r = {z, N, n, d, 0};
        diffsde_noise *noise;
        diffsde_score *sc;
        diffsde_sampler *s;
        ok(diffsde_noise_new_callback(f->ctx, replay_fn, &r, &noise), f->ctx);
        ok(diffsde_gmm_score_new(gmm, f->sde[k], &sc), f->ctx);
        ok(diffsde_sampler_new(f->ctx, f->sde[k], sc, &o, &s), f->ctx);
        ok(diffsde_sampler_run(s, noise, 0, n, d, x), f->ctx);
        assert_int_equal(r.bad, 0);
        diffsde_sampler_free(s);
        diffsde_score_free(sc);
        diffsde_noise_free(noise);

        const json_t *xo = json_object_get(run, "x_out");
        double scale = 0, err = 0;
        double want[64];
        for (size_t i = 0; i < n * d; i++) {
            want[i] = json_number_value(json_array_get(json_array_get(xo, i / d), i % d));
            scale = fmax(scale, fabs(want[i]));
        }
        for (size_t i = 0; i < n * d; i++) {
            double e = want[i];
            err = fmax(err, fabs(x[i] - e) / scale);
            assert_close(x[i], e, 0, 1e-12 * scale);
        }
        print_message("# fixture %s %s + langevin: max|x - x_out|/max|x_out| = %.2e\n", sname,
                      pname, err);
        worst = fmax(worst, err);
        nruns++;
    }
    assert_int_equal(nruns, 6);
    print_message("# fixture: 6 Langevin runs, worst relative error %.2e (tolerance 1e-12)\n",
                  worst);
    free(z);
    json_decref(root);
    diffsde_gmm_free(gmm);
}

/* ---- 2. the step formulas on hand-computed values ------------------------------------- */

/* A model returning fixed score rows, whatever x and t; it records the last t. */
typedef struct fixed_score {
    double s[6];
    double t_seen;
} fixed_score;

static int fixed_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                    void *user)
{
    fixed_score *m = user;
    (void)x;
    for (size_t k = 0; k < n * d; k++)
        out[k] = m->s[k];
    m->t_seen = t[0];
    return 0;
}

/* Noise: zero prior/predictor draws, fixed corrector rows; records the corrector steps. */
typedef struct fixed_noise {
    double z[6];
    uint64_t steps[16];
    size_t nsteps;
} fixed_noise;

static int fixed_noise_fn(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                          double *z, void *user)
{
    fixed_noise *m = user;
    (void)sample0;
    for (size_t k = 0; k < n * d; k++)
        z[k] = stream == DIFFSDE_STREAM_CORRECTOR ? m->z[k] : 0.0;
    if (stream == DIFFSDE_STREAM_CORRECTOR && m->nsteps < 16)
        m->steps[m->nsteps++] = step;
    return 0;
}

static const double X0[6] = {0.5, -1.25, 2.0, -0.75, 0.3, 1.1};

/* Run `levels` levels of a corrector-only sampler from x = X0 (reset before each level);
 * return x after the last one. */
static void run_levels(fixture *f, const diffsde_sde *sde, const diffsde_score *sc,
                       const diffsde_sampler_options *o, fixed_noise *fn, size_t levels,
                       double *x)
{
    diffsde_noise *noise;
    diffsde_sampler *s;
    ok(diffsde_noise_new_callback(f->ctx, fixed_noise_fn, fn, &noise), f->ctx);
    ok(diffsde_sampler_new(f->ctx, sde, sc, o, &s), f->ctx);
    ok(diffsde_sampler_init(s, noise, 0, 2, 3, x), f->ctx);
    for (size_t i = 0; i < levels; i++) {
        memcpy(x, X0, sizeof X0);
        ok(diffsde_sampler_step(s, x), f->ctx);
    }
    diffsde_sampler_free(s);
    diffsde_noise_free(noise);
}

/*
 * s_0 = (3, 4, 0), ‖s_0‖ = 5; s_1 = (0, 0, 2), ‖s_1‖ = 2; z_0 = (1, 2, 2), ‖z_0‖ = 3;
 * z_1 = (0, 0.6, 0.8), ‖z_1‖ = 1; snr = 0.16.
 * Per sample (a = 1): ε_0 = 2 (0.16·3/5)² = 0.018432, √(2ε_0) = 0.192;
 *                     ε_1 = 2 (0.16·1/2)² = 0.0128,   √(2ε_1) = 0.16.
 * Batch: ε = 2 (0.16·2/3.5)² = 2048/122500, √(2ε) = 64/350.
 */
static void test_langevin_by_hand(void **state)
{
    fixture *f = *state;
    fixed_score m = {{3, 4, 0, 0, 0, 2}, -1};
    fixed_noise nz = {{1, 2, 2, 0, 0.6, 0.8}, {0}, 0};
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, fixed_cb, &m, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    double x[6];

    /* VE (a = 1), per-sample norms, level 0 at t = T = 1 */
    diffsde_sampler_options o = corr_opts(DIFFSDE_CORRECTOR_LANGEVIN, 2, 1, 0.16);
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    const double want_ps[6] = {0.5 + 0.055296 + 0.192, -1.25 + 0.073728 + 0.384, 2.0 + 0.384,
                               -0.75, 0.3 + 0.096, 1.1 + 0.0256 + 0.128};
    for (int k = 0; k < 6; k++)
        assert_close(x[k], want_ps[k], 1e-15, 1e-15);
    assert_true(m.t_seen == 1.0);

    /* batch norms (and reference mode, which implies them) */
    const double eb = 2048.0 / 122500.0, sb = 64.0 / 350.0;
    double want_b[6];
    for (int k = 0; k < 6; k++)
        want_b[k] = X0[k] + eb * m.s[k] + sb * nz.z[k];
    o.batch_norms = 1;
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    for (int k = 0; k < 6; k++)
        assert_close(x[k], want_b[k], 1e-15, 1e-15);

    /* VP: a = 1 − b_j; N = 25, level 0 at t = 1 (j = 24, b = 20/25 = 0.8) and level 1 at
     * t = 1 − 0.999/25 = 0.96004 (j = ⌊23.04096⌋ = 23, b = 0.004 + 23·0.796/24) */
    const double a_lv[2] = {0.2, 1.0 - (0.004 + 23.0 * 0.796 / 24.0)};
    for (size_t lev = 1; lev <= 2; lev++) {
        const double a = a_lv[lev - 1];
        o = corr_opts(DIFFSDE_CORRECTOR_LANGEVIN, 25, 1, 0.16);
        run_levels(f, f->sde[1], sc, &o, &nz, lev, x);
        const double e0 = 0.018432 * a, e1 = 0.0128 * a;
        for (int k = 0; k < 6; k++) {
            double e = k < 3 ? e0 : e1;
            assert_close(x[k], X0[k] + e * m.s[k] + sqrt(2 * e) * nz.z[k], 1e-14, 1e-15);
        }
    }

    /* the zero-score guard: a sample with s = 0 stays exactly where it was (per sample);
     * in batch mode it moves by the batch step (noise only); an all-zero batch stays */
    m.s[3] = m.s[4] = m.s[5] = 0;
    o = corr_opts(DIFFSDE_CORRECTOR_LANGEVIN, 2, 1, 0.16);
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    assert_memory_equal(x + 3, X0 + 3, 3 * sizeof *x);
    assert_close(x[0], want_ps[0], 1e-15, 1e-15);
    o.batch_norms = 1; /* mean‖s‖ = 2.5, mean‖z‖ = 2: ε = 2 (0.16·2/2.5)² = 0.032768 */
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    assert_close(x[4], X0[4] + sqrt(2 * 0.032768) * 0.6, 1e-15, 1e-15);
    memset(m.s, 0, sizeof m.s);
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    assert_memory_equal(x, X0, sizeof X0);

    /* the corrector noise of step k at level i is step i·K + k: K = 3, levels 0 and 1 */
    nz.nsteps = 0;
    o = corr_opts(DIFFSDE_CORRECTOR_LANGEVIN, 25, 3, 0.16);
    run_levels(f, f->sde[2], sc, &o, &nz, 2, x);
    assert_int_equal(nz.nsteps, 6);
    for (size_t k = 0; k < 6; k++)
        assert_int_equal(nz.steps[k], k);
    diffsde_score_free(sc);
}

/*
 * ALD: ε = 2 a (snr σ(t))², independent of ‖s‖ and ‖z‖. VE at t = 1: σ = σmax = 50;
 * snr = 0.002 gives snr σ = 0.1, ε = 0.02, √(2ε) = 0.2. VP (N = 25) at t = 1:
 * σ(1)² = 1 − exp(−(0.1 + 19.9/2)) = 1 − e^{−10.05}, a = 0.2, snr = 0.5.
 */
static void test_ald_by_hand(void **state)
{
    fixture *f = *state;
    fixed_score m = {{3, 4, 0, 0, 0, 0}, -1};
    fixed_noise nz = {{1, 2, 2, 0, 0.6, 0.8}, {0}, 0};
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, fixed_cb, &m, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    double x[6];
    diffsde_sampler_options o = corr_opts(DIFFSDE_CORRECTOR_ALD, 2, 1, 0.002);
    run_levels(f, f->sde[0], sc, &o, &nz, 1, x);
    for (int k = 0; k < 6; k++) /* the zero-score sample moves by the noise alone */
        assert_close(x[k], X0[k] + 0.02 * m.s[k] + 0.2 * nz.z[k], 1e-14, 1e-15);

    o = corr_opts(DIFFSDE_CORRECTOR_ALD, 25, 1, 0.5);
    run_levels(f, f->sde[1], sc, &o, &nz, 1, x);
    const double e = 2 * 0.2 * 0.25 * (1 - exp(-10.05));
    for (int k = 0; k < 6; k++)
        assert_close(x[k], X0[k] + e * m.s[k] + sqrt(2 * e) * nz.z[k], 1e-14, 1e-15);
    diffsde_score_free(sc);
}

/* ---- 3. MALA, decision by decision ---------------------------------------------------- */

/* Gaussian data p0 = N(m, s0² I), m_j = 0.4 − 0.3 j: p_t = N(α m, v I), v = α² s0² + σ².
 * Either callback can be told to fail at its call number fail_at (0-based). */
#define GS0 1.3
typedef struct gauss {
    const diffsde_sde *sde;
    int score_calls, logp_calls;
    int fail_at, status; /* logp call to fail and how: status, or NaN when status is 0 */
} gauss;

static void gauss_coefs(const gauss *g, double t, double *a, double *v)
{
    diffsde_sde_coefs c;
    diffsde_sde_coefs_at(g->sde, t, &c);
    *a = c.alpha;
    *v = c.alpha * c.alpha * GS0 * GS0 + c.sigma * c.sigma;
}

static int gauss_score(size_t n, size_t d, const double *t, const double *x, double *out,
                       void *user)
{
    gauss *g = user;
    g->score_calls++;
    for (size_t i = 0; i < n; i++) {
        double a, v;
        gauss_coefs(g, t[i], &a, &v);
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = -(x[i * d + j] - a * (0.4 - 0.3 * (double)j)) / v;
    }
    return 0;
}

static int gauss_logp(size_t n, size_t d, const double *t, const double *x, double *lp,
                      void *user)
{
    gauss *g = user;
    int call = g->logp_calls++;
    for (size_t i = 0; i < n; i++) {
        double a, v, q = 0;
        gauss_coefs(g, t[i], &a, &v);
        for (size_t j = 0; j < d; j++) {
            double r = x[i * d + j] - a * (0.4 - 0.3 * (double)j);
            q += r * r;
        }
        lp[i] = -0.5 * (double)d * log(2 * PI * v) - 0.5 * q / v;
    }
    if (call == g->fail_at) {
        if (g->status)
            return g->status;
        lp[n - 1] = NAN;
    }
    return 0;
}

/*
 * n = 64 samples in d = 2 under VE at t = 1 (p_1 = N(m, v I), v = s0² + 2500), snr = 0.6:
 * ε = 2 (0.6·50)² = 1800 ≈ 0.72 v, large enough that both decisions occur. The expected path
 * is rebuilt here from the Philox draws (normal_at / uniform_at), with the decisions from the
 * Gaussian densities written out: two steps (K = 2), the second from the first's outcome.
 */
static void test_mala_decisions(void **state)
{
    fixture *f = *state;
    enum { NS = 64, DD = 2, KK = 2 };
    const uint64_t seed = 20240611;
    gauss g = {f->sde[0], 0, 0, -1, 0};
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, gauss_score, &g, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    ok(diffsde_score_set_logp(sc, gauss_logp), f->ctx);
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, seed, &noise), f->ctx);
    diffsde_sampler_options o = corr_opts(DIFFSDE_CORRECTOR_MALA, 2, KK, 0.6);
    diffsde_sampler *s;
    ok(diffsde_sampler_new(f->ctx, f->sde[0], sc, &o, &s), f->ctx);
    static double x[NS * DD], xe[NS * DD];
    ok(diffsde_sampler_init(s, noise, 0, NS, DD, x), f->ctx);
    for (size_t k = 0; k < NS * DD; k++)
        xe[k] = x[k] = 40.0 * (-2.385 + 0.0731 * (double)k);
    g.score_calls = 0;
    ok(diffsde_sampler_step(s, x), f->ctx);

    double sig;
    ok(diffsde_sde_sigma(f->sde[0], 1.0, &sig), f->ctx);
    const double v = GS0 * GS0 + sig * sig, e = 2 * (0.6 * sig) * (0.6 * sig);
    uint64_t acc = 0, close_calls = 0;
    for (size_t i = 0; i < NS; i++) {
        double *xi = xe + i * DD;
        for (uint64_t k = 0; k < KK; k++) {
            double y[DD], lr = 0;
            for (size_t j = 0; j < DD; j++) {
                double mu = 0.4 - 0.3 * (double)j;
                double z = diffsde_noise_normal_at(seed, DIFFSDE_STREAM_CORRECTOR, i, k, j);
                y[j] = xi[j] - e * (xi[j] - mu) / v + sqrt(2 * e) * z;
                double fwd = y[j] - xi[j] + e * (xi[j] - mu) / v;
                double bwd = xi[j] - y[j] + e * (y[j] - mu) / v;
                lr += ((xi[j] - mu) * (xi[j] - mu) - (y[j] - mu) * (y[j] - mu)) / (2 * v) +
                      (fwd * fwd - bwd * bwd) / (4 * e);
            }
            double lu = log(diffsde_noise_uniform_at(seed, DIFFSDE_STREAM_ACCEPT, i, k, 0));
            if (fabs(lu - lr) < 1e-9)
                close_calls++; /* rounding could decide either way: the state is not checked */
            if (lu < lr) {
                memcpy(xi, y, sizeof y);
                acc++;
            }
        }
    }
    assert_int_equal(close_calls, 0);
    for (size_t k = 0; k < NS * DD; k++)
        assert_close(x[k], xe[k], 1e-13, 1e-12);
    diffsde_sampler_stats st;
    ok(diffsde_sampler_get_stats(s, &st), f->ctx);
    assert_int_equal(st.accepted, acc);
    assert_int_equal(st.accepted + st.rejected, NS * KK);
    assert_true(acc > 10 && acc < NS * KK - 10); /* both decisions exercised */
    /* score and log-density at x once (k = 0), then once per proposal */
    assert_int_equal(st.score_calls, KK + 1);
    assert_int_equal(g.score_calls, KK + 1);
    assert_int_equal(g.logp_calls, KK + 1);
    print_message("# mala decisions: %" PRIu64 " of %d proposals accepted, all reproduced\n",
                  acc, NS * KK);
    diffsde_sampler_free(s);
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
}

/* ---- 4. the log-density plumbing -------------------------------------------------------- */

static void test_mala_plumbing(void **state)
{
    fixture *f = *state;
    gauss g = {f->sde[1], 0, 0, -1, 0};
    diffsde_score *sc;
    diffsde_sampler *s;
    diffsde_noise *noise, *cbnoise;
    ok(diffsde_score_new(f->ctx, gauss_score, &g, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    diffsde_sampler_options o = corr_opts(DIFFSDE_CORRECTOR_MALA, 25, 2, 0.3);
    /* no log-density: refused at creation */
    assert_int_equal(diffsde_sampler_new(f->ctx, f->sde[1], sc, &o, &s), DIFFSDE_EUNSUPPORTED);
    assert_msg_has(f->ctx, "log-density");
    ok(diffsde_score_set_logp(sc, gauss_logp), f->ctx);
    ok(diffsde_noise_new_philox(f->ctx, 7, &noise), f->ctx);
    ok(diffsde_sampler_new(f->ctx, f->sde[1], sc, &o, &s), f->ctx);
    double x[3 * 2], x0[3 * 2];
    ok(diffsde_sampler_init(s, noise, 0, 3, 2, x), f->ctx);
    memcpy(x0, x, sizeof x);

    /* logp calls per level: 0 (at x), 1 (at y, k = 0), 2 (at y, k = 1) */
    const struct {
        int fail_at, status, want;
        const char *m1, *m2;
    } cases[] = {
        {0, 3, DIFFSDE_ERETRY, "log-density at the state", "returned 3"},
        {1, -5, DIFFSDE_ECALLBACK, "log-density at the proposal", "returned -5"},
        {2, 0, DIFFSDE_ENONFINITE, "at the proposal", "sample 2"},
    };
    for (size_t c = 0; c < 3; c++) {
        g.logp_calls = 0;
        g.fail_at = cases[c].fail_at;
        g.status = cases[c].status;
        assert_int_equal(diffsde_sampler_step(s, x), cases[c].want);
        assert_msg_has(f->ctx, "mala");
        assert_msg_has(f->ctx, "level 0");
        assert_msg_has(f->ctx, "t=1");
        assert_msg_has(f->ctx, cases[c].m1);
        assert_msg_has(f->ctx, cases[c].m2);
        assert_memory_equal(x, x0, sizeof x);
    }
    /* after the failures the level runs as if nothing had happened */
    g.fail_at = -1;
    ok(diffsde_sampler_step(s, x), f->ctx);
    double t[3];
    ok(diffsde_sampler_get_times(s, t), f->ctx);
    assert_true(t[0] < 1.0 && t[2] == t[0]);
    diffsde_sampler_free(s);

    /* a callback noise source cannot give the accept uniforms */
    fixed_noise nz = {{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {0}, 0};
    ok(diffsde_noise_new_callback(f->ctx, fixed_noise_fn, &nz, &cbnoise), f->ctx);
    ok(diffsde_sampler_new(f->ctx, f->sde[1], sc, &o, &s), f->ctx);
    ok(diffsde_sampler_init(s, cbnoise, 0, 3, 2, x), f->ctx);
    memcpy(x0, x, sizeof x);
    assert_int_equal(diffsde_sampler_step(s, x), DIFFSDE_EUNSUPPORTED);
    assert_msg_has(f->ctx, "accept uniforms");
    assert_memory_equal(x, x0, sizeof x);
    diffsde_sampler_free(s);
    diffsde_noise_free(cbnoise);
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
}

/* ---- 5. MALA leaves p_t invariant; ALD follows its exact recursion ------------------------ */

/* VP-like user SDE on [0, 0.3] with the default β: the built-in VP's p_t at t = 0.3 as the
 * final time, and a = 1 (user SDEs have no table). */
#define BMIN DIFFSDE_VP_BETA_MIN
#define BMAX DIFFSDE_VP_BETA_MAX
static double ub(double t) { return BMIN * t + 0.5 * (BMAX - BMIN) * t * t; }
static double u_beta(double t) { return BMIN + t * (BMAX - BMIN); }
static double u_f(double t, void *u) { (void)u; return -0.5 * u_beta(t); }
static double u_g2(double t, void *u) { (void)u; return u_beta(t); }
static double u_alpha(double t, void *u) { (void)u; return exp(-0.5 * ub(t)); }
static double u_sigma(double t, void *u) { (void)u; return sqrt(-expm1(-ub(t))); }

typedef struct stat_check {
    const char *name;
    double worst; /* largest |z| so far */
    int count;
} stat_check;

/* One statistic: |value − expected| ≤ 4 se. */
static void check_z(stat_check *c, const char *what, double value, double expected, double se)
{
    double z = (value - expected) / se;
    c->worst = fmax(c->worst, fabs(z));
    c->count++;
    if (!(fabs(z) <= 4.0)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s = %.6g, expected %.6g, %.2f standard errors",
                 c->name, what, value, expected, z);
        tu_fail_msg(msg, __FILE__, __LINE__);
    }
}

/*
 * From n exact samples of p_T, M corrector steps at t = T (level 0, predictor none). With the
 * exact mean μ and covariance C of p_T, and the exact score s and its divergence:
 * mean_j (se √(C_jj/n)), E[(x_j − μ_j)(x_k − μ_k)] = C_jk, and the Stein identities
 * E[x·s(x)] = −d and E[‖s‖² + ∇·s] = 0 (se from the sample). Returns the sample in x.
 */
static void run_invariance(fixture *f, const char *model, const diffsde_sde *sde,
                           diffsde_corrector corr, size_t M, double snr, size_t n, double *x,
                           double *stein, double *acc_rate)
{
    diffsde_gmm *g;
    diffsde_gmm_eval *ev;
    diffsde_score *sc;
    diffsde_noise *noise;
    diffsde_sampler *s;
    double T;
    ok(diffsde_sde_time_range(sde, NULL, &T), f->ctx);
    ok(diffsde_gmm_new_builtin(f->ctx, model, &g), f->ctx);
    ok(diffsde_gmm_eval_new(g, sde, &ev), f->ctx);
    ok(diffsde_gmm_score_new(g, sde, &sc), f->ctx);
    ok(diffsde_noise_new_philox(f->ctx, 0xC0FFEE, &noise), f->ctx);
    diffsde_sampler_options o = corr_opts(corr, 2, M, snr);
    ok(diffsde_sampler_new(f->ctx, sde, sc, &o, &s), f->ctx);
    ok(diffsde_sampler_init(s, noise, 0, n, 2, x), f->ctx);
    ok(diffsde_gmm_sample(ev, noise, T, 0, n, x), f->ctx); /* stream MODEL: independent */
    ok(diffsde_sampler_step(s, x), f->ctx);
    diffsde_sampler_stats st;
    ok(diffsde_sampler_get_stats(s, &st), f->ctx);
    const uint64_t props = st.accepted + st.rejected;
    *acc_rate = props ? (double)st.accepted / (double)props : 0;
    if (corr == DIFFSDE_CORRECTOR_MALA) {
        assert_int_equal(st.accepted + st.rejected, (uint64_t)n * M);
        assert_int_equal(st.score_calls, M + 1);
    }
    /* Stein statistics, in blocks */
    double sum1 = 0, sq1 = 0, sum2 = 0, sq2 = 0, sb[2 * 512], dv[512];
    for (size_t i0 = 0; i0 < n; i0 += 512) {
        size_t m = n - i0 < 512 ? n - i0 : 512;
        double tt[512];
        for (size_t i = 0; i < m; i++)
            tt[i] = T;
        ok(diffsde_gmm_evaluate(ev, m, tt, x + 2 * i0, NULL, sb, dv, NULL), f->ctx);
        for (size_t i = 0; i < m; i++) {
            const double *xi = x + 2 * (i0 + i), *si = sb + 2 * i;
            double h1 = xi[0] * si[0] + xi[1] * si[1] + 2.0;
            double h2 = si[0] * si[0] + si[1] * si[1] + dv[i];
            sum1 += h1, sq1 += h1 * h1, sum2 += h2, sq2 += h2 * h2;
        }
    }
    const double dn = (double)n;
    stein[0] = sum1 / dn;
    stein[1] = sqrt((sq1 / dn - stein[0] * stein[0]) / dn);
    stein[2] = sum2 / dn;
    stein[3] = sqrt((sq2 / dn - stein[2] * stein[2]) / dn);
    diffsde_sampler_free(s);
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
    diffsde_gmm_eval_free(ev);
    diffsde_gmm_free(g);
}

/* Mean and covariance entries of x (n × 2) against mu, C; se of the covariance entries from
 * the sample's fourth moments (about the exact mean). */
static void check_moments(stat_check *c, const double *x, size_t n, const double *mu,
                          const double *C)
{
    const double dn = (double)n;
    double m[2] = {0, 0}, p[3] = {0, 0, 0}, p2[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double r0 = x[2 * i] - mu[0], r1 = x[2 * i + 1] - mu[1];
        double q[3] = {r0 * r0, r0 * r1, r1 * r1};
        m[0] += x[2 * i], m[1] += x[2 * i + 1];
        for (int k = 0; k < 3; k++)
            p[k] += q[k], p2[k] += q[k] * q[k];
    }
    check_z(c, "mean[0]", m[0] / dn, mu[0], sqrt(C[0] / dn));
    check_z(c, "mean[1]", m[1] / dn, mu[1], sqrt(C[3] / dn));
    const double want[3] = {C[0], C[1], C[3]};
    const char *names[3] = {"cov[0][0]", "cov[0][1]", "cov[1][1]"};
    for (int k = 0; k < 3; k++) {
        double e = p[k] / dn;
        check_z(c, names[k], e, want[k], sqrt((p2[k] / dn - e * e) / dn));
    }
}

/*
 * Seeds fixed (exact samples: Philox 0xC0FFEE stream MODEL; correctors: same seed, streams
 * CORRECTOR and ACCEPT). 19 statistics (7 per MALA model, 5 for ALD), each passing when
 * within 4 standard errors: under the normal approximation the false-failure probability is
 * ≤ 19 × 6.3e-5 ≈ 1.2e-3.
 * - gauss1 under VP(βmin 0.1, βmax 1), N = 2, t = T = 1 (a = 1 − b_1 = 0.5): snr = 1 gives
 *   ε = σ(1)² ≈ 0.42, comparable to the smaller eigenvalue 0.68 of C; n = 10^5, M = 8.
 * - ring8 under the VP-like user SDE with T = 0.3 (8 modes of sd 0.78 at radius 2.5):
 *   snr = 0.6, ε = 0.72 σ(0.3)² ≈ 0.43; n = 10^5, M = 8.
 * - ALD, the unadjusted kernel with the same ε on gauss1: the sample covariance matches the
 *   exact linear recursion C' = A C A + 2εI, A = I − εC_T⁻¹, started at C_T (mean unchanged);
 *   that recursion moves C_T by many standard errors, so the MALA checks would see the
 *   step-size bias if the Metropolis correction were missing.
 */
static void test_mala_invariance(void **state)
{
    fixture *f = *state;
    enum { NN = 100000, M = 8 };
    double *x = malloc(2 * NN * sizeof *x), stein[4], acc, mu[2], C[4];
    assert_non_null(x);
    stat_check c = {"", 0, 0};

    diffsde_sde *vp1, *usde;
    ok(diffsde_sde_new_vp(f->ctx, 0.1, 1.0, &vp1), f->ctx);
    diffsde_sde_user def = {u_f, u_g2, u_alpha, u_sigma, NULL, 0.3, 0.0};
    ok(diffsde_sde_new_user(f->ctx, &def, &usde), f->ctx);

    diffsde_gmm *g1, *r8;
    ok(diffsde_gmm_new_builtin(f->ctx, "gauss1", &g1), f->ctx);
    ok(diffsde_gmm_new_builtin(f->ctx, "ring8", &r8), f->ctx);

    c.name = "mala gauss1";
    run_invariance(f, "gauss1", vp1, DIFFSDE_CORRECTOR_MALA, M, 1.0, NN, x, stein, &acc);
    ok(diffsde_gmm_moments(g1, vp1, 1.0, mu, C), f->ctx);
    check_moments(&c, x, NN, mu, C);
    check_z(&c, "E[x.s] + d", stein[0], 0, stein[1]);
    check_z(&c, "E[|s|^2 + div s]", stein[2], 0, stein[3]);
    print_message("# mala gauss1: acceptance %.3f, worst |z| %.2f over %d statistics\n", acc,
                  c.worst, c.count);

    stat_check c2 = {"mala ring8", 0, 0};
    run_invariance(f, "ring8", usde, DIFFSDE_CORRECTOR_MALA, M, 0.6, NN, x, stein, &acc);
    ok(diffsde_gmm_moments(r8, usde, 0.3, mu, C), f->ctx);
    check_moments(&c2, x, NN, mu, C);
    check_z(&c2, "E[x.s] + d", stein[0], 0, stein[1]);
    check_z(&c2, "E[|s|^2 + div s]", stein[2], 0, stein[3]);
    print_message("# mala ring8: acceptance %.3f, worst |z| %.2f over %d statistics\n", acc,
                  c2.worst, c2.count);

    /* ALD on gauss1 with the same step: the exact Gaussian recursion */
    stat_check c3 = {"ald gauss1", 0, 0};
    run_invariance(f, "gauss1", vp1, DIFFSDE_CORRECTOR_ALD, M, 1.0, NN, x, stein, &acc);
    ok(diffsde_gmm_moments(g1, vp1, 1.0, mu, C), f->ctx);
    double sig;
    ok(diffsde_sde_sigma(vp1, 1.0, &sig), f->ctx);
    const double e = 2 * 0.5 * sig * sig, det = C[0] * C[3] - C[1] * C[2];
    const double A[4] = {1 - e * C[3] / det, e * C[1] / det, e * C[2] / det, 1 - e * C[0] / det};
    double S[4] = {C[0], C[1], C[2], C[3]};
    for (int k = 0; k < M; k++) {
        double AS[4] = {A[0] * S[0] + A[1] * S[2], A[0] * S[1] + A[1] * S[3],
                        A[2] * S[0] + A[3] * S[2], A[2] * S[1] + A[3] * S[3]};
        S[0] = AS[0] * A[0] + AS[1] * A[1] + 2 * e;
        S[1] = AS[0] * A[2] + AS[1] * A[3];
        S[2] = AS[2] * A[0] + AS[3] * A[1];
        S[3] = AS[2] * A[2] + AS[3] * A[3] + 2 * e;
    }
    check_moments(&c3, x, NN, mu, S);
    /* the power of the MALA checks: distance of the unadjusted result from C in se units */
    double power = 0;
    const int ij[3][2] = {{0, 0}, {0, 1}, {1, 1}};
    for (int k = 0; k < 3; k++) {
        int a = ij[k][0], b = ij[k][1];
        double se = sqrt((S[3 * a] * S[3 * b] + S[2 * a + b] * S[2 * a + b]) / NN);
        power = fmax(power, fabs(S[2 * a + b] - C[2 * a + b]) / se);
    }
    print_message("# ald gauss1: worst |z| %.2f against the exact recursion; the recursion is "
                  "%.1f standard errors from p_T's covariance\n", c3.worst, power);
    assert_true(power > 10);

    diffsde_gmm_free(g1);
    diffsde_gmm_free(r8);
    diffsde_sde_free(vp1);
    diffsde_sde_free(usde);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_langevin), cmocka_unit_test(test_langevin_by_hand),
        cmocka_unit_test(test_ald_by_hand),      cmocka_unit_test(test_mala_decisions),
        cmocka_unit_test(test_mala_plumbing),    cmocka_unit_test(test_mala_invariance),
    };
    return cmocka_run_group_tests_name("correctors", tests, setup, teardown);
}
