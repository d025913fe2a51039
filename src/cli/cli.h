/*
 * The diffsde command: a thin shell over the library. Each subcommand is one file exporting
 * one entry point; main.c holds the table. Exit codes: 0 success, 1 the run failed,
 * 2 usage error.
 */
#ifndef DIFFSDE_CLI_H
#define DIFFSDE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "diffsde.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cli_demo(int argc, char **argv);
int cli_gmm(int argc, char **argv);
int cli_version(int argc, char **argv);

/* Print "diffsde <sub>: <message>" on stderr (printf-style). */
void cli_error(const char *sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Parse a finite double / a non-negative integer for option --opt; print the error and
 * return -1 on failure. */
int cli_parse_double(const char *sub, const char *opt, const char *text, double *out);
int cli_parse_u64(const char *sub, const char *opt, const char *text, uint64_t *out);

/* --sde NAME, repeated --sde-param KEY=VALUE, --t T: collected, then turned into an SDE. */
#define CLI_MAX_SDE_PARAMS 8
typedef struct cli_sde_opts {
    const char *name; /* NULL: no SDE (p0 itself) */
    size_t nparams;
    char key_store[CLI_MAX_SDE_PARAMS][32];
    const char *keys[CLI_MAX_SDE_PARAMS];
    double values[CLI_MAX_SDE_PARAMS];
    int have_t;
    double t;
} cli_sde_opts;
int cli_sde_add_param(const char *sub, cli_sde_opts *o, const char *text);
/* Create the SDE (or leave *sde NULL when no --sde was given). Returns a CLI exit code. */
int cli_sde_create(const char *sub, diffsde_ctx *ctx, const cli_sde_opts *o, diffsde_sde **sde);

/* Whether argv[1..] contains --help or -h. */
int cli_wants_help(int argc, char **argv);

#endif /* DIFFSDE_CLI_H */
