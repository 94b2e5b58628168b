/* io — reading and writing files: ONNX models (protobuf-c), ONNX TensorProto files, NumPy .npy.
 * Depends on core and graph. */
#ifndef GR_IO_H
#define GR_IO_H

#include "core/core.h"
#include "graph/graph.h"

/* Loads an ONNX model into a graph (nodes topologically sorted). Ops are looked up but an
 * unsupported op is not an error here (node->op == NULL); gr_graph_check_ops reports them. */
int gr_onnx_load(const char *path, gr_graph **out);
/* Fails naming the first node whose op graft does not support. */
int gr_graph_check_ops(const gr_graph *g);
/* Reads a serialized TensorProto file (the conformance suite's input_0.pb). Data from arena. */
int gr_onnx_read_tensor(const char *path, gr_arena *arena, gr_tensor *out, char **name);

/* .npy files; gr_npy_load allocates the data with malloc (caller frees t->data). */
int gr_npy_load(const char *path, gr_tensor *out);
int gr_npy_save(const char *path, const gr_tensor *t);

/* Reads a whole file into memory (malloc); errors name the path. */
int gr_read_file(const char *path, unsigned char **data, size_t *size);

#endif
