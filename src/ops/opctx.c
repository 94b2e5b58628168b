/* opctx.c — helpers shared by op implementations: attributes, validation, broadcasting. */
#include "ops.h"

#include <inttypes.h>
#include <omp.h>
#include <string.h>

int gr_op_err(const gr_opctx *c, int status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gr_err(status, "node '%s' (%s): %s", c->name, c->op_type, msg);
}

const gr_attr *gr_attr_get(const gr_opctx *c, const char *name)
{
    for (int i = 0; i < c->nattr; i++)
        if (strcmp(c->attrs[i].name, name) == 0) return &c->attrs[i];
    return NULL;
}

int64_t gr_attr_int(const gr_opctx *c, const char *name, int64_t def)
{
    const gr_attr *a = gr_attr_get(c, name);
    return a && a->type == GR_AT_INT ? a->i : def;
}

float gr_attr_float(const gr_opctx *c, const char *name, float def)
{
    const gr_attr *a = gr_attr_get(c, name);
    if (a && a->type == GR_AT_FLOAT) return a->f;
    if (a && a->type == GR_AT_INT) return (float)a->i;
    return def;
}

const char *gr_attr_str(const gr_opctx *c, const char *name, const char *def)
{
    const gr_attr *a = gr_attr_get(c, name);
    return a && a->type == GR_AT_STRING ? a->s : def;
}

int gr_attr_ints(const gr_opctx *c, const char *name, int64_t *out, int max)
{
    const gr_attr *a = gr_attr_get(c, name);
    if (!a || a->type != GR_AT_INTS) return -1;
    int n = a->n < max ? a->n : max;
    for (int i = 0; i < n; i++) out[i] = a->ints[i];
    return a->n;
}

int gr_op_check_arity(const gr_opctx *c, int min_in, int max_in, int min_out, int max_out)
{
    int nin = c->nin;
    while (nin > 0 && !c->in[nin - 1]) nin--; /* trailing absent optionals do not count */
    if (nin < min_in || c->nin > max_in)
        return gr_op_err(c, GRAFT_E_FORMAT, "has %d inputs, expected %d to %d", c->nin, min_in,
                         max_in);
    if (c->nout < min_out || c->nout > max_out)
        return gr_op_err(c, GRAFT_E_FORMAT, "has %d outputs, expected %d to %d", c->nout, min_out,
                         max_out);
    for (int i = 0; i < min_in; i++)
        if (!c->in[i]) return gr_op_err(c, GRAFT_E_FORMAT, "required input %d is missing", i);
    return GRAFT_OK;
}

int gr_op_check_dtype(const gr_opctx *c, int i, const int *dtypes)
{
    if (i >= c->nin || !c->in[i]) return gr_op_err(c, GRAFT_E_FORMAT, "input %d is missing", i);
    for (const int *d = dtypes; *d; d++)
        if (c->in[i]->dtype == (gr_dtype)*d) return GRAFT_OK;
    return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input %d has type %s, which this op does not support",
                     i, gr_dtype_name(c->in[i]->dtype));
}

int gr_input_ints(const gr_opctx *c, int i, int64_t *out, int max)
{
    const gr_tensor *t = i < c->nin ? c->in[i] : NULL;
    if (!t) return -gr_op_err(c, GRAFT_E_FORMAT, "input %d is missing", i);
    if ((t->dtype == GR_I64 || t->dtype == GR_I32) && gr_numel(&t->shape) == 0) return 0;
    if (!t->data)
        return -gr_op_err(
            c, GRAFT_E_UNSUPPORTED,
            "input %d must be known when the model is planned (a constant or computed "
            "from shapes); graft does not support data-dependent shapes here",
            i);
    if (t->dtype != GR_I64 && t->dtype != GR_I32)
        return -gr_op_err(c, GRAFT_E_FORMAT, "input %d must be int64, got %s", i,
                          gr_dtype_name(t->dtype));
    int64_t n = gr_numel(&t->shape);
    if (n > max)
        return -gr_op_err(c, GRAFT_E_SHAPE, "input %d has %" PRId64 " elements, at most %d allowed",
                          i, n, max);
    for (int64_t k = 0; k < n; k++)
        out[k] = t->dtype == GR_I64 ? ((const int64_t *)t->data)[k] : ((const int32_t *)t->data)[k];
    return (int)n;
}

int gr_input_scalar(const gr_opctx *c, int i, double *out)
{
    const gr_tensor *t = i < c->nin ? c->in[i] : NULL;
    if (!t) return gr_op_err(c, GRAFT_E_FORMAT, "input %d is missing", i);
    if (!t->data) return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input %d must be a constant", i);
    if (gr_numel(&t->shape) != 1)
        return gr_op_err(c, GRAFT_E_SHAPE, "input %d must be a scalar", i);
    *out = gr_get_f64(t, 0);
    return GRAFT_OK;
}

int gr_op_axis(const gr_opctx *c, int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= (rank ? rank : 1))
        return gr_op_err(c, GRAFT_E_SHAPE, "axis %" PRId64 " is out of range for rank %d", axis,
                         rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return GRAFT_OK;
}

int gr_broadcast_shape(const gr_opctx *c, const gr_shape *a, const gr_shape *b, gr_shape *out)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    gr_shape s = { r, { 0 } };
    for (int i = 0; i < r; i++) {
        int64_t da = i < r - a->rank ? 1 : a->d[i - (r - a->rank)];
        int64_t db = i < r - b->rank ? 1 : b->d[i - (r - b->rank)];
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            return gr_op_err(c, GRAFT_E_SHAPE, "shapes %s and %s cannot be broadcast",
                             gr_shape_str(a, sa, sizeof sa), gr_shape_str(b, sb, sizeof sb));
        }
        s.d[i] = da == 1 ? db : da;
    }
    *out = s;
    return GRAFT_OK;
}

int gr_op_set_out(gr_opctx *c, int i, int dtype, const gr_shape *s)
{
    if (i >= c->nout) return GRAFT_OK;
    for (int k = 0; k < s->rank; k++)
        if (s->d[k] < 0)
            return gr_op_err(c, GRAFT_E_SHAPE, "output %d would have a negative dimension", i);
    int64_t n = gr_numel_checked(s, gr_dtype_size(dtype));
    if (n < 0)
        return gr_op_err(c, GRAFT_E_SHAPE, "output %d would be too large (its size overflows)", i);
    /* here, before a prepare builds tables sized by its output (Resize's index maps...) */
    int64_t bytes = n * (int64_t)gr_dtype_size(dtype);
    int st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, bytes,
                            "node '%s' (%s): output %d needs %lld bytes", c->name, c->op_type, i,
                            (long long)bytes);
    if (st) return st;
    c->out[i]->dtype = (gr_dtype)dtype;
    c->out[i]->shape = *s;
    c->out[i]->layout = NULL;
    c->out[i]->bytes = 0;
    return GRAFT_OK;
}

void *gr_op_params(gr_opctx *c, size_t n)
{
    c->params = gr_arena_alloc(c->arena, n);
    return c->params;
}

int gr_op_check_attrs(const gr_opctx *c, const char *const *known)
{
    for (int i = 0; i < c->nattr; i++) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, c->attrs[i].name) == 0;
        if (!ok)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s' (opset %d)",
                             c->attrs[i].name, c->opset);
    }
    return GRAFT_OK;
}

int gr_op_reject_attr(const gr_opctx *c, const char *name, int cond)
{
    if (cond && gr_attr_get(c, name))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "attribute '%s' is not part of %s in opset %d",
                         name, c->op_type, c->opset);
    return GRAFT_OK;
}

int gr_op_ints_attr(const gr_opctx *c, const char *name, int n, int64_t def, int64_t lo,
                    int64_t *out)
{
    int got = gr_attr_ints(c, name, out, 2 * 3);
    if (got < 0) {
        for (int i = 0; i < n; i++) out[i] = def;
        return GRAFT_OK;
    }
    if (got != n)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute '%s' has %d values, expected %d", name, got,
                         n);
    for (int i = 0; i < n; i++)
        if (out[i] < lo || out[i] > (int64_t)1 << 24)
            return gr_op_err(c, GRAFT_E_FORMAT,
                             "attribute '%s' has value %lld, must be in [%lld, 16777216]", name,
                             (long long)out[i], (long long)lo);
    return GRAFT_OK;
}

int gr_op_threads(int64_t work) { return work < (1 << 15) ? 1 : omp_get_max_threads(); }

void gr_op_zero_grads(const gr_opctx *c, gr_tensor *const *din)
{
    for (int i = 0; i < c->nin; i++)
        if (din[i]) memset(din[i]->data, 0, gr_tensor_bytes(din[i]));
}
