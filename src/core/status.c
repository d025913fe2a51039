/* Status names and static descriptions, generated from the one list in diffsde/common.h. */
#include "diffsde/common.h"

const char *diffsde_strerror(int status)
{
    switch (status) {
#define DIFFSDE_STATUS_TEXT_(name, value, text) \
    case value:                                 \
        return text;
        DIFFSDE_STATUS_MAP(DIFFSDE_STATUS_TEXT_)
#undef DIFFSDE_STATUS_TEXT_
    default:
        return "unknown status";
    }
}

const char *diffsde_status_name(int status)
{
    switch (status) {
#define DIFFSDE_STATUS_NAME_(name, value, text) \
    case value:                                 \
        return #name;
        DIFFSDE_STATUS_MAP(DIFFSDE_STATUS_NAME_)
#undef DIFFSDE_STATUS_NAME_
    default:
        return "DIFFSDE_UNKNOWN";
    }
}
