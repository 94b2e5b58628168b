#!/usr/bin/python3
"""An independent reader for graft's ONNX export (tests/test_io_export.c), using Debian's
python3-onnx (1.12).

  onnx_export_check.py check ORIG.onnx SAVED.onnx [--meta KEY=VALUE ...]
      onnx.checker.check_model(SAVED, full_check=True) must accept the file, and SAVED must hold
      the same model as ORIG: every node (op, domain, inputs, outputs, every attribute bit for
      bit), every initializer (dtype, dims, bytes), the graph inputs and outputs with their
      types and shapes (a symbolic dim must stay symbolic), the default-domain opset and the
      metadata (ORIG's plus the --meta pairs graft added). Also: IR version 8, producer
      "graft", initializers stored as raw_data. Exits 1 naming the first difference.
  onnx_export_check.py make-attrs OUT.onnx
      Writes a small model that uses every attribute type graft reads (float, int, string,
      tensor, floats, ints, strings) in a custom domain, initializers of every graft dtype
      (including a scalar and an empty tensor, some stored as typed fields rather than
      raw_data), an absent optional input, metadata and symbolic dims.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def fail(msg):
    print(f"onnx_export_check: {msg}", file=sys.stderr)
    sys.exit(1)


def tensor_key(t):
    a = numpy_helper.to_array(t)
    return (t.data_type, tuple(t.dims), a.tobytes())


def attr_value(a):
    T = onnx.AttributeProto
    if a.type == T.FLOAT:
        return np.float32(a.f).tobytes()
    if a.type == T.INT:
        return a.i
    if a.type == T.STRING:
        return a.s
    if a.type == T.TENSOR:
        return tensor_key(a.t)
    if a.type == T.FLOATS:
        return np.array(a.floats, np.float32).tobytes()
    if a.type == T.INTS:
        return list(a.ints)
    if a.type == T.STRINGS:
        return list(a.strings)
    fail(f"attribute {a.name} has type {a.type}, which this check does not compare")


def value_type(v):
    tt = v.type.tensor_type
    dims = None
    if tt.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else
                ("?" if d.HasField("dim_param") and d.dim_param else "unset") for d in tt.shape.dim]
    return (tt.elem_type, dims)


def domain(d):
    return "" if d in ("", "ai.onnx") else d


def check(orig_path, saved_path, extra_meta):
    saved = onnx.load(saved_path)
    try:
        onnx.checker.check_model(saved, full_check=True)
    except Exception as e:  # the checker's own exception types vary between versions
        fail(f"{saved_path}: onnx.checker rejects it: {e}")
    orig = onnx.load(orig_path)
    if saved.ir_version != 8:
        fail(f"ir_version {saved.ir_version}, expected 8")
    if saved.producer_name != "graft" or not saved.producer_version:
        fail(f"producer '{saved.producer_name}' '{saved.producer_version}'")
    ops = {domain(o.domain): o.version for o in saved.opset_import}
    want = {domain(o.domain): o.version for o in orig.opset_import}
    if ops.get("") != want.get(""):
        fail(f"default opset {ops.get('')}, original {want.get('')}")
    meta = {p.key: p.value for p in saved.metadata_props}
    want_meta = {p.key: p.value for p in orig.metadata_props}
    want_meta.update(extra_meta)
    if meta != want_meta:
        fail(f"metadata {meta}, expected {want_meta}")

    g, og = saved.graph, orig.graph
    inits = {t.name: t for t in g.initializer}
    oinits = {t.name: t for t in og.initializer}
    if sorted(inits) != sorted(oinits):
        fail(f"initializers differ: {sorted(set(inits) ^ set(oinits))[:5]}")
    for name, t in inits.items():
        if not t.HasField("raw_data"):
            fail(f"initializer {name} is not stored as raw_data")
        if tensor_key(t) != tensor_key(oinits[name]):
            fail(f"initializer {name} differs (dtype {t.data_type}, dims {list(t.dims)})")

    def io(vs, skip):
        return [(v.name, value_type(v)) for v in vs if v.name not in skip]
    for what, a, b in (("inputs", io(g.input, inits), io(og.input, oinits)),
                       ("outputs", io(g.output, {}), io(og.output, {}))):
        if a != b:
            fail(f"graph {what} {a}, original {b}")

    if len(g.node) != len(og.node):
        fail(f"{len(g.node)} nodes, original {len(og.node)}")
    onodes = {tuple(n.output): n for n in og.node}
    nattr = 0
    for k, n in enumerate(g.node):
        o = onodes.get(tuple(n.output))
        if o is None:
            fail(f"node {n.name} ({n.op_type}) with outputs {list(n.output)} is not in the original")
        if (n.op_type, domain(n.domain), list(n.input)) != (o.op_type, domain(o.domain), list(o.input)):
            fail(f"node {n.name}: {n.op_type} {list(n.input)}, original {o.op_type} {list(o.input)}")
        if o.name and n.name != o.name:
            fail(f"node named {n.name}, original {o.name}")
        a = {x.name: (x.type, attr_value(x)) for x in n.attribute}
        b = {x.name: (x.type, attr_value(x)) for x in o.attribute}
        if a != b:
            fail(f"node {n.name} ({n.op_type}): attributes differ: "
                 f"{sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))}")
        nattr += len(a)
    print(f"onnx_export_check: {saved_path}: checker ok; {len(g.node)} nodes, {nattr} attributes, "
          f"{len(inits)} initializers, {len(g.input)} inputs, {len(g.output)} outputs, "
          f"{len(meta)} metadata entries equal to the original")


def make_attrs(out):
    T = helper.make_tensor
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((2, 3)).astype(np.float32), "w_f32"),
        numpy_helper.from_array(rng.standard_normal((4,)), "w_f64"),
        numpy_helper.from_array(np.array([-(2 ** 40), 3, 0, 7], np.int64), "w_i64"),
        numpy_helper.from_array(np.array([[1, -2], [3, 2 ** 30]], np.int32), "w_i32"),
        numpy_helper.from_array(np.arange(250, 256, dtype=np.uint8), "w_u8"),
        numpy_helper.from_array(np.array([-128, 5, 127], np.int8), "w_i8"),
        numpy_helper.from_array(np.array([True, False, True]), "w_bool"),
        numpy_helper.from_array(np.array(3.5, np.float32), "w_scalar"),
        numpy_helper.from_array(np.zeros((0, 3), np.float32), "w_empty"),
        # typed fields instead of raw_data: graft must still write raw_data with the same values
        T("w_typed_f32", TensorProto.FLOAT, [3], [1.5, -2.25, 1e-30]),
        T("w_typed_i64", TensorProto.INT64, [2], [5, -6]),
        T("w_typed_u8", TensorProto.UINT8, [2], [0, 255]),
    ]
    node = helper.make_node(
        "Everything", ["x", "", "w_f32", "w_f64", "w_i64", "w_i32", "w_u8", "w_i8", "w_bool",
                       "w_scalar", "w_empty", "w_typed_f32", "w_typed_i64", "w_typed_u8"],
        ["y", "aux"], name="all_attrs", domain="test.graft",
        f=0.1, i=-(2 ** 62), s="nearest \u00e9",
        t=numpy_helper.from_array(np.array([[1, 2, 3]], np.int64)),
        floats=[0.5, -1e-7, 3.4e38], ints=[1, -1, 2 ** 40], strings=["a", "", "b c"])
    empty = onnx.AttributeProto()  # an empty list keeps its declared type
    empty.name, empty.type = "empty_ints", onnx.AttributeProto.INTS
    node.attribute.append(empty)
    node2 = helper.make_node("Relu", ["y"], ["z"])  # unnamed: graft names it "#1"
    graph = helper.make_graph(
        [node, node2], "attrs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "W"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("aux", TensorProto.INT64, [2, "K"])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("test.graft", 1)])
    model.ir_version = 8
    helper.set_model_props(model, {"author": "graft tests", "note": "key \"quoted\" \u2713"})
    onnx.save(model, out)


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "check":
        meta = {}
        rest = args[3:]
        while rest:
            if rest[0] != "--meta" or len(rest) < 2 or "=" not in rest[1]:
                fail(f"bad arguments {rest}")
            k, v = rest[1].split("=", 1)
            meta[k] = v
            rest = rest[2:]
        check(args[1], args[2], meta)
    elif len(args) == 2 and args[0] == "make-attrs":
        make_attrs(args[1])
    else:
        fail("usage: onnx_export_check.py check ORIG SAVED [--meta K=V ...] | make-attrs OUT")


if __name__ == "__main__":
    main()
