/*
 * The "none" predictor: the state is left as it is (a corrector-only sampler); its mean is the
 * state itself, so reference mode returns x after the last corrector.
 */
#include <string.h>

#include "sampler/stepper.h"

static int none_step(diffsde_i_level *lv, double *x, double *xmean)
{
    memcpy(xmean, x, lv->n * lv->d * sizeof *x);
    return DIFFSDE_OK;
}

const diffsde_i_predictor_type diffsde_i_predictor_none = {"none", 0u, none_step};
