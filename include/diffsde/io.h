/**
 * @file diffsde/io.h
 * @brief Arrays on disk (.npy and CSV) and Gaussian-mixture model specifications (JSON).
 *
 * Arrays are what NumPy users expect: .npy version 1.0/2.0/3.0, little- or big-endian
 * float64 or float32 ('<f8', '>f8', '<f4', '>f4'), C order ('fortran_order': False), 1-D
 * or 2-D. Writing always produces '<f8' version 1.0 (C order), byte for byte what
 * `numpy.save` (NumPy 1.24) writes for the same array. CSV: one row per line, comma
 * separated; blank lines and lines starting with '#' (headers, comments) are skipped.
 *
 * Empty arrays (a zero in the shape, e.g. (0, 3)) are valid .npy arrays, as in NumPy: they
 * are read and written with `data` NULL. CSV cannot represent them.
 *
 * Writes are atomic: the data go to a temporary file in the destination's directory (a hidden
 * name ".NAME.XXXXXXXX", created with mode 0666 minus the umask, as fopen() would), which is
 * flushed, fsync'ed and renamed over the destination only when complete; on any error the
 * temporary is removed and the destination is untouched. An existing destination must be a
 * regular file (directories, devices and pipes are refused) and keeps its permission bits; a
 * symbolic link is followed (its target is replaced, the link kept). Hard links to the
 * destination are broken, as with any rename-based write.
 *
 * The JSON model format is described, with examples, in doc/model-format.md.
 *
 * Thread-safety: every function here may be called from several threads at once on different
 * paths (CSV numbers are parsed and printed in the "C" locale through a thread-local
 * uselocale(), whatever LC_NUMERIC the host set).
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
    double *data;  /**< rows × cols values, owned by the array (diffsde_array_free()); NULL
                        when rows × cols = 0 */
} diffsde_array;

/**
 * Read an array from a .npy file, or a CSV file when the path ends in ".csv" (any case).
 *
 * .npy: the header dict is parsed strictly (the keys 'descr', 'fortran_order', 'shape', each
 * once, in any order, with the spacing and trailing comma NumPy writes); the file must hold
 * exactly prod(shape) values after the header. float32 files are widened to double exactly.
 * Headers longer than 65536 bytes are refused. Works on pipes as well as regular files.
 *
 * CSV: the result is always 2-D (rows × fields, one column for a single field per line).
 * Every data line must have the same number of fields; a field is one number as strtod()
 * reads it ("1.5", "-2e3", "nan", "inf", ...), spaces and tabs around it allowed; Windows line
 * ends (CR LF) are accepted.
 *
 * @param ctx context (its allocator provides the data and any scratch).
 * @param path file name (borrowed).
 * @param[out] out filled on success; on failure it is zeroed (out->data NULL) and nothing is
 *        allocated.
 * @return ::DIFFSDE_OK;
 *         ::DIFFSDE_ENULL (ctx, path or out NULL);
 *         ::DIFFSDE_EIO (cannot open or read, e.g. missing file or a directory: the message
 *         has the path and the system error);
 *         ::DIFFSDE_EFORMAT (the message says which, with the path: bad magic, unsupported
 *         version, header length past the end of the file, malformed header dict, unsupported
 *         dtype, Fortran order, shape () or ndim > 2, a negative dimension, truncated or extra
 *         data; for CSV with the line number: a ragged row, an empty or unparsable field, a
 *         value overflowing a double, no data rows at all);
 *         ::DIFFSDE_ESIZE (a dimension or the byte count overflows size_t);
 *         ::DIFFSDE_ENOMEM.
 * Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_array_read(diffsde_ctx *ctx, const char *path, diffsde_array *out);

/**
 * Write rows × cols doubles (row-major) atomically as .npy ('<f8', version 1.0, data aligned
 * to 64 bytes), or as CSV ("%.17g", which round-trips every double; no header line) when the
 * path ends in ".csv" (any case). ndim 1 writes shape (rows,) and requires cols = 1.
 * @param ctx context. @param path destination (borrowed); its directory must exist.
 * @param ndim 1 or 2. @param rows first dimension. @param cols second dimension.
 * @param data rows × cols values (borrowed); may be NULL when rows × cols = 0.
 * @return ::DIFFSDE_OK;
 *         ::DIFFSDE_ENULL (ctx or path NULL, or data NULL with rows × cols > 0);
 *         ::DIFFSDE_ESIZE (ndim not 1 or 2, ndim = 1 with cols ≠ 1, rows × cols × 8
 *         overflows, or an empty array to CSV);
 *         ::DIFFSDE_EIO (the directory does not exist or is not writable, the destination
 *         exists but is not a regular file, a dangling symbolic link, or the temporary cannot
 *         be created, written, synced or renamed: the message has the path and the system
 *         error; the destination is untouched and no temporary remains);
 *         ::DIFFSDE_ENOMEM (the temporary's name; the destination is untouched).
 * Thread-safety: see the file comment. Concurrent writers to one path each write a complete
 * file; the last rename wins.
 */
DIFFSDE_API int diffsde_array_write(diffsde_ctx *ctx, const char *path, size_t ndim,
                                    size_t rows, size_t cols, const double *data);

/**
 * Release an array's data through ctx's allocator (ctx must be the context that read it) and
 * zero the struct. A NULL ctx or arr is a no-op.
 */
DIFFSDE_API void diffsde_array_free(diffsde_ctx *ctx, diffsde_array *arr);

/**
 * Parse a mixture from JSON text (RFC 8259; format and examples in doc/model-format.md):
 * `{"dim": D, "components": [{"weight": w, "mean": [..], "cov": [[..],..]}, ...]}` where each
 * component gives exactly one of "cov" (D × D, symmetric to |C_ij − C_ji| ≤ 1e-12·max|C|,
 * positive definite), "cov_diag" (D positive numbers) or "cov_iso" (a positive number).
 * D must be a JSON integer ≥ 1 (2.0 is refused); "components" a non-empty array. Weights must
 * be positive; they are normalised. Unknown keys, duplicate keys, booleans or strings where
 * numbers belong, and anything after the document are refused.
 *
 * Messages name the component (counted from 0) and the field, e.g.
 * "diffsde_gmm_from_json: components[2].cov: row 1 has 2 entries, expected 3" or
 * "diffsde_gmm_from_json: components[0].weight: must be > 0 (got -1)".
 *
 * The JSON parse tree is built by jansson with jansson's own allocator (malloc unless the host
 * changed it with json_set_alloc_funcs()); it is always released before returning. The model
 * and all other memory come from ctx's allocator.
 *
 * @param ctx context (borrowed; must outlive the model). @param text NUL-terminated JSON
 *        (borrowed).
 * @param[out] out the finalised model, owned by the caller (diffsde_gmm_free()); NULL on
 *        failure.
 * @return ::DIFFSDE_OK;
 *         ::DIFFSDE_ENULL (ctx, text or out NULL);
 *         ::DIFFSDE_EFORMAT (invalid JSON, with jansson's line, column and reason, including
 *         trailing garbage, duplicate keys and numbers overflowing a double; the document not
 *         an object; an unknown, missing or mistyped field; a wrong length; dim not a positive
 *         integer; components missing or empty; none or several of cov / cov_diag / cov_iso);
 *         ::DIFFSDE_EPARAM (a weight, a cov_diag entry or cov_iso ≤ 0; a covariance not
 *         symmetric or not positive definite: names component and field);
 *         ::DIFFSDE_ENOMEM.
 * Thread-safety: safe from several threads.
 */
DIFFSDE_API int diffsde_gmm_from_json(diffsde_ctx *ctx, const char *text, diffsde_gmm **out);

/**
 * As diffsde_gmm_from_json(), reading the file at path; messages start with
 * "diffsde_gmm_from_json_file: 'PATH': ". A NUL byte inside the file is an error, not the end
 * of the document.
 * @param ctx context. @param path file name (borrowed). @param[out] out as
 *        diffsde_gmm_from_json().
 * @return as diffsde_gmm_from_json(); ::DIFFSDE_EIO if the file cannot be opened or read (the
 *         message has the path and the system error).
 */
DIFFSDE_API int diffsde_gmm_from_json_file(diffsde_ctx *ctx, const char *path,
                                           diffsde_gmm **out);

/**
 * Load a model by specification, as the command line's `--model`: "gmm:NAME" with NAME a
 * built-in (diffsde_gmm_new_builtin(): exactly "ring8", "grid25", "gauss1", or anything
 * starting with "random:"), otherwise "gmm:FILE" with FILE a JSON model file
 * (diffsde_gmm_from_json_file()). A file whose name equals a built-in's is loaded with a
 * path, e.g. "gmm:./ring8".
 * @param ctx context. @param spec the specification (borrowed).
 * @param[out] out the finalised model, owned by the caller; NULL on failure.
 * @return as diffsde_gmm_new_builtin() / diffsde_gmm_from_json_file(); ::DIFFSDE_ENULL;
 *         ::DIFFSDE_EPARAM if the spec does not start with "gmm:" or names nothing after it.
 * Thread-safety: safe from several threads.
 */
DIFFSDE_API int diffsde_gmm_load(diffsde_ctx *ctx, const char *spec, diffsde_gmm **out);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_IO_H */
