/**
 * @file diffsde/context.h
 * @brief The context: allocator hooks and the detailed message of the last failure.
 *
 * Every diffsde object is created from a context. The context carries what would otherwise be
 * global state: the memory allocator and the last error message. The library has no global
 * mutable state, never prints, never aborts and never exits.
 *
 * Lifetime: a context must outlive every object created from it (objects keep a borrowed
 * pointer to it).
 *
 * Thread-safety: different contexts are fully independent. One context may be shared by
 * several threads; failures then record their messages under an internal lock, and
 * diffsde_errmsg_copy() reads the message under the same lock. The pointer returned by
 * diffsde_errmsg() is only stable while no other thread can fail on the same context; give
 * each thread its own context when messages from concurrent failures matter.
 */
#ifndef DIFFSDE_CONTEXT_H
#define DIFFSDE_CONTEXT_H

#include "diffsde/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque context handle. */
typedef struct diffsde_ctx diffsde_ctx;

/**
 * Allocator hooks (in the style of zstd's customMem). Both functions must be given, or both
 * NULL for the C library's malloc/free. `alloc` returns NULL on failure; `release` accepts NULL.
 * `user` is passed back unchanged and is borrowed (never freed by diffsde).
 */
typedef struct diffsde_allocator {
    void *(*alloc)(size_t size, void *user); /**< allocate size bytes; NULL on failure */
    void (*release)(void *ptr, void *user);  /**< release a block from alloc; NULL is a no-op */
    void *user;                              /**< passed to both hooks (borrowed) */
} diffsde_allocator;

/** Capacity of the per-context error message buffer, terminating NUL included. */
#define DIFFSDE_ERRMSG_CAPACITY 512

/**
 * Create a context.
 *
 * @param[out] out       receives the new context; set to NULL on failure. Owned by the caller:
 *                       release it with diffsde_ctx_free().
 * @param[in]  allocator allocator hooks, copied; NULL selects malloc/free.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL if `out` is NULL; ::DIFFSDE_EPARAM if exactly one of the
 *         two hooks is NULL; ::DIFFSDE_ENOMEM if the allocator fails (no message can be stored
 *         then: there is no context).
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API int diffsde_ctx_new(diffsde_ctx **out, const diffsde_allocator *allocator);

/**
 * Free a context. NULL is a no-op. All objects created from it must have been freed first.
 * Thread-safety: the caller must ensure no other thread uses the context.
 */
DIFFSDE_API void diffsde_ctx_free(diffsde_ctx *ctx);

/**
 * Detailed message of the last failure recorded on this context, e.g.
 * "diffsde_sde_new_ve: sigma_max (0.5) must be greater than sigma_min (1)".
 *
 * @param ctx a context, or NULL (gives a fixed message saying so).
 * @return a NUL-terminated string owned by the context, valid until the next failing call on
 *         it or until diffsde_ctx_free(); "" when nothing has failed yet or after
 *         diffsde_clear_error().
 * Thread-safety: see the file comment.
 */
DIFFSDE_API const char *diffsde_errmsg(const diffsde_ctx *ctx);

/**
 * Copy the last message into a caller buffer under the context's lock.
 *
 * @param ctx  the context.
 * @param buf  destination, `len` bytes; always NUL-terminated when len > 0 (truncated if short).
 * @param len  size of `buf` in bytes.
 * @return the status code of the last recorded failure (::DIFFSDE_OK if none);
 *         ::DIFFSDE_ENULL if ctx or buf is NULL.
 * Thread-safety: safe on a shared context.
 */
DIFFSDE_API int diffsde_errmsg_copy(const diffsde_ctx *ctx, char *buf, size_t len);

/**
 * Status code of the last failure recorded on this context (::DIFFSDE_OK if none).
 * Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_last_status(const diffsde_ctx *ctx);

/** Forget the last failure: the message becomes "" and the status ::DIFFSDE_OK. NULL is a no-op. */
DIFFSDE_API void diffsde_clear_error(diffsde_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_CONTEXT_H */
