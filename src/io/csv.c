/*
 * CSV arrays: one row per line, values separated by commas, optional spaces or tabs around
 * each value, "\n" or "\r\n" line ends. Lines that are empty (or blank) or whose first
 * non-blank character is '#' are skipped, as numpy.loadtxt does with its default comments.
 * Every data row must have the same number of fields; every field must be one number as
 * strtod reads it (including "nan", "inf"; a value overflowing a double is refused).
 *
 * Numbers are read and written in the "C" locale whatever the host program set (a thread-local
 * locale via uselocale(), so other threads are not affected): the decimal point is always '.'.
 * Written values use "%.17g", which round-trips every double exactly.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_impl.h"

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Scan the text once. With data == NULL, validate and count rows and columns; with data, store
 * the values (the text is then known to be valid).
 */
static int scan(diffsde_ctx *ctx, const char *fn, const char *path, const char *buf, size_t len,
                size_t *rows, size_t *cols, double *data)
{
    const char *p = buf, *end = buf + len;
    size_t line = 0, nrows = 0, ncols = 0, first_line = 0, k = 0;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *next = eol < end ? eol + 1 : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        const char *s = p;
        while (s < eol && is_blank(*s))
            s++;
        if (s == eol || *s == '#') {
            p = next;
            continue;
        }
        size_t field = 0;
        const char *f = p;
        for (;;) {
            const char *fe = f;
            while (fe < eol && *fe != ',')
                fe++;
            field++;
            const char *a = f, *b = fe;
            while (a < b && is_blank(*a))
                a++;
            while (b > a && is_blank(b[-1]))
                b--;
            if (a == b)
                return diffsde_i_fail(ctx, DIFFSDE_EFORMAT, "%s: '%s' line %zu: field %zu is empty",
                                      fn, path, line, field);
            char *stop;
            errno = 0;
            double v = strtod(a, &stop);
            if (stop != b) {
                int shown = (int)(b - a > 40 ? 40 : b - a);
                return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                                      "%s: '%s' line %zu: field %zu ('%.*s%s') is not a number", fn,
                                      path, line, field, shown, a, b - a > 40 ? "..." : "");
            }
            if (errno == ERANGE && isinf(v)) {
                int shown = (int)(b - a > 40 ? 40 : b - a);
                return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                                      "%s: '%s' line %zu: field %zu ('%.*s') overflows a double",
                                      fn, path, line, field, shown, a);
            }
            if (nrows > 0 && field > ncols)
                break; /* reported below with the count */
            if (data)
                data[k++] = v;
            if (fe == eol)
                break;
            f = fe + 1;
        }
        if (nrows == 0) {
            ncols = field;
            first_line = line;
        } else if (field != ncols) {
            /* count all the fields of the ragged row for the message */
            size_t total = 1;
            for (const char *c = p; c < eol; c++)
                total += *c == ',';
            return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                                  "%s: '%s' line %zu: %zu fields, expected %zu (as in line %zu, "
                                  "the first data row)",
                                  fn, path, line, total, ncols, first_line);
        }
        nrows++;
        p = next;
    }
    if (nrows == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': no data rows (the file is empty or holds only comment "
                              "and blank lines)",
                              fn, path);
    *rows = nrows;
    *cols = ncols;
    return DIFFSDE_OK;
}

/* Switch this thread to the "C" numeric locale; *c is (locale_t)0 on failure. */
static int c_locale_begin(diffsde_ctx *ctx, const char *fn, locale_t *c, locale_t *old)
{
    *c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (*c == (locale_t)0)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot create the \"C\" locale", fn);
    *old = uselocale(*c);
    return DIFFSDE_OK;
}

static void c_locale_end(locale_t c, locale_t old)
{
    uselocale(old);
    freelocale(c);
}

int diffsde_i_csv_read(diffsde_ctx *ctx, const char *fn, const char *path, diffsde_array *out)
{
    char *buf;
    size_t len, rows = 0, cols = 0;
    int st = diffsde_i_read_whole_file(ctx, fn, path, &buf, &len);
    if (st)
        return st;
    locale_t c = (locale_t)0, old = (locale_t)0;
    if ((st = c_locale_begin(ctx, fn, &c, &old))) {
        diffsde_i_free(ctx, buf);
        return st;
    }
    st = scan(ctx, fn, path, buf, len, &rows, &cols, NULL);
    if (st == DIFFSDE_OK) {
        size_t count, bytes;
        /* rows·cols ≤ the file's length, so these cannot overflow; checked all the same */
        if (diffsde_i_mul_size(rows, cols, &count) || diffsde_i_mul_size(count, 8, &bytes))
            st = diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: '%s': %zu × %zu values overflow", fn, path,
                                rows, cols);
        else if (!(out->data = diffsde_i_alloc(ctx, bytes)))
            st = diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                                "%s: '%s': out of memory for %zu × %zu doubles", fn, path, rows,
                                cols);
        else
            st = scan(ctx, fn, path, buf, len, &rows, &cols, out->data);
    }
    c_locale_end(c, old);
    diffsde_i_free(ctx, buf);
    if (st) {
        diffsde_i_free(ctx, out->data);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->ndim = 2;
    out->rows = rows;
    out->cols = cols;
    return DIFFSDE_OK;
}

typedef struct csv_emit {
    size_t rows, cols;
    const double *data;
} csv_emit;

static int csv_emit_fn(FILE *f, void *user)
{
    const csv_emit *e = user;
    for (size_t i = 0; i < e->rows; i++) {
        for (size_t j = 0; j < e->cols; j++)
            if (fprintf(f, j ? ",%.17g" : "%.17g", e->data[i * e->cols + j]) < 0)
                return -1;
        if (fputc('\n', f) == EOF)
            return -1;
    }
    return 0;
}

int diffsde_i_csv_write(diffsde_ctx *ctx, const char *fn, const char *path, size_t rows,
                        size_t cols, const double *data)
{
    locale_t c = (locale_t)0, old = (locale_t)0;
    int st = c_locale_begin(ctx, fn, &c, &old);
    if (st)
        return st;
    csv_emit e = {rows, cols, data};
    st = diffsde_i_atomic_write(ctx, fn, path, csv_emit_fn, &e);
    c_locale_end(c, old);
    return st;
}
