/**
 * @file diffsde/io.h
 * @brief Arrays on disk (.npy and CSV) and Gaussian-mixture model specifications (JSON).
 *
 * Arrays are what NumPy users expect: .npy version 1.0/2.0/3.0, little- or big-endian
 * float64 or float32 ('<f8', '>f8', '<f4', '>f4'), C order ('fortran_order': False), 1-D
 * or 2-D. Writing always produces '<f8' version 1.0 (C order). CSV: one row per line, comma
 * separated, optional header line starting with '#'.
 *
 * Writes are atomic: the data go to a temporary file in the destination's directory, which
 * is renamed over the destination only when complete; on any error the temporary is removed
 * and the destination is untouched.
 */
#ifndef DIFFSDE_IO_H
#define DIFFSDE_IO_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/gmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A dense row-major array of doubles with 1 or 2 dimensions. */
typedef struct diffsde_array {
    size_t ndim;   /**< 1 or 2 */
    size_t rows;   /**< first dimension (n) */
    size_t cols;   /**< second dimension (d); 1 for a 1-D array */
    double *data;  /**< rows × cols values, owned by the array (diffsde_array_free()) */
} diffsde_array;

/**
 * Read an array from a .npy file, or a CSV file when the path ends in ".csv".
 * @param ctx context (its allocator provides the data).
 * @param path file name (borrowed).
 * @param[out] out filled on success; on failure out->data is NULL and nothing is allocated.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EIO (cannot open/read: the message has
 *         the path and the system error); ::DIFFSDE_EFORMAT (bad magic, unsupported dtype,
 *         Fortran order, ndim > 2, truncated data, ragged CSV, unparsable number — the message
 *         says which, with the line for CSV); ::DIFFSDE_ESIZE (shape overflows);
 *         ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_array_read(diffsde_ctx *ctx, const char *path, diffsde_array *out);

/**
 * Write rows × cols doubles (row-major) atomically as .npy ('<f8'), or CSV (%.17g) when the
 * path ends in ".csv". ndim 1 writes shape (rows,) and requires cols = 1.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (ndim not 1 or 2, or ndim = 1 with
 *         cols ≠ 1); ::DIFFSDE_EIO (the destination is untouched).
 */
DIFFSDE_API int diffsde_array_write(diffsde_ctx *ctx, const char *path, size_t ndim,
                                    size_t rows, size_t cols, const double *data);

/** Release an array's data (through ctx's allocator) and zero the struct. NULL is a no-op. */
DIFFSDE_API void diffsde_array_free(diffsde_ctx *ctx, diffsde_array *arr);

/**
 * Parse a mixture from JSON text:
 * `{"dim": D, "components": [{"weight": w, "mean": [..], "cov": [[..],..]}, ...]}` where each
 * component gives exactly one of "cov" (D × D, symmetric positive definite), "cov_diag"
 * (D positive numbers) or "cov_iso" (a positive number). Weights must be positive; they are
 * normalised. Unknown keys are rejected.
 * @param ctx context. @param text NUL-terminated JSON (borrowed).
 * @param[out] out the finalised model, owned by the caller; NULL on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EFORMAT (invalid JSON with line/column,
 *         trailing garbage, missing or mistyped field, wrong length, D = 0, no components,
 *         NaN — the message names the component index and field, e.g.
 *         "components[2].cov: row 1 has 2 entries, expected 3"); ::DIFFSDE_EPARAM (a
 *         covariance not symmetric or not positive definite, weight ≤ 0: names component and
 *         field); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_gmm_from_json(diffsde_ctx *ctx, const char *text, diffsde_gmm **out);

/** As diffsde_gmm_from_json(), reading the file at path (::DIFFSDE_EIO if unreadable). */
DIFFSDE_API int diffsde_gmm_from_json_file(diffsde_ctx *ctx, const char *path,
                                           diffsde_gmm **out);

/**
 * Load a model by specification, as the command line's `--model`: "gmm:NAME" with NAME a
 * built-in (diffsde_gmm_new_builtin(): ring8, grid25, gauss1, random:D,K,SEED), otherwise
 * "gmm:FILE" with FILE a JSON model file.
 * @return as diffsde_gmm_new_builtin() / diffsde_gmm_from_json_file(); ::DIFFSDE_EPARAM if
 *         the spec does not start with "gmm:".
 */
DIFFSDE_API int diffsde_gmm_load(diffsde_ctx *ctx, const char *spec, diffsde_gmm **out);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_IO_H */
