/* dnnl_util.c — oneDNN engine/stream lifetime and helpers. */
#include "dnnl_util.h"

int gr_dnnl_new(gr_dnnl **out)
{
    gr_dnnl *d = gr_calloc(1, sizeof *d);
    if (!d) return GRAFT_E_NOMEM;
    if (dnnl_engine_create(&d->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags) != dnnl_success) {
        gr_dnnl_free(d);
        return gr_err(GRAFT_E_INTERNAL, "oneDNN: could not create the CPU engine");
    }
    *out = d;
    return GRAFT_OK;
}

void gr_dnnl_free(gr_dnnl *d)
{
    if (!d) return;
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->engine) dnnl_engine_destroy(d->engine);
    free(d);
}

int gr_dnnl_plain_md(dnnl_memory_desc_t *md, const gr_shape *s)
{
    dnnl_dims_t dims, strides;
    int64_t stride = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        dims[i] = s->d[i];
        strides[i] = stride;
        stride *= s->d[i];
    }
    return dnnl_memory_desc_init_by_strides(md, s->rank, dims, dnnl_f32, strides) == dnnl_success
               ? GRAFT_OK : gr_err(GRAFT_E_INTERNAL, "oneDNN: bad memory descriptor");
}

int gr_dnnl_check(const gr_opctx *c, dnnl_status_t st, const char *what)
{
    if (st == dnnl_success) return GRAFT_OK;
    return gr_op_err(c, st == dnnl_out_of_memory ? GRAFT_E_NOMEM : GRAFT_E_UNSUPPORTED,
                     "oneDNN %s failed (status %d)", what, (int)st);
}
