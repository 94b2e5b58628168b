/* model_cmds.c — `graft info` and `graft run`: a model described, a model run. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- info ---- */

static void print_values(const char *title, cJSON *arr)
{
    printf("%s:\n", title);
    cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        printf("  %-24s %-8s (", cJSON_GetObjectItem(v, "name")->valuestring,
               cJSON_GetObjectItem(v, "dtype")->valuestring);
        cJSON *d;
        int first = 1;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(v, "shape"))
        {
            if (cJSON_IsString(d)) printf("%s%s", first ? "" : ", ", d->valuestring);
            else printf("%s%.0f", first ? "" : ", ", d->valuedouble);
            first = 0;
        }
        printf(")\n");
    }
}

static void print_info_text(cJSON *o)
{
    printf("model      %s\n", cJSON_GetObjectItem(o, "path")->valuestring);
    const char *producer = cJSON_GetObjectItem(o, "producer")->valuestring;
    printf("producer   %s %s, opset %.0f\n", producer[0] ? producer : "(not recorded)",
           cJSON_GetObjectItem(o, "producer_version")->valuestring,
           cJSON_GetObjectItem(o, "opset")->valuedouble);
    print_values("inputs", cJSON_GetObjectItem(o, "inputs"));
    print_values("outputs", cJSON_GetObjectItem(o, "outputs"));
    printf("nodes      %.0f\nops       ", cJSON_GetObjectItem(o, "nodes")->valuedouble);
    cJSON *c;
    int col = 11;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "op_counts"))
    {
        char item[96];
        int n = snprintf(item, sizeof item, "%s %.0f  ", c->string, c->valuedouble);
        if (col + n > 100) {
            printf("\n           ");
            col = 11;
        }
        printf("%s", item);
        col += n;
    }
    printf("\nparameters %.0f (%.1f MB as float32)\n",
           cJSON_GetObjectItem(o, "parameters")->valuedouble,
           cJSON_GetObjectItem(o, "parameters")->valuedouble * 4 / 1e6);
    printf("FLOPs      %.3f G for batch %.0f\n", cJSON_GetObjectItem(o, "flops")->valuedouble / 1e9,
           cJSON_GetObjectItem(o, "batch")->valuedouble);
    printf("activations %.1f MB (liveness-planned arena)\n",
           cJSON_GetObjectItem(o, "activation_bytes")->valuedouble / 1e6);
    printf("cut points (for --layer):\n");
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "cut_points"))
    {
        char shape[128] = "";
        int k = 0;
        cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(c, "shape")) k +=
            snprintf(shape + k, sizeof shape - (size_t)k, "%s%.0f", k ? "x" : "", d->valuedouble);
        printf("  %-32s %-20s %s\n", cJSON_GetObjectItem(c, "name")->valuestring,
               cJSON_GetObjectItem(c, "op")->valuestring, shape);
    }
}

typedef struct info_args {
    int json, batch, threads;
} info_args;

static const cli_flag INFO_FLAGS[] = {
    { .name = "batch",
      .type = CLI_INT,
      .meta = "N",
      .lo = 1,
      .hi = 1 << 20,
      .def = "1",
      .help = "the batch the FLOPs and activation memory are counted for",
      .off = offsetof(info_args, batch) },
    CLI_ROW_JSON(info_args, json),
    CLI_ROW_THREADS(info_args, threads, "all"),
    { 0 },
};

static int cmd_info(int argc, char **argv)
{
    info_args a = { .batch = 1, .threads = -1 };
    int npos, rc = cli_parse(&CMD_INFO, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("info", "no model given");
    if (npos > 1) return usage_error("info", "more than one model given");
    apply_threads(a.threads);
    graft_model *m;
    graft_status st = graft_model_load(argv[0], &m);
    if (st) return fail(st);
    char *text;
    st = graft_model_info_json(m, a.batch, &text);
    graft_model_free(m);
    if (st) return fail(st);
    if (a.json) puts(text);
    else {
        cJSON *o = cJSON_Parse(text);
        print_info_text(o);
        cJSON_Delete(o);
    }
    free(text);
    return 0;
}

const cli_command CMD_INFO = {
    "info",
    "MODEL",
    "inputs, outputs, ops, parameters, FLOPs, cut points",
    "Describes an ONNX model: its inputs and outputs with shapes ('?' is a symbolic dim), op\n"
    "counts, parameter count, FLOPs for one input of batch N (default 1; other symbolic dims\n"
    "count as 224, or 16000 for the samples of a (batch, samples) signal), activation memory,\n"
    "and the cut points: values after which only one\n"
    "activation is alive, where the model can be cut for feature extraction (pass the name to\n"
    "--layer in later commands).\n",
    INFO_FLAGS,
    cmd_info
};

/* ---- run ---- */

static void print_output(const graft_tensor *t, int json)
{
    int64_t n = graft_tensor_numel(t);
    double sum = 0, mn = 0, mx = 0;
    const float *f = t->dtype == GRAFT_FLOAT ? t->data : NULL;
    for (int64_t i = 0; f && i < n; i++) {
        sum += f[i];
        if (i == 0 || f[i] < mn) mn = f[i];
        if (i == 0 || f[i] > mx) mx = f[i];
    }
    /* top 5 of the first row of a (1, K) or (K) output */
    int64_t k = t->rank ? t->dims[t->rank - 1] : 1;
    int top[5], ntop = 0;
    if (f && (t->rank == 1 || (t->rank == 2 && t->dims[0] == 1)))
        for (; ntop < 5 && ntop < k; ntop++) {
            int best = -1;
            for (int64_t i = 0; i < k; i++) {
                int used = 0;
                for (int j = 0; j < ntop; j++) used |= top[j] == i;
                if (!used && (best < 0 || f[i] > f[best])) best = (int)i;
            }
            top[ntop] = best;
        }
    if (json) {
        printf("{\"shape\": [");
        for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? ", " : "", (long long)t->dims[i]);
        printf("], \"sum\": %.9g, \"min\": %.9g, \"max\": %.9g, \"top\": [", sum, mn, mx);
        for (int j = 0; j < ntop; j++)
            printf("%s{\"index\": %d, \"value\": %.9g}", j ? ", " : "", top[j], f[top[j]]);
        printf("]}\n");
        return;
    }
    printf("output shape (");
    for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? ", " : "", (long long)t->dims[i]);
    printf(")");
    if (f) printf("  sum %.6g  min %.6g  max %.6g", sum, mn, mx);
    printf("\n");
    for (int j = 0; j < ntop; j++) printf("  top%d  index %-6d %.6g\n", j + 1, top[j], f[top[j]]);
}

typedef struct run_args {
    const char *input, *image, *output;
    int json, reference, resize, crop, threads;
} run_args;

static const cli_flag RUN_FLAGS[] = {
    { .name = "input",
      .type = CLI_PATH,
      .meta = "X.npy",
      .help = "the input tensor (NumPy)",
      .off = offsetof(run_args, input) },
    { .name = "image",
      .type = CLI_PATH,
      .meta = "PHOTO",
      .help = "an image (JPEG, PNG, PGM/PPM), preprocessed as for ImageNet",
      .off = offsetof(run_args, image) },
    { .name = "output",
      .type = CLI_PATH,
      .meta = "Y.npy",
      .help = "write the first output",
      .off = offsetof(run_args, output) },
    { .name = "resize",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 65536,
      .def = "256",
      .help = "resize the image's shorter side to N (0: keep)",
      .off = offsetof(run_args, resize) },
    { .name = "crop",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 65536,
      .def = "224",
      .help = "center-crop N x N (0: none)",
      .off = offsetof(run_args, crop) },
    { .name = "reference",
      .type = CLI_SWITCH,
      .help = "the plain C kernels instead of oneDNN",
      .off = offsetof(run_args, reference) },
    CLI_ROW_JSON(run_args, json),
    CLI_ROW_THREADS(run_args, threads, "all"),
    { 0 },
};

/* The model's outputs on one input x; prints the first and saves it to `output` (if given). */
static graft_status run_model(graft_model *m, graft_tensor *x, const run_args *a)
{
    int nout = graft_model_num_outputs(m);
    graft_tensor **outs = calloc((size_t)nout + 1, sizeof *outs);
    if (!outs) return GRAFT_E_NOMEM;
    graft_status st = graft_model_run(m, (const graft_tensor *const *)&x, 1, outs, nout);
    if (!st) {
        print_output(outs[0], a->json);
        if (a->output) st = graft_npy_save(a->output, outs[0]);
    }
    for (int i = 0; i < nout; i++) graft_tensor_free(outs[i]);
    free(outs);
    return st;
}

static int cmd_run(int argc, char **argv)
{
    run_args a = { .threads = -1 };
    graft_image_prep prep;
    graft_image_prep_imagenet(&prep);
    a.resize = prep.resize, a.crop = prep.crop;
    int npos, rc = cli_parse(&CMD_RUN, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("run", "no model given");
    if (npos > 1) return usage_error("run", "more than one model given");
    if (!a.input == !a.image) return usage_error("run", "give exactly one of --input and --image");
    apply_threads(a.threads);
    const char *path = argv[0];
    prep.resize = a.resize, prep.crop = a.crop;
    graft_tensor *x = NULL;
    graft_model *m = NULL;
    graft_status st = a.input ? graft_npy_load(a.input, &x) : graft_image_load(a.image, &prep, &x);
    if (!st) st = graft_model_load(path, &m);
    if (!st && graft_model_num_inputs(m) != 1) {
        fprintf(stderr, "graft: %s has %d inputs; graft run feeds one\n", path,
                graft_model_num_inputs(m));
        graft_model_free(m);
        graft_tensor_free(x);
        return EXIT_INPUT;
    }
    if (!st) graft_model_use_reference(m, a.reference);
    if (!st) st = run_model(m, x, &a);
    graft_model_free(m);
    graft_tensor_free(x);
    return st ? fail(st) : 0;
}

const cli_command CMD_RUN = {
    "run",
    "MODEL (--input X.npy | --image PHOTO)",
    "run the model on a tensor or an image",
    "Runs the model on a NumPy tensor, or on an image (JPEG, PNG, PGM/PPM) preprocessed the\n"
    "torchvision way: resize the shorter side to 256, center-crop 224, normalise with the\n"
    "ImageNet mean and std (change the sizes with --resize/--crop). Writes the first output to\n"
    "--output as .npy; prints its shape, a summary and the top-5 entries of a vector output.\n"
    "--reference uses the plain C kernels instead of oneDNN.\n",
    RUN_FLAGS,
    cmd_run
};
