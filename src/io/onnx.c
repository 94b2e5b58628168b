/* onnx.c — ONNX import through protobuf-c (C generated from Debian's onnx.proto at build time).
 * Converts a ModelProto into a gr_graph: values, nodes, attributes, initializers (inline or in
 * external-data files confined to the model's folder) and metadata. */
#define _GNU_SOURCE
#include "io.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#define MIN_OPSET 7
#define MAX_OPSET 18

/* ---- a look at the wire format before unpacking ----
 * protobuf-c keeps strings as NUL-terminated C strings, so "x\0y" would become "x" and two
 * different names could meet in one value (a node writing a graph input through such a name made
 * the kernels write into the caller's buffer). graft compares names as C strings; a string
 * field holding a NUL byte is refused here, before anything is unpacked, which makes C-string
 * comparison the same as comparing the full bytes. Nesting (If branches in If branches) is
 * bounded too, since both protobuf-c and the graph flattening recurse. */

#define MAX_NESTING 64

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* Skips a field's value of wire type wt; -1 on bytes that are not the wire format. */
static int skip_value(const uint8_t **p, const uint8_t *end, unsigned wt, uint64_t *len)
{
    uint64_t v;
    *len = 0;
    switch (wt) {
    case 0: return read_varint(p, end, &v);
    case 1:
        if (end - *p < 8) return -1;
        *p += 8;
        return 0;
    case 5:
        if (end - *p < 4) return -1;
        *p += 4;
        return 0;
    case 2:
        if (read_varint(p, end, len) || *len > (uint64_t)(end - *p)) return -1;
        *p += *len;
        return 0;
    default: return -1; /* groups: not in onnx.proto */
    }
}

static int wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                      int depth)
{
    if (depth > MAX_NESTING)
        return gr_err(GRAFT_E_FORMAT,
                      "messages nested more than %d deep (If branches inside If branches?)",
                      MAX_NESTING);
    while (p < end) {
        uint64_t key, len;
        if (read_varint(&p, end, &key) || skip_value(&p, end, (unsigned)(key & 7), &len))
            return gr_err(GRAFT_E_FORMAT,
                          "not a valid ONNX model (the protobuf is truncated or corrupt)");
        const ProtobufCFieldDescriptor *f =
            (key >> 3) <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                : NULL;
        if (!f || (key & 7) != 2) continue;
        const uint8_t *val = p - len;
        if (f->type == PROTOBUF_C_TYPE_STRING && memchr(val, 0, len))
            return gr_err(
                GRAFT_E_FORMAT,
                "%s.%s holds a string with a NUL byte ('%.*s\\0...'); graft refuses "
                "names that are not plain C strings",
                d->short_name, f->name,
                (int)(strnlen((const char *)val, len) < 64 ? strnlen((const char *)val, len) : 64),
                (const char *)val);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            int st = wire_check(f->descriptor, val, p, depth + 1);
            if (st) return st;
        }
    }
    return GRAFT_OK;
}

/* ---- names → value indices (open addressing; the graph owns the strings) ---- */

typedef struct names {
    int *slot; /* value index or -1 */
    size_t cap;
    gr_graph *g;
    int cap_values;
} names;

static uint64_t hash_str(const char *s) { return gr_fnv1a(GR_FNV1A_BASIS, s, strlen(s)); }

static int names_find(const names *nm, const char *name, size_t *pos)
{
    size_t i = hash_str(name) & (nm->cap - 1);
    while (nm->slot[i] >= 0) {
        if (strcmp(nm->g->values[nm->slot[i]].name, name) == 0) {
            *pos = i;
            return nm->slot[i];
        }
        i = (i + 1) & (nm->cap - 1);
    }
    *pos = i;
    return -1;
}

/* Returns the value index for name, creating the value if needed (-1 on OOM). */
static int value_of(names *nm, const char *name)
{
    size_t pos;
    int v = names_find(nm, name, &pos);
    if (v >= 0) return v;
    gr_graph *g = nm->g;
    GR_ASSERT(g->nvalues < nm->cap_values);
    v = g->nvalues++;
    g->values[v].name = gr_arena_strdup(g->arena, name);
    if (!g->values[v].name) return -1;
    g->values[v].producer = -1;
    nm->slot[pos] = v;
    return v;
}

/* ---- tensors ---- */

static int dtype_supported(int dt) { return gr_dtype_size(dt) != 0; }

static const char *onnx_dtype_name(int dt)
{
    static const char *names_[] = { "undefined",  "float",   "uint8",  "int8",   "uint16",
                                    "int16",      "int32",   "int64",  "string", "bool",
                                    "float16",    "double",  "uint32", "uint64", "complex64",
                                    "complex128", "bfloat16" };
    return dt >= 0 && dt < (int)(sizeof names_ / sizeof *names_) ? names_[dt] : "unknown";
}

/* Resolves an external-data location inside the model's folder; refuses anything that leaves
 * it (absolute paths, "..", symlinks pointing outside). */
static int external_path(const char *dir, const char *loc, char *out, size_t n, const char *what)
{
    if (!loc || !loc[0]) return gr_err(GRAFT_E_FORMAT, "%s: external data has no location", what);
    if (loc[0] == '/' || strstr(loc, ".."))
        return gr_err(GRAFT_E_FORMAT, "%s: external data location '%s' leaves the model's folder",
                      what, loc);
    char joined[PATH_MAX], real_dir[PATH_MAX];
    if (snprintf(joined, sizeof joined, "%s/%s", dir, loc) >= (int)sizeof joined)
        return gr_err(GRAFT_E_FORMAT, "%s: external data path too long", what);
    if (!realpath(dir, real_dir))
        return gr_err(GRAFT_E_IO, "%s: cannot resolve folder '%s'", what, dir);
    if (!realpath(joined, out))
        return gr_err(GRAFT_E_IO, "%s: external data file '%s' cannot be opened: %s", what, joined,
                      strerror(errno));
    size_t k = strlen(real_dir);
    if (strncmp(out, real_dir, k) != 0 || out[k] != '/')
        return gr_err(GRAFT_E_FORMAT,
                      "%s: external data location '%s' resolves to '%s', outside the "
                      "model's folder",
                      what, loc, out);
    (void)n;
    return GRAFT_OK;
}

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < 0) return -1;
    *v = x;
    return 0;
}

/* The external data of tp: its file resolved inside dir, and checked to hold `bytes` bytes at
 * the tensor's offset (before anything is allocated for them). */
static int external_source(const Onnx__TensorProto *tp, const char *dir, size_t bytes,
                           const char *what, char path[PATH_MAX], int64_t *offset)
{
    const char *loc = NULL;
    int64_t length = -1;
    *offset = 0;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const char *k = tp->external_data[i]->key, *v = tp->external_data[i]->value;
        if (!k || !v) continue;
        if (strcmp(k, "location") == 0) loc = v;
        else if (strcmp(k, "offset") == 0 && parse_i64(v, offset))
            return gr_err(GRAFT_E_FORMAT, "%s: bad external data offset '%s'", what, v);
        else if (strcmp(k, "length") == 0 && parse_i64(v, &length))
            return gr_err(GRAFT_E_FORMAT, "%s: bad external data length '%s'", what, v);
    }
    int st = external_path(dir, loc, path, PATH_MAX, what);
    if (st) return st;
    if (length >= 0 && (size_t)length != bytes)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: external data length %" PRId64 " but the dims need %zu bytes", what,
                      length, bytes);
    struct stat sb;
    int ok = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    if (!ok || *offset > (int64_t)sb.st_size || (int64_t)bytes > (int64_t)sb.st_size - *offset)
        return gr_err(
            GRAFT_E_FORMAT,
            "%s: external data in '%s' needs bytes %" PRId64 "..%" PRId64 " but the file has %lld",
            what, path, *offset, *offset + (int64_t)bytes, (long long)(ok ? sb.st_size : -1));
    return GRAFT_OK;
}

static int read_external(const char *path, int64_t offset, void *dst, size_t bytes,
                         const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) return gr_err(GRAFT_E_IO, "%s: cannot open '%s': %s", what, path, strerror(errno));
    int ok = fseeko(f, offset, SEEK_SET) == 0 && fread(dst, 1, bytes, f) == bytes;
    fclose(f);
    return ok ? GRAFT_OK
              : gr_err(GRAFT_E_IO, "%s: read error in '%s' (did it shrink?)", what, path);
}

/* Values stored in tp's typed field for element type dt (int32_data holds the small types). */
static size_t typed_count(const Onnx__TensorProto *tp, int dt)
{
    switch (dt) {
    case GR_F32: return tp->n_float_data;
    case GR_F64: return tp->n_double_data;
    case GR_I64: return tp->n_int64_data;
    default: return tp->n_int32_data;
    }
}

static void copy_typed(const Onnx__TensorProto *tp, int dt, void *data, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case GR_F32: ((float *)data)[i] = tp->float_data[i]; break;
        case GR_F64: ((double *)data)[i] = tp->double_data[i]; break;
        case GR_I64: ((int64_t *)data)[i] = tp->int64_data[i]; break;
        case GR_I32: ((int32_t *)data)[i] = tp->int32_data[i]; break;
        case GR_I8: ((int8_t *)data)[i] = (int8_t)tp->int32_data[i]; break;
        default: ((uint8_t *)data)[i] = (uint8_t)tp->int32_data[i]; break;
        }
    }
}

/* Type and dims of tp, and its size in bytes, checked against GRAFT_LIMIT_TENSOR_BYTES. */
static int proto_shape(const Onnx__TensorProto *tp, gr_shape *s, size_t *bytes, const char *what)
{
    int dt = tp->has_data_type ? tp->data_type : 0;
    if (!dtype_supported(dt))
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: element type %s (%d) is not supported", what,
                      onnx_dtype_name(dt), dt);
    if (tp->n_dims > GR_MAXDIM)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: rank %zu exceeds graft's maximum of %d", what,
                      tp->n_dims, GR_MAXDIM);
    *s = (gr_shape){ (int)tp->n_dims, { 0 } };
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return gr_err(GRAFT_E_FORMAT, "%s: negative dimension %" PRId64, what, tp->dims[i]);
        s->d[i] = tp->dims[i];
    }
    size_t es = gr_dtype_size(dt);
    int64_t n = gr_numel_checked(s, es);
    if (n < 0 || (uint64_t)n * es > (uint64_t)SIZE_MAX / 2)
        return gr_err(GRAFT_E_FORMAT, "%s: dims whose product overflows", what);
    *bytes = (size_t)n * es;
    return gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)*bytes,
                          "%s: dims %s of %s need %zu bytes", what,
                          gr_shape_str(s, (char[128]){ 0 }, 128), gr_dtype_name(dt), *bytes);
}

/* Converts a TensorProto; data is copied into the arena. `dir` is the model's folder (for
 * external data), `what` names the tensor in messages. Every size is checked against the bytes
 * the file (or its external data file) holds before the tensor is allocated: a small file
 * cannot make graft allocate much. */
static int tensor_from_proto(const Onnx__TensorProto *tp, const char *dir, gr_arena *a,
                             gr_tensor *out, const char *what)
{
    gr_shape s;
    size_t bytes = 0;
    int st = proto_shape(tp, &s, &bytes, what);
    if (st) return st;
    int dt = tp->data_type;
    int64_t n = gr_numel(&s), offset = 0;
    char path[PATH_MAX];
    int external =
        tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external) st = external_source(tp, dir, bytes, what, path, &offset);
    else if (tp->has_raw_data && tp->raw_data.len != bytes)
        st = gr_err(GRAFT_E_FORMAT, "%s: raw_data has %zu bytes but dims %s of %s need %zu", what,
                    tp->raw_data.len, gr_shape_str(&s, (char[128]){ 0 }, 128), gr_dtype_name(dt),
                    bytes);
    else if (!tp->has_raw_data && typed_count(tp, dt) != (size_t)n)
        st = gr_err(GRAFT_E_FORMAT, "%s: has %zu values but dims %s need %" PRId64, what,
                    typed_count(tp, dt), gr_shape_str(&s, (char[128]){ 0 }, 128), n);
    if (st) return st;
    void *data = gr_arena_alloc(a, bytes);
    if (!data) return gr_err(GRAFT_E_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
    *out = (gr_tensor){ .dtype = (gr_dtype)dt, .shape = s, .data = data };
    if (external) return read_external(path, offset, data, bytes, what);
    if (tp->has_raw_data && bytes) memcpy(data, tp->raw_data.data, bytes);
    else if (!tp->has_raw_data) copy_typed(tp, dt, data, n);
    return GRAFT_OK;
}

/* ---- attributes ---- */

static char *bytes_str(gr_arena *a, ProtobufCBinaryData b)
{
    char *s = gr_arena_alloc(a, b.len + 1);
    if (s && b.len) memcpy(s, b.data, b.len);
    return s;
}

static int attr_from_proto(const Onnx__AttributeProto *ap, const char *dir, gr_arena *a,
                           gr_attr *out, const char *node)
{
    out->name = gr_arena_strdup(a, ap->name ? ap->name : "");
    if (!out->name) return GRAFT_E_NOMEM;
    out->type = ap->has_type ? (int)ap->type : 0;
    out->i = ap->i;
    out->f = ap->f;
    const void *got = out; /* what this type allocated (NULL: out of memory) */
    switch (out->type) {
    case GR_AT_STRING: got = out->s = bytes_str(a, ap->s); break;
    case GR_AT_INTS:
        out->n = (int)ap->n_ints;
        got = out->ints = gr_arena_alloc(a, ap->n_ints * sizeof(int64_t));
        if (got && ap->n_ints) memcpy(out->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        break;
    case GR_AT_FLOATS:
        out->n = (int)ap->n_floats;
        got = out->floats = gr_arena_alloc(a, ap->n_floats * sizeof(float));
        if (got && ap->n_floats) memcpy(out->floats, ap->floats, ap->n_floats * sizeof(float));
        break;
    case GR_AT_STRINGS:
        out->n = (int)ap->n_strings;
        got = out->strings = gr_arena_alloc(a, ap->n_strings * sizeof(char *));
        for (size_t i = 0; got && i < ap->n_strings; i++)
            got = out->strings[i] = bytes_str(a, ap->strings[i]);
        break;
    case GR_AT_TENSOR: {
        if (!ap->t)
            return gr_err(GRAFT_E_FORMAT, "node '%s': attribute '%s' has no tensor", node,
                          out->name);
        char what[512];
        snprintf(what, sizeof what, "node '%s' attribute '%s'", node, out->name);
        return tensor_from_proto(ap->t, dir, a, &out->t, what);
    }
    default:
        break; /* graphs, sparse tensors: kept as a type tag; ops that need them are unsupported */
    }
    return got ? GRAFT_OK : GRAFT_E_NOMEM;
}

/* ---- model ---- */

static int declared_type(const Onnx__ValueInfoProto *vi, gr_value *v)
{
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type)
        return gr_err(
            GRAFT_E_UNSUPPORTED,
            "graph input/output '%s' is not a tensor (sequences and maps are not supported)",
            vi->name);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    v->t.dtype = tt->has_elem_type ? (gr_dtype)tt->elem_type : 0;
    if (tt->shape) {
        if (tt->shape->n_dim > GR_MAXDIM)
            return gr_err(GRAFT_E_UNSUPPORTED, "'%s': rank %zu exceeds %d", vi->name,
                          tt->shape->n_dim, GR_MAXDIM);
        v->has_shape = 1;
        v->t.shape.rank = (int)tt->shape->n_dim;
        for (size_t i = 0; i < tt->shape->n_dim; i++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
            int known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            if (known && d->dim_value < 0)
                return gr_err(GRAFT_E_FORMAT, "'%s': dimension %zu is negative (%" PRId64 ")",
                              vi->name, i, d->dim_value);
            v->t.shape.d[i] = known ? d->dim_value : -1;
        }
    }
    return GRAFT_OK;
}

/* ---- nodes, with If lowered ----
 * An If node's branches are inlined into the graph and each output becomes
 * Where(cond, then_output, else_output): both branches run and the condition picks. That is
 * exact when the two branches give outputs of one shape and neither can fail on inputs it
 * would not have seen (the case of exporters' ifs: openWakeWord's heads run a verifier model
 * only when the first score passes a threshold), and it keeps plans static: graft builds one
 * plan per input shape, and a data-dependent branch would break that. Names local to a branch
 * get the prefix "<If node>/then/" or "/else/"; other names refer to the enclosing scopes. */

typedef struct scope {
    const Onnx__GraphProto *gp;
    const char *prefix; /* "" for the main graph */
    const struct scope *parent;
} scope;

static int is_if(const Onnx__NodeProto *np)
{
    return np->op_type && strcmp(np->op_type, "If") == 0 &&
           (!np->domain || !np->domain[0] || strcmp(np->domain, "ai.onnx") == 0);
}

static const Onnx__GraphProto *branch(const Onnx__NodeProto *np, const char *which)
{
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i]->name && strcmp(np->attribute[i]->name, which) == 0)
            return np->attribute[i]->g;
    return NULL;
}

/* Nodes and value references the flattened graph needs (an upper bound for the values). */
static void count_graph(const Onnx__GraphProto *gp, size_t *nodes, size_t *refs)
{
    *refs += gp->n_initializer + gp->n_input + gp->n_output;
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *np = gp->node[k];
        const Onnx__GraphProto *t = is_if(np) ? branch(np, "then_branch") : NULL;
        const Onnx__GraphProto *e = is_if(np) ? branch(np, "else_branch") : NULL;
        if (t && e) {
            count_graph(t, nodes, refs);
            count_graph(e, nodes, refs);
            *nodes += np->n_output;
            *refs += 4 * np->n_output + 1;
        } else {
            *nodes += 1;
            *refs += np->n_input + np->n_output;
        }
    }
}

static int is_local(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, name) == 0) return 1;
    for (size_t i = 0; i < gp->n_input; i++)
        if (gp->input[i]->name && strcmp(gp->input[i]->name, name) == 0) return 1;
    for (size_t k = 0; k < gp->n_node; k++)
        for (size_t i = 0; i < gp->node[k]->n_output; i++)
            if (strcmp(gp->node[k]->output[i], name) == 0) return 1;
    return 0;
}

/* The flattened graph's name for `name` as seen from scope sc; -1 if it does not fit in n. */
static int scoped_name(const scope *sc, const char *name, char *out, size_t n)
{
    while (sc->parent && !is_local(sc->gp, name)) sc = sc->parent;
    return snprintf(out, n, "%s%s", sc->prefix, name) < (int)n ? 0 : -1;
}

typedef struct flat {
    gr_graph *g;
    names *nm;
    const char *dir;
    size_t index; /* the next node's position in the ONNX file (for "#k" names) */
} flat;

static int scoped_value(flat *f, const scope *sc, const char *name, int *v)
{
    if (!name[0]) {
        *v = -1;
        return GRAFT_OK;
    }
    char buf[2048];
    if (scoped_name(sc, name, buf, sizeof buf))
        return gr_err(GRAFT_E_FORMAT,
                      "value '%.64s...': its name inside an If branch is longer than 2 KB", name);
    *v = value_of(f->nm, buf);
    return *v < 0 ? GRAFT_E_NOMEM : GRAFT_OK;
}

static gr_node *new_node(flat *f, const scope *sc, const char *name, const char *op_type,
                         const char *domain, int nin, int nout, int nattr)
{
    gr_graph *g = f->g;
    gr_node *n = &g->nodes[g->nnodes++];
    char full[1024];
    snprintf(full, sizeof full, "%s%s", sc->prefix, name);
    n->name = gr_arena_strdup(g->arena, full);
    n->op_type = gr_arena_strdup(g->arena, op_type);
    n->domain = gr_arena_strdup(g->arena, domain);
    n->op = gr_op_find(n->op_type, n->domain);
    n->nin = nin;
    n->nout = nout;
    n->in = gr_arena_alloc(g->arena, ((size_t)nin + 1) * sizeof(int));
    n->out = gr_arena_alloc(g->arena, ((size_t)nout + 1) * sizeof(int));
    n->nattr = nattr;
    n->attrs = gr_arena_alloc(g->arena, ((size_t)nattr + 1) * sizeof(gr_attr));
    return n->name && n->op_type && n->domain && n->in && n->out && n->attrs ? n : NULL;
}

static int emit_graph(flat *f, const scope *sc);

static int emit_if(flat *f, const scope *sc, const Onnx__NodeProto *np, const char *name)
{
    size_t self = f->index - 1; /* this node's position (emit_graph counted it) */
    const Onnx__GraphProto *br[2] = { branch(np, "then_branch"), branch(np, "else_branch") };
    const char *which[2] = { "then", "else" };
    char prefix[2][1024];
    scope sub[2];
    for (int b = 0; b < 2; b++) {
        if (br[b]->n_output != np->n_output)
            return gr_err(GRAFT_E_FORMAT,
                          "node '%s%s' (If): the %s branch has %zu outputs, the node %zu",
                          sc->prefix, name, which[b], br[b]->n_output, np->n_output);
        /* the node's position makes the prefix unique even when names repeat */
        if (snprintf(prefix[b], sizeof prefix[b], "%s%s#%zu/%s/", sc->prefix, name, self,
                     which[b]) >= (int)sizeof prefix[b])
            return gr_err(GRAFT_E_FORMAT,
                          "node '%s' (If): nested too deep (names longer than 1 KB)", name);
        for (size_t i = 0; i < br[b]->n_output; i++)
            if (!br[b]->output[i]->name || !br[b]->output[i]->name[0])
                return gr_err(GRAFT_E_FORMAT,
                              "node '%s%s' (If): output %zu of the %s branch has no name",
                              sc->prefix, name, i, which[b]);
        sub[b] = (scope){ br[b], prefix[b], sc };
        int st = emit_graph(f, &sub[b]);
        if (st) return st;
    }
    if (np->n_input != 1 || !np->input[0][0])
        return gr_err(GRAFT_E_FORMAT, "node '%s%s' (If) needs one input, the condition", sc->prefix,
                      name);
    for (size_t i = 0; i < np->n_output; i++) {
        char wname[1100];
        snprintf(wname, sizeof wname, "%s/select%zu", name, i);
        gr_node *n = new_node(f, sc, wname, "Where", "", 3, 1, 0);
        if (!n) return GRAFT_E_NOMEM;
        int st = scoped_value(f, sc, np->input[0], &n->in[0]);
        if (!st) st = scoped_value(f, &sub[0], br[0]->output[i]->name, &n->in[1]);
        if (!st) st = scoped_value(f, &sub[1], br[1]->output[i]->name, &n->in[2]);
        if (!st) st = scoped_value(f, sc, np->output[i], &n->out[0]);
        if (st) return st;
    }
    return GRAFT_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ONNX allows each attribute once per node (onnxruntime refuses a repeat); graft would silently
 * take the first, so a repeat is an error. Sorted, so a node with many attributes stays cheap. */
static int check_attrs_unique(const gr_node *n)
{
    if (n->nattr < 2) return GRAFT_OK;
    const char **names_ = malloc((size_t)n->nattr * sizeof *names_);
    if (!names_) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < n->nattr; i++) names_[i] = n->attrs[i].name;
    qsort(names_, (size_t)n->nattr, sizeof *names_, cmp_str);
    int st = GRAFT_OK;
    for (int i = 1; i < n->nattr && !st; i++)
        if (!strcmp(names_[i - 1], names_[i]))
            st = gr_err(GRAFT_E_FORMAT, "node '%s' (%s) has attribute '%s' twice", n->name,
                        n->op_type, names_[i]);
    free((void *)names_);
    return st;
}

static int emit_node(flat *f, const scope *sc, const Onnx__NodeProto *np, const char *name)
{
    gr_node *n = new_node(f, sc, name, np->op_type ? np->op_type : "", np->domain ? np->domain : "",
                          (int)np->n_input, (int)np->n_output, (int)np->n_attribute);
    if (!n) return GRAFT_E_NOMEM;
    int st = GRAFT_OK;
    for (size_t i = 0; i < np->n_input && !st; i++)
        st = scoped_value(f, sc, np->input[i], &n->in[i]);
    for (size_t i = 0; i < np->n_output && !st; i++)
        st = scoped_value(f, sc, np->output[i], &n->out[i]);
    for (size_t i = 0; i < np->n_attribute && !st; i++)
        st = attr_from_proto(np->attribute[i], f->dir, f->g->arena, &n->attrs[i], n->name);
    return st ? st : check_attrs_unique(n);
}

/* A branch's own initializers become (renamed) initializers of the flattened graph. */
static int emit_initializers(flat *f, const scope *sc)
{
    for (size_t i = 0; i < sc->gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = sc->gp->initializer[i];
        int v;
        int st = scoped_value(f, sc, tp->name ? tp->name : "", &v);
        if (st) return st;
        char what[1100];
        snprintf(what, sizeof what, "initializer '%s'", f->g->values[v].name);
        if (f->g->values[v].is_init) return gr_err(GRAFT_E_FORMAT, "%s is defined twice", what);
        f->g->values[v].is_init = 1;
        st = tensor_from_proto(tp, f->dir, f->g->arena, &f->g->values[v].t, what);
        if (st) return st;
    }
    return GRAFT_OK;
}

static int emit_graph(flat *f, const scope *sc)
{
    int st = sc->parent ? emit_initializers(f, sc) : GRAFT_OK;
    for (size_t k = 0; k < sc->gp->n_node && !st; k++) {
        const Onnx__NodeProto *np = sc->gp->node[k];
        char fallback[32];
        snprintf(fallback, sizeof fallback, "#%zu", f->index++);
        const char *name = np->name && np->name[0] ? np->name : fallback;
        if (is_if(np) && branch(np, "then_branch") && branch(np, "else_branch"))
            st = emit_if(f, sc, np, name);
        else st = emit_node(f, sc, np, name);
    }
    return st;
}

static int convert_nodes(gr_graph *g, const Onnx__GraphProto *gp, names *nm, const char *dir,
                         size_t cap_nodes)
{
    g->nnodes = 0;
    g->nodes = gr_arena_alloc(g->arena, (cap_nodes + 1) * sizeof(gr_node));
    if (!g->nodes) return GRAFT_E_NOMEM;
    flat f = { g, nm, dir, 0 };
    scope top = { gp, "", NULL };
    int st = emit_graph(&f, &top);
    GR_ASSERT(st || (size_t)g->nnodes <= cap_nodes);
    return st;
}

/* Graph inputs: named, each once; initializers listed as inputs too (old exporters) stay
 * initializers. */
static int convert_inputs(gr_graph *g, const Onnx__GraphProto *gp, names *nm)
{
    g->inputs = gr_arena_alloc(g->arena, (gp->n_input + 1) * sizeof(int));
    if (!g->inputs) return GRAFT_E_NOMEM;
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *name = gp->input[i]->name ? gp->input[i]->name : "";
        if (!name[0]) return gr_err(GRAFT_E_FORMAT, "graph input %zu has no name", i);
        int v = value_of(nm, name);
        if (v < 0) return GRAFT_E_NOMEM;
        if (g->values[v].is_init) continue;
        for (int j = 0; j < g->ninputs; j++)
            if (g->inputs[j] == v)
                return gr_err(GRAFT_E_FORMAT, "graph input '%s' is declared twice", name);
        int st = declared_type(gp->input[i], &g->values[v]);
        if (st) return st;
        g->inputs[g->ninputs++] = v;
    }
    return GRAFT_OK;
}

/* Graph outputs; their declared types are kept when they are tensors. */
static int convert_outputs(gr_graph *g, const Onnx__GraphProto *gp, names *nm)
{
    g->outputs = gr_arena_alloc(g->arena, (gp->n_output + 1) * sizeof(int));
    if (!g->outputs) return GRAFT_E_NOMEM;
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        if (!name[0]) return gr_err(GRAFT_E_FORMAT, "graph output %zu has no name", i);
        int v = value_of(nm, name);
        if (v < 0) return GRAFT_E_NOMEM;
        gr_value tmp = g->values[v];
        if (declared_type(gp->output[i], &tmp) == GRAFT_OK && !g->values[v].is_init) {
            g->values[v].has_shape = tmp.has_shape;
            g->values[v].t.shape = tmp.t.shape;
            g->values[v].t.dtype = tmp.t.dtype;
        }
        g->outputs[g->noutputs++] = v;
    }
    return GRAFT_OK;
}

/* A graph input of an element type graft has no kernels for (uint16, float16, ...) is refused
 * at load, naming the node that would read it: no op ever sees a type it does not know. */
static int check_input_types(const gr_graph *g)
{
    for (int i = 0; i < g->ninputs; i++) {
        const gr_value *v = &g->values[g->inputs[i]];
        int dt = v->t.dtype;
        if (!dt || dtype_supported(dt)) continue;
        for (int k = 0; k < g->nnodes; k++)
            for (int j = 0; j < g->nodes[k].nin; j++)
                if (g->nodes[k].in[j] == g->inputs[i])
                    return gr_err(GRAFT_E_UNSUPPORTED,
                                  "node '%s' (%s) reads graph input '%s' of element type %s (%d), "
                                  "which graft does not support",
                                  g->nodes[k].name, g->nodes[k].op_type, v->name,
                                  onnx_dtype_name(dt), dt);
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "graph input '%s' has element type %s (%d), which graft does not support",
                      v->name, onnx_dtype_name(dt), dt);
    }
    return GRAFT_OK;
}

static int convert_graph(gr_graph *g, const Onnx__GraphProto *gp, const char *dir)
{
    size_t cap_nodes = 0, cap_values = 0;
    count_graph(gp, &cap_nodes, &cap_values);
    names nm = { NULL, 16, g, (int)cap_values + 1 };
    while (nm.cap < 2 * cap_values + 2) nm.cap *= 2;
    nm.slot = malloc(nm.cap * sizeof(int));
    g->values = gr_arena_alloc(g->arena, (cap_values + 1) * sizeof(gr_value));
    if (!nm.slot || !g->values) {
        free(nm.slot);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    memset(nm.slot, 0xff, nm.cap * sizeof(int));
    int st = GRAFT_OK;

    for (size_t i = 0; i < gp->n_initializer && !st; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", tp->name ? tp->name : "");
        int v = value_of(&nm, tp->name ? tp->name : "");
        if (v < 0) {
            st = GRAFT_E_NOMEM;
            break;
        }
        if (g->values[v].is_init) {
            st = gr_err(GRAFT_E_FORMAT, "%s is defined twice", what);
            break;
        }
        g->values[v].is_init = 1;
        st = tensor_from_proto(tp, dir, g->arena, &g->values[v].t, what);
    }
    if (!st) st = convert_inputs(g, gp, &nm);
    if (!st) st = convert_outputs(g, gp, &nm);
    if (!st) st = convert_nodes(g, gp, &nm, dir, cap_nodes);
    if (!st) st = check_input_types(g);
    free(nm.slot);
    return st;
}

static int convert_model(gr_graph *g, const Onnx__ModelProto *mp, const char *dir)
{
    if (!mp->graph) return gr_err(GRAFT_E_FORMAT, "the model has no graph");
    g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    g->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            g->opset = (int)o->version;
    }
    if (g->opset == 0 && mp->n_opset_import == 0) g->opset = 1; /* IR < 3 models have none */
    if (g->opset < MIN_OPSET || g->opset > MAX_OPSET)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "the model uses ONNX opset %d; graft supports opsets %d to %d", g->opset,
                      MIN_OPSET, MAX_OPSET);
    g->producer = gr_arena_strdup(g->arena, mp->producer_name ? mp->producer_name : "");
    g->producer_version =
        gr_arena_strdup(g->arena, mp->producer_version ? mp->producer_version : "");
    g->graph_name = gr_arena_strdup(g->arena, mp->graph->name ? mp->graph->name : "");
    g->nmeta = (int)mp->n_metadata_props;
    g->meta = gr_arena_alloc(g->arena, (mp->n_metadata_props + 1) * sizeof(gr_meta));
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        g->meta[i].key =
            gr_arena_strdup(g->arena, mp->metadata_props[i]->key ? mp->metadata_props[i]->key : "");
        g->meta[i].value = gr_arena_strdup(
            g->arena, mp->metadata_props[i]->value ? mp->metadata_props[i]->value : "");
    }
    int st = convert_graph(g, mp->graph, dir);
    return st ? st : gr_graph_sort(g);
}

/* protobuf-c's allocations through graft's malloc, so that running out of memory is told
 * apart from a corrupt file (protobuf-c returns NULL for both). */
static void *pb_alloc(void *oom, size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) *(int *)oom = 1;
    return p;
}

static void pb_free(void *oom, void *p)
{
    (void)oom;
    free(p);
}

/* Parses the bytes of the model file at path (external data is looked up next to it). */
static int onnx_parse(const char *path, const unsigned char *buf, size_t n, gr_graph **out)
{
    if (n == 0) return gr_err(GRAFT_E_FORMAT, "%s: the file is empty, not an ONNX model", path);
    int st = wire_check(&onnx__model_proto__descriptor, buf, buf + n, 0);
    if (st) return gr_err_prefix(st, "%s", path);
    int oom = 0;
    ProtobufCAllocator pa = { pb_alloc, pb_free, &oom };
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&pa, n, buf);
    if (!mp && oom) return gr_err(GRAFT_E_NOMEM, "%s: out of memory unpacking the model", path);
    if (!mp)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: not a valid ONNX model (the protobuf is truncated or corrupt)", path);
    gr_graph *g = gr_calloc(1, sizeof *g);
    if (g) g->arena = gr_arena_new(1 << 20);
    if (!g || !g->arena) {
        free(g);
        onnx__model_proto__free_unpacked(mp, &pa);
        return GRAFT_E_NOMEM;
    }
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    st = convert_model(g, mp, dirname(dirbuf));
    onnx__model_proto__free_unpacked(mp, &pa);
    if (!st && !(g->path = gr_arena_strdup(g->arena, path))) st = GRAFT_E_NOMEM;
    if (st) {
        gr_graph_free(g);
        return gr_err_prefix(st, "%s", path);
    }
    *out = g;
    return GRAFT_OK;
}

int gr_onnx_load(const char *path, gr_graph **out)
{
    unsigned char *buf;
    size_t n;
    int st = gr_read_file(path, 0, &buf, &n);
    if (st) return st;
    st = onnx_parse(path, buf, n, out);
    free(buf);
    return st;
}

int gr_model_open(const char *path, gr_model *m)
{
    memset(m, 0, sizeof *m);
    unsigned char *buf;
    size_t n;
    int st = gr_read_file(path, 0, &buf, &n);
    if (st) return st;
    m->crc[0] = gr_crc32(0, buf, n);
    m->crc[1] = gr_crc32(0x9e3779b9u, buf, n);
    m->size = (int64_t)n;
    st = onnx_parse(path, buf, n, &m->g);
    free(buf);
    if (!st && (st = gr_graph_check_ops(m->g))) st = gr_err_prefix(st, "%s", path);
    if (!st) m->path = m->g->path;
    if (st) gr_model_close(m);
    return st;
}

void gr_model_close(gr_model *m)
{
    gr_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

int gr_graph_check_ops(const gr_graph *g)
{
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        if (!n->op)
            return gr_err(GRAFT_E_UNSUPPORTED,
                          "node '%s' uses op '%s%s%s' (opset %d), which graft does not support",
                          n->name, n->domain[0] ? n->domain : "", n->domain[0] ? "." : "",
                          n->op_type, g->opset);
    }
    return GRAFT_OK;
}

int gr_onnx_read_tensor(const char *path, gr_arena *arena, gr_tensor *out, char **name)
{
    unsigned char *buf;
    size_t n;
    int st = gr_read_file(path, 0, &buf, &n);
    if (st) return st;
    st = wire_check(&onnx__tensor_proto__descriptor, buf, buf + n, 0);
    int oom = 0;
    ProtobufCAllocator pa = { pb_alloc, pb_free, &oom };
    Onnx__TensorProto *tp = st ? NULL : onnx__tensor_proto__unpack(&pa, n, buf);
    free(buf);
    if (st) return gr_err_prefix(st, "%s", path);
    if (!tp && oom) return gr_err(GRAFT_E_NOMEM, "%s: out of memory unpacking the tensor", path);
    if (!tp) return gr_err(GRAFT_E_FORMAT, "%s: not a valid TensorProto", path);
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    st = tensor_from_proto(tp, dirname(dirbuf), arena, out, path);
    if (!st && name) *name = gr_arena_strdup(arena, tp->name ? tp->name : "");
    onnx__tensor_proto__free_unpacked(tp, &pa);
    return st;
}
