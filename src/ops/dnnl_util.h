/* dnnl_util.h — the oneDNN engine and stream a model's kernels share, and small helpers. */
#ifndef GR_DNNL_UTIL_H
#define GR_DNNL_UTIL_H

#include "ops.h"
#include <dnnl.h>

struct gr_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};

int gr_dnnl_new(gr_dnnl **out);
void gr_dnnl_free(gr_dnnl *d);
/* Plain row-major memory descriptor for an f32 tensor of the given shape. */
int gr_dnnl_plain_md(dnnl_memory_desc_t *md, const gr_shape *s);
/* Turns a oneDNN status into a graft error naming the node and the call. */
int gr_dnnl_check(const gr_opctx *c, dnnl_status_t st, const char *what);

#endif
