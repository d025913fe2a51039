/**
 * @file diffsde.h
 * @brief Umbrella header of libdiffsde: include this one.
 *
 * Link with `pkg-config --cflags --libs diffsde`.
 */
#ifndef DIFFSDE_H
#define DIFFSDE_H

#include "diffsde/common.h"
#include "diffsde/version.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"
#include "diffsde/sde.h"
#include "diffsde/score.h"
#include "diffsde/gmm.h"
#include "diffsde/io.h"
#include "diffsde/metrics.h"
#include "diffsde/sampler.h"
#include "diffsde/ode.h"
#include "diffsde/likelihood.h"

#endif /* DIFFSDE_H */
