/*
 * NumPy .npy files (format described in numpy/lib/format.py and NEP 1):
 *
 *   "\x93NUMPY" major minor  HEADER_LEN  HEADER  DATA
 *
 * HEADER_LEN is a little-endian uint16 for version 1.0 and uint32 for 2.0 and 3.0 (3.0 only
 * changes the header's encoding to UTF-8). HEADER is a Python dict literal,
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n'. We parse it strictly (exactly these three keys, each
 * once, in any order; Python literal syntax for the values) while tolerating the whitespace and
 * the trailing comma NumPy writes. DATA must hold exactly prod(shape) items: missing or extra
 * bytes are malformed.
 *
 * Values are decoded byte by byte in the declared byte order, so the code does not depend on
 * the host's endianness (it assumes only that doubles and 64-bit integers share one).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_impl.h"

/* NumPy refuses headers over 10000 bytes unless told otherwise; ours are < 200 bytes. */
#define NPY_MAX_HEADER 65536u
#define NPY_ALIGN 64u
#define NPY_GROWTH_DIGITS 21 /* NumPy ≥ 1.24 leaves room for shape[0] to grow to 21 digits */

static const struct {
    const char *name;
    size_t size;
    int big_endian;
} npy_dtypes[] = {{"<f8", 8, 0}, {">f8", 8, 1}, {"<f4", 4, 0}, {">f4", 4, 1}};

typedef struct hparser {
    diffsde_ctx *ctx;
    const char *fn, *path;
    const char *begin, *p, *end;
} hparser;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int hfail(const hparser *hp, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return diffsde_i_fail(hp->ctx, status, "%s: '%s': .npy header: %s", hp->fn, hp->path, msg);
}

static int syntax(const hparser *hp, const char *expected)
{
    size_t at = (size_t)(hp->p - hp->begin);
    if (hp->p >= hp->end)
        return hfail(hp, DIFFSDE_EFORMAT, "expected %s at byte %zu, found the end of the header",
                     expected, at);
    unsigned char c = (unsigned char)*hp->p;
    if (c >= 0x20 && c < 0x7f)
        return hfail(hp, DIFFSDE_EFORMAT, "expected %s at byte %zu, found '%c'", expected, at,
                     (char)c);
    return hfail(hp, DIFFSDE_EFORMAT, "expected %s at byte %zu, found byte 0x%02x", expected, at,
                 c);
}

static void skip_ws(hparser *hp)
{
    while (hp->p < hp->end &&
           (*hp->p == ' ' || *hp->p == '\t' || *hp->p == '\n' || *hp->p == '\r'))
        hp->p++;
}

static int expect(hparser *hp, char c, const char *what)
{
    skip_ws(hp);
    if (hp->p >= hp->end || *hp->p != c)
        return syntax(hp, what);
    hp->p++;
    return DIFFSDE_OK;
}

/* A Python string literal in single or double quotes, without escapes. */
static int parse_string(hparser *hp, const char **s, size_t *len)
{
    skip_ws(hp);
    if (hp->p >= hp->end || (*hp->p != '\'' && *hp->p != '"'))
        return syntax(hp, "a quoted string");
    char q = *hp->p++;
    const char *start = hp->p;
    while (hp->p < hp->end && *hp->p != q) {
        if (*hp->p == '\\' || *hp->p == '\n')
            return syntax(hp, "a plain string (no escapes or line breaks)");
        hp->p++;
    }
    if (hp->p >= hp->end)
        return syntax(hp, "the closing quote");
    *s = start;
    *len = (size_t)(hp->p - start);
    hp->p++;
    return DIFFSDE_OK;
}

static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int parse_bool(hparser *hp, int *value)
{
    skip_ws(hp);
    size_t left = (size_t)(hp->end - hp->p);
    if (left >= 4 && memcmp(hp->p, "True", 4) == 0 && (left == 4 || !is_ident_char(hp->p[4]))) {
        *value = 1;
        hp->p += 4;
        return DIFFSDE_OK;
    }
    if (left >= 5 && memcmp(hp->p, "False", 5) == 0 &&
        (left == 5 || !is_ident_char(hp->p[5]))) {
        *value = 0;
        hp->p += 5;
        return DIFFSDE_OK;
    }
    return syntax(hp, "True or False for 'fortran_order'");
}

/* A tuple of non-negative Python integers: (), (n,), (n, d), ... (a one-element tuple needs its
 * comma). Keeps the first two; counts them all. *overflow is set when one exceeds SIZE_MAX. */
static int parse_shape(hparser *hp, size_t shape[2], size_t *ndim, int *overflow)
{
    int st = expect(hp, '(', "'(' opening the shape tuple");
    if (st)
        return st;
    size_t n = 0;
    int comma_after_last = 0;
    *overflow = 0;
    skip_ws(hp);
    while (hp->p < hp->end && *hp->p != ')') {
        if (*hp->p == '-')
            return hfail(hp, DIFFSDE_EFORMAT, "negative dimension in 'shape' at byte %zu",
                         (size_t)(hp->p - hp->begin));
        if (*hp->p < '0' || *hp->p > '9')
            return syntax(hp, "a dimension (non-negative integer) in 'shape'");
        if (*hp->p == '0' && hp->p + 1 < hp->end && hp->p[1] >= '0' && hp->p[1] <= '9')
            return syntax(hp, "an integer without leading zeros in 'shape'");
        size_t v = 0;
        while (hp->p < hp->end && *hp->p >= '0' && *hp->p <= '9') {
            size_t digit = (size_t)(*hp->p - '0');
            if (v > (SIZE_MAX - digit) / 10)
                *overflow = 1;
            else
                v = v * 10 + digit;
            hp->p++;
        }
        if (n < 2)
            shape[n] = v;
        n++;
        comma_after_last = 0;
        skip_ws(hp);
        if (hp->p < hp->end && *hp->p == ',') {
            hp->p++;
            comma_after_last = 1;
            skip_ws(hp);
        } else if (hp->p >= hp->end || *hp->p != ')') {
            return syntax(hp, "',' or ')' in 'shape'");
        }
    }
    if (hp->p >= hp->end)
        return syntax(hp, "')' closing the shape tuple");
    if (n == 1 && !comma_after_last)
        return hfail(hp, DIFFSDE_EFORMAT,
                     "'shape' (n) is not a tuple: a one-element shape is written (n,)");
    hp->p++;
    *ndim = n;
    return DIFFSDE_OK;
}

typedef struct npy_info {
    size_t dtype; /* index in npy_dtypes */
    size_t ndim, rows, cols;
} npy_info;

static int parse_header(hparser *hp, npy_info *info)
{
    enum { K_DESCR = 1, K_FORTRAN = 2, K_SHAPE = 4 };
    unsigned seen = 0;
    const char *descr = NULL;
    size_t descr_len = 0, shape[2] = {0, 0}, ndim = 0;
    int fortran = 0, overflow = 0, st;

    if ((st = expect(hp, '{', "'{' opening the header dict")))
        return st;
    for (;;) {
        skip_ws(hp);
        if (hp->p < hp->end && *hp->p == '}') /* empty dict or trailing comma */
            break;
        const char *key;
        size_t klen;
        if ((st = parse_string(hp, &key, &klen)))
            return st;
        if ((st = expect(hp, ':', "':' after a key")))
            return st;
        unsigned k;
        if (klen == 5 && memcmp(key, "descr", 5) == 0)
            k = K_DESCR;
        else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0)
            k = K_FORTRAN;
        else if (klen == 5 && memcmp(key, "shape", 5) == 0)
            k = K_SHAPE;
        else
            return hfail(hp, DIFFSDE_EFORMAT,
                         "unknown key '%.*s' (expected 'descr', 'fortran_order', 'shape')",
                         (int)(klen > 40 ? 40 : klen), key);
        if (seen & k)
            return hfail(hp, DIFFSDE_EFORMAT, "key '%.*s' appears twice", (int)klen, key);
        seen |= k;
        if (k == K_DESCR)
            st = parse_string(hp, &descr, &descr_len);
        else if (k == K_FORTRAN)
            st = parse_bool(hp, &fortran);
        else
            st = parse_shape(hp, shape, &ndim, &overflow);
        if (st)
            return st;
        skip_ws(hp);
        if (hp->p < hp->end && *hp->p == ',') {
            hp->p++;
            continue;
        }
        if (hp->p < hp->end && *hp->p == '}')
            break;
        return syntax(hp, "',' or '}' after a value");
    }
    hp->p++; /* the '}' */
    skip_ws(hp);
    if (hp->p != hp->end)
        return syntax(hp, "only spaces and a newline after the dict");
    if (seen != (K_DESCR | K_FORTRAN | K_SHAPE))
        return hfail(hp, DIFFSDE_EFORMAT, "missing key '%s'",
                     !(seen & K_DESCR) ? "descr" : !(seen & K_FORTRAN) ? "fortran_order" : "shape");

    size_t nd = sizeof npy_dtypes / sizeof npy_dtypes[0], i;
    for (i = 0; i < nd; i++)
        if (descr_len == 3 && memcmp(descr, npy_dtypes[i].name, 3) == 0)
            break;
    if (i == nd)
        return hfail(hp, DIFFSDE_EFORMAT,
                     "unsupported dtype '%.*s' (supported: '<f8', '>f8', '<f4', '>f4')",
                     (int)(descr_len > 40 ? 40 : descr_len), descr);
    if (fortran)
        return hfail(hp, DIFFSDE_EFORMAT,
                     "Fortran order (fortran_order: True) is not supported; save a C-ordered "
                     "array (numpy.ascontiguousarray)");
    if (ndim == 0)
        return hfail(hp, DIFFSDE_EFORMAT, "shape () (a 0-D array) is not supported (ndim must "
                                          "be 1 or 2)");
    if (ndim > 2)
        return hfail(hp, DIFFSDE_EFORMAT, "%zu-D arrays are not supported (ndim must be 1 or 2)",
                     ndim);
    if (overflow)
        return hfail(hp, DIFFSDE_ESIZE, "a dimension in 'shape' exceeds %zu", (size_t)SIZE_MAX);
    info->dtype = i;
    info->ndim = ndim;
    info->rows = shape[0];
    info->cols = ndim == 2 ? shape[1] : 1;
    return DIFFSDE_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

static uint64_t load_uint(const unsigned char *b, size_t size, int big_endian)
{
    uint64_t v = 0;
    for (size_t k = 0; k < size; k++)
        v |= (uint64_t)b[big_endian ? size - 1 - k : k] << (8 * k);
    return v;
}

static double decode(const unsigned char *b, size_t size, int big_endian)
{
    if (size == 8) {
        uint64_t u = load_uint(b, 8, big_endian);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    uint32_t u = (uint32_t)load_uint(b, 4, big_endian);
    float f;
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

/* Fail with EIO when the stream has an error, else EFORMAT with the given message. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int short_read(diffsde_ctx *ctx, FILE *f, const char *fn, const char *path,
                      const char *fmt, ...)
{
    if (ferror(f)) {
        char et[128];
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: error reading '%s': %s", fn, path,
                              diffsde_i_errno_text(errno, et, sizeof et));
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return diffsde_i_fail(ctx, DIFFSDE_EFORMAT, "%s: '%s': %s", fn, path, msg);
}

/* Read count items of the given type into data (count doubles). */
static int read_data(diffsde_ctx *ctx, FILE *f, const char *fn, const char *path,
                     size_t dtype, size_t count, double *data)
{
    size_t size = npy_dtypes[dtype].size;
    int big = npy_dtypes[dtype].big_endian;
    if (size == 8) {
        /* straight into the output, then decoded in place */
        size_t got = count ? fread(data, 8, count, f) : 0;
        if (got < count)
            return short_read(ctx, f, fn, path, "data truncated: %zu of %zu values present", got,
                              count);
        unsigned char *b = (unsigned char *)data;
        for (size_t i = 0; i < count; i++)
            data[i] = decode(b + 8 * i, 8, big);
        return DIFFSDE_OK;
    }
    unsigned char chunk[4096];
    size_t per = sizeof chunk / size, done = 0;
    while (done < count) {
        size_t want = count - done < per ? count - done : per;
        size_t got = fread(chunk, size, want, f);
        for (size_t i = 0; i < got; i++)
            data[done + i] = decode(chunk + size * i, size, big);
        done += got;
        if (got < want)
            return short_read(ctx, f, fn, path, "data truncated: %zu of %zu values present", done,
                              count);
    }
    return DIFFSDE_OK;
}

/* Everything after fopen; the caller closes f and releases out->data on failure. */
static int npy_read_stream(diffsde_ctx *ctx, FILE *f, const char *fn, const char *path,
                           diffsde_array *out)
{
    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, f);
    if (got < 8 && ferror(f))
        return short_read(ctx, f, fn, path, "unreadable");
    if (got < 6 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': not a .npy file (bad magic: the file does not start "
                              "with \\x93NUMPY)",
                              fn, path);
    if (got < 8)
        return short_read(ctx, f, fn, path, "truncated: the version bytes are missing");
    unsigned major = pre[6], minor = pre[7];
    size_t lenbytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
    if (lenbytes == 0 || minor != 0)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': unsupported .npy version %u.%u (1.0, 2.0 and 3.0 are "
                              "read)",
                              fn, path, major, minor);
    got = fread(pre + 8, 1, lenbytes, f);
    if (got < lenbytes)
        return short_read(ctx, f, fn, path, "truncated: the header length is missing");
    size_t hlen = (size_t)load_uint(pre + 8, lenbytes, 0);
    size_t data_off = 8 + lenbytes + hlen;

    struct stat sb;
    int regular = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode);
    size_t fsize = regular ? (size_t)sb.st_size : 0;
    if (regular && data_off > fsize)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': header length %zu points past the end of the file "
                              "(%zu bytes)",
                              fn, path, hlen, fsize);
    if (hlen == 0 || hlen > NPY_MAX_HEADER)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': header length %zu outside [1, %u]", fn, path, hlen,
                              NPY_MAX_HEADER);
    char *header = diffsde_i_alloc(ctx, hlen);
    if (!header)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: '%s': out of memory for the %zu-byte header", fn, path, hlen);
    got = fread(header, 1, hlen, f);
    int st;
    npy_info info = {0, 0, 0, 0};
    if (got < hlen) {
        st = short_read(ctx, f, fn, path, "header truncated: %zu of %zu bytes present", got,
                        hlen);
    } else {
        hparser hp = {ctx, fn, path, header, header, header + hlen};
        st = parse_header(&hp, &info);
    }
    diffsde_i_free(ctx, header);
    if (st)
        return st;

    size_t isize = npy_dtypes[info.dtype].size, count, bytes, obytes;
    if (diffsde_i_mul_size(info.rows, info.cols, &count) ||
        diffsde_i_mul_size(count, isize, &bytes) ||
        diffsde_i_mul_size(count, sizeof(double), &obytes))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: '%s': shape (%zu, %zu) of '%s' overflows the address space",
                              fn, path, info.rows, info.cols, npy_dtypes[info.dtype].name);
    if (regular && fsize - data_off != bytes)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': %s data: %zu bytes after the header, expected %zu "
                              "(%zu values of '%s')",
                              fn, path, fsize - data_off < bytes ? "truncated" : "extra",
                              fsize - data_off, bytes, count, npy_dtypes[info.dtype].name);
    if (count > 0) {
        out->data = diffsde_i_alloc(ctx, obytes);
        if (!out->data)
            return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                                  "%s: '%s': out of memory for %zu × %zu doubles", fn, path,
                                  info.rows, info.cols);
    }
    if ((st = read_data(ctx, f, fn, path, info.dtype, count, out->data)))
        return st;
    if (fgetc(f) != EOF)
        return diffsde_i_fail(ctx, DIFFSDE_EFORMAT,
                              "%s: '%s': extra data: bytes follow the %zu values of the shape",
                              fn, path, count);
    if (ferror(f))
        return short_read(ctx, f, fn, path, "unreadable");
    out->ndim = info.ndim;
    out->rows = info.rows;
    out->cols = info.cols;
    return DIFFSDE_OK;
}

int diffsde_i_npy_read(diffsde_ctx *ctx, const char *fn, const char *path, diffsde_array *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        char et[128];
        return diffsde_i_fail(ctx, DIFFSDE_EIO, "%s: cannot open '%s': %s", fn, path,
                              diffsde_i_errno_text(errno, et, sizeof et));
    }
    int st = npy_read_stream(ctx, f, fn, path, out);
    fclose(f);
    if (st) {
        diffsde_i_free(ctx, out->data);
        memset(out, 0, sizeof *out);
    }
    return st;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct npy_emit {
    char preamble[10 + 512]; /* magic, version, header length, header */
    size_t preamble_len;
    const double *data;
    size_t count;
} npy_emit;

static int npy_emit_fn(FILE *f, void *user)
{
    const npy_emit *e = user;
    if (fwrite(e->preamble, 1, e->preamble_len, f) != e->preamble_len)
        return -1;
    unsigned char chunk[4096];
    size_t per = sizeof chunk / 8, done = 0;
    while (done < e->count) {
        size_t m = e->count - done < per ? e->count - done : per;
        for (size_t i = 0; i < m; i++) {
            uint64_t u;
            memcpy(&u, &e->data[done + i], sizeof u);
            for (size_t k = 0; k < 8; k++)
                chunk[8 * i + k] = (unsigned char)(u >> (8 * k));
        }
        if (fwrite(chunk, 8, m, f) != m)
            return -1;
        done += m;
    }
    return 0;
}

int diffsde_i_npy_write(diffsde_ctx *ctx, const char *fn, const char *path, size_t ndim,
                        size_t rows, size_t cols, const double *data)
{
    npy_emit e;
    size_t bytes;
    if (diffsde_i_mul_size(rows, cols, &e.count) || diffsde_i_mul_size(e.count, 8, &bytes))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: rows (%zu) × cols (%zu) overflows", fn,
                              rows, cols);
    e.data = data;

    /* The header exactly as NumPy 1.24 writes it (numpy.lib.format._write_array_header): the
     * dict repr with sorted keys, room for shape[0] to grow to 21 digits, spaces so that the
     * data start on a 64-byte boundary, and a final newline. */
    char dict[160];
    int n = ndim == 1
                ? snprintf(dict, sizeof dict,
                           "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu,), }", rows)
                : snprintf(dict, sizeof dict,
                           "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }",
                           rows, cols);
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%zu", rows);
    size_t growth = NPY_GROWTH_DIGITS - (size_t)nd;
    size_t hl = (size_t)n + growth + 1; /* with the newline */
    size_t pad = NPY_ALIGN - ((10 + hl) % NPY_ALIGN);
    size_t hlen = hl + pad;
    memcpy(e.preamble, "\x93NUMPY\x01\x00", 8);
    e.preamble[8] = (char)(hlen & 0xff);
    e.preamble[9] = (char)(hlen >> 8);
    memcpy(e.preamble + 10, dict, (size_t)n);
    memset(e.preamble + 10 + n, ' ', growth + pad);
    e.preamble[10 + hlen - 1] = '\n';
    e.preamble_len = 10 + hlen;
    return diffsde_i_atomic_write(ctx, fn, path, npy_emit_fn, &e);
}
