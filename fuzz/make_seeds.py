#!/usr/bin/python3
"""make_seeds.py - writes the seed corpora of graft's fuzz targets (fuzz/corpus/<target>/), the
reproducers of known bugs (fuzz/regress/<target>/) and the fixed data the targets read
(fuzz/data/). Every file is a small valid (or, for the reproducers, deliberately broken)
example; each is below 8 KB.

    /usr/bin/python3 fuzz/make_seeds.py                 # everything but the checkpoint seeds
    /usr/bin/python3 fuzz/make_seeds.py --checkpoint-from build-replay/fuzz/replay_checkpoint
                                                        # + the checkpoint seeds, made by graft
    /usr/bin/python3 fuzz/make_seeds.py --bomb FILE     # only: the 2 GiB gzip IDX bomb (~2 MB)

Needs Debian's python3-onnx, python3-numpy and python3-pil; the ONNX conformance models come
from libonnx-testdata when it is installed. Output is deterministic (but for the checkpoints,
whose notes hold training times): running it again rewrites the same bytes. Reproducers that
libFuzzer found (fuzz/regress/*/fuzz-*) are not made here and are left alone.
"""
import argparse
import glob
import gzip
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
MAX_SEED = 8192
TESTDATA = "/usr/share/libonnx-testdata/data/node"


def write(folder, name, data):
    path = os.path.join(HERE, folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if folder.startswith("corpus") and len(data) >= MAX_SEED:
        raise SystemExit(f"make_seeds: {folder}/{name} is {len(data)} bytes, seeds must stay below {MAX_SEED}")
    with open(path, "wb") as f:
        f.write(data)


# ---- ONNX ----------------------------------------------------------------------------------

def model_bytes(nodes, inputs, outputs, inits=(), opset=13, meta=None, name="g"):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_seeds")
    m.ir_version = 7 if opset < 15 else 8
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m.SerializeToString()


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def rnd(shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.5).astype(np.float32)


F, I64 = TensorProto.FLOAT, TensorProto.INT64


def tiny_cnn():
    """8x8 Conv-Relu-GlobalAveragePool-Flatten-Gemm: what fuzz_checkpoint fine-tunes."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    inits = [init("w", rnd((4, 3, 3, 3), 1)), init("b", rnd((4,), 2)), init("fc_w", rnd((3, 4), 3)),
             init("fc_b", rnd((3,), 4))]
    return model_bytes(nodes, [vi("x", F, ["N", 3, 8, 8])], [vi("logits", F, ["N", 3])], inits)


def onnx_seeds():
    s = {}
    s["tiny_cnn.onnx"] = tiny_cnn()
    s["elementwise.onnx"] = model_bytes(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "a"], ["m"]),
         helper.make_node("Sub", ["m", "b"], ["d"]), helper.make_node("Div", ["d", "c"], ["q"]),
         helper.make_node("Sigmoid", ["q"], ["g"]), helper.make_node("Tanh", ["g"], ["t"]),
         helper.make_node("Clip", ["t", "lo", "hi"], ["y"])],
        [vi("a", F, [2, 3]), vi("b", F, [1, 3])], [vi("y", F, [2, 3])],
        [init("c", np.full((3,), 2, np.float32)), init("lo", np.float32(-0.5)), init("hi", np.float32(0.5))])
    s["matmul_reshape.onnx"] = model_bytes(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Reshape", ["m", "shape"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]), helper.make_node("Softmax", ["t"], ["y"], axis=-1)],
        [vi("x", F, ["N", 4])], [vi("y", F, ["N", 3, 2])],
        [init("w", rnd((4, 6), 5)), init("shape", np.array([-1, 2, 3], np.int64))])
    s["gemm.onnx"] = model_bytes(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0, transB=1)],
        [vi("x", F, [2, 4])], [vi("y", F, [2, 3])], [init("w", rnd((3, 4), 6)), init("b", rnd((3,), 7))], opset=11)
    s["concat_slice.onnx"] = model_bytes(
        [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
         helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["s"]),
         helper.make_node("Shape", ["s"], ["sh"]),
         helper.make_node("Gather", ["sh", "i0"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
         helper.make_node("Concat", ["n1", "m1"], ["newshape"], axis=0),
         helper.make_node("Reshape", ["s", "newshape"], ["y"])],
        [vi("a", F, ["N", 2]), vi("b", F, ["N", 3])], [vi("y", F, ["N", 4])],
        [init("starts", np.array([1], np.int64)), init("ends", np.array([5], np.int64)), init("axes", np.array([1], np.int64)),
         init("i0", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)), init("m1", np.array([-1], np.int64))])
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t_out"])], "then", [], [vi("t_out", F, [2, 2])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e_out"])], "else", [], [vi("e_out", F, [2, 2])])
    s["if.onnx"] = model_bytes(
        [helper.make_node("ReduceSum", ["x"], ["sum"], keepdims=0),
         helper.make_node("Greater", ["sum", "zero"], ["cond"]),
         helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
        [vi("x", F, [2, 2])], [vi("y", F, [2, 2])], [init("zero", np.float32(0))], opset=11)
    s["conv_bn_pool.onnx"] = model_bytes(
        [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1], group=1, dilations=[1, 1]),
         helper.make_node("BatchNormalization", ["c", "g", "bb", "mu", "var"], ["n"], epsilon=1e-5),
         helper.make_node("Relu", ["n"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
         helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], count_include_pad=1),
         helper.make_node("Resize", ["ap", "", "scales"], ["y"], mode="linear")],
        [vi("x", F, [1, 2, 6, 6])], [vi("y", F, None)],
        [init("w", rnd((3, 2, 3, 3), 8)), init("g", np.ones(3, np.float32)), init("bb", np.zeros(3, np.float32)),
         init("mu", rnd((3,), 9)), init("var", np.ones(3, np.float32)), init("scales", np.array([1, 1, 2, 2], np.float32))])
    s["depthwise_convtranspose.onnx"] = model_bytes(
        [helper.make_node("Conv", ["x", "w"], ["c"], group=4, kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
         helper.make_node("ConvTranspose", ["c", "wt"], ["t"], strides=[2, 2]),
         helper.make_node("GlobalMaxPool", ["t"], ["y"])],
        [vi("x", F, [1, 4, 5, 5])], [vi("y", F, [1, 2, 1, 1])], [init("w", rnd((4, 1, 3, 3), 10)), init("wt", rnd((4, 2, 2, 2), 11))])
    s["reduce_argmax.onnx"] = model_bytes(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
         helper.make_node("ReduceMax", ["x"], ["mx"], axes=[2], keepdims=0),
         helper.make_node("ArgMax", ["x"], ["am"], axis=2, keepdims=0),
         helper.make_node("Cast", ["am"], ["amf"], to=F),
         helper.make_node("Add", ["mx", "amf"], ["y"])],
        [vi("x", F, [2, 3, 4])], [vi("y", F, [2, 3]), vi("m", F, [2, 1, 4])], opset=11)
    s["int_ops.onnx"] = model_bytes(
        [helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),
         helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
         helper.make_node("ConstantOfShape", ["shp"], ["z"], value=helper.make_tensor("v", F, [1], [1.5])),
         helper.make_node("Expand", ["g", "eshape"], ["e"]),
         helper.make_node("Tile", ["z", "reps"], ["y"]),
         helper.make_node("Where", ["cond", "e", "e"], ["w"])],
        [vi("idx", I64, [3]), vi("cond", TensorProto.BOOL, [3, 4])], [vi("y", F, None), vi("w", F, None), vi("r", I64, None)],
        [init("table", rnd((5, 4), 12)), init("start", np.array(0, np.int64)), init("limit", np.array(7, np.int64)),
         init("delta", np.array(2, np.int64)), init("shp", np.array([2, 2], np.int64)),
         init("eshape", np.array([3, 4], np.int64)), init("reps", np.array([1, 3], np.int64))])
    s["constant_split_pad.onnx"] = model_bytes(
        [helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", F, [2], [0.5, -1])),
         helper.make_node("Mul", ["x", "k"], ["m"]),
         helper.make_node("Split", ["m"], ["a", "b"], axis=0),
         helper.make_node("Pad", ["a", "pads"], ["p"], mode="reflect"),
         helper.make_node("LeakyRelu", ["b"], ["l"], alpha=0.2),
         helper.make_node("Concat", ["p", "l"], ["y"], axis=1)],
        [vi("x", F, [2, 2])], [vi("y", F, None)], [init("pads", np.array([0, 1, 0, 1], np.int64))], opset=13)
    s["norms.onnx"] = model_bytes(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, epsilon=1e-5),
         helper.make_node("InstanceNormalization", ["x4", "g2", "b2"], ["inn"]),
         helper.make_node("DepthToSpace", ["inn"], ["ds"], blocksize=2, mode="CRD"),
         helper.make_node("Erf", ["ln"], ["y"])],
        [vi("x", F, [2, 3, 4]), vi("x4", F, [1, 4, 2, 2])], [vi("y", F, None), vi("ds", F, None)],
        [init("g", np.ones(4, np.float32)), init("b", np.zeros(4, np.float32)),
         init("g2", np.ones(4, np.float32)), init("b2", np.zeros(4, np.float32))], opset=17)
    s["opset7_metadata.onnx"] = model_bytes(
        [helper.make_node("Upsample", ["x"], ["u"], scales=[1.0, 1.0, 2.0, 2.0], mode="nearest"),
         helper.make_node("Softmax", ["u"], ["y"], axis=1)],
        [vi("x", F, [1, 1, 2, 2])], [vi("y", F, [1, 1, 4, 4])], opset=7,
        meta={"graft.classes": '["cat","dog"]', "graft.transform": "resize=256,crop=224,normalize=imagenet"})
    s["uint8_int_inputs.onnx"] = model_bytes(
        [helper.make_node("Cast", ["u"], ["uf"], to=F), helper.make_node("Cast", ["i"], ["if"], to=F),
         helper.make_node("Add", ["uf", "if"], ["s"]), helper.make_node("Cast", ["d"], ["df"], to=F),
         helper.make_node("Mul", ["s", "df"], ["y"]), helper.make_node("Not", ["bo"], ["nb"])],
        [vi("u", TensorProto.UINT8, [2, 2]), vi("i", TensorProto.INT32, [2, 2]), vi("d", TensorProto.DOUBLE, [2, 2]),
         vi("bo", TensorProto.BOOL, [2])], [vi("y", F, [2, 2]), vi("nb", TensorProto.BOOL, [2])])
    s["mod_int.onnx"] = model_bytes(
        [helper.make_node("Mod", ["a", "b"], ["y"], fmod=0)],
        [vi("a", TensorProto.INT32, [4]), vi("b", TensorProto.INT32, [4])], [vi("y", TensorProto.INT32, [4])])
    ext = onnx.load_model_from_string(model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])], [init("w", rnd((4,), 13))]))
    w = ext.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    s["external_data_missing.onnx"] = ext.SerializeToString()
    return s


def supported_ops():
    ops = set()
    for p in glob.glob(os.path.join(SRC, "src", "ops", "*.c")):
        ops |= set(re.findall(r'\{"([A-Z][A-Za-z]+)"', open(p).read()))
    return ops


def testdata_seeds(limit=120):
    """The smallest conformance model of each supported op in libonnx-testdata."""
    if not os.path.isdir(TESTDATA):
        print("make_seeds: no libonnx-testdata, skipping its models", file=sys.stderr)
        return {}
    ops = supported_ops()
    best = {}
    for d in sorted(os.listdir(TESTDATA)):
        path = os.path.join(TESTDATA, d, "model.onnx")
        if not os.path.isfile(path) or os.path.getsize(path) >= 2048:
            continue
        try:
            m = onnx.load(path)
        except Exception:
            continue
        types = {n.op_type for n in m.graph.node}
        if not types or not types <= ops or len(types) != 1:
            continue
        op = next(iter(types))
        size = os.path.getsize(path)
        if op not in best or size < best[op][0]:
            best[op] = (size, d, path)
    out = {}
    for op in sorted(best)[:limit]:
        size, d, path = best[op]
        out["testdata_" + d[len("test_"):] + ".onnx"] = open(path, "rb").read()
    return out


def onnx_regress():
    """Reproducers of the known ONNX loader bugs (the lead's list in the fuzzing issue)."""
    r = {}
    # a node's output has the name of a graph input
    r["node-output-shadows-input.onnx"] = model_bytes(
        [helper.make_node("Relu", ["x"], ["x"]), helper.make_node("Add", ["x", "x"], ["y"])],
        [vi("x", F, [2, 2])], [vi("y", F, [2, 2])])
    # the same through an embedded NUL: "x\0y" is "x" to C string functions
    b = model_bytes([helper.make_node("Relu", ["x"], ["xQy"]), helper.make_node("Add", ["xQy", "x"], ["y"])],
                    [vi("x", F, [2, 2])], [vi("y", F, [2, 2])])
    assert b.count(b"xQy") == 2
    r["node-output-nul-shadows-input.onnx"] = b.replace(b"xQy", b"x\0y")
    # ops on uint16 and float16 tensors (types graft has no kernels for)
    for op in ("Add", "Mod"):
        r[f"{op.lower()}-uint16.onnx"] = model_bytes(
            [helper.make_node(op, ["a", "b"], ["y"])], [vi("a", TensorProto.UINT16, [3]), vi("b", TensorProto.UINT16, [3])],
            [vi("y", TensorProto.UINT16, [3])])
    r["relu-float16-input.onnx"] = model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])], [vi("x", TensorProto.FLOAT16, [2, 2])], [vi("y", TensorProto.FLOAT16, [2, 2])])
    r["add-float16-initializer.onnx"] = model_bytes(
        [helper.make_node("Add", ["x", "h"], ["y"])], [vi("x", TensorProto.FLOAT16, [2])], [vi("y", TensorProto.FLOAT16, [2])],
        [numpy_helper.from_array(np.array([1, 2], np.float16), "h")])
    # the first node's output is never read; a second node reads the graph input
    r["dead-first-node.onnx"] = model_bytes(
        [helper.make_node("Relu", ["x"], ["unused"]), helper.make_node("Sigmoid", ["x"], ["y"])],
        [vi("x", F, [2, 3])], [vi("y", F, [2, 3])])
    # a zero-size input dimension
    r["zero-size-input.onnx"] = model_bytes(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("ReduceSum", ["r"], ["y"], keepdims=1)],
        [vi("x", F, [0, 3])], [vi("y", F, None)], opset=11)
    r["zero-size-conv.onnx"] = model_bytes(
        [helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", F, [1, 2, 0, 4])], [vi("y", F, None)], [init("w", rnd((3, 2, 1, 1)))])
    # an initializer claiming dims [256, 1024, 1024] float (1 GiB) with 4 bytes of raw_data
    big = TensorProto(name="w", data_type=F, dims=[256, 1024, 1024], raw_data=b"\0\0\x80\x3f")
    r["initializer-dims-beyond-data.onnx"] = model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, [1])], [vi("y", F, None)], [big])
    # the same attribute twice on one node
    n = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.1)
    n.attribute.extend([helper.make_attribute("alpha", 0.3)])
    r["duplicate-attribute.onnx"] = model_bytes([n], [vi("x", F, [2])], [vi("y", F, [2])])
    n = helper.make_node("Gemm", ["a", "b"], ["y"], transB=1)
    n.attribute.extend([helper.make_attribute("transB", 0)])
    r["duplicate-attribute-gemm.onnx"] = model_bytes(
        [n], [vi("a", F, [2, 3])], [vi("y", F, None)], [init("b", rnd((3, 3), 14))])
    # found by fuzzing: Pad's pads size an index table of 8 bytes per output element along an
    # axis, allocated before any limit (2^52 here: a 2^55-byte request)
    r["pad-huge-pads.onnx"] = model_bytes(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")], [vi("x", F, [2, 2])], [vi("y", F, None)],
        [init("pads", np.array([0, 1 << 52, 0, 0], np.int64))])
    # found by the status check of the targets: ReduceSum's axes as a graph input (unknown when
    # planned) make prepare return minus the status, which graft_model_info_json passes on (-4)
    r["reducesum-axes-input-negative-status.onnx"] = model_bytes(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
        [vi("x", F, [2, 3]), vi("axes", I64, [1])], [vi("y", F, None)], opset=13)
    r.update(attribute_overflow_regress())
    return r


def attribute_overflow_regress():
    """Found by probing the onnx target with extreme integer attributes and shape inputs:
    int64 arithmetic on pads, strides, dilations, steps and Range bounds that overflows (UBSan:
    signed-integer-overflow), one reproducer per place in graft's sources."""
    H, L, B = (1 << 63) - 1, -(1 << 63), 1 << 62
    x4, y = [vi("x", F, [1, 1, 4, 4])], [vi("y", F, None)]

    def w(*shape):
        return init("w", np.ones(shape, np.float32))

    def node(op, ins, **attrs):
        return helper.make_node(op, ins, ["y"], **attrs)

    cases = {
        "conv-pads-overflow": ([node("Conv", ["x", "w"], pads=[H, 0, H, 0])], [w(1, 1, 1, 1)]),
        "conv-same-strides-overflow": ([node("Conv", ["x", "w"], strides=[H, 1], auto_pad="SAME_UPPER")], [w(1, 1, 3, 1)]),
        "conv-dilations-overflow": ([node("Conv", ["x", "w"], dilations=[H, 1])], [w(1, 1, 2, 1)]),
        "convtranspose-strides-overflow": ([node("ConvTranspose", ["x", "w"], strides=[B, 1])], [w(1, 1, 1, 1)]),
        "convtranspose-output-padding-overflow": (
            [node("ConvTranspose", ["x", "w"], strides=[2, 2], output_padding=[H, 0])], [w(1, 1, 1, 1)]),
        "convtranspose-pads-overflow": ([node("ConvTranspose", ["x", "w"], pads=[H, 0, H, 0])], [w(1, 1, 1, 1)]),
        "maxpool-ceil-strides-overflow": (
            [node("MaxPool", ["x"], kernel_shape=[1, 1], strides=[H, 1], ceil_mode=1, pads=[1, 0, 1, 0])], []),
        "maxpool-dilations-overflow": ([node("MaxPool", ["x"], kernel_shape=[2, 1], dilations=[H, 1])], []),
        "maxpool-pads-overflow": ([node("MaxPool", ["x"], kernel_shape=[1, 1], pads=[B, 0, B, 0])], []),
        "pad-int64-min": ([node("Pad", ["x", "p"], mode="edge")], [init("p", np.array([0, 0, L, 0, 0, 0, L, 0], np.int64))]),
        "pad-sum-overflow": ([node("Pad", ["x", "p"], mode="edge")], [init("p", np.array([0, 0, H, 0, 0, 0, H, 0], np.int64))]),
        "slice-step-overflow": ([node("Slice", ["x", "s", "e", "a", "st"])],
                                [init("s", np.array([H], np.int64)), init("e", np.array([H], np.int64)),
                                 init("a", np.array([2], np.int64)), init("st", np.array([H], np.int64))]),
        "range-count-overflow": ([node("Range", ["a", "b", "c"])],
                                 [init("a", np.array(-B, np.int64)), init("b", np.array(B, np.int64)),
                                  init("c", np.array(B // 3, np.int64))]),
    }
    return {name + ".onnx": model_bytes(nodes, x4, y, inits) for name, (nodes, inits) in cases.items()}


# ---- safetensors heads ---------------------------------------------------------------------

def safetensors(tensors, meta, crc=True):
    """tensors: [(name, array)] in file order; meta: dict of strings. graft's own layout."""
    header, blobs, off = {}, [], 0
    md = dict(meta)
    data = b"".join(np.ascontiguousarray(a).tobytes() for _, a in tensors)
    if crc:
        md["graft_crc32"] = str(zlib.crc32(data))
    header["__metadata__"] = md
    dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64", np.dtype(np.float64): "F64",
          np.dtype(np.uint8): "U8"}
    for name, a in tensors:
        n = a.nbytes
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def head_meta(kind, norm, nclass, dim, hidden=0, k=0, n=0, origin=None):
    m = {"graft_head": kind, "norm": norm, "nclass": str(nclass), "dim": str(dim), "hidden": str(hidden), "k": str(k),
         "n": str(n), "C": "1", "cv_acc": "0.75"}
    if origin:
        m["graft_origin"] = origin
    return m


def safetensors_seeds():
    s = {}
    dim, nc = 6, 3
    origin = json.dumps({"model": "m.onnx", "layer": "p2o.Add.75", "pool": "grid4", "transform": "size=32",
                         "classes": ["a", "b", "c"]})
    W, b = rnd((nc, dim), 20), rnd((nc,), 21)
    mu, sd = rnd((dim,), 22), np.abs(rnd((dim,), 23)) + 0.5
    s["logreg_standardize.safetensors"] = safetensors(
        [("mu", mu), ("sd", sd), ("W", W), ("b", b)], head_meta("logreg", "standardize", nc, dim, origin=origin))
    s["logreg_none_nocrc.safetensors"] = safetensors([("W", W), ("b", b)], head_meta("logreg", "none", nc, dim), crc=False)
    s["ncm_l2.safetensors"] = safetensors([("W", W), ("b", b)], head_meta("ncm", "l2", nc, dim))
    s["mlp.safetensors"] = safetensors(
        [("mu", mu), ("sd", sd), ("W", rnd((5, dim), 24)), ("b", rnd((5,), 25)), ("W2", rnd((nc, 5), 26)), ("b2", rnd((nc,), 27))],
        head_meta("mlp", "standardize", nc, dim, hidden=5))
    X = rnd((7, dim), 28)
    y = np.array([0, 1, 2, 0, 1, 2, 0], np.int32)
    s["knn.safetensors"] = safetensors([("X", X), ("y", y)], head_meta("knn", "l2", nc, dim, k=3, n=7))
    s["knn_nocrc.safetensors"] = safetensors([("X", X[:4]), ("y", y[:4])], head_meta("knn", "none", nc, dim, k=5, n=4), crc=False)
    s["two_classes_dim1.safetensors"] = safetensors(
        [("W", rnd((2, 1), 29)), ("b", rnd((2,), 30))], head_meta("logreg", "none", 2, 1), crc=False)
    # not heads, but the same container: other dtypes, an empty tensor, metadata only
    s["other_dtypes.safetensors"] = safetensors(
        [("i64", np.arange(3, dtype=np.int64)), ("f64", np.ones((2, 2))), ("u8", np.arange(5, dtype=np.uint8)),
         ("empty", np.zeros((0, 3), np.float32))], {"note": "x"}, crc=False)
    s["metadata_only.safetensors"] = safetensors([], {"graft_head": "logreg"}, crc=False)
    return s


def checkpoint_seeds(binary):
    """Real checkpoints of fuzz_checkpoint's session (its GRAFT_FUZZ_WRITE_SEED mode), and
    variants: the recipe left out of the note (it names the model's path, which differs from one
    process to the next, so a note with it stops at the comparison), epoch 0 (resume trains a
    step), no best.safetensors, no CRC."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "seed")
        env = dict(os.environ, GRAFT_FUZZ_WRITE_SEED=out, GRAFT_FUZZ_DATA=os.path.join(HERE, "data"))
        subprocess.run([binary, "/dev/null"], env=env, check=True, stdout=subprocess.DEVNULL)
        raw = open(out, "rb").read()
    n = struct.unpack("<I", raw[:4])[0]
    ckpt, best = raw[4:4 + n], raw[4 + n:]

    def edit(blob, fn, drop_crc=False):
        hl = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + hl])
        fn(header["__metadata__"])
        if drop_crc:
            header["__metadata__"].pop("graft_crc32", None)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        return struct.pack("<Q", len(h)) + h + blob[8 + hl:]

    def no_recipe(md):
        note = json.loads(md["note"])
        note.pop("recipe", None)
        md["note"] = json.dumps(note)

    def epoch0(md):
        no_recipe(md)
        md["epoch"] = "0"

    def pack(c, b):
        return struct.pack("<I", len(c)) + c + b

    def huge_phase(md):
        no_recipe(md)
        note = json.loads(md["note"])
        note["history"][0][0] = 1e300
        md["note"] = json.dumps(note)

    s = {"as_written.ckpt": pack(ckpt, best),
         "no_recipe.ckpt": pack(edit(ckpt, no_recipe), best),
         "no_recipe_no_best.ckpt": pack(edit(ckpt, no_recipe), b""),
         "epoch0_no_crc.ckpt": pack(edit(ckpt, epoch0, drop_crc=True), edit(best, lambda m: None, drop_crc=True))}
    # found by probing: a number of the note's history beyond int, cast to int (UBSan:
    # float-cast-overflow in read_note)
    r = {"note-history-phase-1e300.ckpt": pack(edit(ckpt, huge_phase), best)}
    return s, r


# ---- .npy ------------------------------------------------------------------------------------

def npy(arr, version=(1, 0), descr=None, fortran=False):
    arr = np.asarray(arr)
    d = descr or np.lib.format.dtype_to_descr(arr.dtype)
    h = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (d, fortran, tuple(arr.shape))
    hl = 10 if version == (1, 0) else 12
    pad = (64 - (hl + len(h) + 1) % 64) % 64
    h = (h + " " * pad + "\n").encode()
    lenf = struct.pack("<H", len(h)) if version == (1, 0) else struct.pack("<I", len(h))
    data = np.asfortranarray(arr).tobytes(order="F") if fortran else arr.tobytes()
    return b"\x93NUMPY" + bytes(version) + lenf + h + data


def npy_seeds():
    s = {}
    s["f4_2x3.npy"] = npy(rnd((2, 3)))
    s["f8_3.npy"] = npy(np.array([1.5, -2, 3]))
    s["i8_4.npy"] = npy(np.array([0, 1, 0, 1], np.int64))
    s["i4_4.npy"] = npy(np.array([1, 0, 1, 0], np.int32))
    s["u1_images_4x8x8.npy"] = npy((np.arange(256) * 7 % 256).astype(np.uint8).reshape(4, 8, 8))
    s["u1_images_rgb_2x3x3x3.npy"] = npy((np.arange(54) * 5 % 256).astype(np.uint8).reshape(2, 3, 3, 3))
    s["i1_5.npy"] = npy(np.array([-3, -1, 0, 1, 127], np.int8))
    s["bool_2x2.npy"] = npy(np.array([[True, False], [False, True]]))
    s["scalar_f4.npy"] = npy(np.float32(2.5))
    s["empty_0x3.npy"] = npy(np.zeros((0, 3), np.float32))
    s["features_f8_4x3.npy"] = npy(rnd((4, 3)).astype(np.float64))
    s["rank5_f4.npy"] = npy(np.ones((1, 2, 1, 2, 1), np.float32))
    s["version2.npy"] = npy(np.arange(3, dtype=np.float32), version=(2, 0))
    s["version3.npy"] = npy(np.arange(3, dtype=np.int64), version=(3, 0))
    s["fortran_order.npy"] = npy(rnd((2, 3)), fortran=True)
    s["big_endian_f4.npy"] = npy(np.arange(3, dtype=">f4"))
    s["f2_unsupported.npy"] = npy(np.arange(3, dtype=np.float16))
    s["u2_unsupported.npy"] = npy(np.arange(3, dtype=np.uint16))
    return s


# ---- images ----------------------------------------------------------------------------------

def pil_image(mode, w, h, seed=0):
    rng = np.random.default_rng(seed)
    if mode in ("L", "P"):
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        return Image.fromarray(a, "L").convert(mode) if mode == "P" else Image.fromarray(a, "L")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16), "I;16")
    if mode == "1":
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert("1")
    ch = {"RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4}[mode]
    a = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
    if mode == "LA":
        return Image.fromarray(a[:, :, 0], "L").convert("LA")
    return Image.fromarray(a, mode)


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def exif_orientation(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def image_seeds():
    s = {}
    s["gray_5x3.jpg"] = save(pil_image("L", 5, 3), "JPEG", quality=70)
    s["rgb_17x9_420.jpg"] = save(pil_image("RGB", 17, 9, 1), "JPEG", quality=60, subsampling=2)
    s["rgb_8x8_444.jpg"] = save(pil_image("RGB", 8, 8, 2), "JPEG", quality=90, subsampling=0)
    s["rgb_16x12_progressive.jpg"] = save(pil_image("RGB", 16, 12, 3), "JPEG", quality=50, progressive=True)
    s["rgb_9x5_exif6.jpg"] = save(pil_image("RGB", 9, 5, 4), "JPEG", quality=50, exif=exif_orientation(6))
    s["rgb_6x4_exif3.jpg"] = save(pil_image("RGB", 6, 4, 5), "JPEG", quality=50, exif=exif_orientation(3))
    s["rgb_7x3_exif8.jpg"] = save(pil_image("RGB", 7, 3, 10), "JPEG", quality=50, exif=exif_orientation(8))
    s["cmyk_4x4.jpg"] = save(pil_image("CMYK", 4, 4, 6), "JPEG", quality=50)
    s["gray_1x1.png"] = save(pil_image("L", 1, 1), "PNG")
    s["rgb_7x5.png"] = save(pil_image("RGB", 7, 5, 7), "PNG")
    s["rgba_4x6.png"] = save(pil_image("RGBA", 4, 6, 8), "PNG")
    s["la_3x3.png"] = save(pil_image("LA", 3, 3, 9), "PNG")
    s["palette_6x6.png"] = save(pil_image("P", 6, 6, 10), "PNG")
    s["gray16_5x4.png"] = save(pil_image("I;16", 5, 4, 11), "PNG")
    s["bilevel_9x3.png"] = save(pil_image("1", 9, 3, 12), "PNG")
    px = bytes((i * 37) % 256 for i in range(5 * 3))
    s["gray_5x3.pgm"] = b"P5\n5 3\n255\n" + px
    s["gray_comment.pgm"] = b"P5\n# a comment\n5 3\n# another\n255\n" + px
    s["gray16_2x2.pgm"] = b"P5 2 2 65535\n" + bytes(range(8))
    s["maxval15_3x1.pgm"] = b"P5\n3 1\n15\n\x00\x07\x0f"
    s["rgb_3x2.ppm"] = b"P6\n3 2\n255\n" + bytes((i * 41) % 256 for i in range(18))
    s["ascii_p2.pgm"] = b"P2\n2 2\n255\n0 64\n128 255\n"
    s["bmp_2x2.bmp"] = save(pil_image("RGB", 2, 2, 13), "BMP")
    return s


def jpeg_tall_regress():
    """A ~700-byte JPEG whose header declares 16 x 62987 pixels (a 16x16 image's SOF patched)."""
    b = bytearray(save(pil_image("RGB", 16, 16, 14), "JPEG", quality=95, subsampling=0))
    sof = b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, 62987, 16)  # height, width
    return bytes(b)


# ---- WAV -------------------------------------------------------------------------------------

def wav(samples, rate, bits=16, channels=1, fmt=1, extensible=False, extra_chunks=(), data_size=None):
    """samples: floats in [-1, 1), one row per frame (channels per row)."""
    a = np.asarray(samples, np.float64).reshape(-1, channels)
    if fmt == 3:
        data = a.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = np.clip(a * 128 + 128, 0, 255).astype(np.uint8).tobytes()
    elif bits == 16:
        data = np.clip(a * 32768, -32768, 32767).astype("<i2").tobytes()
    elif bits == 24:
        v = np.clip(a * 8388608, -8388608, 8388607).astype("<i4").reshape(-1)
        data = b"".join(struct.pack("<i", int(x))[:3] for x in v)
    else:
        data = np.clip(a * 2147483648, -2147483648, 2147483647).astype("<i4").tobytes()
    block = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", fmt) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0) + guid
    else:
        body = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(body)) + body
    for cid, payload in extra_chunks:
        chunks += cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    chunks += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def tone(n, channels=1, f=0.05):
    t = np.arange(n)
    return np.stack([0.5 * np.sin(2 * math.pi * f * (c + 1) * t) for c in range(channels)], axis=1)


def wav_seeds():
    s = {}
    s["pcm16_16000_mono.wav"] = wav(tone(160), 16000)
    s["pcm16_44100_stereo.wav"] = wav(tone(200, 2), 44100, channels=2)
    s["pcm8_8000_mono.wav"] = wav(tone(120), 8000, bits=8)
    s["pcm24_48000_mono.wav"] = wav(tone(150), 48000, bits=24)
    s["pcm32_22050_mono.wav"] = wav(tone(110), 22050, bits=32)
    s["float32_16000_mono.wav"] = wav(tone(100), 16000, bits=32, fmt=3, extra_chunks=[(b"fact", struct.pack("<I", 100))])
    s["float64_32000_stereo.wav"] = wav(tone(60, 2), 32000, bits=64, fmt=3, channels=2)
    s["extensible_pcm16_11025_3ch.wav"] = wav(tone(50, 3), 11025, channels=3, extensible=True)
    s["extensible_float32_96000.wav"] = wav(tone(300), 96000, bits=32, fmt=3, extensible=True)
    s["list_chunk_odd_pad.wav"] = wav(tone(64), 16000, extra_chunks=[(b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00")])
    s["streaming_size_ffffffff.wav"] = wav(tone(80), 16000, data_size=0xFFFFFFFF)
    s["streaming_size_0.wav"] = wav(tone(80), 16000, data_size=0)
    s["rate_1000_min.wav"] = wav(tone(40), 1000)
    s["rate_384000_max.wav"] = wav(tone(400), 384000)
    s["empty_data.wav"] = wav(np.zeros((0, 1)), 16000)
    s["alaw_unsupported.wav"] = wav(tone(20), 8000, bits=8, fmt=6)
    return s


def wav_rate_regress():
    """46 bytes: a one-sample 16-bit WAV declaring 767,999 Hz."""
    b = wav(np.array([[0.25]]), 767999)
    assert len(b) == 46
    return b


# ---- CSV / TSV -------------------------------------------------------------------------------

def csv_seeds():
    s = {}
    s["path_label.csv"] = b"path,label\na.pgm,cat\nb.ppm,dog\nsub/c.pgm,cat\n"
    s["label_first_group.csv"] = b"label,path,group\n1,a.pgm,x\n0,b.ppm,y\n1,sub/c.pgm,x\n0,a.pgm,y\n"
    s["quoted_crlf.csv"] = b'"path","label"\r\n"a.pgm","big, cat"\r\n"b.ppm","dog ""d"""\r\n'
    s["no_names.csv"] = b"file,class\na.pgm,0\nb.ppm,1\n"
    s["unlabelled.csv"] = b"path\na.pgm\nb.ppm\n"
    s["tabs.tsv"] = b"path\tlabel\tweight\na.pgm\tcat\t1.5\nb.ppm\tdog\t2\nsub/c.pgm\tbird\t0\n"
    s["bom_blank_lines.csv"] = b"\xef\xbb\xbfpath,label\n\na.pgm,cat\n\nb.ppm,dog\n"
    s["many_classes.csv"] = b"path,label\n" + b"".join(b"a.pgm,%d\n" % i for i in range(40))
    s["missing_file.csv"] = b"path,label\nnope.png,cat\na.pgm,dog\n"
    s["utf8_labels.csv"] = "path,label\na.pgm,chat\u00e9\nb.ppm,\u72ac\n".encode()
    return s


# ---- IDX -------------------------------------------------------------------------------------

def idx_images(pixels):
    n, h, w = pixels.shape
    return struct.pack(">IIII", 0x803, n, h, w) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_input(images, labels, flags=0):
    """fuzz_idx's input: flags, images length (LE32), images file, labels file."""
    return bytes([flags]) + struct.pack("<I", len(images)) + images + labels


def gz(b, level=9):
    return gzip.compress(b, compresslevel=level, mtime=0)


def idx_seeds():
    s = {}
    px = (np.arange(4 * 3 * 2) * 11 % 256).reshape(4, 3, 2)
    im, lb = idx_images(px), idx_labels([0, 1, 2, 1])
    s["raw.idx"] = idx_input(im, lb)
    s["gzip_both.idx"] = idx_input(gz(im), gz(lb), flags=3)
    s["gzip_images_only.idx"] = idx_input(gz(im), lb, flags=1)
    s["gzip_bytes_plain_names.idx"] = idx_input(gz(im), gz(lb), flags=0)
    s["fashion_names.idx"] = idx_input(im, idx_labels([9, 0, 3, 3]), flags=4)
    s["fashion_gzip.idx"] = idx_input(gz(im), gz(idx_labels([1, 2, 3, 4])), flags=7)
    s["one_pixel.idx"] = idx_input(idx_images(np.array([[[5]], [[250]]])), idx_labels([0, 1]))
    px = (np.arange(3 * 28 * 28) % 256).reshape(3, 28, 28)
    s["mnist_28x28.idx"] = idx_input(gz(idx_images(px)), gz(idx_labels([7, 2, 1])), flags=3)
    s["two_gzip_members.idx"] = idx_input(gz(im[:10]) + gz(im[10:]), lb, flags=1)
    return s


def idx_regress():
    r = {}
    # gzip whose header asks for 2^31 - 1 images of 1x1 in a few bytes (refused before allocating)
    r["gzip-huge-count.idx"] = idx_input(gz(struct.pack(">IIII", 0x803, 0x7FFFFFFF, 1, 1) + bytes(4096)),
                                         idx_labels([0, 1]), flags=1)
    # raw header asking for 65535 x 65535 x 65535 bytes
    r["raw-huge-dims.idx"] = idx_input(struct.pack(">IIII", 0x803, 0xFFFF, 0xFFFF, 0xFFFF) + bytes(16), idx_labels([0, 1]))
    # a gzip member that ends early, and a labels file with fewer labels than images
    r["gzip-truncated.idx"] = idx_input(gz(idx_images(np.zeros((4, 2, 2))))[:-12], idx_labels([0, 1, 0, 1]), flags=1)
    r["fewer-labels.idx"] = idx_input(idx_images(np.zeros((4, 2, 2))), idx_labels([0, 1]))
    return r


def write_bomb(path, gib=2):
    """The IDX bomb of the issue: a ~2 MB gzip images file that inflates to 2 GiB of 28x28
    images (and a gzip labels file to match), as one fuzz_idx input. Too big to commit: the
    replay test makes it at test time."""
    n = (gib << 30) // 784 + 1
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(struct.pack(">IIII", 0x803, n, 28, 28))]
    chunk = bytes(1 << 20)
    left = n * 784
    while left:
        k = min(left, len(chunk))
        parts.append(z.compress(chunk[:k]))
        left -= k
    parts.append(z.flush())
    images = b"".join(parts)
    labels = gz(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(10)) * (n // 10) + bytes(i % 10 for i in range(n % 10)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(idx_input(images, labels, flags=3))


# ---- transform strings -----------------------------------------------------------------------

TRANSFORMS = [
    "resize=256,crop=224,normalize=imagenet",
    "rrc=224,flip=0.5,jitter=0.4:0.4:0.4:0.1",
    "resize=8,crop=6",
    "size=12x7,normalize=none",
    "size=5",
    "rrc=16:0.5:1:0.75:1.3333,flip=1",
    "rrc=9:1/4:1",
    "crop=3",
    "resize=1",
    "flip=0",
    "jitter=0:0:0:0.5",
    "jitter=1:2:3:0",
    "normalize=0.5:0.5:0.5:0.25:0.25:0.25",
    " resize = 10 , crop = 20 ",
    "resize=2/1,crop=4/2",
    "normalize=imagenet,resize=7,flip=0.25,jitter=0.1:0.1:0.1:0.05",
    "",
    "resize=0",
    "resize=8,resize=9",
    "rrc=8,crop=4",
    "size=7x",
    "flip=1.5",
    "jitter=0.4:0.4",
    "normalize=1:2:3:0:1:1",
    "unknown=1",
    "resize=1e1",
    "rrc=12:0.9:0.1",
]


# ---- libFuzzer dictionaries (fuzz/dict/<target>.dict) ---------------------------------------

def dict_text(tokens):
    def esc(t):
        if isinstance(t, str):
            t = t.encode()
        return "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02x" % c for c in t)
    return "".join('"%s"\n' % esc(t) for t in tokens).encode()


HEAD_KEYS = ["__metadata__", "graft_crc32", "dtype", "shape", "data_offsets", "F32", "F64", "I32", "I64", "U8", "I8",
             "BOOL", "F16", "BF16", "graft_head", "logreg", "mlp", "knn", "ncm", "norm", "standardize", "l2", "none",
             "nclass", "dim", "hidden", "\"k\"", "\"n\"", "\"C\"", "cv_acc", "graft_origin", "mu", "sd", "W2", "b2",
             "1e300", "-1", "2147483648", "9007199254740993", "null"]
DICTS = {
    "transform": ["resize=", "crop=", "size=", "rrc=", "flip=", "jitter=", "normalize=", "imagenet", "none", ":", ",",
                  "/", "x", "=", "0.5", "1e2", "inf", "nan"],
    "onnx": None,  # op names and attributes, below
    "safetensors": HEAD_KEYS,
    "checkpoint": HEAD_KEYS + ["format", "graft-trainer-checkpoint-1", "optimizer", "optimizer_cfg", "sgd", "adamw",
                               "step", "epoch", "batch", "loader_seed", "note", "history", "best_acc", "best_loss",
                               "best_hist", "bad", "recipe", "opt.m.", "opt.v.", "opt.w0.", "buf.", "rng", "fc_w", "fc_b"],
    "npy": [b"\x93NUMPY", b"\x01\x00", b"\x02\x00", "'descr'", "'fortran_order'", "'shape'", "False", "True", "<f4",
            "<f8", "<i4", "<i8", "|u1", "|i1", "|b1", "<f2", ">f4", "(", ")", ", "],
    "image": [b"\xff\xd8\xff", b"\xff\xc0", b"\xff\xc2", b"\xff\xc4", b"\xff\xdb", b"\xff\xda", b"\xff\xd9",
              b"\xff\xe1", b"Exif\x00\x00", b"MM\x00\x2a", b"II\x2a\x00", b"\x01\x12", b"\x89PNG\r\n\x1a\n",
              "IHDR", "IDAT", "IEND", "PLTE", "tRNS", "gAMA", "iCCP", "eXIf", "P5\n", "P6\n", "255\n", "65535", "#"],
    "wav": ["RIFF", "WAVE", "fmt ", "data", "LIST", "fact", b"\x01\x00", b"\x03\x00", b"\xfe\xff", b"\x10\x00\x00\x00",
            b"\x80\x3e\x00\x00", b"\x44\xac\x00\x00", b"\xff\xff\xff\xff"],
    "csv": ["path", "label", "group", "a.pgm", "b.ppm", "sub/c.pgm", "\"", "\t", "\r\n", ",", "/", "..", b"\xef\xbb\xbf"],
    "idx": [b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x1f\x8b\x08\x00", b"\x00\x00\x00\x1c",
            b"\x7f\xff\xff\xff"],
}


def write_dicts():
    attrs = ["kernel_shape", "pads", "strides", "dilations", "group", "auto_pad", "SAME_UPPER", "VALID", "axis", "axes",
             "perm", "keepdims", "alpha", "beta", "gamma", "transA", "transB", "mode", "to", "epsilon", "value",
             "then_branch", "else_branch", "split", "starts", "ends", "ceil_mode", "count_include_pad", "scales",
             "sizes", "coordinate_transformation_mode", "nearest", "linear", "blocksize", "fmod", "direction",
             "ai.onnx", "graft.classes", "graft.transform", "location", "offset", "length"]
    for name, tokens in DICTS.items():
        if tokens is None:
            tokens = sorted(supported_ops() | {"If", "Loop", "Scan"}) + attrs
        write("dict", name + ".dict", dict_text(tokens))


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint-from", metavar="REPLAY_OR_FUZZ_CHECKPOINT",
                    help="a built replay_checkpoint or fuzz_checkpoint, to write the checkpoint seeds")
    ap.add_argument("--bomb", metavar="FILE", help="only write the 2 GiB gzip IDX bomb to FILE")
    a = ap.parse_args()
    if a.bomb:
        write_bomb(a.bomb)
        return
    write("data", "tiny_cnn.onnx", tiny_cnn())
    write_dicts()
    for name, b in {**onnx_seeds(), **testdata_seeds()}.items():
        write("corpus/onnx", name, b)
    for name, b in onnx_regress().items():
        write("regress/onnx", name, b)
    for name, b in safetensors_seeds().items():
        write("corpus/safetensors", name, b)
    if a.checkpoint_from:
        seeds, regress = checkpoint_seeds(a.checkpoint_from)
        for name, b in seeds.items():
            write("corpus/checkpoint", name, b)
        for name, b in regress.items():
            write("regress/checkpoint", name, b)
    for name, b in npy_seeds().items():
        write("corpus/npy", name, b)
    for name, b in image_seeds().items():
        write("corpus/image", name, b)
    write("regress/image", "jpeg-16x62987-declared.jpg", jpeg_tall_regress())
    for name, b in wav_seeds().items():
        write("corpus/wav", name, b)
    write("regress/wav", "rate-767999.wav", wav_rate_regress())
    for name, b in csv_seeds().items():
        write("corpus/csv", name, b)
    for name, b in idx_seeds().items():
        write("corpus/idx", name, b)
    for name, b in idx_regress().items():
        write("regress/idx", name, b)
    for i, t in enumerate(TRANSFORMS):
        write("corpus/transform", "%02d.txt" % i, t.encode())


if __name__ == "__main__":
    main()
