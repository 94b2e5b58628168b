/* fuzz_checkpoint.c — training checkpoints. No public function reads a checkpoint by itself:
 * graft_finetune(resume = 1) does (src/train/checkpoint.c through src/transfer/finetune.c), so
 * the target resumes a tiny fine-tuning run (fuzz/data/tiny_cnn.onnx, an 8x8 Conv-Relu-pool-
 * Gemm net, on four 8x8 images in memory-sized .npy files) from the input.
 *
 * Input: a 4-byte little-endian length L, then L bytes of phase1/ckpt.safetensors, then the
 * rest as phase1/best.safetensors (absent when empty). The run is phase 1 only (a random head,
 * one epoch, no validation split), so a checkpoint of epoch 1 resumes straight into the export
 * and one of epoch 0 trains a step first; either way the whole resume path reads the file:
 * metadata, tensors against the session's, the fine-tuning note (JSON), the best weights.
 *
 * GRAFT_FUZZ_WRITE_SEED=FILE makes the first input write a real checkpoint of this session to
 * FILE in the input format instead (fuzz/make_seeds.py derives the seeds from it). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_common.h"

#include <graft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GRAFT_FUZZ_DATA
#define GRAFT_FUZZ_DATA "fuzz/data"
#endif

static graft_dataset *ds;
static char model[1024];

/* A .npy file of uint8 images (n, h, w) or int64 labels (n). */
static int write_npy(const char *name, const char *descr, const char *shape, const void *data,
                     size_t bytes)
{
    char h[128], path[1024];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
                     shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    size_t hl = (size_t)n + (size_t)pad + 1;
    unsigned char *buf = malloc(10 + hl + bytes);
    if (!buf) return -1;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff), buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, h, (size_t)n);
    memset(buf + 10 + n, ' ', (size_t)pad);
    buf[10 + hl - 1] = '\n';
    memcpy(buf + 10 + hl, data, bytes);
    int st = fz_write(name, buf, 10 + hl + bytes, path, sizeof path);
    free(buf);
    return st;
}

/* The session's model and data, once per process. */
static int setup(void)
{
    static int done, ok;
    if (done) return ok;
    done = 1;
    const char *dir = getenv("GRAFT_FUZZ_DATA");
    snprintf(model, sizeof model, "%s/tiny_cnn.onnx", dir ? dir : GRAFT_FUZZ_DATA);
    unsigned char px[4 * 8 * 8];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 37 + (i / 64) * 101);
    int64_t y[4] = { 0, 1, 0, 1 };
    char xp[1024], yp[1024];
    if (write_npy("x.npy", "|u1", "(4, 8, 8)", px, sizeof px) ||
        write_npy("y.npy", "<i8", "(4,)", y, sizeof y) || fz_path("x.npy", xp, sizeof xp) ||
        fz_path("y.npy", yp, sizeof yp) || graft_dataset_open(xp, yp, &ds) != GRAFT_OK) {
        fprintf(stderr, "fuzz_checkpoint: cannot set up the session: %s\n", graft_last_error());
        return 0;
    }
    return ok = 1;
}

static graft_status finetune(int resume)
{
    char ck[1024], out[1024];
    if (fz_path("ck", ck, sizeof ck) || fz_path("out.onnx", out, sizeof out)) return GRAFT_E_IO;
    graft_finetune_opts o;
    graft_finetune_opts_init(&o);
    o.head_init = GRAFT_HEAD_INIT_RANDOM, o.freeze = "head", o.head_epochs = 1, o.epochs = 0;
    o.optimizer = GRAFT_OPTIMIZER_SGD, o.lr = 0.01, o.val_frac = 0, o.patience = GRAFT_NEVER;
    o.batch = 2, o.workers = 1;
    o.transform = "size=8,normalize=none", o.augment = "size=8,normalize=none";
    o.checkpoint_dir = ck, o.resume = resume, o.seed = 1;
    char *summary = NULL;
    graft_status st = graft_finetune(model, ds, NULL, &o, out, &summary);
    free(summary);
    return st;
}

static void append_file(FILE *to, const char *name)
{
    char path[1024], buf[4096];
    if (fz_path(name, path, sizeof path)) return;
    FILE *f = fopen(path, "rb");
    for (size_t n; f && (n = fread(buf, 1, sizeof buf, f)) > 0;) fwrite(buf, 1, n, to);
    if (f) fclose(f);
}

static long file_size(const char *name)
{
    char path[1024];
    if (fz_path(name, path, sizeof path)) return -1;
    FILE *f = fopen(path, "rb");
    long n = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (f) fclose(f);
    return n;
}

/* A fresh run's checkpoint, in the input format, to `to`. */
static void write_seed(const char *to)
{
    fz_remove("ck");
    if (finetune(0) != GRAFT_OK) {
        fprintf(stderr, "fuzz_checkpoint: the fresh run failed: %s\n", graft_last_error());
        exit(1);
    }
    long n = file_size("ck/phase1/ckpt.safetensors");
    FILE *f = fopen(to, "wb");
    if (n < 0 || !f) exit(1);
    unsigned char len[4] = { (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 24) };
    fwrite(len, 1, 4, f);
    append_file(f, "ck/phase1/ckpt.safetensors");
    append_file(f, "ck/phase1/best.safetensors");
    if (fclose(f)) exit(1);
    fprintf(stderr, "fuzz_checkpoint: wrote %s\n", to);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup()) return 0;
    const char *seed = getenv("GRAFT_FUZZ_WRITE_SEED");
    if (seed && *seed) {
        write_seed(seed);
        exit(0);
    }
    /* shorter than the length prefix: all of it is the checkpoint */
    size_t len = size >= 4 ? fz_le32(data) : size, off = size >= 4 ? 4 : 0;
    if (len > size - off) len = size - off;
    char path[1024];
    fz_remove("ck");
    if (fz_mkdir("ck") || fz_mkdir("ck/phase1") ||
        fz_write("ck/phase1/ckpt.safetensors", data + off, len, path, sizeof path))
        return 0;
    if (off + len < size && fz_write("ck/phase1/best.safetensors", data + off + len,
                                     size - off - len, path, sizeof path))
        return 0;
    fz_note("graft_finetune(resume)", finetune(1));
    return 0;
}
