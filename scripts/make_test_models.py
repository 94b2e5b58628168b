#!/usr/bin/python3
"""Writes small ONNX models for graft's CLI and bad-input tests, with Debian's python3-onnx
(an independent writer of the format).

  make_test_models.py OUTDIR

OUTDIR/tiny.onnx        a valid conv net (N,3,8,8) -> (N,4), with tiny_input.npy and
                        tiny_output.npy computed here with numpy (an independent reference)
OUTDIR/bad/*.onnx       broken models, one defect each (see BAD below)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)


def tiny_graph(conv_w_name="w", extra_nodes=(), inits=None, op="Conv"):
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(5).astype(np.float32) * 0.1
    fw = rng.standard_normal((4, 5)).astype(np.float32) * 0.5
    fb = rng.standard_normal(4).astype(np.float32) * 0.1
    nodes = [
        helper.make_node(op, ["x", conv_w_name, "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
        *extra_nodes,
    ]
    if inits is None:
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                 numpy_helper.from_array(fw, "fw"), numpy_helper.from_array(fb, "fb")]
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="graft-tests")
    m.ir_version = 8
    return m, (w, b, fw, fb)


def numpy_forward(x, w, b, fw, fb):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float64)
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    out += b[None, :, None, None]
    pooled = np.maximum(out, 0).mean(axis=(2, 3))
    return (pooled @ fw.T + fb).astype(np.float32)


def save(m, path):
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def main(out):
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    m, (w, b, fw, fb) = tiny_graph()
    onnx.checker.check_model(m)
    save(m, os.path.join(out, "tiny.onnx"))
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(os.path.join(out, "tiny_input.npy"), x)
    np.save(os.path.join(out, "tiny_output.npy"), numpy_forward(x, w, b, fw, fb))
    np.save(os.path.join(out, "tiny_wrong_input.npy"), np.zeros((2, 3, 9, 8), np.float32))
    np.save(os.path.join(out, "tiny_wrong_rank.npy"), np.zeros((3, 8, 8), np.float32))
    good = m.SerializeToString()

    # empty, random bytes, truncated at several lengths
    open(os.path.join(bad, "empty.onnx"), "wb").close()
    with open(os.path.join(bad, "random.onnx"), "wb") as f:
        f.write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for frac in (0.02, 0.3, 0.6, 0.97):
        with open(os.path.join(bad, f"truncated_{int(frac * 100)}.onnx"), "wb") as f:
            f.write(good[: int(len(good) * frac)])

    # an unknown op
    m2, _ = tiny_graph(op="FancyConv")
    save(m2, os.path.join(bad, "unknown_op.onnx"))
    # a missing initializer: conv1 reads 'w_missing'
    m2, _ = tiny_graph(conv_w_name="w_missing")
    save(m2, os.path.join(bad, "missing_init.onnx"))
    # dims whose product overflows
    m2, _ = tiny_graph()
    t = m2.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([1 << 40, 1 << 40, 3, 3])
    save(m2, os.path.join(bad, "overflow_dims.onnx"))
    # raw_data shorter than the dims need
    m2, _ = tiny_graph()
    m2.graph.initializer[0].raw_data = m2.graph.initializer[0].raw_data[:-8]
    save(m2, os.path.join(bad, "rawdata_length.onnx"))

    # external data: a good one, then ones that escape the folder or point past the end
    ext = os.path.join(out, "ext")
    os.makedirs(ext, exist_ok=True)
    with open(os.path.join(ext, "weights.bin"), "wb") as f:
        f.write(w.tobytes())

    def external(location, offset=None, name="external.onnx"):
        m3, _ = tiny_graph()
        t = m3.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        e = t.external_data.add()
        e.key, e.value = "location", location
        if offset is not None:
            e = t.external_data.add()
            e.key, e.value = "offset", str(offset)
        save(m3, os.path.join(ext, name))

    external("weights.bin", name="good_external.onnx")
    external("../tiny_input.npy", name="escape_dotdot.onnx")
    external("/etc/passwd", name="escape_absolute.onnx")
    link = os.path.join(ext, "link.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("/etc/passwd", link)
    external("link.bin", name="escape_symlink.onnx")
    external("weights.bin", offset=1 << 20, name="offset_past_end.onnx")

    # a cycle: relu1 reads its own output through an Add
    m2, _ = tiny_graph()
    m2.graph.node[1].input[0] = "cyc"
    m2.graph.node.append(helper.make_node("Add", ["r", "c"], ["cyc"], name="cycle_add"))
    save(m2, os.path.join(bad, "cycle.onnx"))
    # an opset graft does not support
    m2, _ = tiny_graph()
    m2.opset_import[0].version = 99
    save(m2, os.path.join(bad, "opset99.onnx"))
    # Conv with a weight of the wrong rank
    m2, _ = tiny_graph()
    m2.graph.initializer[0].CopyFrom(numpy_helper.from_array(w.reshape(5, 27), "w"))
    save(m2, os.path.join(bad, "conv_weight_rank.onnx"))
    hardening_models(bad)


def small_model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "hardening", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="graft-tests")
    m.ir_version = 8
    return m


def hardening_models(bad):
    """The shapes of the defects a fuzzer found (issue 'Hardening'): each must be refused at load
    with a message, never crash, hang, abort or allocate what the file does not hold."""
    f = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    # a node writing a graph input (ONNX graphs are single-assignment)
    m = small_model([helper.make_node("Add", ["x", "x"], ["x"], name="add_into_input")],
                    [vi("x", f, [4])], [vi("x", f, [4])])
    save(m, os.path.join(bad, "output_is_input.onnx"))
    # the same through a name that differs only after an embedded NUL byte: written with a
    # placeholder of the same length, then patched in the serialized bytes
    m = small_model([helper.make_node("Add", ["x", "x"], ["xQy"], name="add_nul"),
                     helper.make_node("Relu", ["xQy"], ["y"], name="relu")],
                    [vi("x", f, [4])], [vi("y", f, [4])])
    data = m.SerializeToString()
    assert data.count(b"xQy") == 2
    with open(os.path.join(bad, "output_nul_name.onnx"), "wb") as fh:
        fh.write(data.replace(b"xQy", b"x\0y"))
    # element types graft's ops do not implement
    for name, dt in (("uint16", TensorProto.UINT16), ("float16", TensorProto.FLOAT16)):
        m = small_model([helper.make_node("Add", ["a", "b"], ["c"], name="add_" + name)],
                        [vi("a", dt, [3]), vi("b", dt, [3])], [vi("c", dt, [3])])
        save(m, os.path.join(bad, f"input_{name}.onnx"))
    # a dead first node: its output is unused, the graph input is the only live value
    m = small_model([helper.make_node("Relu", ["x"], ["dead"], name="dead_relu"),
                     helper.make_node("Neg", ["x"], ["y"], name="neg")],
                    [vi("x", f, [2, 3])], [vi("y", f, [2, 3])])
    save(m, os.path.join(bad, "dead_first_node.onnx"))
    np.save(os.path.join(bad, "dead_first_node_input.npy"), rng.standard_normal((2, 3)).astype(np.float32))
    # a zero-size input dimension (valid: must run and give an empty output)
    m = small_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                     helper.make_node("Neg", ["r"], ["y"], name="neg")],
                    [vi("x", f, [0, 3])], [vi("y", f, [0, 3])])
    save(m, os.path.join(bad, "zero_dim.onnx"))
    np.save(os.path.join(bad, "zero_dim_input.npy"), np.zeros((0, 3), np.float32))
    # an initializer claiming 1 GiB (256 x 1024 x 1024 float32) with 4 bytes of raw data
    t = TensorProto()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([256, 1024, 1024])
    t.raw_data = b"\0\0\0\0"
    m = small_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                    [vi("x", f, [1])], [vi("y", f, [1])], [t])
    save(m, os.path.join(bad, "claims_1gb.onnx"))
    # the same attribute twice (onnxruntime refuses the node)
    node = helper.make_node("Flatten", ["x"], ["y"], name="flat2", axis=1)
    node.attribute.extend([helper.make_attribute("axis", 0)])
    m = small_model([node], [vi("x", f, [2, 3])], [vi("y", f, None)])
    save(m, os.path.join(bad, "duplicate_attribute.onnx"))
    # a graph input declared twice
    m = small_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                    [vi("x", f, [2]), vi("x", f, [2])], [vi("y", f, [2])])
    save(m, os.path.join(bad, "input_twice.onnx"))
    # 40,000 nodes listed in reverse order (0.9 MB): sorting and cut points must stay near-linear
    n = 40000
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"r{i}") for i in range(n)][::-1]
    m = small_model(nodes, [vi("v0", f, [2])], [vi(f"v{n}", f, [2])])
    save(m, os.path.join(bad, "chain_reversed.onnx"))


if __name__ == "__main__":
    main(sys.argv[1])
