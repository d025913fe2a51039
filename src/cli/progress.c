/*
 * The progress line of long runs: on stderr, only when stderr is a terminal (a log file or a
 * pipe gets nothing, so scripts see clean output), redrawn in place with '\r' at most five
 * times a second, erased at the end. Shows the fraction done over the whole run, the chunk
 * (when there are several), the step and the time t of the reverse SDE in the current chunk,
 * the score evaluations per sample so far in it, the elapsed time and an estimate of the time
 * left, extrapolated linearly from the fraction done.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define REDRAW_SECONDS 0.2

double cli_now(void)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, int quiet)
{
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && isatty(fileno(stderr));
    p->start = cli_now();
    p->last = p->start - 1.0; /* the first update draws */
}

/* "12.3 s", "4 min 05 s", "1 h 02 min": short and readable. */
static void format_duration(char *buf, size_t len, double s)
{
    if (!(s >= 0))
        snprintf(buf, len, "?");
    else if (s < 60)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, len, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, len, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

void cli_progress_update(cli_progress *p, double fraction, size_t chunk, size_t nchunks,
                         size_t step, double t, double nfe_per_sample, int force)
{
    if (!p->enabled)
        return;
    double now = cli_now();
    if (!force && now - p->last < REDRAW_SECONDS)
        return;
    p->last = now;
    double elapsed = now - p->start;
    char el[32], left[32], part[48] = "", line[200];
    format_duration(el, sizeof el, elapsed);
    if (fraction > 0.005 && fraction <= 1)
        format_duration(left, sizeof left, elapsed * (1 - fraction) / fraction);
    else
        snprintf(left, sizeof left, "?");
    if (nchunks > 1)
        snprintf(part, sizeof part, "chunk %zu/%zu  ", chunk, nchunks);
    int len = snprintf(line, sizeof line,
                       "%5.1f%%  %sstep %zu  t %.4g  NFE/sample %.0f  elapsed %s  left ~%s",
                       100 * fraction, part, step, t, nfe_per_sample, el, left);
    if (len < 0)
        return;
    size_t w = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    /* Pad with spaces over a longer previous line. */
    fprintf(stderr, "\r%s%*s", line, p->width > w ? (int)(p->width - w) : 0, "");
    fflush(stderr);
    p->width = w;
    p->shown = 1;
}

void cli_progress_end(cli_progress *p)
{
    if (!p->enabled || !p->shown)
        return;
    fprintf(stderr, "\r%*s\r", (int)p->width, "");
    fflush(stderr);
    p->shown = 0;
    p->width = 0;
}
