/* diffsde version: library (run time) and header (compile time) versions. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "diffsde.h"

int cli_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: diffsde version\n\nPrints the version of the linked library and of the "
               "headers the command was built with.\n\noptions:\n  --help   this text\n\n"
               "exit status: 0 success, 1 the library and the headers differ, 2 usage "
               "error.\n\nexample:\n  diffsde version\n");
        return CLI_OK;
    }
    if (argc > 1) {
        cli_error("version", "unexpected argument '%s' (diffsde version takes none)", argv[1]);
        return CLI_USAGE;
    }
    printf("diffsde %s (library %s)\n", DIFFSDE_VERSION_STRING, diffsde_version_string());
    return diffsde_version_number() == DIFFSDE_VERSION_NUMBER ? CLI_OK : CLI_FAILED;
}
