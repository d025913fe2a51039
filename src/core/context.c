/* The context: allocator hooks and the last-failure record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static void *default_alloc(size_t size, void *user)
{
    (void)user;
    return malloc(size);
}

static void default_release(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

int diffsde_ctx_new(diffsde_ctx **out, const diffsde_allocator *allocator)
{
    if (!out)
        return DIFFSDE_ENULL;
    *out = NULL;
    diffsde_allocator a = {default_alloc, default_release, NULL};
    if (allocator) {
        if ((allocator->alloc == NULL) != (allocator->release == NULL))
            return DIFFSDE_EPARAM;
        if (allocator->alloc)
            a = *allocator;
    }
    diffsde_ctx *ctx = a.alloc(sizeof *ctx, a.user);
    if (!ctx)
        return DIFFSDE_ENOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->allocator = a;
    atomic_flag_clear(&ctx->lock);
    ctx->last_status = DIFFSDE_OK;
    *out = ctx;
    return DIFFSDE_OK;
}

void diffsde_ctx_free(diffsde_ctx *ctx)
{
    if (!ctx)
        return;
    diffsde_allocator a = ctx->allocator;
    a.release(ctx, a.user);
}

static void lock(const diffsde_ctx *ctx)
{
    /* The flag is logically mutable even through a const context (reading under the lock). */
    atomic_flag *f = (atomic_flag *)&ctx->lock;
    while (atomic_flag_test_and_set_explicit(f, memory_order_acquire)) {
    }
}

static void unlock(const diffsde_ctx *ctx)
{
    atomic_flag_clear_explicit((atomic_flag *)&ctx->lock, memory_order_release);
}

const char *diffsde_errmsg(const diffsde_ctx *ctx)
{
    if (!ctx)
        return "diffsde_errmsg: the context is NULL";
    return ctx->errmsg;
}

int diffsde_errmsg_copy(const diffsde_ctx *ctx, char *buf, size_t len)
{
    if (!ctx || !buf)
        return DIFFSDE_ENULL;
    lock(ctx);
    if (len > 0) {
        size_t n = strlen(ctx->errmsg);
        if (n >= len)
            n = len - 1;
        memcpy(buf, ctx->errmsg, n);
        buf[n] = '\0';
    }
    int status = ctx->last_status;
    unlock(ctx);
    return status;
}

int diffsde_last_status(const diffsde_ctx *ctx)
{
    return ctx ? ctx->last_status : DIFFSDE_ENULL;
}

void diffsde_clear_error(diffsde_ctx *ctx)
{
    if (!ctx)
        return;
    lock(ctx);
    ctx->errmsg[0] = '\0';
    ctx->last_status = DIFFSDE_OK;
    unlock(ctx);
}

int diffsde_i_fail(diffsde_ctx *ctx, int status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    lock(ctx);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    ctx->last_status = status;
    ctx->nfail++;
    unlock(ctx);
    return status;
}

int diffsde_i_fail_prefix(diffsde_ctx *ctx, int status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    char prefix[DIFFSDE_ERRMSG_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    lock(ctx);
    /* "<prefix>: <previous>", truncated to the buffer; built by hand because the previous
     * message is the destination itself. */
    char previous[DIFFSDE_ERRMSG_CAPACITY];
    memcpy(previous, ctx->errmsg, sizeof previous);
    size_t cap = sizeof ctx->errmsg - 1, len = 0;
    const char *parts[3] = {prefix, ": ", previous};
    for (int k = 0; k < 3; k++) {
        size_t m = strlen(parts[k]);
        if (m > cap - len)
            m = cap - len;
        memcpy(ctx->errmsg + len, parts[k], m);
        len += m;
    }
    ctx->errmsg[len] = '\0';
    ctx->last_status = status;
    ctx->nfail++;
    unlock(ctx);
    return status;
}

void *diffsde_i_alloc(diffsde_ctx *ctx, size_t size)
{
    if (!ctx || size == 0)
        return NULL;
    return ctx->allocator.alloc(size, ctx->allocator.user);
}

void *diffsde_i_calloc(diffsde_ctx *ctx, size_t count, size_t size)
{
    size_t bytes;
    if (diffsde_i_mul_size(count, size, &bytes) != 0)
        return NULL;
    void *p = diffsde_i_alloc(ctx, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void diffsde_i_free(diffsde_ctx *ctx, void *ptr)
{
    if (ctx && ptr)
        ctx->allocator.release(ptr, ctx->allocator.user);
}

int diffsde_i_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}
