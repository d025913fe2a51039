/*
 * Example: create the three built-in SDEs and check α(t), σ(t) against their closed forms
 * (Song et al. 2021) at a few times. Prints TAP ("ok N ..." / "not ok N ...") and exits
 * non-zero if any value is wrong, so it runs as a test under `make check`.
 */
#include <math.h>
#include <stdio.h>

#include "diffsde.h"

static int check(int *n, const char *what, double got, double want)
{
    int ok = fabs(got - want) <= 1e-13 * fabs(want) + 1e-300;
    printf("%s %d - %s = %.17g (closed form %.17g)\n", ok ? "ok" : "not ok", ++*n, what, got,
           want);
    return ok;
}

int main(void)
{
    const double times[] = {1e-3, 0.5, 1.0};
    const double smin = 0.01, smax = 50, bmin = 0.1, bmax = 20;
    diffsde_ctx *ctx;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK)
        return 1;
    diffsde_sde *ve, *vp, *sub;
    if (diffsde_sde_new_ve(ctx, smin, smax, &ve) || diffsde_sde_new_vp(ctx, bmin, bmax, &vp) ||
        diffsde_sde_new_subvp(ctx, bmin, bmax, &sub)) {
        fprintf(stderr, "%s\n", diffsde_errmsg(ctx));
        return 1;
    }
    printf("1..%d\n", 3 * 4);
    int n = 0, good = 1;
    char what[64];
    for (int k = 0; k < 3; k++) {
        double t = times[k], a, s;
        double B = bmin * t + 0.5 * (bmax - bmin) * t * t;
        diffsde_sde_sigma(ve, t, &s);
        snprintf(what, sizeof what, "VE sigma(%g)", t);
        good &= check(&n, what, s, smin * pow(smax / smin, t));
        diffsde_sde_alpha(vp, t, &a);
        snprintf(what, sizeof what, "VP alpha(%g)", t);
        good &= check(&n, what, a, exp(-0.5 * B));
        diffsde_sde_sigma(vp, t, &s);
        snprintf(what, sizeof what, "VP sigma(%g)", t);
        good &= check(&n, what, s, sqrt(-expm1(-B)));
        diffsde_sde_sigma(sub, t, &s);
        snprintf(what, sizeof what, "sub-VP sigma(%g)", t);
        good &= check(&n, what, s, -expm1(-B));
    }
    diffsde_sde_free(ve);
    diffsde_sde_free(vp);
    diffsde_sde_free(sub);
    diffsde_ctx_free(ctx);
    return good ? 0 : 1;
}
