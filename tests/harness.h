/* harness.h — the tiny test harness every graft test uses: CHECK macros that count failures,
 * say what differed and by how much, and a closing "N passed, M failed" line. */
#ifndef GR_HARNESS_H
#define GR_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int th_pass, th_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) th_pass++;                                                                       \
        else {                                                                                     \
            th_fail++;                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Max |a-b| must be <= atol + rtol*|b| elementwise; reports the worst element. */
static inline int th_close(const float *a, const float *b, long n, double rtol, double atol,
                           const char *what)
{
    long worst = -1;
    double worst_excess = 0, maxabs = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxabs || isnan(d)) maxabs = d;
        double excess = d - (atol + rtol * fabs((double)b[i]));
        if (excess > worst_excess || isnan(d)) {
            worst_excess = isnan(d) ? INFINITY : excess;
            worst = i;
        }
    }
    if (worst >= 0) {
        th_fail++;
        fprintf(stderr, "FAIL %s: element %ld: got %.9g, expected %.9g (max abs diff %.3g)\n", what,
                worst, a[worst], b[worst], maxabs);
        return 0;
    }
    th_pass++;
    return 1;
}

static inline int th_finish(void)
{
    printf("%d passed, %d failed\n", th_pass, th_fail);
    return th_fail ? 1 : 0;
}

#endif
