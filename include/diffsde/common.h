/**
 * @file diffsde/common.h
 * @brief Status codes, the export macro and the small types every module shares.
 *
 * Every diffsde function that can fail returns an `int` status: ::DIFFSDE_OK (0) on success or
 * one of the negative codes below. The numeric values are pinned: they never change between
 * releases, so a host code may store or compare them. A short static description of a code
 * comes from diffsde_strerror(); the detailed message of the last failure (which argument,
 * which sample, which t) comes from diffsde_errmsg() on the context that saw it.
 */
#ifndef DIFFSDE_COMMON_H
#define DIFFSDE_COMMON_H

#include <stddef.h>
#include <stdint.h>

/** Marks a function as part of the library's exported API (symbol visibility). */
#if defined(_WIN32) && defined(DIFFSDE_BUILDING)
#define DIFFSDE_API __declspec(dllexport)
#elif defined(_WIN32)
#define DIFFSDE_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define DIFFSDE_API __attribute__((visibility("default")))
#else
#define DIFFSDE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Status codes returned by diffsde functions. The values are pinned: they never change, and new
 * codes are only appended with new values. The description of each is what diffsde_strerror()
 * returns.
 */
typedef enum diffsde_status {
    DIFFSDE_OK = 0,              /**< success */
    DIFFSDE_ENOMEM = -1,         /**< out of memory */
    DIFFSDE_ENULL = -2,          /**< a required pointer argument is NULL */
    DIFFSDE_EPARAM = -3,         /**< invalid parameter value */
    DIFFSDE_EDOM = -4,           /**< argument outside the domain of the function (e.g. t outside [0, T]) */
    DIFFSDE_ESIZE = -5,          /**< invalid or overflowing size (e.g. d = 0) */
    DIFFSDE_ECALLBACK = -6,      /**< a user callback reported a fatal failure */
    DIFFSDE_ENONFINITE = -7,     /**< a NaN or infinite value was produced */
    DIFFSDE_EINCONSISTENT = -8,  /**< a user-defined SDE violates its defining identities */
    DIFFSDE_ESTATE = -9,         /**< the object is not in a state that allows this call */
    DIFFSDE_EUNSUPPORTED = -10,  /**< the operation is not supported by this object */
    DIFFSDE_EIO = -11,           /**< input/output failure */
    DIFFSDE_EFORMAT = -12,       /**< malformed input */
    DIFFSDE_ECONVERGENCE = -13,  /**< an iteration failed to converge */
    DIFFSDE_ERANGE = -14,        /**< an index or counter exceeds its documented range */
    DIFFSDE_ERETRY = -15         /**< a callback reported a recoverable failure (retry with a smaller step) */
} diffsde_status;

/** The most negative status code defined by this version of the headers. */
#define DIFFSDE_STATUS_LAST DIFFSDE_ERETRY

/**
 * Static description of a status code.
 *
 * @param status any int; unknown values give "unknown status".
 * @return a string with static storage duration; never NULL, never to be freed.
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API const char *diffsde_strerror(int status);

/**
 * Symbolic name of a status code, e.g. "DIFFSDE_EPARAM".
 *
 * @param status any int; unknown values give "DIFFSDE_UNKNOWN".
 * @return a string with static storage duration; never NULL.
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API const char *diffsde_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_COMMON_H */
