/* The flow-ODE integrators by method; the one place that lists them. */
#include "ode/ode_impl.h"

static const diffsde_i_integrator *const table[DIFFSDE_ODE_NMETHODS] = {
    [DIFFSDE_ODE_EULER] = &diffsde_i_integrator_euler,
    [DIFFSDE_ODE_HEUN] = &diffsde_i_integrator_heun,
    [DIFFSDE_ODE_RK4] = &diffsde_i_integrator_rk4,
    [DIFFSDE_ODE_RK45] = &diffsde_i_integrator_rk45,
    [DIFFSDE_ODE_CVODE_ADAMS] = &diffsde_i_integrator_cvode_adams,
    [DIFFSDE_ODE_CVODE_BDF] = &diffsde_i_integrator_cvode_bdf,
    [DIFFSDE_ODE_ARKODE_DP] = &diffsde_i_integrator_arkode_dp,
    [DIFFSDE_ODE_GSL_RKF45] = &diffsde_i_integrator_gsl_rkf45,
    [DIFFSDE_ODE_GSL_RK8PD] = &diffsde_i_integrator_gsl_rk8pd,
    [DIFFSDE_ODE_GSL_MSADAMS] = &diffsde_i_integrator_gsl_msadams,
    [DIFFSDE_ODE_DDIM] = &diffsde_i_integrator_ddim,
    [DIFFSDE_ODE_DPM_SOLVER_PP_2M] = &diffsde_i_integrator_dpm_solver_pp_2m,
    [DIFFSDE_ODE_EDM_HEUN] = &diffsde_i_integrator_edm_heun,
};

const diffsde_i_integrator *diffsde_i_integrator_get(diffsde_ode_method m)
{
    if ((int)m < 0 || (int)m >= DIFFSDE_ODE_NMETHODS)
        return NULL;
    return table[m];
}
