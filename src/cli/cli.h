/*
 * The diffsde command: a thin shell over the library. Each subcommand is one file exporting
 * one entry point; main.c holds the table. Exit codes: 0 success, 1 the run failed,
 * 2 usage error.
 */
#ifndef DIFFSDE_CLI_H
#define DIFFSDE_CLI_H

#include <stdio.h>

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cli_demo(int argc, char **argv);
int cli_version(int argc, char **argv);

/* Print "diffsde <sub>: <message>" on stderr (printf-style). */
void cli_error(const char *sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* DIFFSDE_CLI_H */
