/* The README's example: 1000 samples of ring8 through the probability-flow ODE with the
 * exact score. Build: cc ring8_flow.c $(pkg-config --cflags --libs diffsde) */
#include <stdio.h>
#include <diffsde.h>

int main(void) {
    diffsde_ctx *ctx = NULL; diffsde_gmm *gmm = NULL; diffsde_sde *vp = NULL;
    diffsde_score *score = NULL; diffsde_noise *noise = NULL; diffsde_ode *ode = NULL;
    static double x[1000 * 2];                     /* n × d, row-major */
    int bad = diffsde_ctx_new(&ctx, NULL) || diffsde_gmm_new_builtin(ctx, "ring8", &gmm) ||
              diffsde_sde_new_vp(ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &vp) ||
              diffsde_gmm_score_new(gmm, vp, &score) ||        /* the exact score of p_t */
              diffsde_noise_new_philox(ctx, 1, &noise) ||      /* seed 1 */
              diffsde_ode_new(ctx, vp, score, NULL, &ode) ||   /* rk45, rtol = atol = 1e-5 */
              diffsde_ode_sample(ode, noise, 0, 1000, 2, x);
    if (bad) fprintf(stderr, "diffsde: %s\n", ctx ? diffsde_errmsg(ctx) : "out of memory");
    else printf("x[0] = (%.4f, %.4f)\n", x[0], x[1]);
    diffsde_ode_free(ode); diffsde_noise_free(noise); diffsde_score_free(score);
    diffsde_sde_free(vp); diffsde_gmm_free(gmm); diffsde_ctx_free(ctx);
    return bad;
}
