/*
 * SUNDIALS CVODE back ends: "cvode-adams" (Adams–Moulton, orders 1–12, fixed-point
 * iteration: the flow ODE is not stiff, and Newton would need a linear solver for nothing)
 * and "cvode-bdf" (BDF, orders 1–5, Newton iteration).
 *
 * BDF's linear solver depends on the size N of the system CVODE sees (w per sample, n·w for
 * the whole batch): N ≤ 16 uses a dense matrix with CVODE's difference-quotient Jacobian
 * (N right-hand sides per Jacobian, cheap and exact enough for small N); larger N uses
 * GMRES (SPGMR, no preconditioner) with CVODE's difference-quotient Jacobian–vector
 * products, so no N × N matrix is ever formed. Every right-hand side either solver asks
 * for goes through diffsde_i_ode_rhs() and is counted as score evaluations.
 *
 * SUNDIALS allocates its own memory with malloc (the integrator is flagged OWNMEM): a
 * SUNContext, vectors and solver memory per solve, freed on every path. CVODE's error
 * handler is replaced so that it never prints: the message is kept and cited in ours.
 * The one exception is CVodeCreate running out of memory, which SUNDIALS reports on stderr
 * before any handler can be installed.
 *
 * Per-sample mode: one CVODE problem of size w, re-initialised (CVodeReInit) for each row,
 * whose N_Vector wraps the row of run->y in place. max_steps bounds CVODE's successful
 * steps per row (CVodeSetMaxNumSteps counts steps, not attempts).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cvode/cvode.h>
#include <sundials/sundials_iterative.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "ode/sundials_glue.h"

/* Largest system that BDF solves with a dense Jacobian (file comment). */
#define CV_DENSE_MAX 16

static int is_rhs_flag(int flag)
{
    return flag == CV_RHSFUNC_FAIL || flag == CV_FIRST_RHSFUNC_ERR ||
           flag == CV_REPTD_RHSFUNC_ERR || flag == CV_UNREC_RHSFUNC_ERR;
}

/* The status and message of CVode's failure `flag` on row `row` (SIZE_MAX: whole batch). */
static int cv_failure(diffsde_i_oderun *run, const char *method, void *mem,
                      const diffsde_i_sun_state *s, int flag, size_t row)
{
    realtype tcur = run->t0;
    CVodeGetCurrentTime(mem, &tcur);
    char *name = CVodeGetReturnFlagName(flag); /* malloc'd by SUNDIALS */
    const char *fname = name ? name : "CV_?";
    char who[64];
    diffsde_i_sun_who(run, row, who, sizeof who);
    int st;
    /* Repeated recoverable model failures inside the corrector surface as CV_CONV_FAILURE:
     * when CVODE gave up right after a model failure, that failure is the reason. */
    if (s->fatal || (s->status != DIFFSDE_OK && (s->last_failed || is_rhs_flag(flag))))
        st = diffsde_i_ode_restate(run, s->status, "%s: %s: stopped at t = %.17g (%s)", method,
                                   who, (double)tcur,
                                   flag < 0 ? fname : "fatal model failure ignored by CVODE");
    else
        st = diffsde_i_fail(run->ctx, DIFFSDE_ECONVERGENCE,
                            "%s: %s: %s: CVODE stopped at t = %.17g (%s%s%s)", run->fname,
                            method, who, (double)tcur, fname, s->sunmsg[0] ? ": " : "",
                            s->sunmsg);
    free(name);
    return st;
}

static int cv_solve(diffsde_i_oderun *run, int lmm, const char *method)
{
    const diffsde_ode_options *opt = run->opt;
    const size_t w = run->sys->w;
    const int whole = opt->whole_batch != 0;
    const size_t len = whole ? run->n * w : w; /* run->y holds n·w doubles: no overflow */
    diffsde_i_sun_state s = {.run = run, .m = whole ? run->n : 1, .tv = run->work};
    SUNContext sunctx = NULL;
    N_Vector v = NULL;
    void *mem = NULL;
    SUNNonlinearSolver nls = NULL;
    SUNLinearSolver ls = NULL;
    SUNMatrix A = NULL;
    size_t rows = whole ? 1 : run->n;
    int st = diffsde_i_sun_begin(run, method, len, &sunctx, &v);
    if (st != DIFFSDE_OK)
        return st;
    mem = CVodeCreate(lmm, sunctx);
    if (!mem) {
        st = diffsde_i_fail(run->ctx, DIFFSDE_ENOMEM, "%s: %s: out of memory creating CVODE",
                            run->fname, method);
        goto done;
    }
    int flag = CVodeSetErrHandlerFn(mem, diffsde_i_sun_errh, &s);
    if (flag == CV_SUCCESS)
        flag = CVodeInit(mem, diffsde_i_sun_rhs, run->t0, v);
    if (flag == CV_SUCCESS)
        flag = CVodeSetUserData(mem, &s);
    if (flag == CV_SUCCESS)
        flag = CVodeSStolerances(mem, opt->rtol, opt->atol);
    if (flag == CV_SUCCESS)
        flag = CVodeSetMaxNumSteps(mem, opt->max_steps > (size_t)LONG_MAX ? LONG_MAX
                                                                          : (long)opt->max_steps);
    if (flag == CV_SUCCESS && lmm == CV_ADAMS) {
        nls = SUNNonlinSol_FixedPoint(v, 0, sunctx);
        flag = nls ? CVodeSetNonlinearSolver(mem, nls) : CV_MEM_FAIL;
    } else if (flag == CV_SUCCESS && len <= CV_DENSE_MAX) {
        A = SUNDenseMatrix((sunindextype)len, (sunindextype)len, sunctx);
        ls = A ? SUNLinSol_Dense(v, A, sunctx) : NULL;
        flag = ls ? CVodeSetLinearSolver(mem, ls, A) : CV_MEM_FAIL;
    } else if (flag == CV_SUCCESS) {
        ls = SUNLinSol_SPGMR(v, SUN_PREC_NONE, 0, sunctx);
        flag = ls ? CVodeSetLinearSolver(mem, ls, NULL) : CV_MEM_FAIL;
    }
    if (flag != CV_SUCCESS) {
        st = diffsde_i_fail(run->ctx, flag == CV_MEM_FAIL ? DIFFSDE_ENOMEM : DIFFSDE_ECONVERGENCE,
                            "%s: %s: CVODE set-up failed (flag %d%s%s)", run->fname, method, flag,
                            s.sunmsg[0] ? ": " : "", s.sunmsg);
        goto done;
    }

    for (size_t i = 0; i < rows; i++) {
        size_t row = whole ? SIZE_MAX : i;
        s.rows = whole ? run->all_rows : &run->all_rows[i];
        s.status = DIFFSDE_OK;
        s.fatal = 0;
        s.last_failed = 0;
        s.sunmsg[0] = '\0';
        N_VSetArrayPointer(run->y + (whole ? 0 : i * w), v);
        flag = CVodeReInit(mem, run->t0, v);
        /* Set after every ReInit: whether a stop time survives being reached differs
         * between SUNDIALS versions. */
        if (flag == CV_SUCCESS)
            flag = CVodeSetStopTime(mem, run->t1);
        if (flag == CV_SUCCESS && opt->first_step > 0)
            flag = CVodeSetInitStep(mem, copysign(opt->first_step, run->t1 - run->t0));
        realtype tret = run->t0;
        if (flag == CV_SUCCESS)
            flag = CVode(mem, run->t1, v, &tret, CV_NORMAL);

        long nst = 0, netf = 0, nncf = 0;
        CVodeGetNumSteps(mem, &nst);
        CVodeGetNumErrTestFails(mem, &netf);
        CVodeGetNumNonlinSolvConvFails(mem, &nncf);
        if ((size_t)nst > run->stats->steps)
            run->stats->steps = (size_t)nst;
        run->stats->accepted += (uint64_t)nst;
        run->stats->rejected += (uint64_t)netf + (uint64_t)nncf;

        if (flag < 0 || s.fatal) {
            st = cv_failure(run, method, mem, &s, flag, row);
            goto done;
        }
    }

done:
    CVodeFree(&mem);
    SUNNonlinSolFree(nls);
    SUNLinSolFree(ls);
    SUNMatDestroy(A);
    diffsde_i_sun_end(&sunctx, &v);
    return st;
}

static int cv_solve_adams(diffsde_i_oderun *run)
{
    return cv_solve(run, CV_ADAMS, "cvode-adams");
}

static int cv_solve_bdf(diffsde_i_oderun *run)
{
    return cv_solve(run, CV_BDF, "cvode-bdf");
}

const diffsde_i_integrator diffsde_i_integrator_cvode_adams = {
    .method = DIFFSDE_ODE_CVODE_ADAMS,
    .name = "cvode-adams",
    .order = 12,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = diffsde_i_sun_work_size,
    .solve = cv_solve_adams,
};

const diffsde_i_integrator diffsde_i_integrator_cvode_bdf = {
    .method = DIFFSDE_ODE_CVODE_BDF,
    .name = "cvode-bdf",
    .order = 5,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = diffsde_i_sun_work_size,
    .solve = cv_solve_bdf,
};
