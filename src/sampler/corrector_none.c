/* The "none" corrector: leaves x unchanged, draws no noise, calls no model. */
#include "sampler/stepper.h"

static int none_step(diffsde_i_level *lv, size_t k, double *x)
{
    (void)lv, (void)k, (void)x;
    return DIFFSDE_OK;
}

const diffsde_i_corrector_type diffsde_i_corrector_none = {"none", 0u, none_step};
