/* plan_memory.c — the liveness memory plan of a gr_plan: step outputs live in one activation
 * block; a value holds its bytes from the step that first writes it to the last step touching it
 * (the end for graph outputs), and first fit between the live blocks reuses freed ranges, so the
 * block is far smaller than the sum of all activations. See exec.c. */
#include "exec_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- liveness memory plan ---- */

typedef struct block {
    size_t off, size;
    int value;
} block;

/* The plan values step s reads (write 0) and writes (write 1). A backward step reads its
 * node's forward inputs and outputs as well as the output gradients. */
typedef struct access {
    int v, write;
} access;

static int step_access(const gr_plan *p, int s, access *a)
{
    const step *st = &p->steps[s];
    const gr_opctx *c = st->ctx;
    int n = 0;
#define PUSH(t, w)                                                                                 \
    do {                                                                                           \
        int v_ = (t) ? gr_plan_value_index(p, (t)) : -1;                                           \
        if (v_ >= 0) a[n++] = (access){ v_, (w) };                                                 \
    } while (0)
    if (st->kind == ST_ADD) {
        PUSH(st->acc, 0);
        PUSH(st->add, 0);
        return n;
    }
    if (st->kind == ST_FWD) {
        for (int i = 0; i < c->nin; i++) PUSH(c->in[i], 0);
        for (int j = 0; j < c->nout; j++) PUSH(c->out[j], 1);
        return n;
    }
    if (!(st->bwd_flags & GR_OPF_BWD_NO_X))
        for (int i = 0; i < c->nin; i++) PUSH(c->in[i], 0);
    if (!(st->bwd_flags & GR_OPF_BWD_NO_Y))
        for (int j = 0; j < c->nout; j++) PUSH(c->out[j], 0);
    for (int j = 0; j < c->nout; j++) PUSH(st->dout[j], 0);
    for (int i = 0; i < c->nin; i++) PUSH(st->din[i], 1);
#undef PUSH
    return n;
}

/* Liveness: a value holds bytes from the step that first writes it to the last step touching
 * it (the end for graph outputs); first fit between live blocks. */
/* The memory planner's working arrays: each value's first (writing) and last step, its offset
 * in the activation block, the live blocks sorted by offset, one step's accesses. */
typedef struct mem_plan {
    int *first, *last;
    size_t *off, peak;
    block *live;
    int nlive;
    access *acc;
} mem_plan;

static void live_ranges(gr_plan *p, mem_plan *m)
{
    for (int v = 0; v < p->nvals; v++) m->first[v] = m->last[v] = -1;
    for (int s = 0; s < p->nsteps; s++) {
        int n = step_access(p, s, m->acc);
        for (int a = 0; a < n; a++) {
            int v = m->acc[a].v;
            if (m->acc[a].write && m->first[v] < 0) m->first[v] = s;
            m->last[v] = s;
        }
    }
    for (int i = 0; i < p->g->noutputs; i++) m->last[p->outputs[i]] = p->nsteps;
}

/* An absent optional output of a forward step gets private bytes. */
static int absent_outputs(gr_plan *p, int s)
{
    gr_opctx *c = p->steps[s].ctx;
    if (p->steps[s].kind != ST_FWD) return GRAFT_OK;
    for (int j = 0; j < c->nout; j++) {
        if (gr_plan_value_index(p, c->out[j]) >= 0) continue;
        c->out[j]->data = gr_arena_alloc(p->arena, (gr_tensor_bytes(c->out[j]) + 63) & ~(size_t)63);
        if (!c->out[j]->data) return GRAFT_E_NOMEM;
    }
    return GRAFT_OK;
}

/* Places the values step s writes first (first fit between the live blocks), then retires the
 * blocks whose last reader was s. */
static void place_step(gr_plan *p, mem_plan *m, int s)
{
    int n = step_access(p, s, m->acc);
    for (int a = 0; a < n; a++) {
        int v = m->acc[a].v;
        if (!m->acc[a].write || m->first[v] != s || (p->ext && p->ext[v])) continue;
        m->first[v] = -2; /* placed */
        size_t need = (gr_tensor_bytes(&p->vals[v]) + 63) & ~(size_t)63, at = 0;
        int pos = 0;
        for (; pos < m->nlive; pos++) {
            if (m->live[pos].off - at >= need) break;
            at = m->live[pos].off + m->live[pos].size;
        }
        memmove(&m->live[pos + 1], &m->live[pos], (size_t)(m->nlive - pos) * sizeof *m->live);
        m->live[pos] = (block){ at, need, v };
        m->nlive++;
        m->off[v] = at;
        if (at + need > m->peak) m->peak = at + need;
    }
    for (int b = 0; b < m->nlive;) {
        if (m->last[m->live[b].value] <= s) {
            memmove(&m->live[b], &m->live[b + 1], (size_t)(m->nlive - b - 1) * sizeof *m->live);
            m->nlive--;
        } else b++;
    }
}

/* The activation block (never NULL, even when every activation is empty: pointer arithmetic on
 * NULL is undefined) and the shared scratch, both checked against tensor-bytes first. */
static int alloc_blocks(gr_plan *p, const mem_plan *m)
{
    p->act_bytes = m->peak;
    int st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)m->peak,
                            "the model's activations need %zu bytes", m->peak);
    if (st) return st;
    p->act = aligned_alloc(64, m->peak ? m->peak : 64);
    if (!p->act) return gr_err(GRAFT_E_NOMEM, "out of memory: activations need %zu bytes", m->peak);
    for (int v = 0; v < p->nvals; v++)
        if (m->first[v] == -2) p->vals[v].data = p->act + m->off[v];
    if (p->scratch_bytes > (size_t)INT64_MAX / 2)
        return gr_err(GRAFT_E_SHAPE, "the model's scratch size overflows");
    if ((st =
             gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)p->scratch_bytes,
                            "the model's largest op needs %zu bytes of scratch", p->scratch_bytes)))
        return st;
    /* never NULL, even when no op asks for scratch (an empty tensor's reorder): ops compute
     * scratch + offset, which is undefined on a null pointer */
    p->scratch = aligned_alloc(64, p->scratch_bytes ? (p->scratch_bytes + 63) & ~(size_t)63 : 64);
    if (!p->scratch)
        return gr_err(GRAFT_E_NOMEM, "out of memory for %zu bytes of scratch", p->scratch_bytes);
    return GRAFT_OK;
}

int gr_plan_memory(gr_plan *p)
{
    int st = GRAFT_OK, maxacc = 4;
    for (int s = 0; s < p->nsteps; s++) {
        int m = 2 * (p->steps[s].ctx ? p->steps[s].ctx->nin + p->steps[s].ctx->nout : 0) + 4;
        if (m > maxacc) maxacc = m;
    }
    mem_plan m = { .first = malloc((size_t)(p->nvals + 1) * sizeof *m.first),
                   .last = malloc((size_t)(p->nvals + 1) * sizeof *m.last),
                   .off = calloc((size_t)p->nvals + 1, sizeof *m.off),
                   .live = malloc((size_t)(p->nvals + 1) * sizeof *m.live),
                   .acc = malloc((size_t)maxacc * sizeof *m.acc) };
    if (!m.first || !m.last || !m.off || !m.live || !m.acc)
        st = gr_err(GRAFT_E_NOMEM, "out of memory planning");
    if (!st) live_ranges(p, &m);
    for (int s = 0; !st && s < p->nsteps; s++)
        if (!(st = absent_outputs(p, s))) place_step(p, &m, s);
    if (!st) st = alloc_blocks(p, &m);
    free(m.first);
    free(m.last);
    free(m.off);
    free(m.live);
    free(m.acc);
    return st;
}
