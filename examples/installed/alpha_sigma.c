/*
 * The smallest external program: build it against an installed diffsde with
 *     cc alpha_sigma.c $(pkg-config --cflags --libs diffsde)
 * It prints α(0.5) and σ(0.5) for each built-in SDE and checks that the header and the
 * library it runs against have the same version.
 */
#include <stdio.h>

#include <diffsde.h>

int main(void)
{
    if (diffsde_version_number() != DIFFSDE_VERSION_NUMBER) {
        fprintf(stderr, "header %s but library %s\n", DIFFSDE_VERSION_STRING,
                diffsde_version_string());
        return 1;
    }
    diffsde_ctx *ctx;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK)
        return 1;
    const char *names[] = {"ve", "vp", "subvp"};
    int status = 0;
    for (int i = 0; i < 3; i++) {
        diffsde_sde *sde;
        double alpha, sigma;
        if (diffsde_sde_new_named(ctx, names[i], 0, NULL, NULL, &sde) != DIFFSDE_OK ||
            diffsde_sde_alpha(sde, 0.5, &alpha) != DIFFSDE_OK ||
            diffsde_sde_sigma(sde, 0.5, &sigma) != DIFFSDE_OK) {
            fprintf(stderr, "%s\n", diffsde_errmsg(ctx));
            status = 1;
            break;
        }
        printf("%-6s alpha(0.5) = %.15g  sigma(0.5) = %.15g\n", names[i], alpha, sigma);
        diffsde_sde_free(sde);
    }
    diffsde_ctx_free(ctx);
    return status;
}
