/* Run-time version, compiled from the same generated header the user includes. */
#include "diffsde/version.h"

const char *diffsde_version_string(void)
{
    return DIFFSDE_VERSION_STRING;
}

int diffsde_version_number(void)
{
    return DIFFSDE_VERSION_NUMBER;
}
