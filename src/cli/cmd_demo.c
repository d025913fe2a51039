/*
 * diffsde demo: until the samplers exist, the demonstration is a self-check of the forward
 * SDEs: a table of f, g, α, σ and λ at a few times for VE, VP and sub-VP with their default
 * parameters, the variance identity d(σ²)/dt = 2fσ² + g² checked numerically, and the
 * log-SNR round trip t → λ → t. Exit status 1 if any check fails.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "diffsde.h"

static void help(void)
{
    printf("usage: diffsde demo\n\n"
           "Prints the forward SDEs (VE, VP, sub-VP with default parameters) at several times\n"
           "and checks the variance identity and the log-SNR inverse. Exit status 1 if a check\n"
           "fails.\n\nexample:\n  diffsde demo\n");
}

static int table(diffsde_sde *sde, int *failures)
{
    static const double times[] = {0.0, 1e-5, 1e-3, 0.1, 0.25, 0.5, 0.75, 1.0};
    double T;
    diffsde_sde_time_range(sde, NULL, &T);
    printf("\n%s  (T = %g)\n", diffsde_sde_name(sde), T);
    printf("  %-8s %13s %13s %13s %13s %13s %11s\n", "t", "f(t)", "g(t)", "alpha(t)",
           "sigma(t)", "lambda(t)", "|t(l)-t|/T");
    double worst_rt = 0;
    for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
        double t = times[k] * T, lambda, back = NAN;
        diffsde_sde_coefs c;
        if (diffsde_sde_coefs_at(sde, t, &c) != DIFFSDE_OK ||
            diffsde_sde_log_snr(sde, t, &lambda) != DIFFSDE_OK)
            return -1;
        double rt = 0;
        if (isfinite(lambda)) {
            if (diffsde_sde_t_from_log_snr(sde, lambda, &back) != DIFFSDE_OK)
                return -1;
            rt = fabs(back - t) / T; /* absolute: for VE, λ(0) is finite and small t is ill-conditioned */
            if (rt > worst_rt)
                worst_rt = rt;
        }
        printf("  %-8g %13.6g %13.6g %13.6g %13.6g %13.6g %11.2g\n", t, c.f, c.g, c.alpha,
               c.sigma, lambda, rt);
    }
    double err, at;
    int rc = diffsde_sde_check_variance_identity(sde, 64, 1e-8, &err, &at);
    printf("  variance identity d(sigma^2)/dt = 2 f sigma^2 + g^2: worst relative error %.2g "
           "at t=%.3g (threshold 1e-8): %s\n",
           err, at, rc == DIFFSDE_OK ? "ok" : "FAILED");
    printf("  log-SNR inverse: worst round-trip error |t(lambda(t)) - t|/T %.2g (threshold 1e-12): %s\n",
           worst_rt, worst_rt <= 1e-12 ? "ok" : "FAILED");
    *failures += (rc != DIFFSDE_OK) + (worst_rt > 1e-12);
    return 0;
}

int cli_demo(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        help();
        return CLI_OK;
    }
    if (argc > 1) {
        cli_error("demo", "unexpected argument '%s' (see diffsde demo --help)", argv[1]);
        return CLI_USAGE;
    }
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK) {
        cli_error("demo", "cannot create a context (out of memory)");
        return CLI_FAILED;
    }
    printf("diffsde %s self-check: forward SDEs with default parameters\n",
           diffsde_version_string());
    int failures = 0, status = CLI_OK;
    static const char *const names[] = {"ve", "vp", "subvp"};
    for (size_t i = 0; i < 3 && status == CLI_OK; i++) {
        diffsde_sde *sde = NULL;
        if (diffsde_sde_new_named(ctx, names[i], 0, NULL, NULL, &sde) != DIFFSDE_OK ||
            table(sde, &failures) != 0) {
            cli_error("demo", "%s", diffsde_errmsg(ctx));
            status = CLI_FAILED;
        }
        diffsde_sde_free(sde);
    }
    diffsde_ctx_free(ctx);
    if (status == CLI_OK && failures) {
        printf("\n%d check(s) FAILED\n", failures);
        status = CLI_FAILED;
    } else if (status == CLI_OK) {
        printf("\nall checks passed\n");
    }
    return status;
}
