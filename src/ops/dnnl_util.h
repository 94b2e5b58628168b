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
/* The memory descriptor of a tensor: its layout, or plain row-major. */
int gr_dnnl_md_of(const gr_tensor *t, dnnl_memory_desc_t *md);
/* Both plain, or both in the same oneDNN layout. */
int gr_dnnl_same_layout(const gr_tensor *a, const gr_tensor *b);
/* Marks t as stored in layout md (kept by the caller for the plan's lifetime); a plain md
 * leaves t plain. */
void gr_dnnl_set_layout(gr_tensor *t, const dnnl_memory_desc_t *md);
/* A primitive for op_desc with a user scratchpad; *prim NULL (GRAFT_OK) if oneDNN declines. */
int gr_dnnl_make(gr_opctx *c, const void *op_desc, dnnl_primitive_t *prim, dnnl_memory_t *spad);
/* A backward primitive for bwd_desc, with the forward primitive descriptor of fwd_desc as its
 * hint and a user scratchpad (sized into c->scratch_bytes, at c->scratch like forward's: the
 * two never run at once). *prim NULL (GRAFT_OK) if oneDNN declines. */
int gr_dnnl_make_bwd(gr_opctx *c, const void *fwd_desc, const void *bwd_desc,
                     dnnl_primitive_t *prim, dnnl_memory_t *spad);
/* A oneDNN memory object (data set at run time) for a plain f32 tensor of the given shape. */
int gr_dnnl_plain_mem(gr_opctx *c, dnnl_memory_t *m, const gr_shape *s);
/* Turns a oneDNN status into a graft error naming the node and the call. */
int gr_dnnl_check(const gr_opctx *c, dnnl_status_t st, const char *what);

#endif
