/* shape.c — ops that move or make data without arithmetic: Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity, Dropout, Transpose, Concat, Split, Slice, Gather, GatherElements, Expand,
 * Tile, DepthToSpace, SpaceToDepth, Shape, Size, ConstantOfShape, Constant and Range.
 * Depends on core only. Elements are copied by their size, so every dtype graft knows works.
 *
 * Most of these ops are one "strided copy": the output is walked in row-major order and each
 * output axis reads the input with its own stride — a permutation for Transpose and
 * DepthToSpace, step * stride for Slice (negative for negative steps), 0 for the broadcast axes
 * of Expand and the repeats of Tile. prepare() builds the strides and merges axes that stay
 * contiguous; forward() runs one kernel that copies whole rows (memcpy when the row is
 * contiguous in the input) or, when the output row reads the input with a stride but another
 * axis reads it contiguously (a transpose), 32x32 tiles so both sides touch whole cache lines.
 *
 * Values that set shapes (Reshape's shape, Slice's starts, Tile's repeats...) must be known when
 * the model is planned: gr_input_ints() says so clearly when they are not.
 *
 * Backward (w.r.t. input 0 and Concat's inputs; indices and shapes get none): the copies copy
 * dout back; Transpose and DepthToSpace/SpaceToDepth run the inverse permutation (a second
 * strided plan made in prepare); Slice scatters dout into zeros; Expand and Tile sum dout over
 * the positions that read each element (the strided plan walked backwards, accumulating);
 * Concat and Split swap roles; Gather and GatherElements scatter-add. Dropout in training keeps
 * its mask in the op state for backward. Accumulating backwards are float32 only. */
#include "ops.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Every dtype graft knows; Constant and friends accept them all. */
static int known_dtype(int dt) { return gr_dtype_size(dt) != 0; }

static int check_known_dtype(const gr_opctx *c, int i)
{
    if (!known_dtype(c->in[i]->dtype))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input %d has a dtype graft does not support", i);
    return GRAFT_OK;
}

/* ---- the strided copy ---- */

#define SMAX (2 * GR_MAXDIM) /* Tile splits each axis in two */

typedef struct strided {
    int rank;
    int64_t n[SMAX];  /* output extent of each axis (row-major) */
    int64_t st[SMAX]; /* input stride, in elements, of each output axis (may be 0 or negative) */
    int64_t off;      /* input element that output element 0 reads */
    size_t esz;
} strided;

/* Drops axes of extent 1 and merges neighbours that are contiguous in the input too. */
static void strided_simplify(strided *s)
{
    int r = 0;
    for (int i = 0; i < s->rank; i++) /* an empty view first: its other extents may be huge */
        if (s->n[i] == 0) {
            s->rank = 1, s->n[0] = 0, s->st[0] = 1;
            return;
        }
    for (int i = 0; i < s->rank; i++) {
        if (s->n[i] == 1) continue;
        int64_t span;
        if (r > 0 && !__builtin_mul_overflow(s->st[i], s->n[i], &span) && s->st[r - 1] == span) {
            s->n[r - 1] *= s->n[i];
            s->st[r - 1] = s->st[i];
            continue;
        }
        s->n[r] = s->n[i], s->st[r] = s->st[i], r++;
    }
    if (r == 0) s->n[0] = 1, s->st[0] = 1, r = 1;
    s->rank = r;
}

/* n elements of size esz from x (stride st elements) to contiguous o. */
static void copy_row(char *o, const char *x, int64_t n, int64_t st, size_t esz)
{
    if (st == 1) {
        memcpy(o, x, (size_t)n * esz);
        return;
    }
    switch (esz) { /* constant sizes let the compiler turn memcpy into one load and store */
    case 1:
        for (int64_t j = 0; j < n; j++) o[j] = x[j * st];
        break;
    case 4:
        for (int64_t j = 0; j < n; j++) memcpy(o + j * 4, x + j * st * 4, 4);
        break;
    case 8:
        for (int64_t j = 0; j < n; j++) memcpy(o + j * 8, x + j * st * 8, 8);
        break;
    default:
        for (int64_t j = 0; j < n; j++) memcpy(o + j * esz, x + j * st * (int64_t)esz, esz);
        break;
    }
}

/* Row by row: each thread takes a range of rows and walks an odometer over the outer axes. */
static void strided_rows(const strided *s, char *out, const char *in)
{
    int r = s->rank;
    int64_t inner = s->n[r - 1], ist = s->st[r - 1], rows = 1;
    for (int i = 0; i < r - 1; i++) rows *= s->n[i];
    size_t esz = s->esz;
    int nth = gr_op_threads(rows * inner);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int t = 0; t < nth; t++) {
        int64_t r0 = rows * t / nth, r1 = rows * (t + 1) / nth, idx[SMAX], off = s->off, q = r0;
        for (int i = r - 2; i >= 0; i--) {
            idx[i] = q % s->n[i];
            q /= s->n[i];
            off += idx[i] * s->st[i];
        }
        for (int64_t row = r0; row < r1; row++) {
            copy_row(out + row * inner * (int64_t)esz, in + off * (int64_t)esz, inner, ist, esz);
            for (int i = r - 2; i >= 0; i--) {
                off += s->st[i];
                if (++idx[i] < s->n[i]) break;
                off -= s->st[i] * s->n[i];
                idx[i] = 0;
            }
        }
    }
}

#define TILE 32

/* Output axis j reads the input contiguously while the inner output axis does not: copy 2-D
 * tiles (axis j x inner axis), one per (outer position, tile row), in parallel. */
static void strided_tiled(const strided *s, int j, char *out, const char *in)
{
    int r = s->rank, ax[SMAX], na = 0;
    int64_t ostr[SMAX], outer = 1;
    ostr[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--) ostr[i] = ostr[i + 1] * s->n[i + 1];
    for (int i = 0; i < r - 1; i++)
        if (i != j) ax[na++] = i, outer *= s->n[i];
    int64_t A = s->n[j], B = s->n[r - 1], ist = s->st[r - 1], ostj = ostr[j];
    int64_t ta = (A + TILE - 1) / TILE, esz = (int64_t)s->esz;
    int nth = gr_op_threads(outer * A * B);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t w = 0; w < outer * ta; w++) {
        int64_t q = w / ta, a0 = (w % ta) * TILE, a1 = a0 + TILE < A ? a0 + TILE : A;
        int64_t ioff = s->off, ooff = 0;
        for (int k = na - 1; k >= 0; k--) {
            int64_t id = q % s->n[ax[k]];
            q /= s->n[ax[k]];
            ioff += id * s->st[ax[k]];
            ooff += id * ostr[ax[k]];
        }
        for (int64_t b0 = 0; b0 < B; b0 += TILE) {
            int64_t b1 = b0 + TILE < B ? b0 + TILE : B;
            for (int64_t a = a0; a < a1; a++) {
                char *o = out + (ooff + a * ostj) * esz;
                const char *x = in + (ioff + a) * esz;
                if (esz == 4)
                    for (int64_t b = b0; b < b1; b++) memcpy(o + b * 4, x + b * ist * 4, 4);
                else
                    for (int64_t b = b0; b < b1; b++)
                        memcpy(o + b * esz, x + b * ist * esz, (size_t)esz);
            }
        }
    }
}

static void strided_run(const strided *s, void *out, const void *in)
{
    int r = s->rank;
    for (int i = 0; i < r; i++)
        if (s->n[i] == 0) return;
    if (s->st[r - 1] != 1 && s->n[r - 1] >= 8)
        for (int j = r - 2; j >= 0; j--)
            if (s->st[j] == 1 && s->n[j] >= 8) {
                strided_tiled(s, j, out, in);
                return;
            }
    strided_rows(s, out, in);
}

/* Output = the input (dims, row-major) with its axes permuted: out axis i is input axis perm[i]. */
static void strided_permute(strided *s, int rank, const int64_t *dims, const int *perm, size_t esz)
{
    int64_t st[SMAX], k = 1;
    for (int i = rank - 1; i >= 0; i--) st[i] = k, k *= dims[i];
    s->rank = rank;
    s->off = 0;
    s->esz = esz;
    for (int i = 0; i < rank; i++) s->n[i] = dims[perm[i]], s->st[i] = st[perm[i]];
    strided_simplify(s);
}

/* s[0] is the forward copy; s[1] the backward one where that is another permutation. */
static strided *strided_new(gr_opctx *c)
{
    strided *s = gr_op_params(c, 2 * sizeof *s);
    if (!s) gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    return s;
}

static void strided_forward(gr_opctx *c)
{
    strided_run(c->params, c->out[0]->data, c->in[0]->data);
}

/* The reverse of the forward copy: each element of the contiguous dout goes back to the input
 * position it was read from. add = 0 stores (Slice: each position is read at most once; din is
 * zeroed first); add = 1 accumulates float32 (Expand, Tile read positions many times), serially. */
static void strided_back(const strided *s, void *in, const void *out, int add)
{
    int r = s->rank;
    for (int i = 0; i < r; i++)
        if (s->n[i] == 0) return;
    int64_t inner = s->n[r - 1], ist = s->st[r - 1], rows = 1;
    for (int i = 0; i < r - 1; i++) rows *= s->n[i];
    size_t esz = s->esz;
    int nth = add ? 1 : gr_op_threads(rows * inner);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int t = 0; t < nth; t++) {
        int64_t r0 = rows * t / nth, r1 = rows * (t + 1) / nth, idx[SMAX], off = s->off, q = r0;
        for (int i = r - 2; i >= 0; i--) {
            idx[i] = q % s->n[i];
            q /= s->n[i];
            off += idx[i] * s->st[i];
        }
        for (int64_t row = r0; row < r1; row++) {
            char *x = (char *)in + off * (int64_t)esz;
            const char *o = (const char *)out + row * inner * (int64_t)esz;
            if (add && ist == 0) {
                const float *of = (const float *)o;
                float acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < inner; j++) acc += of[j];
                *(float *)x += acc;
            } else if (add) {
                float *xf = (float *)x;
                const float *of = (const float *)o;
                for (int64_t j = 0; j < inner; j++) xf[j * ist] += of[j];
            } else if (ist == 1) {
                memcpy(x, o, (size_t)inner * esz);
            } else {
                for (int64_t j = 0; j < inner; j++)
                    memcpy(x + j * ist * (int64_t)esz, o + j * (int64_t)esz, esz);
            }
            for (int i = r - 2; i >= 0; i--) {
                off += s->st[i];
                if (++idx[i] < s->n[i]) break;
                off -= s->st[i] * s->n[i];
                idx[i] = 0;
            }
        }
    }
}

/* Transpose, DepthToSpace, SpaceToDepth: the inverse permutation, prepared as params[1]. */
static void permute_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const strided *s = c->params;
    if (!din[0]) return;
    if (!dout[0]) memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    else strided_run(&s[1], din[0]->data, dout[0]->data);
}

/* Slice: dout back to its positions, zeros elsewhere. */
static void slice_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (!din[0]) return;
    memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    if (dout[0]) strided_back(c->params, din[0]->data, dout[0]->data, 0);
}

/* Expand, Tile: the sum of dout over every output position that read an input element. */
static void sum_back_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (!din[0]) return;
    memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    if (dout[0]) strided_back(c->params, din[0]->data, dout[0]->data, 1);
}

/* The inverse of a permutation of `rank` axes. */
static void invert_perm(int rank, const int *perm, int *inv)
{
    for (int i = 0; i < rank; i++) inv[perm[i]] = i;
}

/* ---- plain copies: Reshape, Flatten, Squeeze, Unsqueeze, Identity ---- */

static void copy_forward(gr_opctx *c)
{
    size_t n = gr_tensor_bytes(c->in[0]);
    if (n && c->out[0]->data != c->in[0]->data) memcpy(c->out[0]->data, c->in[0]->data, n);
}

/* The gradient of a copy is dout copied back (din has the input's shape, the same bytes). */
static void copy_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    (void)c;
    if (!din[0]) return;
    if (dout[0]) memcpy(din[0]->data, dout[0]->data, gr_tensor_bytes(din[0]));
    else memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
}

/* Gradients that accumulate (Expand, Tile, Gather...) are implemented for float32. */
static int grad_f32(const gr_opctx *c)
{
    if ((c->need_grad & 1) && c->in[0]->dtype != GR_F32)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "backward is implemented for float32 only; input 0 is %s",
                         gr_dtype_name(c->in[0]->dtype));
    return GRAFT_OK;
}

/* ONNX Reshape-5/13/14 (and Reshape-1's shape attribute): 0 copies the input dim (unless
 * allowzero=1, opset 14, where 0 is a real zero), one -1 is inferred. */
static int reshape_prepare(gr_opctx *c)
{
    static const char *const known[] = { "allowzero", "shape", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "shape", c->opset >= 5)) ||
        (st = gr_op_reject_attr(c, "allowzero", c->opset < 14)) ||
        (st = gr_op_check_arity(c, c->opset < 5 ? 1 : 2, 2, 1, 1)) ||
        (st = check_known_dtype(c, 0)))
        return st;
    int64_t want[GR_MAXDIM];
    int n;
    if (c->opset < 5) {
        n = gr_attr_ints(c, "shape", want, GR_MAXDIM);
        if (n < 0)
            return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'shape' is required before opset 5");
        if (n > GR_MAXDIM)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "shape has %d dims, at most %d supported", n,
                             GR_MAXDIM);
    } else if ((n = gr_input_ints(c, 1, want, GR_MAXDIM)) < 0) {
        return -n;
    }
    int allowzero = c->opset >= 14 && gr_attr_int(c, "allowzero", 0) != 0;
    const gr_shape *xs = &c->in[0]->shape;
    gr_shape s = { n, { 0 } };
    int infer = -1, zero = 0;
    for (int i = 0; i < n; i++) {
        int64_t v = want[i];
        if (v == 0 && !allowzero) {
            if (i >= xs->rank)
                return gr_op_err(c, GRAFT_E_SHAPE,
                                 "shape[%d] is 0 (copy the input dim) but the input has rank %d", i,
                                 xs->rank);
            v = xs->d[i];
        }
        if (v == -1) {
            if (infer >= 0) return gr_op_err(c, GRAFT_E_SHAPE, "shape has more than one -1");
            infer = i;
            v = 1;
        } else if (v < -1) {
            return gr_op_err(c, GRAFT_E_SHAPE, "shape[%d] is %" PRId64 ", dims must be >= -1", i,
                             v);
        }
        zero |= v == 0;
        s.d[i] = v;
    }
    if (allowzero && zero && infer >= 0)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "allowzero=1 with both a 0 and a -1 in shape is invalid");
    if (gr_numel_checked(&s, 1) < 0) return gr_op_err(c, GRAFT_E_SHAPE, "shape overflows");
    int64_t total = gr_numel(xs), have = gr_numel(&s);
    char a[160], b[160];
    if (infer >= 0) {
        if (have == 0 || total % have)
            return gr_op_err(c, GRAFT_E_SHAPE, "cannot reshape %s to %s: the -1 cannot be inferred",
                             gr_shape_str(xs, a, sizeof a), gr_shape_str(&s, b, sizeof b));
        s.d[infer] = total / have;
    } else if (have != total) {
        return gr_op_err(c, GRAFT_E_SHAPE, "cannot reshape %s (%" PRId64 " elements) to %s",
                         gr_shape_str(xs, a, sizeof a), total, gr_shape_str(&s, b, sizeof b));
    }
    return gr_op_set_out(c, 0, c->in[0]->dtype, &s);
}

/* ONNX Flatten: (prod(d[:axis]), prod(d[axis:])), axis in [-r, r]. */
static int flatten_prepare(gr_opctx *c)
{
    static const char *const known[] = { "axis", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = check_known_dtype(c, 0))) return st;
    const gr_shape *xs = &c->in[0]->shape;
    int64_t axis = gr_attr_int(c, "axis", 1);
    if (axis < -xs->rank || axis > xs->rank)
        return gr_op_err(c, GRAFT_E_SHAPE, "axis %" PRId64 " is out of range for rank %d", axis,
                         xs->rank);
    if (axis < 0) axis += xs->rank;
    gr_shape s = { 2, { 1, 1 } };
    for (int i = 0; i < xs->rank; i++) s.d[i >= axis] *= xs->d[i];
    return gr_op_set_out(c, 0, c->in[0]->dtype, &s);
}

/* Axes from the attribute (before opset `input_since`) or from input 1 (known at plan time).
 * Returns their count, or -1 when absent; *err is set on an error. */
static int read_axes(gr_opctx *c, int input_since, int64_t *axes, int max, int *err)
{
    *err = GRAFT_OK;
    if (c->opset < input_since) {
        int n = gr_attr_ints(c, "axes", axes, max);
        if (n > max)
            *err = gr_op_err(c, GRAFT_E_SHAPE, "'axes' has %d entries, at most %d allowed", n, max);
        return n;
    }
    if (!gr_op_has_input(c, 1)) return -1;
    int n = gr_input_ints(c, 1, axes, max);
    if (n < 0) *err = -n;
    return n;
}

/* ONNX Squeeze: axes attribute before opset 13, input from 13; no axes: every dim of size 1. */
static int squeeze_prepare(gr_opctx *c)
{
    static const char *const known[] = { "axes", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "axes", c->opset >= 13)) ||
        (st = gr_op_check_arity(c, 1, 2, 1, 1)) || (st = check_known_dtype(c, 0)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    int64_t axes[GR_MAXDIM];
    int n = read_axes(c, 13, axes, GR_MAXDIM, &st), drop[GR_MAXDIM] = { 0 };
    if (st) return st;
    for (int i = 0; i < n; i++) {
        int a;
        if ((st = gr_op_axis(c, axes[i], xs->rank, &a))) return st;
        if (drop[a]) return gr_op_err(c, GRAFT_E_SHAPE, "axis %d appears twice in 'axes'", a);
        if (xs->d[a] != 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "cannot squeeze axis %d of size %" PRId64, a,
                             xs->d[a]);
        drop[a] = 1;
    }
    gr_shape s = { 0, { 0 } };
    for (int i = 0; i < xs->rank; i++)
        if (n < 0 ? xs->d[i] != 1 : !drop[i]) s.d[s.rank++] = xs->d[i];
    return gr_op_set_out(c, 0, c->in[0]->dtype, &s);
}

/* ONNX Unsqueeze: axes (attribute before 13, input from 13) index the output. */
static int unsqueeze_prepare(gr_opctx *c)
{
    static const char *const known[] = { "axes", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "axes", c->opset >= 13)) ||
        (st = gr_op_check_arity(c, c->opset < 13 ? 1 : 2, 2, 1, 1)) ||
        (st = check_known_dtype(c, 0)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    int64_t axes[GR_MAXDIM];
    int n = read_axes(c, 13, axes, GR_MAXDIM, &st), add[GR_MAXDIM] = { 0 };
    if (st) return st;
    if (n < 0) return gr_op_err(c, GRAFT_E_FORMAT, "'axes' is required");
    int r = xs->rank + n;
    if (r > GR_MAXDIM)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "output rank %d exceeds %d", r, GR_MAXDIM);
    for (int i = 0; i < n; i++) {
        int a;
        if ((st = gr_op_axis(c, axes[i], r, &a))) return st;
        if (add[a]) return gr_op_err(c, GRAFT_E_SHAPE, "axis %d appears twice in 'axes'", a);
        add[a] = 1;
    }
    gr_shape s = { r, { 0 } };
    for (int i = 0, k = 0; i < r; i++) s.d[i] = add[i] ? 1 : xs->d[k++];
    return gr_op_set_out(c, 0, c->in[0]->dtype, &s);
}

static int identity_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 1, 1, 1, 1);
    if (st || (st = check_known_dtype(c, 0))) return st;
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    return gr_op_set_out(c, 0, c->in[0]->dtype, &c->in[0]->shape);
}

/* ONNX Dropout. In inference: output = input, mask all true (bool from opset 10, the input's
 * type before); opset 12 made ratio and training_mode inputs, and a model asking for training
 * mode there is refused unless its ratio is a constant 0, since graft cannot reproduce another
 * framework's random masks. When the engine trains (c->training) the model's training_mode and
 * is_test are ignored: each forward draws a keep-mask from c->rng (keep with probability
 * 1 - ratio), scales kept values by 1 / (1 - ratio), writes the optional mask output, and
 * backward applies the same mask. */
typedef struct dropout_state {
    int training;
    float
        ratio; /* attribute, or input 1's value when known at plan time (-1: read it in forward) */
    uint8_t *mask; /* training: the last forward's keep-mask */
    float scale;   /* training: the last forward's 1 / (1 - ratio) */
} dropout_state;

static int dropout_prepare(gr_opctx *c)
{
    static const char *const known[] = { "ratio", "seed", "is_test", NULL };
    static const int ft[] = { GR_F32, GR_F64, 0 };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "ratio", c->opset >= 12)) ||
        (st = gr_op_reject_attr(c, "seed", c->opset < 12)) ||
        (st = gr_op_reject_attr(c, "is_test", c->opset >= 7)) ||
        (st = gr_op_check_arity(c, 1, c->opset >= 12 ? 3 : 1, 1, 2)) ||
        (st = gr_op_check_dtype(c, 0, ft)))
        return st;
    if (gr_op_has_input(c, 1) && (st = gr_op_check_dtype(c, 1, ft))) return st;
    if (gr_op_has_input(c, 1) && gr_numel(&c->in[1]->shape) != 1)
        return gr_op_err(c, GRAFT_E_SHAPE, "ratio must be a scalar");
    dropout_state *d = gr_op_params(c, sizeof *d);
    if (!d) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    d->training = c->training;
    d->ratio = c->opset < 12 ? gr_attr_float(c, "ratio", 0.5f) : !gr_op_has_input(c, 1) ? 0.5f : -1;
    if (d->ratio < 0 && c->in[1]->data) d->ratio = (float)gr_get_f64(c->in[1], 0);
    if (c->training) {
        if (!c->rng)
            return gr_op_err(c, GRAFT_E_INTERNAL, "training needs the engine's random generator");
        if (d->ratio != -1 && !(d->ratio >= 0 && d->ratio <= 1))
            return gr_op_err(c, GRAFT_E_FORMAT, "ratio %g is outside [0, 1]", d->ratio);
        if (!(d->mask = gr_arena_alloc(c->arena, (size_t)gr_numel(&c->in[0]->shape) + 1)))
            return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    } else {
        if (c->opset < 7 && gr_attr_int(c, "is_test", 0) == 0)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                             "is_test=0 (training dropout) is not supported");
        if (gr_op_has_input(c, 2)) {
            const gr_tensor *t = c->in[2];
            if (!t->data)
                return gr_op_err(
                    c, GRAFT_E_UNSUPPORTED,
                    "input 2 (training_mode) must be a constant when the model is planned");
            if (gr_numel(&t->shape) != 1)
                return gr_op_err(c, GRAFT_E_SHAPE, "training_mode must be a scalar");
            /* training with ratio 0 drops nothing: the same as inference */
            if (gr_get_f64(t, 0) != 0 && d->ratio != 0)
                return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                                 "training_mode=true (training dropout) is not supported unless "
                                 "ratio is a constant 0");
        }
    }
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &c->in[0]->shape))) return st;
    return gr_op_set_out(c, 1, c->opset >= 10 ? GR_BOOL : c->in[0]->dtype, &c->in[0]->shape);
}

/* Training: mask from c->rng (sequential, so a seed and the tensor size fix it), then y = x * m * scale. */
static void dropout_train(gr_opctx *c, dropout_state *d)
{
    float ratio = d->ratio >= 0 ? d->ratio : (float)gr_get_f64(c->in[1], 0);
    ratio = ratio < 0 ? 0 : ratio > 1 ? 1 : ratio;
    d->scale = ratio < 1 ? 1.0f / (1.0f - ratio) : 0.0f;
    int64_t n = gr_numel(&c->in[0]->shape);
    uint8_t *m = d->mask;
    for (int64_t i = 0; i < n; i++) m[i] = gr_rng_uniform(c->rng) >= ratio;
    const float sc = d->scale;
    if (c->in[0]->dtype == GR_F32) {
        const float *x = c->in[0]->data;
        float *y = c->out[0]->data;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = m[i] ? x[i] * sc : 0.0f;
    } else {
        const double *x = c->in[0]->data;
        double *y = c->out[0]->data;
        for (int64_t i = 0; i < n; i++) y[i] = m[i] ? x[i] * (double)sc : 0.0;
    }
    if (c->nout < 2 || !c->out[1]) return;
    gr_tensor *mo = c->out[1];
    if (mo->dtype == GR_BOOL) memcpy(mo->data, m, (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) gr_set_f64(mo, i, m[i]);
}

static void dropout_forward(gr_opctx *c)
{
    dropout_state *d = c->params;
    if (d->training) {
        dropout_train(c, d);
        return;
    }
    copy_forward(c);
    if (c->nout < 2 || !c->out[1]) return;
    gr_tensor *m = c->out[1];
    int64_t n = gr_numel(&m->shape);
    if (m->dtype == GR_BOOL) memset(m->data, 1, (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) gr_set_f64(m, i, 1.0);
}

/* din = dout * mask * scale with forward's mask (the identity in inference). */
static void dropout_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const dropout_state *d = c->params;
    if (!din[0]) return;
    if (!d->training || !dout[0]) {
        copy_backward(c, dout, din);
        return;
    }
    int64_t n = gr_numel(&c->in[0]->shape);
    const uint8_t *m = d->mask;
    const float sc = d->scale;
    if (c->in[0]->dtype == GR_F32) {
        const float *g = dout[0]->data;
        float *dx = din[0]->data;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dx[i] = m[i] ? g[i] * sc : 0.0f;
    } else {
        const double *g = dout[0]->data;
        double *dx = din[0]->data;
        for (int64_t i = 0; i < n; i++) dx[i] = m[i] ? g[i] * (double)sc : 0.0;
    }
}

/* ---- Transpose, DepthToSpace, SpaceToDepth ---- */

/* ONNX Transpose: out dim i = in dim perm[i]; perm defaults to the reversed axes. */
static int transpose_prepare(gr_opctx *c)
{
    static const char *const known[] = { "perm", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = check_known_dtype(c, 0))) return st;
    const gr_shape *xs = &c->in[0]->shape;
    int r = xs->rank, perm[GR_MAXDIM], seen[GR_MAXDIM] = { 0 };
    int64_t p[GR_MAXDIM];
    int n = gr_attr_ints(c, "perm", p, GR_MAXDIM);
    if (n < 0)
        for (int i = 0; i < r; i++) p[i] = r - 1 - i;
    else if (n != r)
        return gr_op_err(c, GRAFT_E_SHAPE, "perm has %d entries for an input of rank %d", n, r);
    gr_shape s = { r, { 0 } };
    for (int i = 0; i < r; i++) {
        if (p[i] < 0 || p[i] >= r || seen[p[i]])
            return gr_op_err(c, GRAFT_E_SHAPE, "perm is not a permutation of 0..%d", r - 1);
        seen[p[i]] = 1;
        perm[i] = (int)p[i];
        s.d[i] = xs->d[perm[i]];
    }
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &s))) return st;
    strided *sp = strided_new(c);
    if (!sp) return GRAFT_E_NOMEM;
    strided_permute(sp, r, xs->d, perm, gr_dtype_size(c->in[0]->dtype));
    int inv[GR_MAXDIM];
    invert_perm(r, perm, inv);
    strided_permute(&sp[1], r, s.d, inv, gr_dtype_size(c->in[0]->dtype));
    return GRAFT_OK;
}

/* ONNX DepthToSpace (mode DCR, default, or CRD from opset 11) and SpaceToDepth, as a 6-D
 * view of the input permuted:
 *   DCR: (N, b, b, C', H, W) → (N, C', H, b, W, b)      CRD: (N, C', b, b, H, W) → same
 *   SpaceToDepth: (N, C, H', b, W', b) → (N, b, b, C, H', W')                          */
static int space_depth_prepare(gr_opctx *c, int to_space)
{
    static const char *const known[] = { "blocksize", "mode", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "mode", c->opset < 11)) ||
        (st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = check_known_dtype(c, 0)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    if (xs->rank != 4)
        return gr_op_err(c, GRAFT_E_SHAPE, "input must have rank 4 (N, C, H, W), got %d", xs->rank);
    int64_t b = gr_attr_int(c, "blocksize", 0), N = xs->d[0], C = xs->d[1], H = xs->d[2],
            W = xs->d[3];
    if (b <= 0 || b > (1 << 20))
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'blocksize' must be given and positive");
    const char *mode = gr_attr_str(c, "mode", "DCR");
    int crd = strcmp(mode, "CRD") == 0;
    if (!to_space && gr_attr_get(c, "mode"))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "SpaceToDepth has no 'mode'");
    if (to_space && !crd && strcmp(mode, "DCR") != 0)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "mode '%s' is not supported (DCR or CRD)", mode);
    gr_shape s = *xs;
    int64_t v[6];
    int perm[6];
    if (to_space) {
        if (C % (b * b))
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "channels %" PRId64 " are not a multiple of blocksize^2", C);
        int64_t Cq = C / (b * b);
        s.d[1] = Cq, s.d[2] = H * b, s.d[3] = W * b;
        if (crd) {
            memcpy(v, (int64_t[]){ N, Cq, b, b, H, W }, sizeof v);
            memcpy(perm, (int[]){ 0, 1, 4, 2, 5, 3 }, sizeof perm);
        } else {
            memcpy(v, (int64_t[]){ N, b, b, Cq, H, W }, sizeof v);
            memcpy(perm, (int[]){ 0, 3, 4, 1, 5, 2 }, sizeof perm);
        }
    } else {
        if (H % b || W % b)
            return gr_op_err(c, GRAFT_E_SHAPE, "H and W must be multiples of blocksize %" PRId64,
                             b);
        s.d[1] = C * b * b, s.d[2] = H / b, s.d[3] = W / b;
        memcpy(v, (int64_t[]){ N, C, H / b, b, W / b, b }, sizeof v);
        memcpy(perm, (int[]){ 0, 3, 5, 1, 2, 4 }, sizeof perm);
    }
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &s))) return st;
    strided *sp = strided_new(c);
    if (!sp) return GRAFT_E_NOMEM;
    strided_permute(sp, 6, v, perm, gr_dtype_size(c->in[0]->dtype));
    int inv[6];
    int64_t w[6];
    for (int i = 0; i < 6; i++) w[i] = v[perm[i]]; /* the output as the 6-D permuted view */
    invert_perm(6, perm, inv);
    strided_permute(&sp[1], 6, w, inv, gr_dtype_size(c->in[0]->dtype));
    return GRAFT_OK;
}

static int depth_to_space_prepare(gr_opctx *c) { return space_depth_prepare(c, 1); }
static int space_to_depth_prepare(gr_opctx *c) { return space_depth_prepare(c, 0); }

/* ---- Concat and Split ---- */

typedef struct concat_state {
    int axis;
    int64_t outer, inner; /* prod(d[:axis]), prod(d[axis+1:]) */
    int64_t *len;         /* (nin or nout) extent of each part along axis */
    int64_t total;        /* extent of the whole along axis */
} concat_state;

/* ONNX Concat: all inputs have the same rank, dtype and dims except along axis. */
static int concat_prepare(gr_opctx *c)
{
    static const char *const known[] = { "axis", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 1, 1 << 20, 1, 1))) return st;
    if (!gr_attr_get(c, "axis"))
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'axis' is required");
    for (int i = 0; i < c->nin; i++)
        if (!c->in[i]) return gr_op_err(c, GRAFT_E_FORMAT, "input %d is missing", i);
    const gr_tensor *x0 = c->in[0];
    if ((st = check_known_dtype(c, 0))) return st;
    if (x0->shape.rank == 0) return gr_op_err(c, GRAFT_E_SHAPE, "cannot concatenate scalars");
    int axis;
    if ((st = gr_op_axis(c, gr_attr_int(c, "axis", 0), x0->shape.rank, &axis))) return st;
    concat_state *cs = gr_op_params(c, sizeof *cs);
    if (!cs || !(cs->len = gr_arena_alloc(c->arena, (size_t)c->nin * sizeof *cs->len)))
        return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    gr_shape s = x0->shape;
    s.d[axis] = 0;
    for (int i = 0; i < c->nin; i++) {
        const gr_tensor *x = c->in[i];
        if (x->dtype != x0->dtype)
            return gr_op_err(c, GRAFT_E_SHAPE, "input %d has type %s, input 0 has %s", i,
                             gr_dtype_name(x->dtype), gr_dtype_name(x0->dtype));
        int ok = x->shape.rank == s.rank;
        for (int d = 0; ok && d < s.rank; d++) ok = d == axis || x->shape.d[d] == s.d[d];
        if (!ok) {
            char a[160], b[160];
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "input %d has shape %s, which does not fit input 0's %s along axis %d",
                             i, gr_shape_str(&x->shape, a, sizeof a),
                             gr_shape_str(&x0->shape, b, sizeof b), axis);
        }
        cs->len[i] = x->shape.d[axis];
        s.d[axis] += x->shape.d[axis];
    }
    cs->axis = axis;
    cs->outer = cs->inner = 1;
    for (int d = 0; d < s.rank; d++) {
        if (d < axis) cs->outer *= s.d[d];
        if (d > axis) cs->inner *= s.d[d];
    }
    cs->total = s.d[axis];
    return gr_op_set_out(c, 0, x0->dtype, &s);
}

/* Copies between the whole (outer, total, inner) and its parts (outer, len[i], inner). */
static void concat_split(const concat_state *cs, int nparts, gr_tensor *const *parts,
                         gr_tensor *whole, int to_whole)
{
    size_t esz = gr_dtype_size(whole->dtype);
    int64_t row = cs->total * cs->inner * (int64_t)esz;
    int nth = gr_op_threads(cs->outer * cs->total * cs->inner);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t o = 0; o < cs->outer; o++) {
        int64_t at = 0;
        for (int i = 0; i < nparts; i++) {
            int64_t n = cs->len[i] * cs->inner * (int64_t)esz;
            char *w = (char *)whole->data + o * row + at;
            if (n && !parts[i]) { /* backward: a part without a gradient */
                if (to_whole) memset(w, 0, (size_t)n);
            } else if (n) {
                char *p = (char *)parts[i]->data + o * n;
                if (to_whole) memcpy(w, p, (size_t)n);
                else memcpy(p, w, (size_t)n);
            }
            at += n;
        }
    }
}

static void concat_forward(gr_opctx *c) { concat_split(c->params, c->nin, c->in, c->out[0], 1); }
static void split_forward(gr_opctx *c) { concat_split(c->params, c->nout, c->out, c->in[0], 0); }

/* Concat's gradient is dout split into the inputs; Split's is its douts concatenated (zeros for
 * an output without a gradient). */
static void concat_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (dout[0]) {
        concat_split(c->params, c->nin, din, dout[0], 0);
        return;
    }
    for (int i = 0; i < c->nin; i++)
        if (din[i]) memset(din[i]->data, 0, gr_tensor_bytes(din[i]));
}

static void split_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (din[0]) concat_split(c->params, c->nout, dout, din[0], 1);
}

/* ONNX Split: sizes from the 'split' attribute (before 13) or input 1 (from 13); else equal
 * parts, one per output (opset 18: num_outputs, the last part may be smaller). */
static int split_prepare(gr_opctx *c)
{
    static const char *const known[] = { "axis", "split", "num_outputs", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "split", c->opset >= 13)) ||
        (st = gr_op_reject_attr(c, "num_outputs", c->opset < 18)) ||
        (st = gr_op_check_arity(c, 1, c->opset >= 13 ? 2 : 1, 1, 1 << 20)) ||
        (st = check_known_dtype(c, 0)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    int axis;
    if ((st = gr_op_axis(c, gr_attr_int(c, "axis", 0), xs->rank, &axis))) return st;
    concat_state *cs = gr_op_params(c, sizeof *cs);
    if (!cs || !(cs->len = gr_arena_alloc(c->arena, (size_t)c->nout * sizeof *cs->len)))
        return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    int64_t D = xs->d[axis];
    int n;
    if (c->opset < 13) n = gr_attr_ints(c, "split", cs->len, c->nout);
    else if (gr_op_has_input(c, 1) && gr_numel(&c->in[1]->shape) > 0) {
        if ((n = gr_input_ints(c, 1, cs->len, c->nout)) < 0) return -n;
    } else n = -1;
    if (n >= 0 && c->opset >= 18 && gr_attr_get(c, "num_outputs"))
        return gr_op_err(c, GRAFT_E_FORMAT, "'split' and 'num_outputs' cannot both be given");
    if (n >= 0) {
        if (n != c->nout)
            return gr_op_err(c, GRAFT_E_SHAPE, "'split' has %d entries for %d outputs", n, c->nout);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (cs->len[i] < 0) return gr_op_err(c, GRAFT_E_SHAPE, "split[%d] is negative", i);
            sum += cs->len[i];
        }
        if (sum != D)
            return gr_op_err(c, GRAFT_E_SHAPE, "'split' sums to %" PRId64 ", axis %d has %" PRId64,
                             sum, axis, D);
    } else {
        int64_t parts = c->opset >= 18 ? gr_attr_int(c, "num_outputs", c->nout) : c->nout;
        if (parts != c->nout)
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "num_outputs %" PRId64 " but the node has %d outputs", parts, c->nout);
        int64_t chunk = (D + parts - 1) / parts;
        if (c->opset < 18 && D % parts)
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "axis %d of size %" PRId64 " does not split into %d equal parts", axis,
                             D, c->nout);
        if (D % parts && chunk * (parts - 1) > D) /* the last part would be negative */
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "axis %d of size %" PRId64 " cannot split into %d parts", axis, D,
                             c->nout);
        for (int i = 0; i < c->nout; i++)
            cs->len[i] = i < c->nout - 1 ? chunk : D - chunk * (parts - 1);
    }
    cs->axis = axis;
    cs->outer = cs->inner = 1;
    for (int d = 0; d < xs->rank; d++) {
        if (d < axis) cs->outer *= xs->d[d];
        if (d > axis) cs->inner *= xs->d[d];
    }
    cs->total = D;
    for (int i = 0; i < c->nout; i++) {
        gr_shape s = *xs;
        s.d[axis] = cs->len[i];
        if ((st = gr_op_set_out(c, i, c->in[0]->dtype, &s))) return st;
    }
    return GRAFT_OK;
}

/* ---- Slice ---- */

/* Clamps one axis of a slice per the ONNX spec; returns the number of elements taken. */
static int64_t slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first)
{
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
    } else {
        start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
        end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    }
    *first = start;
    /* |step| > dim takes at most one element: clamp it so the arithmetic cannot overflow */
    int64_t lim = dim + 1;
    step = step > lim ? lim : step < -lim ? -lim : step;
    int64_t n = step > 0 ? (end - start + step - 1) / step : (start - end - step - 1) / -step;
    return n > 0 ? n : 0;
}

/* ONNX Slice: starts/ends/axes attributes before opset 10; inputs starts, ends, axes, steps
 * from 10. Starts and ends are clamped per axis (to [0, dim] for positive steps, and to
 * [0, dim-1] and [-1, dim-1] for negative ones). */
static int slice_prepare(gr_opctx *c)
{
    static const char *const known[] = { "starts", "ends", "axes", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_reject_attr(c, "starts", c->opset >= 10)) ||
        (st = gr_op_reject_attr(c, "ends", c->opset >= 10)) ||
        (st = gr_op_reject_attr(c, "axes", c->opset >= 10)) ||
        (st = gr_op_check_arity(c, c->opset < 10 ? 1 : 3, c->opset < 10 ? 1 : 5, 1, 1)) ||
        (st = check_known_dtype(c, 0)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    int r = xs->rank, ns, ne, na = -1, nst = -1;
    int64_t starts[GR_MAXDIM], ends[GR_MAXDIM], axes[GR_MAXDIM], steps[GR_MAXDIM];
    if (c->opset < 10) {
        ns = gr_attr_ints(c, "starts", starts, GR_MAXDIM);
        ne = gr_attr_ints(c, "ends", ends, GR_MAXDIM);
        na = gr_attr_ints(c, "axes", axes, GR_MAXDIM);
        if (ns < 0 || ne < 0)
            return gr_op_err(c, GRAFT_E_FORMAT, "attributes 'starts' and 'ends' are required");
        if (ns > GR_MAXDIM || na > GR_MAXDIM) return gr_op_err(c, GRAFT_E_SHAPE, "too many axes");
    } else {
        if ((ns = gr_input_ints(c, 1, starts, GR_MAXDIM)) < 0) return -ns;
        if ((ne = gr_input_ints(c, 2, ends, GR_MAXDIM)) < 0) return -ne;
        if (gr_op_has_input(c, 3) && (na = gr_input_ints(c, 3, axes, GR_MAXDIM)) < 0) return -na;
        if (gr_op_has_input(c, 4) && (nst = gr_input_ints(c, 4, steps, GR_MAXDIM)) < 0) return -nst;
    }
    if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "starts, ends, axes and steps must have the same length");
    int64_t first[GR_MAXDIM], step[GR_MAXDIM], xst[GR_MAXDIM];
    int seen[GR_MAXDIM] = { 0 };
    gr_shape s = *xs;
    for (int d = 0; d < r; d++) first[d] = 0, step[d] = 1;
    for (int i = 0; i < ns; i++) {
        int a;
        if ((st = gr_op_axis(c, na >= 0 ? axes[i] : i, r, &a))) return st;
        if (seen[a]) return gr_op_err(c, GRAFT_E_SHAPE, "axis %d appears twice", a);
        seen[a] = 1;
        step[a] = nst >= 0 ? steps[i] : 1;
        if (step[a] == 0) return gr_op_err(c, GRAFT_E_SHAPE, "steps[%d] is 0", i);
        s.d[a] = slice_axis(xs->d[a], starts[i], ends[i], step[a], &first[a]);
    }
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &s))) return st;
    strided *sp = strided_new(c);
    if (!sp) return GRAFT_E_NOMEM;
    gr_strides(xs, xst);
    sp->rank = r, sp->off = 0, sp->esz = gr_dtype_size(c->in[0]->dtype);
    for (int d = 0; d < r; d++) {
        sp->n[d] = s.d[d];
        /* with two or more elements taken, |step| < the axis, so the product fits; with one, a
         * clamped step (INT64_MAX) may not be the real one and is not used */
        sp->st[d] = s.d[d] > 1 ? step[d] * xst[d] : xst[d];
        if (s.d[d]) sp->off += first[d] * xst[d];
    }
    strided_simplify(sp);
    return GRAFT_OK;
}

/* ---- Expand and Tile ---- */

/* ONNX Expand: bidirectional (numpy) broadcast of the input to `shape`. */
static int expand_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 2, 2, 1, 1);
    if (st || (st = check_known_dtype(c, 0))) return st;
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    int64_t want[GR_MAXDIM];
    int n = gr_input_ints(c, 1, want, GR_MAXDIM);
    if (n < 0) return -n;
    const gr_shape *xs = &c->in[0]->shape;
    gr_shape ws = gr_shape_make(n, want), s;
    for (int i = 0; i < n; i++)
        if (want[i] < 0) return gr_op_err(c, GRAFT_E_SHAPE, "shape[%d] is negative", i);
    if ((st = gr_broadcast_shape(c, xs, &ws, &s)) ||
        (st = gr_op_set_out(c, 0, c->in[0]->dtype, &s)) || (st = grad_f32(c)))
        return st;
    strided *sp = strided_new(c);
    if (!sp) return GRAFT_E_NOMEM;
    int64_t xst[GR_MAXDIM];
    gr_strides(xs, xst);
    sp->rank = s.rank, sp->off = 0, sp->esz = gr_dtype_size(c->in[0]->dtype);
    for (int d = 0; d < s.rank; d++) {
        int k = d - (s.rank - xs->rank); /* input axis, aligned to the right */
        sp->n[d] = s.d[d];
        sp->st[d] = k < 0 || xs->d[k] == 1 ? 0 : xst[k];
    }
    strided_simplify(sp);
    return GRAFT_OK;
}

/* ONNX Tile: out dim d = in dim d * repeats[d]; as a strided copy each output axis becomes
 * (repeat, dim) with strides (0, input stride). */
static int tile_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 2, 2, 1, 1);
    if (st || (st = check_known_dtype(c, 0))) return st;
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    const gr_shape *xs = &c->in[0]->shape;
    int64_t rep[GR_MAXDIM], xst[GR_MAXDIM];
    int n = gr_input_ints(c, 1, rep, GR_MAXDIM);
    if (n < 0) return -n;
    if (n != xs->rank)
        return gr_op_err(c, GRAFT_E_SHAPE, "repeats has %d entries for an input of rank %d", n,
                         xs->rank);
    if ((st = grad_f32(c))) return st;
    gr_shape s = *xs;
    for (int d = 0; d < n; d++) {
        if (rep[d] < 0) return gr_op_err(c, GRAFT_E_SHAPE, "repeats[%d] is negative", d);
        if (rep[d] && xs->d[d] > INT64_MAX / rep[d])
            return gr_op_err(c, GRAFT_E_NOMEM, "output too large");
        s.d[d] = xs->d[d] * rep[d];
    }
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &s))) return st;
    strided *sp = strided_new(c);
    if (!sp) return GRAFT_E_NOMEM;
    gr_strides(xs, xst);
    sp->rank = 2 * n, sp->off = 0, sp->esz = gr_dtype_size(c->in[0]->dtype);
    for (int d = 0; d < n; d++) {
        sp->n[2 * d] = rep[d], sp->st[2 * d] = 0;
        sp->n[2 * d + 1] = xs->d[d], sp->st[2 * d + 1] = xst[d];
    }
    strided_simplify(sp);
    return GRAFT_OK;
}

/* ---- Gather and GatherElements ---- */

typedef struct gather_state {
    int axis;
    int64_t outer, dim, inner, nidx; /* data (outer, dim, inner), indices of nidx elements */
} gather_state;

static int64_t index_at(const gr_tensor *t, int64_t i)
{
    return t->dtype == GR_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

/* Indices known at plan time are checked now; at run time an out-of-range index (which
 * forward cannot report) yields zeros. */
static int check_indices(const gr_opctx *c, const gr_tensor *t, int64_t dim)
{
    if (!t->data) return GRAFT_OK;
    for (int64_t i = 0, n = gr_numel(&t->shape); i < n; i++) {
        int64_t k = index_at(t, i);
        if (k < -dim || k >= dim)
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "index %" PRId64 " is out of range for an axis of size %" PRId64, k,
                             dim);
    }
    return GRAFT_OK;
}

/* What Gather and GatherElements check alike: attribute axis only, data and int32/int64
 * indices, the axis normalised into *axis. */
static int gather_checks(gr_opctx *c, int *axis)
{
    static const char *const known[] = { "axis", NULL };
    static const int it[] = { GR_I64, GR_I32, 0 };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 2, 2, 1, 1)) || (st = check_known_dtype(c, 0)) ||
        (st = gr_op_check_dtype(c, 1, it)))
        return st;
    return gr_op_axis(c, gr_attr_int(c, "axis", 0), c->in[0]->shape.rank, axis);
}

/* ONNX Gather: out = data[:axis] + indices.shape + data[axis+1:]; negative indices count from
 * the end. */
static int gather_prepare(gr_opctx *c)
{
    int axis, st = gather_checks(c, &axis);
    if (st) return st;
    const gr_shape *xs = &c->in[0]->shape, *is = &c->in[1]->shape;
    if (xs->rank - 1 + is->rank > GR_MAXDIM)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "output rank exceeds %d", GR_MAXDIM);
    if ((st = check_indices(c, c->in[1], xs->d[axis])) || (st = grad_f32(c))) return st;
    gather_state *g = gr_op_params(c, sizeof *g);
    if (!g) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    gr_shape s = { 0, { 0 } };
    g->axis = axis, g->outer = g->inner = 1, g->dim = xs->d[axis], g->nidx = gr_numel(is);
    for (int d = 0; d < axis; d++) s.d[s.rank++] = xs->d[d], g->outer *= xs->d[d];
    for (int d = 0; d < is->rank; d++) s.d[s.rank++] = is->d[d];
    for (int d = axis + 1; d < xs->rank; d++) s.d[s.rank++] = xs->d[d], g->inner *= xs->d[d];
    return gr_op_set_out(c, 0, c->in[0]->dtype, &s);
}

static void gather_forward(gr_opctx *c)
{
    const gather_state *g = c->params;
    const gr_tensor *idx = c->in[1];
    size_t esz = gr_dtype_size(c->in[0]->dtype), row = (size_t)g->inner * esz;
    const char *x = c->in[0]->data;
    char *y = c->out[0]->data;
    int nth = gr_op_threads(g->outer * g->nidx * g->inner);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t w = 0; w < g->outer * g->nidx; w++) {
        int64_t o = w / g->nidx, k = index_at(idx, w % g->nidx);
        if (k < 0) k += g->dim;
        if (k < 0 || k >= g->dim) memset(y + w * row, 0, row);
        else memcpy(y + w * row, x + (o * g->dim + k) * row, row);
    }
}

/* Scatter-add of dout's rows into din. Indices may repeat within one outer slice, so threads
 * split the outer slices (each owns its part of din); out-of-range indices (zeros in forward)
 * get nothing. */
static void gather_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const gather_state *g = c->params;
    if (!din[0]) return;
    memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    if (!dout[0]) return;
    const gr_tensor *idx = c->in[1];
    const float *dy = dout[0]->data;
    float *dx = din[0]->data;
    int64_t inner = g->inner;
    int nth = g->outer > 1 ? gr_op_threads(g->outer * g->nidx * inner) : 1;
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t w = 0; w < g->nidx; w++) {
            int64_t k = index_at(idx, w);
            if (k < 0) k += g->dim;
            if (k < 0 || k >= g->dim) continue;
            float *xr = dx + (o * g->dim + k) * inner;
            const float *yr = dy + (o * g->nidx + w) * inner;
#pragma omp simd
            for (int64_t j = 0; j < inner; j++) xr[j] += yr[j];
        }
}

/* ONNX GatherElements: out[i] = data[i with i[axis] replaced by indices[i]]; indices have the
 * data's rank and the output their shape. */
static int gather_elements_prepare(gr_opctx *c)
{
    int axis, st = gather_checks(c, &axis);
    if (st) return st;
    const gr_shape *xs = &c->in[0]->shape, *is = &c->in[1]->shape;
    if (is->rank != xs->rank)
        return gr_op_err(c, GRAFT_E_SHAPE, "indices have rank %d, data %d", is->rank, xs->rank);
    for (int d = 0; d < xs->rank; d++)
        if (d != axis && is->d[d] > xs->d[d])
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "indices dim %d (%" PRId64 ") exceeds the data's (%" PRId64 ")", d,
                             is->d[d], xs->d[d]);
    if ((st = check_indices(c, c->in[1], xs->d[axis])) || (st = grad_f32(c))) return st;
    int *ax = gr_op_params(c, sizeof *ax);
    if (!ax) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    *ax = axis;
    return gr_op_set_out(c, 0, c->in[0]->dtype, is);
}

static void gather_elements_forward(gr_opctx *c)
{
    int axis = *(const int *)c->params;
    const gr_tensor *x = c->in[0], *idx = c->in[1];
    const gr_shape *is = &idx->shape;
    int r = is->rank;
    int64_t xst[GR_MAXDIM], n = gr_numel(is), inner = r ? is->d[r - 1] : 1, dim = x->shape.d[axis];
    gr_strides(&x->shape, xst);
    size_t esz = gr_dtype_size(x->dtype);
    int64_t rows = inner ? n / inner : 0;
    int nth = gr_op_threads(n);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t base = 0, q = row; /* data offset of the row, without the axis term */
        for (int d = r - 2; d >= 0; d--) {
            int64_t id = q % is->d[d];
            q /= is->d[d];
            if (d != axis) base += id * xst[d];
        }
        for (int64_t j = 0; j < inner; j++) {
            int64_t i = row * inner + j, k = index_at(idx, i);
            if (k < 0) k += dim;
            int64_t off = base + k * xst[axis] + (axis == r - 1 ? 0 : j * xst[r - 1]);
            char *o = (char *)c->out[0]->data + i * (int64_t)esz;
            if (k < 0 || k >= dim) memset(o, 0, esz);
            else memcpy(o, (const char *)x->data + off * (int64_t)esz, esz);
        }
    }
}

/* The same walk as forward, adding dout into the element each output read (serial: indices
 * repeat). */
static void gather_elements_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (!din[0]) return;
    memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    if (!dout[0]) return;
    int axis = *(const int *)c->params;
    const gr_tensor *x = c->in[0], *idx = c->in[1];
    const gr_shape *is = &idx->shape;
    int r = is->rank;
    int64_t xst[GR_MAXDIM], n = gr_numel(is), inner = r ? is->d[r - 1] : 1, dim = x->shape.d[axis];
    gr_strides(&x->shape, xst);
    const float *dy = dout[0]->data;
    float *dx = din[0]->data;
    int64_t rows = inner ? n / inner : 0;
    for (int64_t row = 0; row < rows; row++) {
        int64_t base = 0, q = row;
        for (int d = r - 2; d >= 0; d--) {
            int64_t id = q % is->d[d];
            q /= is->d[d];
            if (d != axis) base += id * xst[d];
        }
        for (int64_t j = 0; j < inner; j++) {
            int64_t i = row * inner + j, k = index_at(idx, i);
            if (k < 0) k += dim;
            if (k < 0 || k >= dim) continue;
            dx[base + k * xst[axis] + (axis == r - 1 ? 0 : j * xst[r - 1])] += dy[i];
        }
    }
}

/* ---- Shape and Size (they read only the input's shape) ---- */

/* ONNX Shape; opset 15 adds start/end, clamped to [0, rank] after adding rank to negatives. */
static int shape_prepare(gr_opctx *c)
{
    static const char *const known[] = { "start", "end", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 1, 1, 1, 1))) return st;
    int r = c->in[0]->shape.rank;
    int64_t b = 0, e = r;
    if (c->opset >= 15) {
        b = gr_attr_int(c, "start", 0);
        e = gr_attr_int(c, "end", r);
    } else if (c->nattr) {
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "'start'/'end' need opset 15, the model has %d",
                         c->opset);
    }
    if (b < 0) b += r;
    if (e < 0) e += r;
    b = b < 0 ? 0 : b > r ? r : b;
    e = e < 0 ? 0 : e > r ? r : e;
    int *start = gr_op_params(c, sizeof *start);
    if (!start) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    *start = (int)b;
    gr_shape s = { 1, { e > b ? e - b : 0 } };
    return gr_op_set_out(c, 0, GR_I64, &s);
}

static void shape_forward(gr_opctx *c)
{
    int b = *(const int *)c->params;
    int64_t *y = c->out[0]->data;
    for (int64_t i = 0; i < c->out[0]->shape.d[0]; i++) y[i] = c->in[0]->shape.d[b + i];
}

static int size_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 1, 1, 1, 1);
    if (st) return st;
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    gr_shape s = { 0, { 0 } };
    return gr_op_set_out(c, 0, GR_I64, &s);
}

static void size_forward(gr_opctx *c) { *(int64_t *)c->out[0]->data = gr_numel(&c->in[0]->shape); }

/* ---- ConstantOfShape, Constant, Range ---- */

typedef struct fill_state {
    size_t esz;
    unsigned char v[8]; /* the value's bytes */
} fill_state;

/* ONNX ConstantOfShape: the shape input (int64, known at plan time) filled with the one-element
 * 'value' tensor (default float 0). An empty shape gives a scalar. */
static int constant_of_shape_prepare(gr_opctx *c)
{
    static const char *const known[] = { "value", NULL };
    int st = gr_op_check_attrs(c, known);
    if (st || (st = gr_op_check_arity(c, 1, 1, 1, 1))) return st;
    int64_t d[GR_MAXDIM];
    int n = gr_input_ints(c, 0, d, GR_MAXDIM);
    if (n < 0) return -n;
    fill_state *f = gr_op_params(c, sizeof *f);
    if (!f) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    int dtype = GR_F32;
    f->esz = 4;
    const gr_attr *a = gr_attr_get(c, "value");
    if (a) {
        if (a->type != GR_AT_TENSOR || gr_numel(&a->t.shape) != 1)
            return gr_op_err(c, GRAFT_E_FORMAT, "'value' must be a tensor of one element");
        if (!known_dtype(a->t.dtype))
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "'value' has a dtype graft does not support");
        dtype = a->t.dtype;
        f->esz = gr_dtype_size(dtype);
        memcpy(f->v, a->t.data, f->esz);
    }
    gr_shape s = gr_shape_make(n, d);
    return gr_op_set_out(c, 0, dtype, &s);
}

static void fill_forward(gr_opctx *c)
{
    const fill_state *f = c->params;
    int64_t n = gr_numel(&c->out[0]->shape);
    char *y = c->out[0]->data;
    if (f->esz == 1) memset(y, f->v[0], (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) memcpy(y + i * (int64_t)f->esz, f->v, f->esz);
}

/* ONNX Constant: 'value' (a tensor), or from opset 12 value_float(s) / value_int(s).
 * Sparse and string constants are not supported. */
static int constant_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 0, 0, 1, 1);
    if (st) return st;
    if (c->nattr != 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "needs exactly one attribute, has %d", c->nattr);
    const gr_attr *a = &c->attrs[0];
    gr_tensor *t = gr_op_params(c, sizeof *t);
    if (!t) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    if (strcmp(a->name, "value") == 0 && a->type == GR_AT_TENSOR) {
        if (!known_dtype(a->t.dtype))
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "'value' has a dtype graft does not support");
        *t = a->t;
    } else if (strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_int") == 0) {
        int isf = a->name[6] == 'f';
        *t = (gr_tensor){ .dtype = isf ? GR_F32 : GR_I64, .shape = { 0, { 0 } } };
        if (!(t->data = gr_arena_alloc(c->arena, 8))) return GRAFT_E_NOMEM;
        if (isf) *(float *)t->data = a->type == GR_AT_FLOAT ? a->f : (float)a->i;
        else *(int64_t *)t->data = a->i;
    } else if (strcmp(a->name, "value_floats") == 0 || strcmp(a->name, "value_ints") == 0) {
        int isf = a->name[6] == 'f';
        *t = (gr_tensor){ .dtype = isf ? GR_F32 : GR_I64, .shape = { 1, { a->n } } };
        if (!(t->data = gr_arena_alloc(c->arena, (size_t)a->n * 8 + 8))) return GRAFT_E_NOMEM;
        if (isf && a->n) memcpy(t->data, a->floats, (size_t)a->n * sizeof(float));
        if (!isf && a->n) memcpy(t->data, a->ints, (size_t)a->n * sizeof(int64_t));
    } else {
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "attribute '%s' is not supported (value, value_float(s), value_int(s))",
                         a->name);
    }
    return gr_op_set_out(c, 0, t->dtype, &t->shape);
}

static void constant_forward(gr_opctx *c)
{
    const gr_tensor *t = c->params;
    size_t n = gr_tensor_bytes(c->out[0]);
    if (n) memcpy(c->out[0]->data, t->data, n);
}

static int64_t int_at(const gr_tensor *t)
{
    return t->dtype == GR_I64 ? *(const int64_t *)t->data : *(const int32_t *)t->data;
}

/* ONNX Range: max(ceil((limit - start) / delta), 0) elements start + i * delta. The three
 * scalars must be known at plan time since they set the output's length. */
static int range_prepare(gr_opctx *c)
{
    static const int types[] = { GR_F32, GR_F64, GR_I32, GR_I64, 0 };
    int st = gr_op_check_arity(c, 3, 3, 1, 1);
    if (st) return st;
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    for (int i = 0; i < 3; i++) {
        const gr_tensor *t = c->in[i];
        if ((st = gr_op_check_dtype(c, i, types))) return st;
        if (t->dtype != c->in[0]->dtype)
            return gr_op_err(c, GRAFT_E_SHAPE, "start, limit and delta must have one type");
        if (gr_numel(&t->shape) != 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "input %d must be a scalar", i);
        if (!t->data)
            return gr_op_err(
                c, GRAFT_E_UNSUPPORTED,
                "input %d must be known when the model is planned (it sets the output length)", i);
    }
    int64_t n;
    int dt = c->in[0]->dtype;
    if (dt == GR_F32 || dt == GR_F64) {
        double a = gr_get_f64(c->in[0], 0), b = gr_get_f64(c->in[1], 0),
               d = gr_get_f64(c->in[2], 0);
        double k = ceil((b - a) / d);
        if (d == 0 || !(k < 1e15))
            return gr_op_err(c, GRAFT_E_SHAPE, "delta is 0 or the range is not finite");
        n = k > 0 ? (int64_t)k : 0;
    } else {
        int64_t a = int_at(c->in[0]), b = int_at(c->in[1]), d = int_at(c->in[2]), diff;
        if (d == 0) return gr_op_err(c, GRAFT_E_SHAPE, "delta is 0");
        double span = ((double)b - (double)a) / (double)d;
        if (span > 1e15) return gr_op_err(c, GRAFT_E_SHAPE, "range too long");
        /* the count is ceil((b - a) / d), computed without overflow (limit - start can exceed
         * int64 when the delta is large) */
        if (span <= 0) n = 0;
        else if (!__builtin_sub_overflow(b, a, &diff) && d != INT64_MIN)
            n = diff / d + (diff % d != 0);
        else n = (int64_t)ceil(span);
    }
    gr_shape s = { 1, { n } };
    return gr_op_set_out(c, 0, dt, &s);
}

static void range_forward(gr_opctx *c)
{
    gr_tensor *y = c->out[0];
    int64_t n = y->shape.d[0];
    if (y->dtype == GR_I64 || y->dtype == GR_I32) {
        int64_t a = int_at(c->in[0]), d = int_at(c->in[2]);
        for (int64_t i = 0; i < n; i++) {
            /* wrapping arithmetic: a range that overflows (a file may ask for one) wraps, as
             * onnxruntime's does, instead of being undefined */
            int64_t v = (int64_t)((uint64_t)a + (uint64_t)i * (uint64_t)d);
            if (y->dtype == GR_I64) ((int64_t *)y->data)[i] = v;
            else ((int32_t *)y->data)[i] = (int32_t)v;
        }
    } else {
        double a = gr_get_f64(c->in[0], 0), d = gr_get_f64(c->in[2], 0);
        for (int64_t i = 0; i < n; i++) gr_set_f64(y, i, a + (double)i * d);
    }
}

const gr_opdef gr_ops_shape[] = {
    { "Reshape", reshape_prepare, copy_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      copy_backward, NULL },
    { "Flatten", flatten_prepare, copy_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      copy_backward, NULL },
    { "Squeeze", squeeze_prepare, copy_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      copy_backward, NULL },
    { "Unsqueeze", unsqueeze_prepare, copy_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      copy_backward, NULL },
    { "Identity", identity_prepare, copy_forward, NULL,
      GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y | GR_OPF_FLAT, copy_backward, NULL },
    { "Dropout", dropout_prepare, dropout_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      dropout_backward, NULL },
    { "Transpose", transpose_prepare, strided_forward, NULL, 0, permute_backward, NULL },
    { "DepthToSpace", depth_to_space_prepare, strided_forward, NULL, 0, permute_backward, NULL },
    { "SpaceToDepth", space_to_depth_prepare, strided_forward, NULL, 0, permute_backward, NULL },
    { "Concat", concat_prepare, concat_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      concat_backward, NULL },
    { "Split", split_prepare, split_forward, NULL, GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y,
      split_backward, NULL },
    { "Slice", slice_prepare, strided_forward, NULL, 0, slice_backward, NULL },
    { "Expand", expand_prepare, strided_forward, NULL, 0, sum_back_backward, NULL },
    { "Tile", tile_prepare, strided_forward, NULL, 0, sum_back_backward, NULL },
    { "Gather", gather_prepare, gather_forward, NULL, 0, gather_backward, NULL },
    { "GatherElements", gather_elements_prepare, gather_elements_forward, NULL, 0,
      gather_elements_backward, NULL },
    { "Shape", shape_prepare, shape_forward, NULL, GR_OPF_SHAPE_ONLY, NULL, NULL },
    { "Size", size_prepare, size_forward, NULL, GR_OPF_SHAPE_ONLY, NULL, NULL },
    { "ConstantOfShape", constant_of_shape_prepare, fill_forward, NULL, 0, NULL, NULL },
    { "Constant", constant_prepare, constant_forward, NULL, 0, NULL, NULL },
    { "Range", range_prepare, range_forward, NULL, 0, NULL, NULL },
    { 0 },
};
