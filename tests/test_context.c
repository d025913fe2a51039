/* Context, status codes, version and allocator hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "testutil.h"

static void test_status_table(void **state)
{
    (void)state;
    /* Pinned values: changing any of these breaks host codes that stored them. */
    assert_int_equal(DIFFSDE_OK, 0);
    assert_int_equal(DIFFSDE_ENOMEM, -1);
    assert_int_equal(DIFFSDE_ENULL, -2);
    assert_int_equal(DIFFSDE_EPARAM, -3);
    assert_int_equal(DIFFSDE_EDOM, -4);
    assert_int_equal(DIFFSDE_ESIZE, -5);
    assert_int_equal(DIFFSDE_ECALLBACK, -6);
    assert_int_equal(DIFFSDE_ENONFINITE, -7);
    assert_int_equal(DIFFSDE_EINCONSISTENT, -8);
    assert_int_equal(DIFFSDE_ESTATE, -9);
    assert_int_equal(DIFFSDE_EUNSUPPORTED, -10);
    assert_int_equal(DIFFSDE_EIO, -11);
    assert_int_equal(DIFFSDE_EFORMAT, -12);
    assert_int_equal(DIFFSDE_ECONVERGENCE, -13);
    assert_int_equal(DIFFSDE_ERANGE, -14);
    assert_int_equal(DIFFSDE_ERETRY, -15);
    /* Every code has a distinct name and a non-empty description. */
    for (int a = 0; a >= DIFFSDE_STATUS_LAST; a--) {
        assert_true(strlen(diffsde_strerror(a)) > 0);
        assert_string_not_equal(diffsde_strerror(a), "unknown status");
        assert_true(strncmp(diffsde_status_name(a), "DIFFSDE_", 8) == 0);
        for (int b = a - 1; b >= DIFFSDE_STATUS_LAST; b--)
            assert_string_not_equal(diffsde_status_name(a), diffsde_status_name(b));
    }
    assert_string_equal(diffsde_status_name(DIFFSDE_EPARAM), "DIFFSDE_EPARAM");
    assert_string_equal(diffsde_strerror(-9999), "unknown status");
    assert_string_equal(diffsde_strerror(7), "unknown status");
    assert_string_equal(diffsde_status_name(-9999), "DIFFSDE_UNKNOWN");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(diffsde_version_number(), DIFFSDE_VERSION_NUMBER);
    assert_string_equal(diffsde_version_string(), DIFFSDE_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", DIFFSDE_VERSION_MAJOR, DIFFSDE_VERSION_MINOR,
             DIFFSDE_VERSION_PATCH);
    assert_string_equal(buf, DIFFSDE_VERSION_STRING);
}

static void test_ctx_lifecycle(void **state)
{
    (void)state;
    diffsde_ctx *ctx = (diffsde_ctx *)&ctx; /* must be overwritten */
    assert_int_equal(diffsde_ctx_new(&ctx, NULL), DIFFSDE_OK);
    assert_non_null(ctx);
    assert_string_equal(diffsde_errmsg(ctx), "");
    assert_int_equal(diffsde_last_status(ctx), DIFFSDE_OK);
    diffsde_ctx_free(ctx);
    diffsde_ctx_free(NULL); /* no-op */
    assert_int_equal(diffsde_ctx_new(NULL, NULL), DIFFSDE_ENULL);
    assert_true(strlen(diffsde_errmsg(NULL)) > 0);
    assert_int_equal(diffsde_last_status(NULL), DIFFSDE_ENULL);
    diffsde_clear_error(NULL);
}

static void test_ctx_half_allocator_rejected(void **state)
{
    (void)state;
    tu_alloc counter = {0};
    diffsde_allocator half = tu_allocator(&counter);
    half.release = NULL;
    diffsde_ctx *ctx = (diffsde_ctx *)&ctx;
    assert_int_equal(diffsde_ctx_new(&ctx, &half), DIFFSDE_EPARAM);
    assert_null(ctx);
    assert_int_equal(counter.calls, 0);
}

static void test_ctx_allocator_used_and_failing(void **state)
{
    (void)state;
    /* The context itself comes from the hooks. */
    tu_alloc counter = {0};
    diffsde_allocator al = tu_allocator(&counter);
    diffsde_ctx *ctx;
    assert_int_equal(diffsde_ctx_new(&ctx, &al), DIFFSDE_OK);
    assert_int_equal(counter.calls, 1);
    assert_int_equal(counter.live, 1);
    diffsde_ctx_free(ctx);
    assert_int_equal(counter.live, 0);
    /* Failing first allocation: ENOMEM, nothing kept. */
    tu_alloc failing = {.fail_at = 1};
    al = tu_allocator(&failing);
    ctx = (diffsde_ctx *)&ctx;
    assert_int_equal(diffsde_ctx_new(&ctx, &al), DIFFSDE_ENOMEM);
    assert_null(ctx);
    assert_int_equal(failing.live, 0);
}

static void test_errmsg_recording(void **state)
{
    (void)state;
    diffsde_ctx *ctx;
    assert_int_equal(diffsde_ctx_new(&ctx, NULL), DIFFSDE_OK);
    diffsde_sde *sde = (diffsde_sde *)&sde;
    assert_int_equal(diffsde_sde_new_ve(ctx, -2.5, 50, &sde), DIFFSDE_EPARAM);
    assert_null(sde);
    assert_int_equal(diffsde_last_status(ctx), DIFFSDE_EPARAM);
    assert_non_null(strstr(diffsde_errmsg(ctx), "sigma_min"));
    char small[8];
    assert_int_equal(diffsde_errmsg_copy(ctx, small, sizeof small), DIFFSDE_EPARAM);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_true(strncmp(small, diffsde_errmsg(ctx), sizeof small - 1) == 0);
    assert_int_equal(diffsde_errmsg_copy(ctx, NULL, 4), DIFFSDE_ENULL);
    assert_int_equal(diffsde_errmsg_copy(NULL, small, 4), DIFFSDE_ENULL);
    diffsde_clear_error(ctx);
    assert_string_equal(diffsde_errmsg(ctx), "");
    assert_int_equal(diffsde_last_status(ctx), DIFFSDE_OK);
    diffsde_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_ctx_lifecycle),
        cmocka_unit_test(test_ctx_half_allocator_rejected),
        cmocka_unit_test(test_ctx_allocator_used_and_failing),
        cmocka_unit_test(test_errmsg_recording),
    };
    return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
