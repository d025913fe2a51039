/* Entry point of the diffsde command: dispatch to one subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const cli_command commands[] = {
    {"sample", "draw samples with a reverse-time SDE (pc, adaptive-sde) or the flow ODE",
     cli_sample},
    {"loglik", "exact log-likelihoods of data through the probability-flow ODE", cli_loglik},
    {"encode", "map data at eps to latents at T with the probability-flow ODE", cli_encode},
    {"decode", "map latents at T back to data at eps (the inverse of encode)", cli_decode},
    {"gmm", "the exact Gaussian-mixture oracle: describe, sample, score, logpdf", cli_gmm},
    {"demo", "sample ring8 and measure the samples against the exact density", cli_demo},
    {"version", "print the library and header versions", cli_version},
};

void cli_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "diffsde %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: diffsde <command> [options]   (diffsde <command> --help for details)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit status: 0 success, 1 the run failed, 2 usage error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cli_version(1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "diffsde: unknown command '%s' (try: diffsde --help)\n", argv[1]);
    return CLI_USAGE;
}
