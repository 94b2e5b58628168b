/* data_ref.h — what the dataset tests share: running scripts/data_reference.py (Python's own
 * readers: torchvision, numpy, csv, os.walk) and reading its stdout. Include after defining
 * _POSIX_C_SOURCE (popen). GRAFT_SOURCE_DIR (ctest sets it) is the source tree. */
#ifndef GR_TEST_DATA_REF_H
#define GR_TEST_DATA_REF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs the reference script with the given arguments; returns its stdout (malloc'd). A script
 * that cannot run or fails ends the test (exit 2): there is nothing to compare against. */
static char *py(const char *fmt, ...)
{
    const char *src = getenv("GRAFT_SOURCE_DIR");
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/data_reference.py %s", src ? src : "..",
             args);
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "cannot run %s\n", cmd);
        exit(2);
    }
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    if (pclose(p) != 0) {
        fprintf(stderr, "reference failed: %s\n", cmd);
        exit(2);
    }
    return buf;
}

#endif
