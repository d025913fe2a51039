/*
 * What the SUNDIALS back ends (cvode.c, arkode_dp.c) share: the state their right-hand side
 * sees, the right-hand side itself, an error handler that keeps SUNDIALS' message instead
 * of printing it, the scratch they ask for, and the creation of the context and the vector
 * that wraps run->y in place.
 */
#ifndef DIFFSDE_SUNDIALS_GLUE_H
#define DIFFSDE_SUNDIALS_GLUE_H

#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>

#include "ode/ode_impl.h"

typedef struct diffsde_i_sun_state {
    diffsde_i_oderun *run;
    size_t m;            /* rows per right-hand side: 1 (per sample) or n (whole batch) */
    const size_t *rows;  /* which rows */
    double *tv;          /* m copies of t for the system (run->work) */
    int status;          /* our status from the last failed right-hand side, else OK */
    int fatal;           /* a right-hand side failed fatally (status says how) */
    int last_failed;     /* the latest right-hand side failed */
    char sunmsg[256];    /* SUNDIALS' last message */
} diffsde_i_sun_state;

/* The right-hand side for user data s: 0, 1 for a recoverable failure (SUNDIALS then tries
 * a smaller step), −1 for a fatal one. A fatal failure is final: later calls fail at once
 * without calling the model, because CVODE 6.4.1's fixed-point solver does not always stop
 * on one (it may carry on and even report success); the solvers check s->fatal. */
int diffsde_i_sun_rhs(realtype t, N_Vector y, N_Vector ydot, void *user);

/* An error handler (data: the state) that keeps the message in s->sunmsg. */
void diffsde_i_sun_errh(int code, const char *module, const char *function, char *msg,
                        void *data);

/* Scratch: the m per-row times. */
int diffsde_i_sun_work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len);

/* A SUNDIALS context and a serial vector of length len wrapping run->y; on failure both are
 * freed and the status is DIFFSDE_ENOMEM with a message naming `method`. */
int diffsde_i_sun_begin(diffsde_i_oderun *run, const char *method, size_t len,
                        SUNContext *sunctx, N_Vector *v);

/* Free what diffsde_i_sun_begin made (NULLs are fine). */
void diffsde_i_sun_end(SUNContext *sunctx, N_Vector *v);

/* "sample <row>", or "whole batch of <n>" for row SIZE_MAX, into who. */
void diffsde_i_sun_who(const diffsde_i_oderun *run, size_t row, char *who, size_t len);

#endif /* DIFFSDE_SUNDIALS_GLUE_H */
