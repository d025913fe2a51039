/*
 * The registry: the stepper table of each predictor and corrector enum value. Adding a method
 * is one file with its table, one enum value in sampler.h and one row here.
 */
#include "sampler/stepper.h"

static const diffsde_i_predictor_type *const predictors[] = {
    [DIFFSDE_PREDICTOR_NONE] = &diffsde_i_predictor_none,
    [DIFFSDE_PREDICTOR_EULER_MARUYAMA] = &diffsde_i_predictor_euler_maruyama,
    [DIFFSDE_PREDICTOR_REVERSE_DIFFUSION] = &diffsde_i_predictor_reverse_diffusion,
    [DIFFSDE_PREDICTOR_ANCESTRAL] = &diffsde_i_predictor_ancestral,
};

static const diffsde_i_corrector_type *const correctors[] = {
    [DIFFSDE_CORRECTOR_NONE] = &diffsde_i_corrector_none,
    [DIFFSDE_CORRECTOR_LANGEVIN] = &diffsde_i_corrector_langevin,
    [DIFFSDE_CORRECTOR_ALD] = &diffsde_i_corrector_ald,
    [DIFFSDE_CORRECTOR_MALA] = &diffsde_i_corrector_mala,
};

const diffsde_i_predictor_type *diffsde_i_predictor_lookup(diffsde_predictor p)
{
    if ((unsigned)p >= sizeof predictors / sizeof predictors[0])
        return NULL;
    return predictors[p];
}

const diffsde_i_corrector_type *diffsde_i_corrector_lookup(diffsde_corrector c)
{
    if ((unsigned)c >= sizeof correctors / sizeof correctors[0])
        return NULL;
    return correctors[c];
}
