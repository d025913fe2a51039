/*
 * Status names and descriptions. The enum in diffsde/common.h is the public list; this table
 * adds the text, and a static assertion per row ties each row to the enum's pinned value.
 */
#include "diffsde/common.h"

#define STATUS_TABLE(X)                                                                         \
    X(DIFFSDE_OK, 0, "success")                                                                 \
    X(DIFFSDE_ENOMEM, -1, "out of memory")                                                      \
    X(DIFFSDE_ENULL, -2, "a required pointer argument is NULL")                                 \
    X(DIFFSDE_EPARAM, -3, "invalid parameter value")                                            \
    X(DIFFSDE_EDOM, -4, "argument outside the domain of the function")                          \
    X(DIFFSDE_ESIZE, -5, "invalid or overflowing size")                                         \
    X(DIFFSDE_ECALLBACK, -6, "a user callback reported failure")                                \
    X(DIFFSDE_ENONFINITE, -7, "a NaN or infinite value was produced")                           \
    X(DIFFSDE_EINCONSISTENT, -8, "the user-defined SDE violates its defining identities")       \
    X(DIFFSDE_ESTATE, -9, "the object is not in a state that allows this call")                 \
    X(DIFFSDE_EUNSUPPORTED, -10, "the operation is not supported by this object")               \
    X(DIFFSDE_EIO, -11, "input/output failure")                                                 \
    X(DIFFSDE_EFORMAT, -12, "malformed input")                                                  \
    X(DIFFSDE_ECONVERGENCE, -13, "an iteration failed to converge")                             \
    X(DIFFSDE_ERANGE, -14, "an index or counter exceeds its documented range")                  \
    X(DIFFSDE_ERETRY, -15, "a callback reported a recoverable failure (retry with a smaller step)")

#define PINNED(name, value, text) _Static_assert(name == value, #name " must stay " #value);
STATUS_TABLE(PINNED)
#undef PINNED

const char *diffsde_strerror(int status)
{
    switch (status) {
#define TEXT(name, value, text) \
    case value:                 \
        return text;
        STATUS_TABLE(TEXT)
#undef TEXT
    default:
        return "unknown status";
    }
}

const char *diffsde_status_name(int status)
{
    switch (status) {
#define NAME(name, value, text) \
    case value:                 \
        return #name;
        STATUS_TABLE(NAME)
#undef NAME
    default:
        return "DIFFSDE_UNKNOWN";
    }
}
