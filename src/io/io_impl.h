/*
 * Private helpers shared by the files of src/io/:
 *   file.c     whole-file reads and system error text,
 *   atomic.c   atomic replacement of a file (temporary in the same directory + rename),
 *   npy.c      the .npy reader and writer,
 *   csv.c      the CSV reader and writer,
 *   array.c    the public array functions (dispatch on the file name),
 *   gmm_json.c JSON model specifications.
 * Not installed. Every function records its failures on ctx with messages that start with
 * `fn` (the public function the user called) and name the path.
 */
#ifndef DIFFSDE_IO_IMPL_H
#define DIFFSDE_IO_IMPL_H

#include <stdio.h>

#include "core/internal.h"
#include "diffsde/io.h"

/* ---- file.c ---- */

/* Text of the system error `err` (thread-safe: strerror_r into buf); returns buf. */
const char *diffsde_i_errno_text(int err, char *buf, size_t len);

/*
 * Read the whole file at path into a buffer from ctx's allocator, with a NUL appended (not
 * counted in *len). Works for pipes too (reads until EOF). Returns DIFFSDE_OK, DIFFSDE_EIO
 * (cannot open or read: the message has the path and the system error) or DIFFSDE_ENOMEM
 * (also when the size overflows). On failure *buf is NULL.
 */
int diffsde_i_read_whole_file(diffsde_ctx *ctx, const char *fn, const char *path, char **buf,
                              size_t *len);

/* ---- atomic.c ---- */

/*
 * Writes the content to f. Returns 0 on success, -1 on a write error (errno says why; the
 * caller also checks ferror(f)).
 */
typedef int (*diffsde_i_emit_fn)(FILE *f, void *user);

/*
 * Replace the file at path atomically: emit() writes a new temporary file in path's directory
 * (created with mode 0666 minus the umask, like fopen), which is flushed, fsync'ed, closed and
 * renamed over path. On any failure the temporary is removed and path is untouched.
 * Returns DIFFSDE_OK, DIFFSDE_EIO (message: fn, path and the system error) or DIFFSDE_ENOMEM
 * (the temporary's name could not be allocated).
 */
int diffsde_i_atomic_write(diffsde_ctx *ctx, const char *fn, const char *path,
                           diffsde_i_emit_fn emit, void *user);

/* ---- npy.c ---- */

/* Read a .npy file (arguments checked by the caller; out zeroed). Statuses as
 * diffsde_array_read(). */
int diffsde_i_npy_read(diffsde_ctx *ctx, const char *fn, const char *path, diffsde_array *out);

/* Write '<f8' .npy version 1.0 (arguments checked by the caller). */
int diffsde_i_npy_write(diffsde_ctx *ctx, const char *fn, const char *path, size_t ndim,
                        size_t rows, size_t cols, const double *data);

/* ---- csv.c ---- */

/* Read a CSV file as a 2-D array (arguments checked by the caller; out zeroed). */
int diffsde_i_csv_read(diffsde_ctx *ctx, const char *fn, const char *path, diffsde_array *out);

/* Write rows lines of cols values "%.17g" separated by commas (rows·cols > 0 checked). */
int diffsde_i_csv_write(diffsde_ctx *ctx, const char *fn, const char *path, size_t rows,
                        size_t cols, const double *data);

#endif /* DIFFSDE_IO_IMPL_H */
