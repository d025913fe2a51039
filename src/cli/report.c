/*
 * JSON run reports: numbers that JSON can hold (reals in their shortest form that reads back
 * as the same double; NaN/Inf as null; integers beyond 2^63 - 1 as strings), the metrics as an
 * object, the report of a sampling run, and an atomic two-phase write (prepare a complete
 * temporary, then rename it over the destination) so that a report is complete or absent, and
 * so that a command writing two files can commit the second only once the first is in place.
 *
 * The temporary lives in the destination's directory (rename is atomic only within one file
 * system), is created with open(O_CREAT | O_EXCL, 0666) — never an existing file; the umask
 * applies, as with fopen() — and is written, fsync'd and closed before the rename.
 */
#define _POSIX_C_SOURCE 200809L /* open flags, fsync, getpid */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

json_t *cli_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *cli_json_u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

/* json_object_set_new() that remembers a failure (a NULL value from an allocation). */
static void put(json_t *obj, const char *key, json_t *value, int *bad)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        *bad = 1;
}

json_t *cli_report_metrics(const diffsde_metrics *m)
{
    int bad = 0;
    json_t *o = json_object(), *mo = json_object(), *oc = json_object(), *en = json_object(),
           *ll = json_object();
    if (!o || !mo || !oc || !en || !ll) {
        json_decref(o);
        json_decref(mo);
        json_decref(oc);
        json_decref(en);
        json_decref(ll);
        return NULL;
    }
    put(o, "n", json_integer((json_int_t)m->n), &bad);
    put(o, "d", json_integer((json_int_t)m->d), &bad);

    const diffsde_moment_errors *me = &m->moments;
    put(mo, "mean_err", cli_json_real(me->mean_err), &bad);
    put(mo, "mean_err_rms", cli_json_real(me->mean_err_rms), &bad);
    put(mo, "mean_chi2", cli_json_real(me->mean_chi2), &bad);
    put(mo, "mean_pvalue", cli_json_real(me->mean_pvalue), &bad);
    put(mo, "cov_rel_err", cli_json_real(me->cov_rel_err), &bad);
    put(mo, "cov_rel_err_rms", cli_json_real(me->cov_rel_err_rms), &bad);
    put(o, "moments", mo, &bad);

    const diffsde_occupancy *occ = &m->occupancy;
    put(oc, "components", json_integer((json_int_t)occ->K), &bad);
    put(oc, "empty", json_integer((json_int_t)occ->empty), &bad);
    put(oc, "empty_expected", cli_json_real(occ->empty_expected), &bad);
    put(oc, "chi2", cli_json_real(occ->chi2), &bad);
    put(oc, "dof", json_integer((json_int_t)occ->dof), &bad);
    put(oc, "pvalue", cli_json_real(occ->pvalue), &bad);
    put(oc, "ambiguity", cli_json_real(occ->ambiguity), &bad);
    put(oc, "ref_chi2", cli_json_real(occ->ref_chi2), &bad);
    put(oc, "ref_dof", json_integer((json_int_t)occ->ref_dof), &bad);
    put(oc, "ref_pvalue", cli_json_real(occ->ref_pvalue), &bad);
    put(oc, "ref_empty", json_integer((json_int_t)occ->ref_empty), &bad);
    put(o, "occupancy", oc, &bad);

    put(o, "sliced_w2", cli_json_real(m->sliced_w2), &bad);
    put(o, "sliced_w2_null", cli_json_real(m->sliced_w2_null), &bad);
    put(o, "sliced_directions", json_integer((json_int_t)m->sliced_directions), &bad);

    put(en, "energy", cli_json_real(m->energy.energy), &bad);
    put(en, "pvalue", cli_json_real(m->energy.pvalue), &bad);
    put(en, "points_samples", json_integer((json_int_t)m->energy.mx), &bad);
    put(en, "points_reference", json_integer((json_int_t)m->energy.my), &bad);
    put(en, "permutations", json_integer((json_int_t)m->energy.permutations), &bad);
    put(o, "energy", en, &bad);

    const diffsde_loglik_check *lc = &m->loglik;
    put(ll, "samples_mean", cli_json_real(lc->samples.mean), &bad);
    put(ll, "samples_se", cli_json_real(lc->samples.se), &bad);
    put(ll, "reference_mean", cli_json_real(lc->reference.mean), &bad);
    put(ll, "reference_se", cli_json_real(lc->reference.se), &bad);
    put(ll, "diff", cli_json_real(lc->diff), &bad);
    put(ll, "diff_se", cli_json_real(lc->diff_se), &bad);
    put(o, "loglik", ll, &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *cli_json_text(const char *str)
{
    /* JSON strings are UTF-8: a path in another encoding is kept with its non-ASCII bytes
     * replaced, so that the report stays valid JSON. */
    json_t *j = json_string(str);
    if (j || !str)
        return j;
    char *copy = strdup(str);
    if (!copy)
        return NULL;
    for (char *q = copy; *q; q++)
        if ((unsigned char)*q >= 0x80)
            *q = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *cli_json_argv(int argc, char **argv)
{
    json_t *a = json_array();
    int bad = !a || json_array_append_new(a, json_string("diffsde")) != 0;
    for (int i = 0; !bad && i < argc; i++)
        bad |= json_array_append_new(a, cli_json_text(argv[i])) != 0;
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *cli_sde_params_json(const diffsde_sde *sde)
{
    static const char *const keys[] = {"sigma_min", "sigma_max", "beta_min", "beta_max", "T"};
    json_t *params = json_object();
    int bad = !params;
    for (size_t i = 0; !bad && i < sizeof keys / sizeof keys[0]; i++) {
        double v;
        if (diffsde_sde_get_param(sde, keys[i], &v) == DIFFSDE_OK)
            bad |= json_object_set_new(params, keys[i], cli_json_real(v)) != 0;
    }
    if (bad) {
        json_decref(params);
        return NULL;
    }
    return params;
}

int cli_ode_config_json(json_t *cfg, const diffsde_ode_options *o)
{
    /* Values a method does not use are null, so that nobody reads an effect into them. */
    int adaptive = diffsde_ode_method_is_adaptive(o->method);
    int karras = o->grid == DIFFSDE_GRID_KARRAS;
    int bad = 0;
    put(cfg, "method", json_string(diffsde_ode_method_name(o->method)), &bad);
    put(cfg, "steps", adaptive ? json_null() : cli_json_u64(o->steps), &bad);
    put(cfg, "grid", adaptive ? json_null() : json_string(diffsde_time_grid_name(o->grid)), &bad);
    put(cfg, "rho", adaptive || !karras ? json_null() : cli_json_real(o->rho), &bad);
    put(cfg, "rtol", adaptive ? cli_json_real(o->rtol) : json_null(), &bad);
    put(cfg, "atol", adaptive ? cli_json_real(o->atol) : json_null(), &bad);
    put(cfg, "max_steps", adaptive ? cli_json_u64(o->max_steps) : json_null(), &bad);
    put(cfg, "whole_batch", json_boolean(adaptive && o->whole_batch), &bad);
    put(cfg, "eps", cli_json_real(o->eps), &bad);
    put(cfg, "denoise", json_boolean(o->denoise), &bad);
    return bad ? -1 : 0;
}

int cli_ode_stats_json(json_t *doc, const diffsde_ode_stats *st)
{
    int bad = 0;
    put(doc, "nfe_per_sample", cli_json_real(st->nfe_per_sample), &bad);
    put(doc, "nfe_min", cli_json_u64(st->nfe_min), &bad);
    put(doc, "nfe_max", cli_json_u64(st->nfe_max), &bad);
    put(doc, "score_calls", cli_json_u64(st->score_calls), &bad);
    put(doc, "score_evals", cli_json_u64(st->score_evals), &bad);
    put(doc, "denoise_calls", cli_json_u64(st->denoise_calls), &bad);
    put(doc, "steps", cli_json_u64(st->steps), &bad);
    put(doc, "accepted", cli_json_u64(st->accepted), &bad);
    put(doc, "rejected", cli_json_u64(st->rejected), &bad);
    return bad ? -1 : 0;
}

static json_t *config_json(const cli_sample_config *c, const diffsde_sde *sde)
{
    const diffsde_sampler_options *o = &c->opt;
    int bad = 0;
    json_t *cfg = json_object();
    if (!cfg)
        return NULL;
    put(cfg, "model", cli_json_text(c->model), &bad);
    put(cfg, "sde", json_string(diffsde_sde_name(sde)), &bad);
    put(cfg, "sde_params", cli_sde_params_json(sde), &bad);
    if (c->ode) {
        put(cfg, "sampler", json_string("ode"), &bad);
        bad |= cli_ode_config_json(cfg, &c->ode_opt) != 0;
    } else {
        put(cfg, "sampler", json_string(diffsde_sampler_method_name(o->method)), &bad);
        put(cfg, "predictor", json_string(diffsde_predictor_name(o->predictor)), &bad);
        put(cfg, "corrector", json_string(diffsde_corrector_name(o->corrector)), &bad);
        put(cfg, "snr", cli_json_real(o->snr), &bad);
        put(cfg, "steps", cli_json_u64(o->steps), &bad);
        put(cfg, "corrector_steps", cli_json_u64(o->corrector_steps), &bad);
        put(cfg, "eps", cli_json_real(o->eps), &bad);
        put(cfg, "denoise", json_boolean(o->denoise), &bad);
        put(cfg, "reference", json_boolean(o->reference), &bad);
        put(cfg, "batch_norms", json_boolean(o->batch_norms), &bad);
        put(cfg, "rtol", cli_json_real(o->rtol), &bad);
        put(cfg, "atol", cli_json_real(o->atol), &bad);
        put(cfg, "max_steps", cli_json_u64(o->max_steps), &bad);
    }
    put(cfg, "n", cli_json_u64(c->n), &bad);
    put(cfg, "seed", cli_json_u64(c->seed), &bad);
    put(cfg, "out", cli_json_text(c->out), &bad);
    put(cfg, "report", c->report ? cli_json_text(c->report) : json_null(), &bad);
    put(cfg, "plot", c->plot ? cli_json_text(c->plot) : json_null(), &bad);
    put(cfg, "plot_paths", cli_json_u64(c->plot ? c->plot_paths : 0), &bad);
    put(cfg, "quiet", json_boolean(c->quiet), &bad);
    put(cfg, "chunk", json_integer(CLI_SAMPLE_CHUNK), &bad);
    if (bad) {
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

json_t *cli_sample_report(const char *s, const cli_sample_config *c, const diffsde_sde *sde,
                          const cli_sample_result *r, const char *metrics_error)
{
    char program[64];
    snprintf(program, sizeof program, "diffsde %s", s);
    json_t *doc = json_object(), *argv = cli_json_argv(c->argc, c->argv),
           *cfg = config_json(c, sde);
    json_t *metrics = NULL;
    int bad = !doc || !argv || !cfg;
    if (!bad && r->have_metrics) {
        char against[64];
        if (r->metrics_t > 0)
            snprintf(against, sizeof against, "exact p_eps (t = %.17g)", r->metrics_t);
        else
            snprintf(against, sizeof against, "exact p0");
        metrics = cli_report_metrics(&r->metrics);
        bad = !metrics;
        if (!bad) {
            put(metrics, "against", json_string(against), &bad);
            put(metrics, "t", cli_json_real(r->metrics_t), &bad);
            put(metrics, "seed", cli_json_u64(r->metrics_seed), &bad);
            put(metrics, "ref_sample0", cli_json_u64(DIFFSDE_METRICS_REF_SAMPLE0), &bad);
            put(metrics, "seconds", cli_json_real(r->metrics_seconds), &bad);
        }
    } else if (!bad) {
        metrics = json_null();
    }
    if (bad) {
        json_decref(doc);
        json_decref(argv);
        json_decref(cfg);
        json_decref(metrics);
        return NULL;
    }
    put(doc, "program", json_string(program), &bad);
    put(doc, "version", json_string(diffsde_version_string()), &bad);
    put(doc, "command_line", argv, &bad);
    put(doc, "config", cfg, &bad);
    put(doc, "seed", cli_json_u64(c->seed), &bad);
    put(doc, "n", cli_json_u64(c->n), &bad);
    put(doc, "d", cli_json_u64(r->d), &bad);
    if (c->ode) {
        bad |= cli_ode_stats_json(doc, &r->ode_stats) != 0;
    } else {
        const diffsde_sampler_stats *st = &r->stats;
        put(doc, "nfe_per_sample", cli_json_real(st->nfe_per_sample), &bad);
        put(doc, "score_calls", cli_json_u64(st->score_calls), &bad);
        put(doc, "score_evals", cli_json_u64(st->score_evals), &bad);
        put(doc, "denoise_calls", cli_json_u64(st->denoise_calls), &bad);
        put(doc, "steps", cli_json_u64(st->steps), &bad);
        put(doc, "accepted", cli_json_u64(st->accepted), &bad);
        put(doc, "rejected", cli_json_u64(st->rejected), &bad);
    }
    put(doc, "wall_seconds", cli_json_real(r->wall_seconds), &bad);
    put(doc, "metrics", metrics, &bad);
    if (metrics_error)
        put(doc, "metrics_error", json_string(metrics_error), &bad);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ---- --from-report: a sampling run's configuration read back ------------------------------ */

typedef struct reader {
    const char *sub, *path;
    json_t *cfg;
    int bad; /* the first problem was reported */
} reader;

static json_t *member(reader *rd, const char *key, int (*is)(const json_t *), const char *what,
                      int nullable)
{
    json_t *v = json_object_get(rd->cfg, key);
    if (v && (is(v) || (nullable && json_is_null(v))))
        return json_is_null(v) ? NULL : v;
    if (!rd->bad)
        cli_error(rd->sub, "--from-report %s: config.%s %s (expected %s%s)", rd->path, key,
                  v ? "has the wrong type" : "is missing", what, nullable ? " or null" : "");
    rd->bad = 1;
    return NULL;
}

static int is_string(const json_t *v) { return json_is_string(v); }
static int is_number(const json_t *v) { return json_is_number(v); }
static int is_bool(const json_t *v) { return json_is_boolean(v); }
/* Integers are JSON integers, or decimal strings beyond 2^63 - 1 (cli_json_u64). */
static int is_u64(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) >= 0;
    if (!json_is_string(v))
        return 0;
    const char *t = json_string_value(v);
    return t[0] >= '0' && t[0] <= '9' && strspn(t, "0123456789") == strlen(t);
}

static const char *get_string(reader *rd, const char *key, int nullable)
{
    json_t *v = member(rd, key, is_string, "a string", nullable);
    return v ? json_string_value(v) : NULL;
}

static double get_real(reader *rd, const char *key, double dflt, int nullable)
{
    json_t *v = member(rd, key, is_number, "a number", nullable);
    return v ? json_number_value(v) : dflt;
}

static int get_bool(reader *rd, const char *key)
{
    json_t *v = member(rd, key, is_bool, "true or false", 0);
    return v ? json_is_true(v) : 0;
}

static uint64_t get_u64(reader *rd, const char *key, uint64_t dflt, int nullable)
{
    json_t *v = member(rd, key, is_u64, "a non-negative integer", nullable);
    if (!v)
        return dflt;
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    errno = 0;
    unsigned long long u = strtoull(json_string_value(v), NULL, 10);
    if (errno == ERANGE && !rd->bad) {
        cli_error(rd->sub, "--from-report %s: config.%s is beyond 2^64 - 1", rd->path, key);
        rd->bad = 1;
    }
    return (uint64_t)u;
}

/* A name the library must recognise (parse returns DIFFSDE_OK). */
static void bad_name(reader *rd, const char *key, const char *name)
{
    if (!rd->bad)
        cli_error(rd->sub, "--from-report %s: config.%s: unknown name '%s'", rd->path, key,
                  name ? name : "(null)");
    rd->bad = 1;
}

static void read_sde_params(reader *rd, cli_sde_opts *o)
{
    json_t *params = json_object_get(rd->cfg, "sde_params");
    if (!json_is_object(params)) {
        if (!rd->bad)
            cli_error(rd->sub, "--from-report %s: config.sde_params is missing or not an "
                      "object", rd->path);
        rd->bad = 1;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        /* T is fixed by the SDE's kind; every other parameter is given again. */
        if (strcmp(key, "T") == 0)
            continue;
        if (!json_is_number(v) || o->nparams == CLI_MAX_SDE_PARAMS ||
            strlen(key) >= sizeof o->key_store[0]) {
            if (!rd->bad)
                cli_error(rd->sub, "--from-report %s: config.sde_params.%s is not a number",
                          rd->path, key);
            rd->bad = 1;
            return;
        }
        strcpy(o->key_store[o->nparams], key);
        o->keys[o->nparams] = o->key_store[o->nparams];
        o->values[o->nparams++] = json_number_value(v);
    }
}

static void read_sde_sampler(reader *rd, diffsde_sampler_options *o)
{
    const char *name = get_string(rd, "sampler", 0);
    if (name && diffsde_sampler_method_from_name(name, &o->method) != DIFFSDE_OK)
        bad_name(rd, "sampler", name);
    if ((name = get_string(rd, "predictor", 0)) &&
        diffsde_predictor_from_name(name, &o->predictor) != DIFFSDE_OK)
        bad_name(rd, "predictor", name);
    if ((name = get_string(rd, "corrector", 0)) &&
        diffsde_corrector_from_name(name, &o->corrector) != DIFFSDE_OK)
        bad_name(rd, "corrector", name);
    o->snr = get_real(rd, "snr", o->snr, 0);
    o->steps = (size_t)get_u64(rd, "steps", o->steps, 0);
    o->corrector_steps = (size_t)get_u64(rd, "corrector_steps", o->corrector_steps, 0);
    o->eps = get_real(rd, "eps", o->eps, 0);
    o->denoise = get_bool(rd, "denoise");
    o->reference = get_bool(rd, "reference");
    o->batch_norms = get_bool(rd, "batch_norms");
    o->rtol = get_real(rd, "rtol", o->rtol, 0);
    o->atol = get_real(rd, "atol", o->atol, 0);
    o->max_steps = (size_t)get_u64(rd, "max_steps", o->max_steps, 0);
}

/* The ODE's values, null where the method does not use them (cli_ode_config_json). */
static void read_ode(reader *rd, diffsde_ode_options *o)
{
    const char *name = get_string(rd, "method", 0);
    if (name && diffsde_ode_method_from_name(name, &o->method) != DIFFSDE_OK)
        bad_name(rd, "method", name);
    o->steps = (size_t)get_u64(rd, "steps", o->steps, 1);
    if ((name = get_string(rd, "grid", 1)) &&
        diffsde_time_grid_from_name(name, &o->grid) != DIFFSDE_OK)
        bad_name(rd, "grid", name);
    o->rho = get_real(rd, "rho", o->rho, 1);
    o->rtol = get_real(rd, "rtol", o->rtol, 1);
    o->atol = get_real(rd, "atol", o->atol, 1);
    o->max_steps = (size_t)get_u64(rd, "max_steps", o->max_steps, 1);
    o->whole_batch = get_bool(rd, "whole_batch");
    o->eps = get_real(rd, "eps", o->eps, 0);
    o->denoise = get_bool(rd, "denoise");
}

int cli_sample_config_from_report(const char *sub, const char *path, cli_sample_config *c)
{
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    if (!doc) {
        if (err.line > 0)
            cli_error(sub, "--from-report %s: line %d: %s", path, err.line, err.text);
        else
            cli_error(sub, "--from-report %s: %s", path, err.text);
        return CLI_FAILED;
    }
    json_t *program = json_object_get(doc, "program"), *cfg = json_object_get(doc, "config");
    if (!json_is_string(program) || strcmp(json_string_value(program), "diffsde sample") != 0 ||
        !json_is_object(cfg)) {
        cli_error(sub, "--from-report %s: not the report of a `diffsde sample` run (its "
                  "\"program\" is %s)", path,
                  json_is_string(program) ? json_string_value(program) : "missing");
        json_decref(doc);
        return CLI_USAGE;
    }
    json_t *version = json_object_get(doc, "version");
    if (!json_is_string(version) ||
        strcmp(json_string_value(version), diffsde_version_string()) != 0)
        cli_error(sub, "warning: --from-report %s was written by diffsde %s, this is %s: the "
                  "samples may differ", path,
                  json_is_string(version) ? json_string_value(version) : "(unknown)",
                  diffsde_version_string());
    cli_sample_config_default(c);
    c->from = doc;
    reader rd = {sub, path, cfg, 0};
    c->model = get_string(&rd, "model", 0);
    c->sde.name = get_string(&rd, "sde", 0);
    read_sde_params(&rd, &c->sde);
    const char *sampler = get_string(&rd, "sampler", 0);
    c->ode = sampler && strcmp(sampler, "ode") == 0;
    if (c->ode) {
        read_ode(&rd, &c->ode_opt);
        c->opt.eps = c->ode_opt.eps; /* resolve() copies opt.eps into the ODE's */
    } else {
        read_sde_sampler(&rd, &c->opt);
    }
    c->n = get_u64(&rd, "n", 0, 0);
    c->seed = get_u64(&rd, "seed", 0, 0);
    c->out = get_string(&rd, "out", 0);
    c->report = get_string(&rd, "report", 1);
    /* Reports before --plot existed have neither member: no picture. */
    if (json_object_get(cfg, "plot"))
        c->plot = get_string(&rd, "plot", 1);
    if (json_object_get(cfg, "plot_paths"))
        c->plot_paths = (size_t)get_u64(&rd, "plot_paths", 0, 0);
    c->quiet = json_object_get(cfg, "quiet") ? get_bool(&rd, "quiet") : 0;
    uint64_t chunk = get_u64(&rd, "chunk", CLI_SAMPLE_CHUNK, 0);
    if (!rd.bad && (c->n == 0 || c->n > DIFFSDE_NOISE_MAX_SAMPLES / 4)) {
        cli_error(sub, "--from-report %s: config.n = %llu is not in 1 .. 2^46", path,
                  (unsigned long long)c->n);
        rd.bad = 1;
    }
    if (!rd.bad && c->plot_paths > CLI_MAX_PLOT_PATHS) {
        cli_error(sub, "--from-report %s: config.plot_paths = %zu is more than %d", path,
                  c->plot_paths, CLI_MAX_PLOT_PATHS);
        rd.bad = 1;
    }
    /* The chunk is the batch of batch norms and whole-batch control: another chunk size
     * would give other samples. Per-sample methods do not depend on it. */
    int batch = c->ode ? c->ode_opt.whole_batch : c->opt.batch_norms || c->opt.reference;
    uint64_t was = c->n < chunk ? c->n : chunk, is = c->n < CLI_SAMPLE_CHUNK ? c->n
                                                                             : CLI_SAMPLE_CHUNK;
    if (!rd.bad && batch && was != is) {
        cli_error(sub, "--from-report %s: the run used batches of %llu samples, this build "
                  "uses %d: its batch-dependent result cannot be reproduced", path,
                  (unsigned long long)chunk, CLI_SAMPLE_CHUNK);
        rd.bad = 1;
    }
    if (rd.bad) {
        json_decref(doc);
        c->from = NULL;
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Write all of buf to fd, retrying short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The shortest "%.*g" of v that reads back as v (at most 17 digits), kept a JSON real. */
static size_t shortest_real(double v, char *buf, size_t len)
{
    int w = 0, p = 1;
    for (; p <= 17; p++) {
        w = snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* Keep every integer digit of numbers below 1e16 (20, not 2e+01). */
    double a = fabs(v);
    if (p <= 17 && a >= 1 && a < 1e16) {
        int digits = (int)floor(log10(a)) + 1;
        if (digits > p) {
            w = snprintf(buf, len, "%.*g", digits, v);
            if (strtod(buf, NULL) != v)
                w = snprintf(buf, len, "%.17g", v);
        }
    }
    if (w > 0 && (size_t)w + 2 < len && !strpbrk(buf, ".eEni")) {
        strcat(buf, ".0");
        w += 2;
    }
    return w > 0 ? (size_t)w : 0;
}

/* jansson writes every real with 17 significant digits (0.1 as 0.10000000000000001): exact
 * but hard to read. Rewrite each real number token outside strings in its shortest exact form,
 * which reads back as the same double. Returns a malloc'd text, NULL when out of memory. */
static char *shorten_reals(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(2 * len + 1), num[40];
    if (!out)
        return NULL;
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (in_string) {
            out[o++] = c;
            i++;
            if (c == '\\' && i < len)
                out[o++] = text[i++];
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
            out[o++] = text[i++];
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            out[o++] = text[i++];
            continue;
        }
        size_t j = i;
        int real = 0;
        while (j < len && strchr("0123456789+-.eE", text[j])) {
            real |= text[j] == '.' || text[j] == 'e' || text[j] == 'E';
            j++;
        }
        size_t w = 0;
        if (real && j - i < sizeof num) {
            memcpy(num, text + i, j - i);
            num[j - i] = '\0';
            char buf[40];
            w = shortest_real(strtod(num, NULL), buf, sizeof buf);
            if (w > 0 && w <= j - i + 2) /* never longer than the original plus ".0" */
                memcpy(out + o, buf, w);
            else
                w = 0;
        }
        if (w == 0) {
            memcpy(out + o, text + i, j - i);
            w = j - i;
        }
        o += w;
        i = j;
    }
    out[o] = '\0';
    return out;
}

int cli_report_prepare(const char *sub, const char *path, const json_t *doc, char **tmp)
{
    *tmp = NULL;
    char *raw = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    char *text = raw ? shorten_reals(raw) : NULL;
    free(raw);
    if (!text) {
        cli_error(sub, "--report %s: out of memory while formatting the report", path);
        return CLI_FAILED;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        cli_error(sub, "--report %s: exists and is not a regular file", path);
        free(text);
        return CLI_FAILED;
    }
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dirlen;
    size_t baselen = strlen(base);
    if (baselen == 0) {
        cli_error(sub, "--report '%s' names a directory, not a file", path);
        free(text);
        return CLI_FAILED;
    }
    if (baselen > 100)
        baselen = 100; /* keep the temporary's name under NAME_MAX */
    size_t cap = dirlen + 1 + baselen + 16;
    char *name = malloc(cap);
    if (!name) {
        cli_error(sub, "--report %s: out of memory", path);
        free(text);
        return CLI_FAILED;
    }
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid() << 20 ^
                 (uint64_t)ts.tv_sec;
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        char suffix[9];
        uint64_t v = r >> 16;
        for (int i = 0; i < 8; i++, v /= 36)
            suffix[i] = digits[v % 36];
        suffix[8] = '\0';
        snprintf(name, cap, "%.*s.%.*s.%s", (int)dirlen, path, (int)baselen, base, suffix);
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
        err = errno;
        if (fd < 0 && err != EEXIST)
            break;
    }
    if (fd < 0) {
        cli_error(sub, "--report %s: cannot create a temporary file beside it: %s", path,
                  strerror(err));
        free(name);
        free(text);
        return CLI_FAILED;
    }
    size_t len = strlen(text);
    int ok = write_all(fd, text, len) == 0 && write_all(fd, "\n", 1) == 0 && fsync(fd) == 0;
    err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    free(text);
    if (!ok) {
        cli_error(sub, "--report %s: cannot write the temporary %s: %s", path, name,
                  strerror(err));
        unlink(name);
        free(name);
        return CLI_FAILED;
    }
    *tmp = name;
    return CLI_OK;
}

int cli_report_commit(const char *sub, const char *path, char *tmp)
{
    if (rename(tmp, path) != 0) {
        int err = errno;
        cli_error(sub, "--report %s: cannot rename %s over it: %s", path, tmp, strerror(err));
        cli_report_discard(tmp);
        return CLI_FAILED;
    }
    free(tmp);
    return CLI_OK;
}

void cli_report_discard(char *tmp)
{
    if (!tmp)
        return;
    unlink(tmp);
    free(tmp);
}
