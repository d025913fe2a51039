/*
 * "arkode-dp": SUNDIALS ARKODE's explicit stepper (ERKStep) with its Dormand–Prince 5(4)
 * table. The tableau is the one our own "rk45" uses, but the step-size controller (ARKODE's
 * PID), the initial step, the error norm (WRMS with rtol·|y| + atol weights) and the code
 * are ARKODE's: at tight tolerance both must reach the same endpoints, which makes this an
 * independent cross-check of rk45.c rather than a faster method.
 *
 * Per-sample mode re-initialises (ERKStepReInit) one ERKStep problem of size w for each row,
 * its N_Vector wrapping the row of run->y in place; whole-batch mode is one problem of size
 * n·w. SUNDIALS allocates its own memory per solve (OWNMEM), freed on every path, and its
 * error handler is replaced so that nothing is printed (except ERKStepCreate running out of
 * memory, which SUNDIALS reports before a handler can exist).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <arkode/arkode_erkstep.h>

#include "ode/sundials_glue.h"

static const char METHOD[] = "arkode-dp";

/* Restarts after recoverable model failures at one point before giving up (CVODE's
 * default number of convergence failures per step). */
#define ARK_MAX_RETRIES 10

static int recoverable(int st)
{
    return st == DIFFSDE_ERETRY || st == DIFFSDE_ENONFINITE;
}

static int is_rhs_flag(int flag)
{
    return flag == ARK_RHSFUNC_FAIL || flag == ARK_FIRST_RHSFUNC_ERR ||
           flag == ARK_REPTD_RHSFUNC_ERR || flag == ARK_UNREC_RHSFUNC_ERR;
}

/* The status and message of a failure on row `row` (SIZE_MAX: whole batch) at time t. */
static int ark_failure(diffsde_i_oderun *run, const diffsde_i_sun_state *s, int flag,
                       size_t row, double t)
{
    char *name = flag < 0 ? ERKStepGetReturnFlagName(flag) : NULL; /* malloc'd by SUNDIALS */
    const char *fname = flag >= 0 ? "fatal model failure ignored by ARKODE"
                        : name    ? name
                                  : "ARK_?";
    char who[64];
    diffsde_i_sun_who(run, row, who, sizeof who);
    int st;
    if (s->fatal || (is_rhs_flag(flag) && s->status != DIFFSDE_OK))
        st = diffsde_i_ode_restate(run, s->status, "%s: %s: stopped at t = %.17g (%s)", METHOD,
                                   who, t, fname);
    else if (flag == ARK_TOO_MUCH_WORK)
        st = diffsde_i_fail(run->ctx, DIFFSDE_ECONVERGENCE,
                            "%s: %s: %s: stopped at t = %.17g after max_steps = %zu steps",
                            run->fname, METHOD, who, t, run->opt->max_steps);
    else
        st = diffsde_i_fail(run->ctx, DIFFSDE_ECONVERGENCE,
                            "%s: %s: %s: ARKODE stopped at t = %.17g (%s%s%s)", run->fname,
                            METHOD, who, t, fname, s->sunmsg[0] ? ": " : "", s->sunmsg);
    free(name);
    return st;
}

/* Rejected attempts ERKStep has counted since its last (re)initialisation. */
static uint64_t ark_rejected(void *mem)
{
    long natt = 0, nst = 0;
    ERKStepGetNumSteps(mem, &nst);
    ERKStepGetNumStepAttempts(mem, &natt);
    return natt > nst ? (uint64_t)(natt - nst) : 0;
}

static int ark_solve(diffsde_i_oderun *run)
{
    const diffsde_ode_options *opt = run->opt;
    const size_t w = run->sys->w;
    const int whole = opt->whole_batch != 0;
    const size_t len = whole ? run->n * w : w;
    diffsde_i_sun_state s = {.run = run, .m = whole ? run->n : 1, .tv = run->work};
    SUNContext sunctx = NULL;
    N_Vector v = NULL;
    void *mem = NULL;
    size_t rows = whole ? 1 : run->n;
    int st = diffsde_i_sun_begin(run, METHOD, len, &sunctx, &v);
    if (st != DIFFSDE_OK)
        return st;
    mem = ERKStepCreate(diffsde_i_sun_rhs, run->t0, v, sunctx);
    if (!mem) {
        st = diffsde_i_fail(run->ctx, DIFFSDE_ENOMEM, "%s: %s: out of memory creating ERKStep",
                            run->fname, METHOD);
        goto done;
    }
    int flag = ERKStepSetErrHandlerFn(mem, diffsde_i_sun_errh, &s);
    if (flag == ARK_SUCCESS)
        flag = ERKStepSetUserData(mem, &s);
    if (flag == ARK_SUCCESS)
        flag = ERKStepSetTableNum(mem, ARKODE_DORMAND_PRINCE_7_4_5);
    if (flag == ARK_SUCCESS)
        flag = ERKStepSStolerances(mem, opt->rtol, opt->atol);
    if (flag != ARK_SUCCESS) {
        st = diffsde_i_fail(run->ctx, flag == ARK_MEM_FAIL ? DIFFSDE_ENOMEM : DIFFSDE_ECONVERGENCE,
                            "%s: %s: ERKStep set-up failed (flag %d%s%s)", run->fname, METHOD,
                            flag, s.sunmsg[0] ? ": " : "", s.sunmsg);
        goto done;
    }

    for (size_t i = 0; i < rows; i++) {
        size_t row = whole ? SIZE_MAX : i;
        s.rows = whole ? run->all_rows : &run->all_rows[i];
        s.sunmsg[0] = '\0';
        N_VSetArrayPointer(run->y + (whole ? 0 : i * w), v);
        realtype t = run->t0, tfail = NAN;
        double h0 = opt->first_step > 0 ? copysign(opt->first_step, run->t1 - run->t0) : 0.0;
        size_t row_steps = 0;
        int retries = 0, restart = 1;
        uint64_t seen = 0; /* ark_rejected() at the last ReInit */
        flag = ARK_SUCCESS;
        /* One step per ERKStepEvolve call (ARK_ONE_STEP), so that t is always the last
         * accepted time: ERKStep (6.4.1) gives up at the first recoverable right-hand-side
         * failure, where our contract asks for a smaller step, and then reports the failing
         * stage's time, not the accepted one. We restart from the accepted state (which
         * ERKStepEvolve leaves in v) and time with a quarter of the failed step, as CVODE
         * would, at most ARK_MAX_RETRIES times in a row at one point. The step count is
         * ours too (max_steps accepted steps per row). */
        while (t != run->t1) {
            if (restart) {
                s.status = DIFFSDE_OK;
                s.fatal = 0;
                flag = ERKStepReInit(mem, diffsde_i_sun_rhs, t, v);
                seen = ark_rejected(mem);
                /* ARKODE clears a stop time once it has reached it: set it every time. */
                if (flag == ARK_SUCCESS)
                    flag = ERKStepSetStopTime(mem, run->t1);
                if (flag == ARK_SUCCESS)
                    flag = ERKStepSetInitStep(mem, h0);
                if (flag != ARK_SUCCESS)
                    break;
                restart = 0;
            }
            if (row_steps == opt->max_steps) {
                flag = ARK_TOO_MUCH_WORK;
                break;
            }
            realtype tret = t;
            flag = ERKStepEvolve(mem, run->t1, v, &tret, ARK_ONE_STEP);
            if (flag >= 0 && !s.fatal) {
                t = tret;
                row_steps++;
                continue;
            }
            if (s.fatal || !is_rhs_flag(flag) || !recoverable(s.status))
                break;
            realtype hcur = 0.0;
            ERKStepGetCurrentStep(mem, &hcur);
            /* No step size yet: the model failed at the starting point itself (its first
             * evaluation), where no smaller step can help; report that failure. */
            if (hcur == 0.0)
                break;
            retries = t == tfail ? retries + 1 : 1;
            if (retries > ARK_MAX_RETRIES)
                break;
            tfail = t;
            h0 = 0.25 * hcur;
            restart = 1;
            run->stats->rejected += ark_rejected(mem) - seen;
        }
        if (!restart)
            run->stats->rejected += ark_rejected(mem) - seen;
        run->stats->accepted += row_steps;
        if (row_steps > run->stats->steps)
            run->stats->steps = row_steps;
        if (flag < 0 || s.fatal) {
            st = ark_failure(run, &s, flag, row, t);
            goto done;
        }
    }

done:
    ERKStepFree(&mem);
    diffsde_i_sun_end(&sunctx, &v);
    return st;
}

const diffsde_i_integrator diffsde_i_integrator_arkode_dp = {
    .method = DIFFSDE_ODE_ARKODE_DP,
    .name = "arkode-dp",
    .order = 5,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = diffsde_i_sun_work_size,
    .solve = ark_solve,
};
