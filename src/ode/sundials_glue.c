/* The SUNDIALS glue shared by cvode.c and arkode_dp.c (sundials_glue.h). */
#include <stdio.h>

#include "ode/sundials_glue.h"

int diffsde_i_sun_rhs(realtype t, N_Vector y, N_Vector ydot, void *user)
{
    diffsde_i_sun_state *s = user;
    if (s->fatal)
        return -1;
    for (size_t r = 0; r < s->m; r++)
        s->tv[r] = t;
    int st = diffsde_i_ode_rhs(s->run, s->m, s->rows, s->tv, N_VGetArrayPointer(y),
                               N_VGetArrayPointer(ydot));
    s->last_failed = st != DIFFSDE_OK;
    if (st == DIFFSDE_OK)
        return 0;
    s->status = st;
    /* A smaller step is what our contract asks for after a recoverable failure. */
    if (st == DIFFSDE_ERETRY || st == DIFFSDE_ENONFINITE)
        return 1;
    s->fatal = 1;
    return -1;
}

void diffsde_i_sun_errh(int code, const char *module, const char *function, char *msg,
                        void *data)
{
    (void)code;
    (void)module;
    diffsde_i_sun_state *s = data;
    snprintf(s->sunmsg, sizeof s->sunmsg, "%s: %s", function, msg);
}

int diffsde_i_sun_work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    (void)w;
    *len = opt->whole_batch ? n : 1;
    return DIFFSDE_OK;
}

int diffsde_i_sun_begin(diffsde_i_oderun *run, const char *method, size_t len,
                        SUNContext *sunctx, N_Vector *v)
{
    *sunctx = NULL;
    *v = NULL;
    if (SUNContext_Create(NULL, sunctx) != 0) {
        *sunctx = NULL;
        return diffsde_i_fail(run->ctx, DIFFSDE_ENOMEM, "%s: %s: SUNContext_Create failed",
                              run->fname, method);
    }
    *v = N_VMake_Serial((sunindextype)len, run->y, *sunctx);
    if (!*v) {
        diffsde_i_sun_end(sunctx, v);
        return diffsde_i_fail(run->ctx, DIFFSDE_ENOMEM, "%s: %s: out of memory creating the "
                              "state vector", run->fname, method);
    }
    return DIFFSDE_OK;
}

void diffsde_i_sun_end(SUNContext *sunctx, N_Vector *v)
{
    N_VDestroy(*v);
    *v = NULL;
    if (*sunctx)
        SUNContext_Free(sunctx);
    *sunctx = NULL;
}

void diffsde_i_sun_who(const diffsde_i_oderun *run, size_t row, char *who, size_t len)
{
    if (row == SIZE_MAX)
        snprintf(who, len, "whole batch of %zu", run->n);
    else
        snprintf(who, len, "sample %zu", row);
}
