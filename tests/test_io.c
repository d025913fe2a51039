/*
 * Arrays on disk and JSON model specifications (io.h).
 *
 * Independent references: the .npy files under tests/data/ were written by NumPy itself
 * (tests/data/make_npy.py, NumPy 1.24.2) with values v[k] = ((k − 2.385)/7)·1.5 that C
 * recomputes bit for bit (three correctly rounded operations), so reading them checks every
 * supported dtype and version; writing the same arrays must reproduce NumPy's bytes exactly.
 * Malformed files are built here byte by byte. The example model files are checked against
 * the numbers of the shared fixture they were copied from.
 *
 * Data files are found under $top_srcdir (set by `make check`; "." otherwise); scratch files
 * go to a fresh directory under $TMPDIR (or /tmp), removed at the end.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "diffsde/gmm.h"
#include "diffsde/io.h"

typedef struct fixture {
    diffsde_ctx *ctx;
    char dir[512];    /* scratch directory */
    char srcdir[512]; /* top_srcdir */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) != DIFFSDE_OK)
        return -1;
    const char *tmp = getenv("TMPDIR"), *src = getenv("top_srcdir");
    snprintf(f->dir, sizeof f->dir, "%s/diffsde_test_io_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    snprintf(f->srcdir, sizeof f->srcdir, "%s", src && *src ? src : ".");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

/* Remove every entry of a directory (one level: tests create no subdirectories there except
 * the ones they remove themselves). */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    if (d)
        closedir(d);
}

static int teardown(void **state)
{
    fixture *f = *state;
    empty_dir(f->dir);
    rmdir(f->dir);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *in_dir(const fixture *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->dir, name);
    return buf;
}

static const char *in_src(const fixture *f, const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->srcdir, rel);
    return buf;
}

static void put_file(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Whole file, malloc'd; *n its size. */
static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char *b = malloc(1 << 16);
    assert_non_null(b);
    *n = fread(b, 1, 1 << 16, fp);
    fclose(fp);
    return b;
}

/* Names in dir, excluding . and .., joined by spaces; returns their number. */
static int list_dir(const char *dir, char *names, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    names[0] = '\0';
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            n++;
            strncat(names, e->d_name, len - strlen(names) - 2);
            strcat(names, " ");
        }
    closedir(d);
    return n;
}

static void assert_contains(const char *msg, const char *needle)
{
    if (!strstr(msg, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", msg, needle);
        fail();
    }
}

static double value(size_t k)
{
    return (((double)k - 2.385) / 7.0) * 1.5;
}

static int same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* ---- .npy --------------------------------------------------------------------------------- */

/* Write then read: shape and every bit preserved, for 1-D, 2-D and empty arrays. */
static void test_npy_round_trip(void **state)
{
    fixture *f = *state;
    static const struct {
        size_t ndim, rows, cols;
    } shapes[] = {{1, 7, 1}, {2, 5, 3}, {2, 1, 1}, {2, 0, 3}, {2, 3, 0}, {1, 0, 1}, {2, 40, 37}};
    double data[40 * 37];
    for (size_t k = 0; k < 40 * 37; k++)
        data[k] = value(k) * (k % 3 ? 1e-300 : 1e7);
    data[1] = -0.0;
    data[2] = INFINITY;
    data[3] = NAN;
    data[4] = 4.9406564584124654e-324;
    char p[1024];
    in_dir(f, "rt.npy", p, sizeof p);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = shapes[s].rows * shapes[s].cols;
        assert_int_equal(diffsde_array_write(f->ctx, p, shapes[s].ndim, shapes[s].rows,
                                             shapes[s].cols, n ? data : NULL),
                         DIFFSDE_OK);
        diffsde_array a;
        assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_OK);
        assert_int_equal(a.ndim, shapes[s].ndim);
        assert_int_equal(a.rows, shapes[s].rows);
        assert_int_equal(a.cols, shapes[s].cols);
        if (n == 0)
            assert_null(a.data); /* an empty array has no storage */
        for (size_t k = 0; k < n; k++)
            assert_true(same_bits(a.data[k], data[k]));
        diffsde_array_free(f->ctx, &a);
        assert_null(a.data);
        assert_int_equal(a.rows, 0);
    }
}

/* Our writer produces the very bytes NumPy 1.24 writes for the same arrays. */
static void test_npy_bytes_match_numpy(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *file;
        size_t ndim, rows, cols;
    } cases[] = {{"tests/data/f8_le_v1_2d.npy", 2, 5, 3},
                 {"tests/data/f8_le_v1_1d.npy", 1, 7, 1},
                 {"tests/data/f8_le_empty_0x3.npy", 2, 0, 3}};
    double data[15];
    for (size_t k = 0; k < 15; k++)
        data[k] = value(k);
    char p[1024], q[1024];
    in_dir(f, "ours.npy", p, sizeof p);
    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(
            diffsde_array_write(f->ctx, p, cases[c].ndim, cases[c].rows, cases[c].cols, data),
            DIFFSDE_OK);
        size_t n1, n2;
        unsigned char *ours = get_file(p, &n1);
        unsigned char *theirs = get_file(in_src(f, cases[c].file, q, sizeof q), &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(ours, theirs, n1);
        assert_int_equal((n1 - 8 * cases[c].rows * cases[c].cols) % 64, 0); /* aligned data */
        free(ours);
        free(theirs);
    }
}

/* Files written by NumPy in every supported dtype and version. */
static void test_npy_reads_numpy_files(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *file;
        size_t ndim, rows, cols;
        int f4;
    } cases[] = {{"f8_le_v1_1d.npy", 1, 7, 1, 0}, {"f8_le_v1_2d.npy", 2, 5, 3, 0},
                 {"f8_be_v1_2d.npy", 2, 5, 3, 0}, {"f4_le_v1_2d.npy", 2, 4, 3, 1},
                 {"f4_be_v2_1d.npy", 1, 6, 1, 1}, {"f8_le_v2_2d.npy", 2, 3, 4, 0},
                 {"f8_be_v3_2d.npy", 2, 2, 4, 0}, {"f8_le_empty_0x3.npy", 2, 0, 3, 0}};
    char p[1024], rel[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(rel, sizeof rel, "tests/data/%s", cases[c].file);
        diffsde_array a;
        int st = diffsde_array_read(f->ctx, in_src(f, rel, p, sizeof p), &a);
        if (st)
            print_error("%s: %s\n", cases[c].file, diffsde_errmsg(f->ctx));
        assert_int_equal(st, DIFFSDE_OK);
        assert_int_equal(a.ndim, cases[c].ndim);
        assert_int_equal(a.rows, cases[c].rows);
        assert_int_equal(a.cols, cases[c].cols);
        for (size_t k = 0; k < a.rows * a.cols; k++) {
            double e = cases[c].f4 ? (double)(float)value(k) : value(k);
            assert_true(same_bits(a.data[k], e));
        }
        diffsde_array_free(f->ctx, &a);
    }
    const double specials[] = {0.0, -0.0, 1.0, -2.5, INFINITY, -INFINITY, 5e-324,
                               2.2250738585072014e-308, 1.7976931348623157e308, 0.1, NAN};
    const char *sp[] = {"tests/data/specials_le.npy", "tests/data/specials_be.npy"};
    for (int s = 0; s < 2; s++) {
        diffsde_array a;
        assert_int_equal(diffsde_array_read(f->ctx, in_src(f, sp[s], p, sizeof p), &a), DIFFSDE_OK);
        assert_int_equal(a.rows, 11);
        for (size_t k = 0; k < 11; k++)
            assert_true(same_bits(a.data[k], specials[k]));
        diffsde_array_free(f->ctx, &a);
    }
}

/* NumPy files of unsupported kinds: EFORMAT with the reason, nothing returned. */
static void test_npy_refuses_numpy_files(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *file, *why;
    } cases[] = {{"tests/data/fortran_2d.npy", "Fortran order"},
                 {"tests/data/i8_1d.npy", "unsupported dtype '<i8'"},
                 {"tests/data/f2_1d.npy", "unsupported dtype '<f2'"},
                 {"tests/data/f8_3d.npy", "3-D arrays are not supported"},
                 {"tests/data/f8_0d.npy", "shape ()"}};
    char p[1024];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        diffsde_array a = {9, 9, 9, (double *)&a};
        assert_int_equal(diffsde_array_read(f->ctx, in_src(f, cases[c].file, p, sizeof p), &a),
                         DIFFSDE_EFORMAT);
        assert_null(a.data);
        assert_int_equal(a.ndim, 0);
        assert_contains(diffsde_errmsg(f->ctx), cases[c].why);
        assert_contains(diffsde_errmsg(f->ctx), cases[c].file);
    }
}

/* A .npy file from a header dict (padded as NumPy does) followed by nbytes of data. */
static size_t make_npy(unsigned char *buf, int version, const char *dict, size_t nbytes)
{
    size_t dl = strlen(dict), lenbytes = version == 1 ? 2 : 4, pre = 6 + 2 + lenbytes;
    size_t hlen = dl + 1 + (64 - (pre + dl + 1) % 64) % 64;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    for (size_t i = 0; i < lenbytes; i++)
        buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[pre + hlen - 1] = '\n';
    for (size_t i = 0; i < nbytes; i++)
        buf[pre + hlen + i] = (unsigned char)(i * 37 + 11);
    return pre + hlen + nbytes;
}

#define DICT(shape) "{'descr': '<f8', 'fortran_order': False, 'shape': " shape ", }"

/* Malformed files: each refused with its documented status and a message saying why. */
static void test_npy_malformed(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *dict;
        size_t data; /* bytes of data after the header */
        size_t keep; /* truncate the file to this many bytes (0: keep all) */
        int status;
        const char *why;
    } cases[] = {
        {DICT("(2, 3)"), 48, 0, DIFFSDE_OK, ""},
        {DICT("(2, 3)"), 40, 0, DIFFSDE_EFORMAT,
         "truncated data: 40 bytes after the header, expected 48"},
        {DICT("(2, 3)"), 56, 0, DIFFSDE_EFORMAT,
         "extra data: 56 bytes after the header, expected 48"},
        {DICT("(2, 3)"), 49, 0, DIFFSDE_EFORMAT, "extra data"},
        {DICT("(2, 3)"), 48, 9, DIFFSDE_EFORMAT, "header length is missing"},
        {DICT("(2, 3)"), 48, 40, DIFFSDE_EFORMAT, "points past the end of the file (40 bytes)"},
        {DICT("(2, 3)"), 48, 3, DIFFSDE_EFORMAT, "bad magic"},
        {DICT("(6)"), 48, 0, DIFFSDE_EFORMAT, "one-element shape is written (n,)"},
        {DICT("(6,)"), 48, 0, DIFFSDE_OK, ""},
        {DICT("(2,3,)"), 48, 0, DIFFSDE_OK, ""},
        {"{'shape':(2,3),'fortran_order':False,'descr':'<f8'}", 48, 0, DIFFSDE_OK, ""},
        {"{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3)}", 48, 0, DIFFSDE_OK,
         ""},
        {DICT("(-2, 3)"), 48, 0, DIFFSDE_EFORMAT, "negative dimension"},
        {DICT("(02, 3)"), 48, 0, DIFFSDE_EFORMAT, "leading zeros"},
        {DICT("(2, 3"), 48, 0, DIFFSDE_EFORMAT, "in 'shape'"},
        {DICT("(99999999999999999999999, 3)"), 48, 0, DIFFSDE_ESIZE, "exceeds"},
        {DICT("(4294967296, 4294967296)"), 48, 0, DIFFSDE_ESIZE, "overflows"},
        {DICT("(2305843009213693952,)"), 48, 0, DIFFSDE_ESIZE, "overflows"},
        {DICT("(1099511627776, 1024)"), 48, 0, DIFFSDE_EFORMAT, "truncated data"},
        {"{'descr': '<f8', 'fortran_order': Flase, 'shape': (2, 3), }", 48, 0, DIFFSDE_EFORMAT,
         "True or False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shapes': (2, 3), }", 48, 0, DIFFSDE_EFORMAT,
         "unknown key 'shapes'"},
        {"{'descr': '<f8', 'shape': (2, 3), }", 48, 0, DIFFSDE_EFORMAT,
         "missing key 'fortran_order'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", 48, 0,
         DIFFSDE_EFORMAT, "'descr' appears twice"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } x", 48, 0, DIFFSDE_EFORMAT,
         "only spaces"},
        {"{'descr': '<f8' 'fortran_order': False, 'shape': (2, 3)}", 48, 0, DIFFSDE_EFORMAT,
         "',' or '}' after a value"},
        {"'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", 48, 0, DIFFSDE_EFORMAT,
         "'{' opening"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,)}", 48, 0, DIFFSDE_EFORMAT,
         "quoted string"},
        {"{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", 48, 0, DIFFSDE_OK, ""},
        {"{'descr': '|f8', 'fortran_order': False, 'shape': (2, 3), }", 48, 0, DIFFSDE_EFORMAT,
         "unsupported dtype '|f8'"},
    };
    unsigned char buf[512];
    char p[1024];
    in_dir(f, "bad.npy", p, sizeof p);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = make_npy(buf, 1, cases[c].dict, cases[c].data);
        put_file(p, buf, cases[c].keep ? cases[c].keep : n);
        diffsde_array a;
        int st = diffsde_array_read(f->ctx, p, &a);
        if (st != cases[c].status)
            print_error("case %zu: %s\n", c, diffsde_errmsg(f->ctx));
        assert_int_equal(st, cases[c].status);
        if (st == DIFFSDE_OK) {
            diffsde_array_free(f->ctx, &a);
            continue;
        }
        assert_null(a.data);
        assert_contains(diffsde_errmsg(f->ctx), cases[c].why);
        assert_contains(diffsde_errmsg(f->ctx), "bad.npy");
    }
    /* version and header-length fields */
    size_t n = make_npy(buf, 1, DICT("(2, 3)"), 48);
    unsigned char bad[512];
    static const struct {
        size_t at;
        unsigned char byte;
        const char *why;
    } pokes[] = {{1, 'X', "bad magic"},
                 {6, 4, "unsupported .npy version 4.0"},
                 {7, 1, "version 1.1"},
                 {8, 0xff, "points past the end"},
                 {9, 0xff, "points past the end"}};
    for (size_t c = 0; c < sizeof pokes / sizeof pokes[0]; c++) {
        memcpy(bad, buf, n);
        bad[pokes[c].at] = pokes[c].byte;
        put_file(p, bad, n);
        diffsde_array a;
        assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EFORMAT);
        assert_contains(diffsde_errmsg(f->ctx), pokes[c].why);
    }
    memcpy(bad, buf, n);
    bad[8] = bad[9] = 0; /* header length 0 */
    put_file(p, bad, n);
    diffsde_array a;
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EFORMAT);
    assert_contains(diffsde_errmsg(f->ctx), "header length 0 outside");
    put_file(p, buf, 0);
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EFORMAT);
    assert_contains(diffsde_errmsg(f->ctx), "not a .npy file");
    in_dir(f, "absent.npy", p, sizeof p);
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "absent.npy");
    assert_contains(diffsde_errmsg(f->ctx), strerror(ENOENT));
}

/* Through a pipe the sizes are unknown in advance: short and long data are still caught. */
static void test_npy_from_pipe(void **state)
{
    fixture *f = *state;
    char p[1024];
    in_dir(f, "fifo.npy", p, sizeof p);
    assert_int_equal(mkfifo(p, 0600), 0);
    static const struct {
        size_t data;
        int status;
        const char *why;
    } cases[] = {{48, DIFFSDE_OK, ""},
                 {40, DIFFSDE_EFORMAT, "data truncated: 5 of 6 values present"},
                 {52, DIFFSDE_EFORMAT, "extra data"}};
    unsigned char buf[512];
    for (size_t c = 0; c < 3; c++) {
        size_t n = make_npy(buf, 2, DICT("(2, 3)"), cases[c].data);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            FILE *fp = fopen(p, "wb");
            if (fp) {
                fwrite(buf, 1, n, fp);
                fclose(fp);
            }
            _exit(0);
        }
        diffsde_array a;
        int st = diffsde_array_read(f->ctx, p, &a);
        int ws;
        waitpid(pid, &ws, 0);
        assert_int_equal(st, cases[c].status);
        if (st == DIFFSDE_OK) {
            assert_int_equal(a.rows * a.cols, 6);
            diffsde_array_free(f->ctx, &a);
        } else {
            assert_contains(diffsde_errmsg(f->ctx), cases[c].why);
        }
    }
    unlink(p);
}

/* ---- CSV ---------------------------------------------------------------------------------- */

static void test_csv_round_trip(void **state)
{
    fixture *f = *state;
    double data[4 * 3] = {1.0 / 3, -0.0,        1e-310,   1e300,
                          -2.385,  NAN,         INFINITY, -INFINITY,
                          0.1,     123456789.0, 5e-324,   -1.7976931348623157e308};
    char p[1024];
    in_dir(f, "rt.csv", p, sizeof p);
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 4, 3, data), DIFFSDE_OK);
    diffsde_array a;
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_OK);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.rows, 4);
    assert_int_equal(a.cols, 3);
    for (size_t k = 0; k < 12; k++)
        assert_true(same_bits(a.data[k], data[k]));
    diffsde_array_free(f->ctx, &a);
    /* 1-D: one value per line, read back as one column; the suffix may be upper case */
    in_dir(f, "col.CSV", p, sizeof p);
    assert_int_equal(diffsde_array_write(f->ctx, p, 1, 5, 1, data), DIFFSDE_OK);
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_OK);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.rows, 5);
    assert_int_equal(a.cols, 1);
    for (size_t k = 0; k < 5; k++)
        assert_true(same_bits(a.data[k], data[k]));
    diffsde_array_free(f->ctx, &a);
    /* an empty array has no CSV form */
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 0, 3, NULL), DIFFSDE_ESIZE);
    assert_contains(diffsde_errmsg(f->ctx), "CSV cannot hold an empty array");
}

static void test_csv_parsing(void **state)
{
    fixture *f = *state;
    const char text[] = "# x, y, z\n#  second header line\n"
                        " 1.5 ,\t-2e3, 0x1p-2\r\n"
                        "\n"
                        "  # a comment between rows\n"
                        "4,5,  6\n"
                        "nan,-inf,7.25"; /* no final newline */
    char p[1024];
    in_dir(f, "in.csv", p, sizeof p);
    put_file(p, text, strlen(text));
    diffsde_array a;
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_OK);
    assert_int_equal(a.rows, 3);
    assert_int_equal(a.cols, 3);
    const double e[9] = {1.5, -2000, 0.25, 4, 5, 6, NAN, -INFINITY, 7.25};
    for (size_t k = 0; k < 9; k++)
        assert_true(same_bits(a.data[k], e[k]));
    diffsde_array_free(f->ctx, &a);
}

static void test_csv_errors(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"1,2,3\n4,5\n", "line 2: 2 fields, expected 3 (as in line 1"},
        {"# h\n1,2\n3,4,5,6\n", "line 3: 4 fields, expected 2 (as in line 2"},
        {"1,2\n3,4.5x\n", "line 2: field 2 ('4.5x') is not a number"},
        {"1,2\n3,,4\n", "line 2: field 2 is empty"},
        {"1,2,\n", "line 1: field 3 is empty"},
        {"1,1e999\n", "line 1: field 2 ('1e999') overflows a double"},
        {"1,2\n3,4 5\n", "line 2: field 2 ('4 5') is not a number"},
        {"", "no data rows"},
        {"# only a header\n\n", "no data rows"},
        {"1,2\n3,\"4\"\n", "is not a number"},
    };
    char p[1024];
    in_dir(f, "bad.csv", p, sizeof p);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        put_file(p, cases[c].text, strlen(cases[c].text));
        diffsde_array a;
        assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EFORMAT);
        assert_null(a.data);
        assert_contains(diffsde_errmsg(f->ctx), cases[c].why);
        assert_contains(diffsde_errmsg(f->ctx), "bad.csv");
    }
    /* an embedded NUL byte is not a number either */
    put_file(p, "1,2\n3,4\0\n", 9);
    diffsde_array a;
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EFORMAT);
    in_dir(f, "absent.csv", p, sizeof p);
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "absent.csv");
}

/* ---- atomic writes ------------------------------------------------------------------------ */

static void test_atomic_write(void **state)
{
    fixture *f = *state;
    char p[1024], names[1024];
    double a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {-1, -2, -3, -4};
    empty_dir(f->dir);

    /* into a directory that does not exist: EIO naming the path, nothing created */
    in_dir(f, "no/such/dir/x.npy", p, sizeof p);
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 2, 3, a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "no/such/dir/x.npy");
    assert_contains(diffsde_errmsg(f->ctx), strerror(ENOENT));
    assert_int_equal(list_dir(f->dir, names, sizeof names), 0);
    in_dir(f, "no/x.csv", p, sizeof p);
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 2, 3, a), DIFFSDE_EIO);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 0);

    /* a new file gets the usual permissions (0666 minus the umask), not mkstemp's 0600 */
    in_dir(f, "dest.npy", p, sizeof p);
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 2, 3, a), DIFFSDE_OK);
    mode_t mask = umask(022);
    umask(mask);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 1);

    /* replaced on success, only the destination left */
    assert_int_equal(diffsde_array_write(f->ctx, p, 1, 4, 1, b), DIFFSDE_OK);
    diffsde_array r;
    assert_int_equal(diffsde_array_read(f->ctx, p, &r), DIFFSDE_OK);
    assert_int_equal(r.rows, 4);
    assert_true(r.data[3] == -4);
    diffsde_array_free(f->ctx, &r);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 1);
    assert_string_equal(names, "dest.npy ");

    /* failure while writing (file size limit): the old content stays, no temporary remains */
    size_t n_before;
    unsigned char *before = get_file(p, &n_before);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    static double big[4096];
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int st_npy = diffsde_array_write(f->ctx, p, 2, 1024, 4, big);
    char msg[DIFFSDE_ERRMSG_CAPACITY];
    snprintf(msg, sizeof msg, "%s", diffsde_errmsg(f->ctx));
    char pc[1024];
    in_dir(f, "dest.csv", pc, sizeof pc);
    int st_csv = diffsde_array_write(f->ctx, pc, 2, 1024, 4, big);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(st_npy, DIFFSDE_EIO);
    assert_int_equal(st_csv, DIFFSDE_EIO);
    assert_contains(msg, "cannot write");
    assert_contains(msg, "dest.npy");
    assert_contains(msg, "unchanged");
    size_t n_after;
    unsigned char *after = get_file(p, &n_after);
    assert_int_equal(n_before, n_after);
    assert_memory_equal(before, after, n_after);
    free(before);
    free(after);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 1);

    /* an existing destination that is not a regular file is refused before anything is
     * created: a directory, a FIFO */
    char d[1024], inner[1100];
    in_dir(f, "adir.npy", d, sizeof d);
    assert_int_equal(mkdir(d, 0700), 0);
    snprintf(inner, sizeof inner, "%s/keep", d);
    put_file(inner, "k", 1);
    assert_int_equal(diffsde_array_write(f->ctx, d, 2, 2, 3, a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "adir.npy' exists and is not a regular file");
    assert_int_equal(list_dir(d, names, sizeof names), 1);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 2); /* dest.npy, adir.npy */
    unlink(inner);
    rmdir(d);
    in_dir(f, "fifo.csv", d, sizeof d);
    assert_int_equal(mkfifo(d, 0600), 0);
    assert_int_equal(diffsde_array_write(f->ctx, d, 2, 2, 3, a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "not a regular file");
    assert_int_equal(list_dir(f->dir, names, sizeof names), 2);
    unlink(d);

    /* an existing file keeps its permission bits */
    assert_int_equal(chmod(p, 0640), 0);
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, 2, 3, a), DIFFSDE_OK);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);

    /* a symbolic link is followed: its target is replaced, the link stays */
    char lnk[1024];
    in_dir(f, "link.npy", lnk, sizeof lnk);
    assert_int_equal(symlink("dest.npy", lnk), 0);
    assert_int_equal(diffsde_array_write(f->ctx, lnk, 1, 4, 1, b), DIFFSDE_OK);
    assert_int_equal(lstat(lnk, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(diffsde_array_read(f->ctx, p, &r), DIFFSDE_OK);
    assert_int_equal(r.rows, 4);
    assert_true(r.data[0] == -1);
    diffsde_array_free(f->ctx, &r);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 2);
    unlink(lnk);
    /* a dangling link is refused */
    assert_int_equal(symlink("nowhere.npy", lnk), 0);
    assert_int_equal(diffsde_array_write(f->ctx, lnk, 1, 4, 1, b), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "cannot resolve the symbolic link");
    unlink(lnk);

    /* a path naming a directory by its trailing slash, and an empty path */
    in_dir(f, "sub/", d, sizeof d);
    assert_int_equal(diffsde_array_write(f->ctx, d, 2, 2, 3, a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "names a directory");
    assert_int_equal(diffsde_array_write(f->ctx, "", 2, 2, 3, a), DIFFSDE_EIO);
    assert_int_equal(list_dir(f->dir, names, sizeof names), 1);
    unlink(p);
}

/* Argument checks of the array functions. */
static void test_array_arguments(void **state)
{
    fixture *f = *state;
    double x[4] = {1, 2, 3, 4};
    char p[1024];
    empty_dir(f->dir);
    in_dir(f, "args.npy", p, sizeof p);
    diffsde_array a = {1, 1, 1, x};
    assert_int_equal(diffsde_array_read(NULL, p, &a), DIFFSDE_ENULL);
    assert_null(a.data);
    assert_int_equal(diffsde_array_read(f->ctx, NULL, &a), DIFFSDE_ENULL);
    assert_contains(diffsde_errmsg(f->ctx), "path is NULL");
    assert_int_equal(diffsde_array_read(f->ctx, p, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_array_write(NULL, p, 1, 4, 1, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_array_write(f->ctx, NULL, 1, 4, 1, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_array_write(f->ctx, p, 1, 4, 1, NULL), DIFFSDE_ENULL);
    assert_contains(diffsde_errmsg(f->ctx), "data is NULL");
    assert_int_equal(diffsde_array_write(f->ctx, p, 3, 4, 1, x), DIFFSDE_ESIZE);
    assert_contains(diffsde_errmsg(f->ctx), "ndim (3)");
    assert_int_equal(diffsde_array_write(f->ctx, p, 0, 4, 1, x), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_array_write(f->ctx, p, 1, 2, 2, x), DIFFSDE_ESIZE);
    assert_contains(diffsde_errmsg(f->ctx), "cols = 2");
    assert_int_equal(diffsde_array_write(f->ctx, p, 2, SIZE_MAX / 4, 3, x), DIFFSDE_ESIZE);
    assert_contains(diffsde_errmsg(f->ctx), "overflows");
    char names[256];
    assert_int_equal(list_dir(f->dir, names, sizeof names), 0);
    /* a directory opens but cannot be read */
    assert_int_equal(diffsde_array_read(f->ctx, f->dir, &a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), strerror(EISDIR));
    snprintf(p, sizeof p, "%s/.csv", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(diffsde_array_read(f->ctx, p, &a), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), strerror(EISDIR));
    rmdir(p);
    diffsde_array_free(f->ctx, NULL);
    diffsde_array_free(NULL, NULL);
}

/* Allocation failure at every call of a read or a write: ENOMEM and nothing left allocated. */
static void test_array_alloc_failures(void **state)
{
    fixture *f = *state;
    char p[1024];
    const char *files[] = {"tests/data/f8_be_v1_2d.npy", "tests/data/f4_le_v1_2d.npy", NULL};
    char csv[1024];
    empty_dir(f->dir);
    in_dir(f, "alloc.csv", csv, sizeof csv);
    static const char text[] = "# h\n1,2,3\n4,5,6\n";
    put_file(csv, text, strlen(text));
    for (int which = 0; which < 3; which++) {
        const char *path = which < 2 ? in_src(f, files[which], p, sizeof p) : csv;
        for (long k = 1;; k++) {
            tu_alloc al = {.fail_at = k};
            diffsde_allocator hooks = tu_allocator(&al);
            diffsde_ctx *ctx = NULL;
            diffsde_array a = {1, 1, 1, NULL};
            int rc = diffsde_ctx_new(&ctx, &hooks);
            if (rc == DIFFSDE_OK) {
                a.data = (double *)&a; /* must come back NULL on failure */
                rc = diffsde_array_read(ctx, path, &a);
            }
            if (rc == DIFFSDE_OK) {
                assert_int_equal(a.rows * a.cols, which < 2 ? 15 - 3 * which : 6);
                diffsde_array_free(ctx, &a);
                diffsde_ctx_free(ctx);
                assert_int_equal(al.live, 0);
                assert_true(k > 2);
                break;
            }
            assert_int_equal(rc, DIFFSDE_ENOMEM);
            assert_null(a.data);
            diffsde_ctx_free(ctx);
            assert_int_equal(al.live, 0);
        }
    }
    double x[6] = {1, 2, 3, 4, 5, 6};
    char names[256];
    for (int which = 0; which < 2; which++) {
        in_dir(f, which ? "w.csv" : "w.npy", p, sizeof p);
        for (long k = 1;; k++) {
            tu_alloc al = {.fail_at = k};
            diffsde_allocator hooks = tu_allocator(&al);
            diffsde_ctx *ctx = NULL;
            int rc = diffsde_ctx_new(&ctx, &hooks);
            if (rc == DIFFSDE_OK)
                rc = diffsde_array_write(ctx, p, 2, 2, 3, x);
            diffsde_ctx_free(ctx);
            assert_int_equal(al.live, 0);
            if (rc == DIFFSDE_OK)
                break;
            assert_int_equal(rc, DIFFSDE_ENOMEM);
            assert_int_equal(list_dir(f->dir, names, sizeof names), 1 + which);
        }
    }
    unlink(p);
    in_dir(f, "w.npy", p, sizeof p);
    unlink(p);
    unlink(csv);
}

/* ---- JSON model specifications ------------------------------------------------------------ */

static const char mixed_json[] =
    "{\"dim\": 3, \"components\": [\n"
    "  {\"weight\": 2.5, \"mean\": [1, -2, 0.5],\n"
    "   \"cov\": [[2.0, 0.3, -0.1], [0.3, 1.5, 0.2], [-0.1, 0.2, 0.8]]},\n"
    "  {\"mean\": [0, 0, 3.25], \"cov_diag\": [0.5, 1.25, 2.0], \"weight\": 1},\n"
    "  {\"weight\": 1.5, \"mean\": [-1e-3, 7, 2], \"cov_iso\": 0.375}\n"
    "]}";

/* Every covariance kind gives the right component; weights are normalised. */
static void test_json_valid(void **state)
{
    fixture *f = *state;
    diffsde_gmm *g = NULL;
    assert_int_equal(diffsde_gmm_from_json(f->ctx, mixed_json, &g), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_dim(g), 3);
    assert_int_equal(diffsde_gmm_ncomponents(g), 3);
    const double w[3] = {2.5 / 5, 1 / 5.0, 1.5 / 5};
    const double mu[3][3] = {{1, -2, 0.5}, {0, 0, 3.25}, {-1e-3, 7, 2}};
    const double cov[3][9] = {{2.0, 0.3, -0.1, 0.3, 1.5, 0.2, -0.1, 0.2, 0.8},
                              {0.5, 0, 0, 0, 1.25, 0, 0, 0, 2.0},
                              {0.375, 0, 0, 0, 0.375, 0, 0, 0, 0.375}};
    for (size_t k = 0; k < 3; k++) {
        double wk, m[3], c[9];
        assert_int_equal(diffsde_gmm_component(g, k, &wk, m, c), DIFFSDE_OK);
        assert_close(wk, w[k], 4 * DBL_EPSILON, 0); /* log-sum-exp normalisation */
        for (int j = 0; j < 3; j++)
            assert_true(m[j] == mu[k][j]);
        for (int j = 0; j < 9; j++)
            assert_true(c[j] == cov[k][j]);
    }
    diffsde_gmm_free(g);

    /* one dimension, integer entries, whitespace and key order as a human writes them */
    const char one[] = " {\"components\":[{\"cov\":[[4]],\"weight\":3,\"mean\":[-1]}],\"dim\":1}\n";
    assert_int_equal(diffsde_gmm_from_json(f->ctx, one, &g), DIFFSDE_OK);
    double wk, m, c;
    assert_int_equal(diffsde_gmm_component(g, 0, &wk, &m, &c), DIFFSDE_OK);
    assert_true(wk == 1 && m == -1 && c == 4);
    diffsde_gmm_free(g);
}

/* Each malformed specification: refused with a message naming the component and field. */
static void test_json_malformed(void **state)
{
    fixture *f = *state;
#define C0 "{\"dim\": 2, \"components\": [{\"weight\": 1, \"mean\": [0, 0], \"cov_iso\": 1}, "
    static const struct {
        const char *json;
        int status;
        const char *why;
    } cases[] = {
        /* syntax, with jansson's line and column */
        {"{\"dim\": 2,\n \"components\": [}", DIFFSDE_EFORMAT, "invalid JSON at line 2, column"},
        {"", DIFFSDE_EFORMAT, "invalid JSON at line"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": 1}]} trailing", DIFFSDE_EFORMAT,
         "invalid JSON at line 1"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": NaN}]}", DIFFSDE_EFORMAT,
         "invalid JSON"},
        {"{\"dim\": 2, \"dim\": 3, \"components\": []}", DIFFSDE_EFORMAT, "duplicate"},
        {C0 "{\"weight\": 1, \"weight\": 2, \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "duplicate"},
        {"{\"dim\": 1, \"components\": [{\"weight\": 1e999, \"mean\": [0], \"cov_iso\": 1}]}",
         DIFFSDE_EFORMAT, "invalid JSON"},
        /* top level */
        {"[1, 2]", DIFFSDE_EFORMAT, "the document must be an object, got an array"},
        {"{\"components\": []}", DIFFSDE_EFORMAT, "dim: missing"},
        {"{\"dim\": 0, \"components\": []}", DIFFSDE_EFORMAT,
         "dim: must be a positive integer (got 0)"},
        {"{\"dim\": -2, \"components\": []}", DIFFSDE_EFORMAT, "(got -2)"},
        {"{\"dim\": 2.0, \"components\": []}", DIFFSDE_EFORMAT,
         "dim: must be a positive integer (got 2.0)"},
        {"{\"dim\": 2.5, \"components\": []}", DIFFSDE_EFORMAT, "(got 2.5)"},
        {"{\"dim\": \"2\", \"components\": []}", DIFFSDE_EFORMAT, "(got the string \"2\")"},
        {"{\"dim\": true, \"components\": []}", DIFFSDE_EFORMAT, "(got true)"},
        {"{\"dim\": 2}", DIFFSDE_EFORMAT, "components: missing"},
        {"{\"dim\": 2, \"components\": []}", DIFFSDE_EFORMAT, "components: the array is empty"},
        {"{\"dim\": 2, \"components\": {}}", DIFFSDE_EFORMAT,
         "components: expected an array of objects, got an object"},
        {"{\"dim\": 2, \"components\": [], \"name\": \"x\"}", DIFFSDE_EFORMAT,
         "unknown key \"name\" at the top level"},
        /* components */
        {C0 "[1, 2]]}", DIFFSDE_EFORMAT, "components[1]: expected an object, got an array"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": 1, \"colour\": 3}]}", DIFFSDE_EFORMAT,
         "components[1]: unknown key \"colour\""},
        {C0 "{\"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].weight: missing"},
        {C0 "{\"weight\": -1, \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EPARAM,
         "components[1].weight: must be > 0 (got -1)"},
        {C0 "{\"weight\": 0, \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EPARAM,
         "components[1].weight: must be > 0 (got 0)"},
        {C0 "{\"weight\": true, \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].weight: expected a number, got true"},
        {C0 "{\"weight\": \"1\", \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].weight: expected a number, got the string \"1\""},
        {C0 "{\"weight\": null, \"mean\": [1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].weight: expected a number, got null"},
        {C0 "{\"weight\": 1, \"cov_iso\": 1}]}", DIFFSDE_EFORMAT, "components[1].mean: missing"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1, 1], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].mean: has 3 entries, expected 2"},
        {C0 "{\"weight\": 1, \"mean\": 1, \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].mean: expected an array of 2 numbers, got 1"},
        {C0 "{\"weight\": 1, \"mean\": [1, false], \"cov_iso\": 1}]}", DIFFSDE_EFORMAT,
         "components[1].mean[1]: expected a number, got false"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1]}]}", DIFFSDE_EFORMAT,
         "components[1]: needs exactly one of \"cov\", \"cov_diag\", \"cov_iso\" (got none)"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": 1, \"cov_diag\": [1, 1]}]}",
         DIFFSDE_EFORMAT, "(got \"cov_diag\" and \"cov_iso\")"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": 1, \"cov_diag\": [1, 1], "
            "\"cov\": [[1, 0], [0, 1]]}]}",
         DIFFSDE_EFORMAT, "(got \"cov\" and \"cov_diag\" and \"cov_iso\")"},
        /* full covariances */
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [[1, 0], [0]]}]}", DIFFSDE_EFORMAT,
         "components[1].cov: row 1 has 1 entries, expected 2"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [[1, 0]]}]}", DIFFSDE_EFORMAT,
         "components[1].cov: has 1 rows, expected 2"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [1, 0]}]}", DIFFSDE_EFORMAT,
         "components[1].cov: row 0 is 1, expected an array of 2 numbers"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [[1, 0], [0, \"x\"]]}]}", DIFFSDE_EFORMAT,
         "components[1].cov[1][1]: expected a number, got the string \"x\""},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [[1, 0.5], [0.25, 1]]}]}", DIFFSDE_EPARAM,
         "components[1].cov: not symmetric: [0][1] = 0.5 but [1][0] = 0.25"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": [[1, 2], [2, 1]]}]}", DIFFSDE_EPARAM,
         "components[1].cov: diffsde_gmm_add_full"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov\": {\"a\": 1}}]}", DIFFSDE_EFORMAT,
         "components[1].cov: expected an array of 2 rows, got an object"},
        /* diagonal and isotropic */
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_diag\": [1, 0]}]}", DIFFSDE_EPARAM,
         "components[1].cov_diag[1]: must be > 0 (got 0)"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_diag\": [1]}]}", DIFFSDE_EFORMAT,
         "components[1].cov_diag: has 1 entries, expected 2"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": -0.5}]}", DIFFSDE_EPARAM,
         "components[1].cov_iso: must be > 0 (got -0.5)"},
        {C0 "{\"weight\": 1, \"mean\": [1, 1], \"cov_iso\": [1]}]}", DIFFSDE_EFORMAT,
         "components[1].cov_iso: expected a number, got an array"},
    };
#undef C0
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        diffsde_gmm *g = (diffsde_gmm *)f; /* must be reset to NULL */
        int st = diffsde_gmm_from_json(f->ctx, cases[c].json, &g);
        if (st != cases[c].status || !strstr(diffsde_errmsg(f->ctx), cases[c].why))
            print_error("case %zu: %s\n", c, diffsde_errmsg(f->ctx));
        assert_int_equal(st, cases[c].status);
        assert_null(g);
        assert_contains(diffsde_errmsg(f->ctx), "diffsde_gmm_from_json: ");
        assert_contains(diffsde_errmsg(f->ctx), cases[c].why);
    }
    diffsde_gmm *g;
    assert_int_equal(diffsde_gmm_from_json(NULL, mixed_json, &g), DIFFSDE_ENULL);
    assert_int_equal(diffsde_gmm_from_json(f->ctx, NULL, &g), DIFFSDE_ENULL);
    assert_int_equal(diffsde_gmm_from_json(f->ctx, mixed_json, NULL), DIFFSDE_ENULL);
}

/* Files: the example models, read errors, bytes after the document. */
static void test_json_files(void **state)
{
    fixture *f = *state;
    char p[1024];
    diffsde_gmm *g;
    /* gmm3d.json is the shared fixture problem_gmm3d.json: check numbers from that file */
    assert_int_equal(diffsde_gmm_from_json_file(
                         f->ctx, in_src(f, "examples/models/gmm3d.json", p, sizeof p), &g),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_dim(g), 3);
    assert_int_equal(diffsde_gmm_ncomponents(g), 3);
    double w, m[3], c[9];
    const double wk[3] = {0.5, 0.3, 0.2};
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(diffsde_gmm_component(g, k, &w, m, c), DIFFSDE_OK);
        assert_close(w, wk[k], 4 * DBL_EPSILON, 0);
    }
    assert_true(m[0] == 0.0 && m[1] == -2.5 && m[2] == 1.5);
    assert_true(c[1] == 0.5610666122667775 && c[3] == 0.5610666122667775);
    assert_true(c[8] == 0.3232753329067356);
    diffsde_gmm_free(g);

    assert_int_equal(diffsde_gmm_from_json_file(
                         f->ctx, in_src(f, "examples/models/three_modes_2d.json", p, sizeof p), &g),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_dim(g), 2);
    assert_int_equal(diffsde_gmm_ncomponents(g), 3);
    assert_int_equal(diffsde_gmm_component(g, 0, &w, m, c), DIFFSDE_OK);
    assert_close(w, 0.5, 4 * DBL_EPSILON, 0);
    assert_true(c[1] == 0.25);
    assert_int_equal(diffsde_gmm_component(g, 1, &w, m, c), DIFFSDE_OK);
    assert_true(c[0] == 0.3 && c[1] == 0 && c[3] == 0.9);
    assert_int_equal(diffsde_gmm_component(g, 2, &w, m, c), DIFFSDE_OK);
    assert_true(c[0] == 0.2 && c[3] == 0.2 && m[1] == -2.5);
    diffsde_gmm_free(g);

    /* messages carry the path; a NUL byte inside the file is not the end of the document */
    in_dir(f, "m.json", p, sizeof p);
    static const char nul[] = "{\"dim\": 1, \"components\": [{\"weight\": 1, \"mean\": [0], "
                              "\"cov_iso\": 1}]}\0{}";
    put_file(p, nul, sizeof nul - 1);
    assert_int_equal(diffsde_gmm_from_json_file(f->ctx, p, &g), DIFFSDE_EFORMAT);
    assert_null(g);
    assert_contains(diffsde_errmsg(f->ctx), "diffsde_gmm_from_json_file: '");
    assert_contains(diffsde_errmsg(f->ctx), "m.json': invalid JSON at line 1");
    static const char bad[] = "{\"dim\": 1,\n\"components\": [{\"weight\": 1, \"mean\": [0, 1], "
                              "\"cov_iso\": 1}]}\n";
    put_file(p, bad, sizeof bad - 1);
    assert_int_equal(diffsde_gmm_from_json_file(f->ctx, p, &g), DIFFSDE_EFORMAT);
    assert_contains(diffsde_errmsg(f->ctx),
                    "m.json': components[0].mean: has 2 entries, expected 1");
    unlink(p);
    assert_int_equal(diffsde_gmm_from_json_file(f->ctx, p, &g), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "m.json");
    assert_contains(diffsde_errmsg(f->ctx), strerror(ENOENT));
    assert_int_equal(diffsde_gmm_from_json_file(f->ctx, NULL, &g), DIFFSDE_ENULL);
}

/* Model specifications as the command line gives them. */
static void test_gmm_load(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *spec;
        size_t dim, K;
    } ok[] = {{"gmm:ring8", 2, 8},
              {"gmm:grid25", 2, 25},
              {"gmm:gauss1", 2, 1},
              {"gmm:random:3,4,7", 3, 4}};
    diffsde_gmm *g;
    for (size_t c = 0; c < sizeof ok / sizeof ok[0]; c++) {
        int st = diffsde_gmm_load(f->ctx, ok[c].spec, &g);
        if (st)
            print_error("%s: %s\n", ok[c].spec, diffsde_errmsg(f->ctx));
        assert_int_equal(st, DIFFSDE_OK);
        assert_int_equal(diffsde_gmm_dim(g), ok[c].dim);
        assert_int_equal(diffsde_gmm_ncomponents(g), ok[c].K);
        diffsde_gmm_free(g);
    }
    char spec[1100], p[1024];
    snprintf(spec, sizeof spec, "gmm:%s",
             in_src(f, "examples/models/three_modes_2d.json", p, sizeof p));
    assert_int_equal(diffsde_gmm_load(f->ctx, spec, &g), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_ncomponents(g), 3);
    diffsde_gmm_free(g);

    assert_int_equal(diffsde_gmm_load(f->ctx, "ring8", &g), DIFFSDE_EPARAM);
    assert_null(g);
    assert_contains(diffsde_errmsg(f->ctx), "does not start with \"gmm:\"");
    assert_int_equal(diffsde_gmm_load(f->ctx, "gmm:", &g), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_gmm_load(f->ctx, "gmm:random:3,x,7", &g), DIFFSDE_EPARAM);
    assert_null(g);
    /* not a built-in name: taken as a file */
    assert_int_equal(diffsde_gmm_load(f->ctx, "gmm:ring9", &g), DIFFSDE_EIO);
    assert_contains(diffsde_errmsg(f->ctx), "'ring9'");
    assert_int_equal(diffsde_gmm_load(f->ctx, NULL, &g), DIFFSDE_ENULL);
    assert_int_equal(diffsde_gmm_load(NULL, "gmm:ring8", &g), DIFFSDE_ENULL);
}

/* Allocation failure at every call: ENOMEM and nothing left allocated (the context's
 * allocations; jansson's own are released on every path and checked by ASan). */
static void test_json_alloc_failures(void **state)
{
    fixture *f = *state;
    char p[1024];
    in_src(f, "examples/models/gmm3d.json", p, sizeof p);
    for (int from_file = 0; from_file < 2; from_file++)
        for (long k = 1;; k++) {
            tu_alloc al = {.fail_at = k};
            diffsde_allocator hooks = tu_allocator(&al);
            diffsde_ctx *ctx = NULL;
            diffsde_gmm *g = NULL;
            int rc = diffsde_ctx_new(&ctx, &hooks);
            if (rc == DIFFSDE_OK)
                rc = from_file ? diffsde_gmm_from_json_file(ctx, p, &g)
                               : diffsde_gmm_from_json(ctx, mixed_json, &g);
            if (rc == DIFFSDE_OK) {
                assert_int_equal(diffsde_gmm_ncomponents(g), 3);
                diffsde_gmm_free(g);
                diffsde_ctx_free(ctx);
                assert_int_equal(al.live, 0);
                assert_true(k > 3);
                break;
            }
            assert_int_equal(rc, DIFFSDE_ENOMEM);
            assert_null(g);
            diffsde_ctx_free(ctx);
            assert_int_equal(al.live, 0);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_bytes_match_numpy),
        cmocka_unit_test(test_npy_reads_numpy_files),
        cmocka_unit_test(test_npy_refuses_numpy_files),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test(test_npy_from_pipe),
        cmocka_unit_test(test_csv_round_trip),
        cmocka_unit_test(test_csv_parsing),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_array_arguments),
        cmocka_unit_test(test_array_alloc_failures),
        cmocka_unit_test(test_json_valid),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_files),
        cmocka_unit_test(test_gmm_load),
        cmocka_unit_test(test_json_alloc_failures),
    };
    return cmocka_run_group_tests_name("io", tests, setup, teardown);
}
