/*
 * The contract between the ODE driver, the systems it integrates and the integrators.
 *
 * Integrators never see the model: they solve n independent initial-value problems
 * y' = F(t, y), each a row of width w (the flow ODE: w = d; the likelihood's augmented ODE:
 * w = d + 1), through a system's right-hand side. Only the few-step methods, whose formulas
 * are written in the data prediction x̂0, reach through to the flow (diffsde_i_flow_x0()).
 */
#ifndef DIFFSDE_ODE_IMPL_H
#define DIFFSDE_ODE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "diffsde/ode.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

struct diffsde_i_oderun;

/* A batch of n problems with rows of width w. */
typedef struct diffsde_i_odesys {
    size_t w;
    /* F for m rows: row r of y (m × w) is problem rows[r] (0 ≤ rows[r] < n) at time t[r];
     * writes dy (m × w, never aliasing y). Counts its score evaluations in run->stats
     * (score_calls, score_evals). Returns DIFFSDE_OK, or a status whose message is on
     * run->ctx and names the problem (rows[r], within the batch) and t: DIFFSDE_ERETRY
     * (recoverable: adaptive methods shrink the step), DIFFSDE_ENONFINITE (NaN/Inf from the
     * model — also recoverable for adaptive methods), anything else fatal. */
    int (*rhs)(void *self, struct diffsde_i_oderun *run, size_t m, const size_t *rows,
               const double *t, const double *y, double *dy);
    void *self;
    /* Score evaluations per row per rhs call (1 for the flow), added to run->nfe[row]. */
    unsigned evals_per_rhs;
} diffsde_i_odesys;

/* The flow system: F(t, x) = f(t) x − ½ g(t)² s(x, t). Its rhs needs no scratch. */
typedef struct diffsde_i_flow {
    diffsde_ctx *ctx; /* where messages go (the integrator's context) */
    const diffsde_sde *sde;
    const diffsde_score *score;
    size_t d;
    diffsde_i_odesys sys; /* w = d, rhs = the flow drift, self = this struct */
} diffsde_i_flow;

/* Initialise fl (no allocation). */
void diffsde_i_flow_init(diffsde_i_flow *fl, diffsde_ctx *ctx, const diffsde_sde *sde,
                         const diffsde_score *score, size_t d);

/* Data prediction x̂0 = (x + σ(t)² s(x, t)) / α(t) for m rows (x0 m × d, not aliasing x),
 * counted like one rhs evaluation of those rows (nfe, score_calls, score_evals); failures as
 * the rhs. For the few-step methods. */
int diffsde_i_flow_x0(diffsde_i_flow *fl, struct diffsde_i_oderun *run, size_t m,
                      const size_t *rows, const double *t, const double *x, double *x0);

/* One solve as the driver hands it to an integrator. */
typedef struct diffsde_i_oderun {
    diffsde_ctx *ctx;
    const char *fname;               /* public entry point, for messages */
    const diffsde_ode_options *opt;  /* resolved: steps ≥ 1, grid concrete, eps concrete */
    const diffsde_sde *sde;
    const diffsde_i_odesys *sys;
    diffsde_i_flow *flow;            /* the flow (few-step methods); NULL for other systems */
    double t0, t1;                   /* integrate from t0 to t1 (t0 ≠ t1, either order) */
    size_t n;                        /* problems */
    double *y;                       /* n × sys->w, states at t0 in, at t1 out */
    const size_t *all_rows;          /* 0, 1, ..., n−1 */
    uint64_t *nfe;                   /* n per-problem score evaluations (zeroed by the driver) */
    diffsde_ode_stats *stats;        /* zeroed by the driver; adaptive integrators set steps,
                                        accepted, rejected (the driver does for fixed grids:
                                        N and N·n on success); systems count score_calls/evals;
                                        the driver sets the rest */
    double *work;                    /* scratch of the size the integrator asked for */
    size_t work_len;
} diffsde_i_oderun;

/* The counted right-hand side every integrator calls: sys->rhs, then nfe[rows[r]] +=
 * sys->evals_per_rhs for every row (also when the call failed, since the model was called). */
int diffsde_i_ode_rhs(diffsde_i_oderun *run, size_t m, const size_t *rows, const double *t,
                      const double *y, double *dy);

/* The first non-finite entry of an m × w array: 1 and its row/column, or 0. */
int diffsde_i_find_nonfinite(size_t m, size_t w, const double *a, size_t *row, size_t *col);

/* Restate the failure on run->ctx as "<fname>: <where>: <previous message>", where `where`
 * is formatted from fmt; a previous message that already starts with "<fname>: " loses that
 * prefix, so the entry point is named once. Returns st. */
int diffsde_i_ode_restate(const diffsde_i_oderun *run, int st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* fixed_grid.c: what the fixed-grid and few-step methods share. */

/* After step i (0-based) of N of a fixed-grid method `name`, ending at t: DIFFSDE_ENONFINITE
 * naming the first sample and coordinate of run->y that is not finite, else DIFFSDE_OK. */
int diffsde_i_ode_step_finite(const diffsde_i_oderun *run, const char *name, size_t i, size_t N,
                              double t);

/* The N + 1 times of run->opt->grid from run->t0 to run->t1 for method `name`, with a
 * failure restated on run->ctx. */
int diffsde_i_ode_grid(diffsde_i_oderun *run, const char *name, size_t N, double *t);

/* What a few-step method works on: the grid's N + 1 nodes with α, σ, λ there, n per-row
 * times and the method's own arrays of n × w, laid out in run->work in that order. */
typedef struct diffsde_i_fewstep {
    size_t N;
    double *t, *alpha, *sigma, *lambda;
    double *tv;
    double *arrays;
} diffsde_i_fewstep;

/* Doubles of scratch for a few-step method with `arrays` arrays of n × w. */
int diffsde_i_fewstep_work_size(const diffsde_ode_options *opt, size_t n, size_t w,
                                size_t arrays, size_t *len);

/* Check that run integrates the flow (DIFFSDE_EUNSUPPORTED otherwise), lay out fs and fill
 * the nodes (DIFFSDE_EDOM where σ = 0 or λ is not finite); failures name the method. */
int diffsde_i_fewstep_begin(diffsde_i_oderun *run, const char *name, diffsde_i_fewstep *fs);

/* x̂0 of every row of x at time t, for step i (0-based) of the method `name`; a model
 * failure is restated with the step. */
int diffsde_i_fewstep_x0(diffsde_i_oderun *run, const char *name, const diffsde_i_fewstep *fs,
                         size_t i, double t, const double *x, double *x0);

/* explicit_rk.c: an explicit Runge–Kutta method in the form Euler, Heun and RK4 share:
 * stage s (0-based) is evaluated at t + c[s] h on y + h a[s] k_{s−1} (only the previous
 * stage, so three arrays of n × w suffice for any number of stages), and y ← y + (h/bden) Σ b[s] k_s,
 * summed in stage order. c[s] = 1 means exactly the next grid time. */
#define DIFFSDE_I_ERK_MAXSTAGES 4
typedef struct diffsde_i_erk_tableau {
    const char *name; /* the method, for messages */
    int stages;       /* 1 .. DIFFSDE_I_ERK_MAXSTAGES */
    double c[DIFFSDE_I_ERK_MAXSTAGES];
    double a[DIFFSDE_I_ERK_MAXSTAGES]; /* a[0] unused */
    double b[DIFFSDE_I_ERK_MAXSTAGES];
    double bden;
} diffsde_i_erk_tableau;

int diffsde_i_erk_work_size(const diffsde_i_erk_tableau *tab, const diffsde_ode_options *opt,
                            size_t n, size_t w, size_t *len);
int diffsde_i_erk_solve(const diffsde_i_erk_tableau *tab, diffsde_i_oderun *run);

enum {
    DIFFSDE_I_ODE_ADAPTIVE = 1u,  /* chooses its steps from rtol/atol; supports whole_batch */
    DIFFSDE_I_ODE_FEWSTEP = 2u,   /* needs run->flow (data prediction); refuses other systems */
    DIFFSDE_I_ODE_OWNMEM = 4u     /* allocates its own solver memory in solve (SUNDIALS, GSL) */
};

typedef struct diffsde_i_integrator {
    diffsde_ode_method method;
    const char *name;
    int order;
    unsigned flags;
    size_t default_steps;            /* fixed-grid / few-step default N (0 for adaptive) */
    diffsde_time_grid default_grid;  /* UNIFORM for adaptive ones (unused) */
    /* Doubles of scratch for n problems of width w (the driver allocates them once and
     * reuses them); DIFFSDE_ESIZE on overflow. */
    int (*work_size)(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len);
    /* Integrate. On failure run->y may be anything: the driver restores it. Messages on
     * run->ctx name the problem, t and the reason. */
    int (*solve)(diffsde_i_oderun *run);
} diffsde_i_integrator;

/* The registry: NULL for an invalid method. */
const diffsde_i_integrator *diffsde_i_integrator_get(diffsde_ode_method m);

extern const diffsde_i_integrator diffsde_i_integrator_euler;
extern const diffsde_i_integrator diffsde_i_integrator_heun;
extern const diffsde_i_integrator diffsde_i_integrator_rk4;
extern const diffsde_i_integrator diffsde_i_integrator_rk45;
extern const diffsde_i_integrator diffsde_i_integrator_cvode_adams;
extern const diffsde_i_integrator diffsde_i_integrator_cvode_bdf;
extern const diffsde_i_integrator diffsde_i_integrator_arkode_dp;
extern const diffsde_i_integrator diffsde_i_integrator_gsl_rkf45;
extern const diffsde_i_integrator diffsde_i_integrator_gsl_rk8pd;
extern const diffsde_i_integrator diffsde_i_integrator_gsl_msadams;
extern const diffsde_i_integrator diffsde_i_integrator_ddim;
extern const diffsde_i_integrator diffsde_i_integrator_dpm_solver_pp_2m;
extern const diffsde_i_integrator diffsde_i_integrator_edm_heun;

/* Workspace kept by an ODE or likelihood object across solves (grown, never shrunk). */
typedef struct diffsde_i_odews {
    double *work;    size_t work_cap;   /* integrator scratch */
    double *backup;  size_t backup_cap; /* copy of y for restoring it on failure */
    uint64_t *nfe;   size_t nfe_cap;
    size_t *rows;    size_t rows_cap;
} diffsde_i_odews;

void diffsde_i_odews_free(diffsde_ctx *ctx, diffsde_i_odews *ws);

/* Validate opt and resolve its defaults into out (steps, grid, eps — default_eps when
 * opt->eps is NaN). DIFFSDE_EPARAM / DIFFSDE_EUNSUPPORTED with the message prefixed fname. */
int diffsde_i_ode_options_resolve(diffsde_ctx *ctx, const char *fname, const diffsde_sde *sde,
                                  const diffsde_ode_options *opt, double default_eps,
                                  diffsde_ode_options *out);

/* The driver: integrate y (n × sys->w) from t0 to t1 with opt->method, timing it and
 * filling stats (nfe_min/max/per_sample, wall_seconds; steps/accepted/rejected from the
 * integrator). On failure y is restored. flow: the flow (NULL for other systems; the
 * few-step methods then refuse with DIFFSDE_EUNSUPPORTED). */
int diffsde_i_ode_integrate(diffsde_ctx *ctx, const char *fname, const diffsde_ode_options *opt,
                            const diffsde_sde *sde, const diffsde_i_odesys *sys,
                            diffsde_i_flow *flow, double t0, double t1, size_t n, double *y,
                            diffsde_i_odews *ws, diffsde_ode_stats *stats);

/* The per-sample nfe of the last integrate are in ws->nfe[0..n−1]. */

#endif /* DIFFSDE_ODE_IMPL_H */
