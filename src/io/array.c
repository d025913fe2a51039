/* The public array functions: argument checks and dispatch on the file name's suffix. */
#include <string.h>

#include "io/io_impl.h"

/* Whether path ends in ".csv", in any letter case. */
static int is_csv(const char *path)
{
    size_t n = strlen(path);
    if (n < 4 || path[n - 4] != '.')
        return 0;
    const char *s = path + n - 3;
    return (s[0] == 'c' || s[0] == 'C') && (s[1] == 's' || s[1] == 'S') &&
           (s[2] == 'v' || s[2] == 'V');
}

int diffsde_array_read(diffsde_ctx *ctx, const char *path, diffsde_array *out)
{
    static const char fn[] = "diffsde_array_read";
    if (out)
        memset(out, 0, sizeof *out);
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!path || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !path ? "path" : "out");
    return is_csv(path) ? diffsde_i_csv_read(ctx, fn, path, out)
                        : diffsde_i_npy_read(ctx, fn, path, out);
}

int diffsde_array_write(diffsde_ctx *ctx, const char *path, size_t ndim, size_t rows,
                        size_t cols, const double *data)
{
    static const char fn[] = "diffsde_array_write";
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!path)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: path is NULL", fn);
    if (ndim != 1 && ndim != 2)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: ndim (%zu) must be 1 or 2", fn, ndim);
    if (ndim == 1 && cols != 1)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: ndim 1 needs cols = 1 (got cols = %zu)",
                              fn, cols);
    size_t count, bytes;
    if (diffsde_i_mul_size(rows, cols, &count) || diffsde_i_mul_size(count, sizeof(double), &bytes))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: rows (%zu) × cols (%zu) overflows", fn,
                              rows, cols);
    if (count > 0 && !data)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: data is NULL for %zu × %zu values", fn,
                              rows, cols);
    if (is_csv(path)) {
        if (count == 0)
            return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                                  "%s: '%s': CSV cannot hold an empty array (%zu × %zu); use .npy",
                                  fn, path, rows, cols);
        return diffsde_i_csv_write(ctx, fn, path, rows, cols, data);
    }
    return diffsde_i_npy_write(ctx, fn, path, ndim, rows, cols, data);
}

void diffsde_array_free(diffsde_ctx *ctx, diffsde_array *arr)
{
    if (!ctx || !arr)
        return;
    diffsde_i_free(ctx, arr->data);
    memset(arr, 0, sizeof *arr);
}
