/* Option values shared by the subcommands: numbers, SDE choice and its parameters. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
        cli_error(sub, "%s (see diffsde %s --help)", diffsde_errmsg(ctx), sub);
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
