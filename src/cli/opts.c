/* Option values shared by the subcommands: numbers, SDE choice and its parameters, output
 * paths, the model, and the flow-ODE options of sample, encode, decode and loglik. */
#define _POSIX_C_SOURCE 200809L /* access */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_parse_double(const char *sub, const char *opt, const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        cli_error(sub, "--%s: '%s' is not a finite number", opt, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *sub, const char *opt, const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (text[0] == '-' || text[0] == '\0') {
        cli_error(sub, "--%s: '%s' is not a non-negative integer", opt, text);
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE) {
        cli_error(sub, "--%s: '%s' is not a non-negative integer (0 .. 2^64-1)", opt, text);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_positive(const char *sub, const char *opt, const char *text, double *out)
{
    if (cli_parse_double(sub, opt, text, out) != 0)
        return -1;
    if (!(*out > 0)) {
        cli_error(sub, "--%s: must be > 0 (got %s)", opt, text);
        return -1;
    }
    return 0;
}

int cli_parse_count(const char *sub, const char *opt, const char *text, uint64_t min,
                    size_t *out)
{
    uint64_t v;
    if (cli_parse_u64(sub, opt, text, &v) != 0)
        return -1;
    if (v < min || v > (uint64_t)SIZE_MAX) {
        cli_error(sub, "--%s: must be at least %llu (got %s)", opt, (unsigned long long)min,
                  text);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int cli_sde_add_param(const char *sub, cli_sde_opts *o, const char *text)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        cli_error(sub, "--sde-param: expected KEY=VALUE, got '%s' (e.g. --sde-param beta_max=20)",
                  text);
        return -1;
    }
    if (o->nparams == CLI_MAX_SDE_PARAMS) {
        cli_error(sub, "--sde-param: at most %d parameters", CLI_MAX_SDE_PARAMS);
        return -1;
    }
    size_t klen = (size_t)(eq - text);
    if (klen >= sizeof o->key_store[0]) {
        cli_error(sub, "--sde-param: key '%.*s' is too long", (int)klen, text);
        return -1;
    }
    memcpy(o->key_store[o->nparams], text, klen);
    o->key_store[o->nparams][klen] = '\0';
    if (cli_parse_double(sub, "sde-param", eq + 1, &o->values[o->nparams]) != 0)
        return -1;
    o->keys[o->nparams] = o->key_store[o->nparams];
    o->nparams++;
    return 0;
}

int cli_sde_make(const char *sub, diffsde_ctx *ctx, const cli_sde_opts *o, diffsde_sde **sde)
{
    *sde = NULL;
    if (!o->name) {
        cli_error(sub, "--sde is required (ve, vp or subvp)");
        return CLI_USAGE;
    }
    if (diffsde_sde_new_named(ctx, o->name, o->nparams, o->keys, o->values, sde) != DIFFSDE_OK) {
        cli_error(sub, "%s: %s (see diffsde %s --help)", o->nparams ? "--sde/--sde-param" : "--sde",
                  diffsde_errmsg(ctx), sub);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_sde_create(const char *sub, diffsde_ctx *ctx, const cli_sde_opts *o, diffsde_sde **sde)
{
    *sde = NULL;
    if (!o->name) {
        if (o->nparams > 0 || o->have_t) {
            cli_error(sub, "%s needs --sde (ve, vp or subvp)",
                      o->have_t ? "--t" : "--sde-param");
            return CLI_USAGE;
        }
        return CLI_OK;
    }
    if (!o->have_t) {
        cli_error(sub, "--sde %s needs --t (a time in [0, 1])", o->name);
        return CLI_USAGE;
    }
    int rc = cli_sde_make(sub, ctx, o, sde);
    if (rc != CLI_OK)
        return rc;
    double T;
    diffsde_sde_time_range(*sde, NULL, &T);
    if (!(o->t >= 0 && o->t <= T)) {
        cli_error(sub, "--t: %g is outside [0, %g]", o->t, T);
        diffsde_sde_free(*sde);
        *sde = NULL;
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int cli_check_writable(const char *sub, const char *opt, const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    size_t len = slash ? (size_t)(slash - path) + 1 : 0;
    if (len >= sizeof dir)
        return CLI_OK; /* let the write itself report it */
    if (len == 0) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    if (path[len] == '\0') {
        cli_error(sub, "--%s '%s' names a directory, not a file", opt, path);
        return CLI_FAILED;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        cli_error(sub, "--%s %s: the directory '%s' does not exist or is not writable", opt,
                  path, dir);
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_model_load(const char *sub, diffsde_ctx *ctx, const char *model, const diffsde_sde *sde,
                   diffsde_gmm **gmm, diffsde_score **score)
{
    *gmm = NULL;
    *score = NULL;
    if (diffsde_gmm_load(ctx, model, gmm) != DIFFSDE_OK ||
        diffsde_gmm_score_new(*gmm, sde, score) != DIFFSDE_OK) {
        cli_error(sub, "--model %s: %s", model, diffsde_errmsg(ctx));
        diffsde_gmm_free(*gmm);
        *gmm = NULL;
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_parse_ode_method(const char *sub, const char *text, diffsde_ode_method *m)
{
    if (diffsde_ode_method_from_name(text, m) == DIFFSDE_OK)
        return 0;
    char names[512] = "";
    size_t len = 0;
    for (int k = 0; k < DIFFSDE_ODE_NMETHODS && len < sizeof names; k++) {
        int w = snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "",
                         diffsde_ode_method_name((diffsde_ode_method)k));
        len += w > 0 ? (size_t)w : 0;
    }
    cli_error(sub, "--method: unknown method '%s' (one of %s)", text, names);
    return -1;
}

int cli_parse_grid(const char *sub, const char *text, diffsde_time_grid *g)
{
    if (strcmp(text, "default") != 0 && diffsde_time_grid_from_name(text, g) == DIFFSDE_OK)
        return 0;
    cli_error(sub, "--grid: unknown grid '%s' (uniform, logsnr or karras)", text);
    return -1;
}

int cli_ode_check_given(const char *sub, const diffsde_ode_options *o, const cli_ode_given *g)
{
    const char *name = diffsde_ode_method_name(o->method);
    if (diffsde_ode_method_is_adaptive(o->method)) {
        const char *opt = g->steps ? "--steps" : g->grid ? "--grid" : g->rho ? "--rho" : NULL;
        if (opt) {
            cli_error(sub, "%s applies to fixed-grid methods only; --method %s chooses its own "
                      "steps from --rtol and --atol", opt, name);
            return CLI_USAGE;
        }
        return CLI_OK;
    }
    const char *opt = g->rtol ? "--rtol" : g->atol ? "--atol" : g->whole_batch ? "--whole-batch"
                                                                             : NULL;
    if (opt) {
        cli_error(sub, "%s applies to adaptive methods only (rk45, cvode-*, arkode-dp, gsl-*); "
                  "--method %s takes --steps steps", opt, name);
        return CLI_USAGE;
    }
    int karras = o->grid == DIFFSDE_GRID_KARRAS ||
                 (o->grid == DIFFSDE_GRID_DEFAULT && o->method == DIFFSDE_ODE_EDM_HEUN);
    if (g->rho && !karras) {
        cli_error(sub, "--rho applies to the karras grid only (--grid karras, or the default "
                  "grid of edm-heun)");
        return CLI_USAGE;
    }
    return CLI_OK;
}

void cli_ode_stats_add(diffsde_ode_stats *total, const diffsde_ode_stats *chunk, int first)
{
    if (first) {
        *total = *chunk;
        return;
    }
    total->steps = chunk->steps > total->steps ? chunk->steps : total->steps;
    total->score_calls += chunk->score_calls;
    total->score_evals += chunk->score_evals;
    total->accepted += chunk->accepted;
    total->rejected += chunk->rejected;
    total->nfe_min = chunk->nfe_min < total->nfe_min ? chunk->nfe_min : total->nfe_min;
    total->nfe_max = chunk->nfe_max > total->nfe_max ? chunk->nfe_max : total->nfe_max;
    total->denoise_calls += chunk->denoise_calls;
    total->wall_seconds += chunk->wall_seconds;
}

int cli_read_points(const char *sub, diffsde_ctx *ctx, const char *path, size_t d,
                    diffsde_array *arr)
{
    if (diffsde_array_read(ctx, path, arr) != DIFFSDE_OK) {
        cli_error(sub, "--in: %s", diffsde_errmsg(ctx));
        return CLI_FAILED;
    }
    /* A 1-D array is n points of dimension 1, as NumPy users would write them. */
    if (arr->rows == 0 || arr->cols != d) {
        if (arr->rows == 0)
            cli_error(sub, "--in %s: no points (shape (0, %zu))", path, arr->cols);
        else
            cli_error(sub, "--in %s: points of dimension %zu (%zu columns), the model has "
                      "dimension %zu", path, arr->cols, arr->cols, d);
        diffsde_array_free(ctx, arr);
        return CLI_FAILED;
    }
    return CLI_OK;
}
