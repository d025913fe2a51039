/*
 * Gaussian-mixture model specifications in JSON (format: doc/model-format.md), parsed with
 * jansson and built through the public builder of gmm.h.
 *
 * Two passes. The first checks the whole document (keys, types, lengths, finiteness, weights
 * and variances > 0, symmetry) without allocating, so that every format error names
 * "components[k].field" precisely and costs nothing to report. The second allocates and calls
 * diffsde_gmm_new / _add_full / _add_diag / _add_iso / _finalize; the builder's own refusals
 * (a covariance that is not positive definite) are re-recorded with the component and field
 * as a prefix.
 *
 * jansson allocates its parse tree with its own allocator (malloc unless a host changed it
 * process-wide with json_set_alloc_funcs); diffsde cannot route that through the context's
 * hooks without global state. The tree is released before returning in every case.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/io_impl.h"

/* Where messages start: the public function, and the path for files. */
typedef struct jp {
    diffsde_ctx *ctx;
    const char *where;
} jp;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int jfail(const jp *p, int status, const char *fmt, ...)
{
    char msg[DIFFSDE_ERRMSG_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return diffsde_i_fail(p->ctx, status, "%s: %s", p->where, msg);
}

/* A short description of a JSON value for messages: its value for scalars, else its type. */
static const char *describe(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        snprintf(buf, len, "the string \"%.24s%s\"", json_string_value(v),
                 json_string_length(v) > 24 ? "..." : "");
        return buf;
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL: {
        snprintf(buf, len, "%.17g", json_real_value(v));
        if (!strpbrk(buf, ".eEni") && strlen(buf) + 2 < len)
            strcat(buf, ".0"); /* show that it was written as a real, e.g. 3.0 */
        return buf;
    }
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "an unknown value";
}

/* A finite number (integer or real; booleans and strings are not numbers). */
static int get_number(const jp *p, const json_t *v, const char *field, double *out)
{
    char d[64];
    if (!json_is_number(v))
        return jfail(p, DIFFSDE_EFORMAT, "%s: expected a number, got %s", field,
                     describe(v, d, sizeof d));
    double x = json_number_value(v);
    if (!isfinite(x))
        return jfail(p, DIFFSDE_EFORMAT, "%s: must be finite (got %g)", field, x);
    *out = x;
    return DIFFSDE_OK;
}

/* A finite number > 0: a format error if not a number, a parameter error if ≤ 0. */
static int get_positive(const jp *p, const json_t *v, const char *field, double *out)
{
    int st = get_number(p, v, field, out);
    if (st == DIFFSDE_OK && !(*out > 0))
        return jfail(p, DIFFSDE_EPARAM, "%s: must be > 0 (got %.17g)", field, *out);
    return st;
}

/* An array of exactly n finite numbers, optionally all > 0, optionally stored in out. */
static int get_vector(const jp *p, const json_t *v, const char *field, size_t n, int positive,
                      double *out)
{
    char d[64], f[96];
    if (!json_is_array(v))
        return jfail(p, DIFFSDE_EFORMAT, "%s: expected an array of %zu numbers, got %s", field, n,
                     describe(v, d, sizeof d));
    if (json_array_size(v) != n)
        return jfail(p, DIFFSDE_EFORMAT, "%s: has %zu entries, expected %zu", field,
                     json_array_size(v), n);
    for (size_t i = 0; i < n; i++) {
        double x;
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        int st = positive ? get_positive(p, json_array_get(v, i), f, &x)
                          : get_number(p, json_array_get(v, i), f, &x);
        if (st)
            return st;
        if (out)
            out[i] = x;
    }
    return DIFFSDE_OK;
}

/* A D × D array of arrays of finite numbers, symmetric to the builder's tolerance
 * (|C_ij − C_ji| ≤ 1e-12·max|C|); stored row-major in out when out is not NULL. */
static int get_matrix(const jp *p, const json_t *v, const char *field, size_t D, double *out)
{
    char d[64], f[96];
    if (!json_is_array(v))
        return jfail(p, DIFFSDE_EFORMAT, "%s: expected an array of %zu rows, got %s", field, D,
                     describe(v, d, sizeof d));
    if (json_array_size(v) != D)
        return jfail(p, DIFFSDE_EFORMAT, "%s: has %zu rows, expected %zu", field,
                     json_array_size(v), D);
    double amax = 0;
    for (size_t i = 0; i < D; i++) {
        const json_t *row = json_array_get(v, i);
        if (!json_is_array(row))
            return jfail(p, DIFFSDE_EFORMAT, "%s: row %zu is %s, expected an array of %zu numbers",
                         field, i, describe(row, d, sizeof d), D);
        if (json_array_size(row) != D)
            return jfail(p, DIFFSDE_EFORMAT, "%s: row %zu has %zu entries, expected %zu", field, i,
                         json_array_size(row), D);
        for (size_t j = 0; j < D; j++) {
            double x;
            snprintf(f, sizeof f, "%s[%zu][%zu]", field, i, j);
            int st = get_number(p, json_array_get(row, j), f, &x);
            if (st)
                return st;
            if (fabs(x) > amax)
                amax = fabs(x);
        }
    }
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++) {
            double a = json_number_value(json_array_get(json_array_get(v, i), j));
            double b = json_number_value(json_array_get(json_array_get(v, j), i));
            if (fabs(a - b) > 1e-12 * amax)
                return jfail(p, DIFFSDE_EPARAM,
                             "%s: not symmetric: [%zu][%zu] = %.17g but [%zu][%zu] = %.17g", field,
                             i, j, a, j, i, b);
        }
    if (out)
        for (size_t i = 0; i < D; i++)
            for (size_t j = 0; j < D; j++)
                out[i * D + j] = json_number_value(json_array_get(json_array_get(v, i), j));
    return DIFFSDE_OK;
}

enum cov_kind { COV_FULL, COV_DIAG, COV_ISO };
static const char *const cov_keys[3] = {"cov", "cov_diag", "cov_iso"};

/* Check component k (first pass) and find its covariance kind. */
static int check_component(const jp *p, size_t k, const json_t *c, size_t D, enum cov_kind *kind)
{
    char d[64], f[64];
    if (!json_is_object(c))
        return jfail(p, DIFFSDE_EFORMAT, "components[%zu]: expected an object, got %s", k,
                     describe(c, d, sizeof d));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)c, key, val)
    {
        if (strcmp(key, "weight") && strcmp(key, "mean") && strcmp(key, "cov") &&
            strcmp(key, "cov_diag") && strcmp(key, "cov_iso"))
            return jfail(p, DIFFSDE_EFORMAT,
                         "components[%zu]: unknown key \"%.40s\" (expected \"weight\", \"mean\" "
                         "and one of \"cov\", \"cov_diag\", \"cov_iso\")",
                         k, key);
    }
    const json_t *w = json_object_get(c, "weight"), *m = json_object_get(c, "mean");
    double x;
    int st;
    snprintf(f, sizeof f, "components[%zu].weight", k);
    if (!w)
        return jfail(p, DIFFSDE_EFORMAT, "%s: missing", f);
    if ((st = get_positive(p, w, f, &x)))
        return st;
    snprintf(f, sizeof f, "components[%zu].mean", k);
    if (!m)
        return jfail(p, DIFFSDE_EFORMAT, "%s: missing", f);
    if ((st = get_vector(p, m, f, D, 0, NULL)))
        return st;

    int n = 0;
    char given[64] = "";
    for (int i = 0; i < 3; i++)
        if (json_object_get(c, cov_keys[i])) {
            if (n++)
                strcat(given, " and ");
            strcat(given, "\"");
            strcat(given, cov_keys[i]);
            strcat(given, "\"");
            *kind = (enum cov_kind)i;
        }
    if (n != 1)
        return jfail(p, DIFFSDE_EFORMAT,
                     "components[%zu]: needs exactly one of \"cov\", \"cov_diag\", \"cov_iso\" "
                     "(got %s)",
                     k, n ? given : "none");
    const json_t *cv = json_object_get(c, cov_keys[*kind]);
    snprintf(f, sizeof f, "components[%zu].%s", k, cov_keys[*kind]);
    switch (*kind) {
    case COV_FULL:
        return get_matrix(p, cv, f, D, NULL);
    case COV_DIAG:
        return get_vector(p, cv, f, D, 1, NULL);
    case COV_ISO:
        return get_positive(p, cv, f, &x);
    }
    return DIFFSDE_OK;
}

/* Check the top level; gives D and the components array. */
static int check_root(const jp *p, const json_t *root, size_t *D, const json_t **comps)
{
    char d[64];
    if (!json_is_object(root))
        return jfail(p, DIFFSDE_EFORMAT, "the document must be an object, got %s",
                     describe(root, d, sizeof d));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)root, key, val)
    {
        if (strcmp(key, "dim") && strcmp(key, "components"))
            return jfail(p, DIFFSDE_EFORMAT,
                         "unknown key \"%.40s\" at the top level (expected \"dim\" and "
                         "\"components\")",
                         key);
    }
    const json_t *dim = json_object_get(root, "dim");
    if (!dim)
        return jfail(p, DIFFSDE_EFORMAT, "dim: missing");
    if (!json_is_integer(dim) || json_integer_value(dim) < 1 ||
        (uintmax_t)json_integer_value(dim) > SIZE_MAX)
        return jfail(p, DIFFSDE_EFORMAT, "dim: must be a positive integer (got %s)",
                     describe(dim, d, sizeof d));
    *D = (size_t)json_integer_value(dim);
    *comps = json_object_get(root, "components");
    if (!*comps)
        return jfail(p, DIFFSDE_EFORMAT, "components: missing");
    if (!json_is_array(*comps))
        return jfail(p, DIFFSDE_EFORMAT, "components: expected an array of objects, got %s",
                     describe(*comps, d, sizeof d));
    if (json_array_size(*comps) == 0)
        return jfail(p, DIFFSDE_EFORMAT, "components: the array is empty (at least one component "
                                         "is needed)");
    return DIFFSDE_OK;
}

/* Second pass: allocate and build (the document is valid). */
static int build(const jp *p, size_t D, const json_t *comps, int any_full, diffsde_gmm **out)
{
    size_t K = json_array_size(comps), n2, n;
    if (diffsde_i_mul_size(D, any_full ? D : 1, &n2) || n2 > SIZE_MAX - D)
        return jfail(p, DIFFSDE_ESIZE, "dim (%zu): D² overflows", D);
    n = D + n2;
    double *buf = diffsde_i_calloc(p->ctx, n, sizeof(double));
    if (!buf)
        return jfail(p, DIFFSDE_ENOMEM, "out of memory for %zu doubles of scratch", n);
    double *mean = buf, *cov = buf + D;
    diffsde_gmm *g = NULL;
    int st = diffsde_gmm_new(p->ctx, D, &g);
    if (st)
        st = diffsde_i_fail_prefix(p->ctx, st, "%s", p->where);
    for (size_t k = 0; k < K && !st; k++) {
        const json_t *c = json_array_get(comps, k);
        double w = json_number_value(json_object_get(c, "weight"));
        get_vector(p, json_object_get(c, "mean"), "mean", D, 0, mean); /* valid: cannot fail */
        enum cov_kind kind = json_object_get(c, "cov")        ? COV_FULL
                             : json_object_get(c, "cov_diag") ? COV_DIAG
                                                              : COV_ISO;
        const json_t *cv = json_object_get(c, cov_keys[kind]);
        if (kind == COV_FULL) {
            get_matrix(p, cv, "cov", D, cov);
            st = diffsde_gmm_add_full(g, w, mean, cov);
        } else if (kind == COV_DIAG) {
            get_vector(p, cv, "cov_diag", D, 1, cov);
            st = diffsde_gmm_add_diag(g, w, mean, cov);
        } else {
            st = diffsde_gmm_add_iso(g, w, mean, json_number_value(cv));
        }
        if (st)
            st = diffsde_i_fail_prefix(p->ctx, st, "%s: components[%zu].%s", p->where, k,
                                       cov_keys[kind]);
    }
    if (!st && (st = diffsde_gmm_finalize(g)))
        st = diffsde_i_fail_prefix(p->ctx, st, "%s", p->where);
    diffsde_i_free(p->ctx, buf);
    if (st) {
        diffsde_gmm_free(g);
        return st;
    }
    *out = g;
    return DIFFSDE_OK;
}

/* Parse text[0..len) (len = SIZE_MAX: NUL-terminated) and build the model. */
static int from_text(const jp *p, const char *text, size_t len, diffsde_gmm **out)
{
    json_error_t err;
    json_t *root = len == SIZE_MAX ? json_loads(text, JSON_REJECT_DUPLICATES, &err)
                                   : json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return jfail(p, DIFFSDE_EFORMAT, "invalid JSON at line %d, column %d: %s", err.line,
                     err.column, err.text);
    size_t D = 0;
    const json_t *comps = NULL;
    int st = check_root(p, root, &D, &comps), any_full = 0;
    for (size_t k = 0; !st && k < json_array_size(comps); k++) {
        enum cov_kind kind = COV_ISO;
        st = check_component(p, k, json_array_get(comps, k), D, &kind);
        any_full |= kind == COV_FULL;
    }
    if (!st)
        st = build(p, D, comps, any_full, out);
    json_decref(root);
    return st;
}

int diffsde_gmm_from_json(diffsde_ctx *ctx, const char *text, diffsde_gmm **out)
{
    static const char fn[] = "diffsde_gmm_from_json";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!text || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !text ? "text" : "out");
    jp p = {ctx, fn};
    return from_text(&p, text, SIZE_MAX, out);
}

int diffsde_gmm_from_json_file(diffsde_ctx *ctx, const char *path, diffsde_gmm **out)
{
    static const char fn[] = "diffsde_gmm_from_json_file";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!path || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !path ? "path" : "out");
    char *buf;
    size_t len;
    int st = diffsde_i_read_whole_file(ctx, fn, path, &buf, &len);
    if (st)
        return st;
    char where[DIFFSDE_ERRMSG_CAPACITY];
    snprintf(where, sizeof where, "%s: '%s'", fn, path);
    jp p = {ctx, where};
    st = from_text(&p, buf, len, out);
    diffsde_i_free(ctx, buf);
    return st;
}

static int is_builtin(const char *name)
{
    return strcmp(name, "ring8") == 0 || strcmp(name, "grid25") == 0 ||
           strcmp(name, "gauss1") == 0 || strncmp(name, "random:", 7) == 0;
}

int diffsde_gmm_load(diffsde_ctx *ctx, const char *spec, diffsde_gmm **out)
{
    static const char fn[] = "diffsde_gmm_load";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!spec || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !spec ? "spec" : "out");
    if (strncmp(spec, "gmm:", 4) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: model \"%.200s\" does not start with \"gmm:\" (expected "
                              "gmm:NAME for a built-in or gmm:FILE.json)",
                              fn, spec);
    const char *name = spec + 4;
    if (*name == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: model \"gmm:\" names nothing (expected gmm:NAME or "
                              "gmm:FILE.json)",
                              fn);
    return is_builtin(name) ? diffsde_gmm_new_builtin(ctx, name, out)
                            : diffsde_gmm_from_json_file(ctx, name, out);
}
