/* test_op_table.c — walks the op table (gr_op_at) and fails for every op with a backward that
 * no gradient test checks.
 *
 * The gradient tests (tests/test_grad_*.c) are linked in here as suites, each one's main renamed
 * gc_suite_<name> by tests/CMakeLists.txt, which also lists them in GRAD_SUITES. They run first,
 * as they do alone; gradcheck.h records each op whose backward gc_check or gc_compare_kernels
 * checked (or_cover in oprun.c), and so does a suite that checks an op its own way. Then every row
 * of the table with a backward must have been covered, and every covered name must be a row with
 * a backward. A suite that fails fails this test too. */
#include "harness.h"
#include "oprun.h"

#include <string.h>

#define X(name) int gc_suite_##name(void);
GRAD_SUITES
#undef X

int main(void)
{
    int failed_suites = 0;
#define X(name)                                                                                    \
    if (gc_suite_##name() != 0) {                                                                  \
        fprintf(stderr, "FAIL gradient suite %s\n", #name);                                        \
        failed_suites++;                                                                           \
    }
    GRAD_SUITES
#undef X
    CHECK(failed_suites == 0, "%d gradient suites failed", failed_suites);

    int rows = gr_op_count(), with_bwd = 0;
    for (int i = 0; i < rows; i++) {
        const gr_opdef *d = gr_op_at(i);
        CHECK(d && d->name && gr_op_find(d->name, gr_op_domain(d)) == d,
              "row %d: found by its name and domain", i);
        if (!d || !d->backward) continue;
        with_bwd++;
        CHECK(or_covered(d->name), "%s has a backward but no gradient test checks it", d->name);
    }
    /* and the flags of the rows the executor wraps */
    for (int i = 0; i < rows; i++) {
        const gr_opdef *d = gr_op_at(i);
        if (d->flags & GR_OPF_FLAT)
            CHECK(gr_op_runner(d) == &gr_op_flat && !(d->flags & GR_OPF_LAYOUT),
                  "%s: a flat row runs through flat.c", d->name);
        else CHECK(gr_op_runner(d) == d, "%s: runs as it is", d->name);
    }
    printf("%d ops, %d with a backward\n", rows, with_bwd);
    return th_finish();
}
