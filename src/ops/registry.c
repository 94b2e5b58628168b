/* registry.c — joins the family tables into one lookup by ONNX op type. */
#include "ops.h"

#include <string.h>

static const gr_opdef *const families[] = {
    gr_ops_elementwise, gr_ops_conv,   gr_ops_pool,   gr_ops_norm,  gr_ops_matmul,
    gr_ops_shape,       gr_ops_reduce, gr_ops_resize, gr_ops_graft,
};
#define NFAMILIES (int)(sizeof families / sizeof *families)

const gr_opdef *gr_op_find(const char *op_type, const char *domain)
{
    int own = domain && strcmp(domain, GR_DOMAIN_GRAFT) == 0;
    if (!own && domain && domain[0] && strcmp(domain, "ai.onnx") != 0) return NULL;
    for (int f = 0; f < NFAMILIES; f++)
        for (const gr_opdef *d = families[f]; d->name; d++)
            if (!(d->flags & GR_OPF_GRAFT_DOMAIN) == !own && strcmp(d->name, op_type) == 0)
                return d;
    return NULL;
}

/* Elementwise ops that keep zero padding finite run through flat.c, so that they take tensors
 * in oneDNN layouts too. */
const gr_opdef *gr_op_runner(const gr_opdef *row)
{
    return row && (row->flags & GR_OPF_FLAT) ? &gr_op_flat : row;
}

int gr_op_count(void)
{
    int n = 0;
    for (int f = 0; f < NFAMILIES; f++)
        for (const gr_opdef *d = families[f]; d->name; d++) n++;
    return n;
}

const gr_opdef *gr_op_at(int i)
{
    for (int f = 0; f < NFAMILIES; f++)
        for (const gr_opdef *d = families[f]; d->name; d++)
            if (i-- == 0) return d;
    return NULL;
}
