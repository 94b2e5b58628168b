/* graft.h — the public C API of graft, a transfer-learning engine.
 *
 * Every function returns a graft_status; on failure the message is in graft_last_error()
 * (per thread). Results come through out-parameters that are untouched on failure.
 * Whoever receives an object from a *_new / *_load call frees it with the matching *_free.
 *
 * The API comes in levels, one header each (a program may include just the ones it uses):
 *   graft/core.h      statuses, errors, threads, limits, tensors, .npy files
 *   graft/engine.h    ONNX models: load, run, describe
 *   graft/data.h      images and datasets
 *   graft/transfer.h  feature extraction, heads, few-shot, fine-tuning, evaluation
 *   graft/speech.h    audio, the speech front end and keyword detectors */
#ifndef GRAFT_H
#define GRAFT_H

#include "graft/core.h"
#include "graft/data.h"
#include "graft/engine.h"
#include "graft/speech.h"
#include "graft/transfer.h"

#endif
