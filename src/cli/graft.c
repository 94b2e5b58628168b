#define _DEFAULT_SOURCE
/* graft.c — the `graft` command. A thin layer over include/graft.h: parse flags, call the
 * API, print results (text or --json) on stdout and errors on stderr.
 * Exit codes: 0 success, 1 bad input (a file, model or data problem), 2 bad usage,
 * 3 internal error or out of memory. */
#include "graft.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

char cli_error[512]; /* a bad-input message of the CLI's own, printed by fail() */

int fail(graft_status st)
{
    cli_progress_end();
    fprintf(stderr, "graft: %s\n", cli_error[0] ? cli_error : graft_last_error());
    return st == GRAFT_E_INTERNAL || st == GRAFT_E_NOMEM ? EXIT_INTERNAL : EXIT_INPUT;
}

int usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "graft %s: %s (see graft %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

static const char *HELP =
    "graft — transfer learning for pretrained ONNX models, on the CPU\n"
    "\n"
    "usage: graft COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  info MODEL [--json] [--batch N]     inputs, outputs, ops, parameters, FLOPs, cut points\n"
    "  run MODEL (--input X.npy | --image PHOTO) [--output Y.npy] [--json]\n"
    "                                      run the model on a tensor or an image\n"
    "  data DATA [--check] [--json]        a dataset's kind, size and classes; --check decodes\n"
    "                                      every image and lists the unreadable ones\n"
    "  extract MODEL DATA [--layer NODE] [--pool mean|grid2|grid4|none] [-o X.npy]\n"
    "                                      features of a dataset from a cut model (cached)\n"
    "  fit MODEL DATA [--head logreg|mlp|knn|ncm] [-o HEAD]\n"
    "                                      a new head on the cached features, validated\n"
    "  finetune MODEL DATA -o OUT.onnx [--freeze SPEC] [--epochs N] [--checkpoint DIR [--resume]]\n"
    "                                      new head, train it, unfreeze, train more: one ONNX\n"
    "  predict HEAD INPUT... [--top K]     labels for images or folders, with probabilities\n"
    "  eval HEAD DATA [--report R.html]    accuracy, per-class, calibration; an HTML report\n"
    "  export HEAD -o MODEL.onnx           the model and a fitted head as one ONNX file\n"
    "  fewshot MODEL DATA [--way N --shot K[,K...] --query Q --episodes E]\n"
    "                                      episodic N-way K-shot accuracy with a 95 % interval\n"
    "  keyword embed AUDIO.wav -o EMB.npy   openWakeWord's speech embeddings of a recording\n"
    "  version [--json]                    print the version\n"
    "\n"
    "common flags: --json (machine-readable output), --threads N (default: all cores), --help,\n"
    "  --limit NAME=VALUE (what a file may make graft allocate: tensor-bytes, image-pixels, "
    "audio-rate,\n"
    "  audio-seconds, decompressed-bytes, classes, k; see docs/ARCHITECTURE.md)\n"
    "exit codes: 0 ok, 1 bad input, 2 bad usage, 3 internal error\n";

static const char *INFO_HELP =
    "usage: graft info MODEL [--json] [--batch N] [--threads N]\n"
    "\n"
    "Describes an ONNX model: its inputs and outputs with shapes ('?' is a symbolic dim), op\n"
    "counts, parameter count, FLOPs for one input of batch N (default 1; other symbolic dims\n"
    "count as 224, or 16000 for the samples of a (batch, samples) signal), activation memory,\n"
    "and the cut points: values after which only one\n"
    "activation is alive, where the model can be cut for feature extraction (pass the name to\n"
    "--layer in later commands).\n";

static const char *RUN_HELP =
    "usage: graft run MODEL (--input X.npy | --image PHOTO) [--output Y.npy] [--json]\n"
    "                 [--resize N] [--crop N] [--reference] [--threads N]\n"
    "\n"
    "Runs the model on a NumPy tensor, or on an image (JPEG, PNG, PGM/PPM) preprocessed the\n"
    "torchvision way: resize the shorter side to 256, center-crop 224, normalise with the\n"
    "ImageNet mean and std (change the sizes with --resize/--crop). Writes the first output to\n"
    "--output as .npy; prints its shape, a summary and the top-5 entries of a vector output.\n"
    "--reference uses the plain C kernels instead of oneDNN.\n";

static const char *DATA_HELP =
    "usage: graft data DATA [--labels Y.npy] [--check] [--json] [--threads N]\n"
    "\n"
    "Describes a dataset: a folder with one subfolder per class, a CSV/TSV list "
    "(path,label[,...]),\n"
    "an IDX image file such as Fashion-MNIST's train-images-idx3-ubyte.gz (labels from the\n"
    "matching labels file), or a .npy array (labels from --labels). Prints the kind, the number\n"
    "of samples and each class with its id and count, in the order graft assigns ids (sorted\n"
    "names; integer labels keep their values). --check decodes every image (all cores, or\n"
    "--threads) and lists each unreadable one with its reason; the exit code is then 1.\n";

static const char *EXTRACT_HELP =
    "usage: graft extract MODEL DATA [--layer NODE] [--pool mean|grid2|grid4|none] [--transform "
    "SPEC]\n"
    "                     [--output X.npy] [--labels-output Y.npy] [--cache DIR | --no-cache]\n"
    "                     [--batch N] [--workers N] [--skip-bad] [--json] [--threads N]\n"
    "\n"
    "Runs MODEL cut at NODE (a name `graft info` lists; default: the input of the model's\n"
    "classifier; auto: the candidate map and pooling with the best cross-validated linear probe)\n"
    "over every image of DATA (see `graft data --help`) and pools each map into one\n"
    "row: mean (global average, default), grid2 (mean over a 2x2 grid, 4 values per channel),\n"
    "grid4 (4x4, 16 values; the map's sides must be multiples of 4) or none. SPEC is the\n"
    "preprocessing (default resize=256,crop=224,normalize=imagenet). The result is cached in\n"
    "DIR (default $GRAFT_CACHE/features, i.e. ~/.cache/graft/features), keyed by the model's\n"
    "content, the layer, the pooling, the preprocessing and the image files, so an unchanged\n"
    "request is read back and a changed input recomputed. --output writes the features\n"
    "(n, dim) and --labels-output the class ids as .npy. Unreadable images stop the run, or with\n"
    "--skip-bad are left out and reported.\n";

static const char *FIT_HELP =
    "usage: graft fit MODEL DATA [--head logreg|mlp|knn|ncm] [--norm standardize|l2|none] [--C X]\n"
    "                 [--val F | --test TESTDATA] [--shots K] [--seed N] [--output "
    "HEAD.safetensors]\n"
    "                 [--json]\n"
    "                 [extract flags: --layer NODE --pool P --transform SPEC --cache DIR "
    "--no-cache\n"
    "                  --batch N --workers N --skip-bad --threads N]\n"
    "\n"
    "Fits a new classifier on MODEL's features of DATA (computed once and cached, see `graft\n"
    "extract --help`; --layer auto ranks the candidate maps pooled by their mean and a 2x2 grid,\n"
    "the best eight also on a 4x4 grid, by a cross-validated linear probe on the training part\n"
    "and takes the best), holding out a stratified validation fraction F (default 0.2; 0 trains "
    "on\n"
    "everything). Heads: logreg (multinomial logistic regression as scikit-learn's, L-BFGS, the\n"
    "L2 strength C chosen by 5-fold cross-validation unless --C is given), mlp (one hidden layer\n"
    "with dropout), knn (cosine), ncm (nearest class mean). Features are standardised for\n"
    "logreg and mlp and L2-normalised for knn and ncm unless --norm says otherwise. Prints the\n"
    "validation accuracy, macro F1 and calibration error; --output saves the head. --shots K "
    "trains\n"
    "on K examples per class drawn by --seed (the few-shot setting); --test evaluates on another\n"
    "dataset with the same classes instead of a validation split.\n";

static const char *FINETUNE_HELP =
    "usage: graft finetune MODEL DATA --output OUT.onnx [--json] [--threads N]\n"
    "         [--layer NODE|auto] [--pool mean|grid2|grid4] [--head-init probe|imprint|random]\n"
    "         [--probe-C X] [--freeze SPEC] [--head-epochs N] [--epochs N | --steps N] [--bn "
    "train|frozen]\n"
    "         [--optimizer adamw|sgd] [--lr X] [--lr-ratio X] [--layer-decay X] [--weight-decay "
    "X]\n"
    "         [--label-smoothing X] [--dropout X] [--val F] [--patience N] [--batch N] [--workers "
    "N]\n"
    "         [--transform SPEC] [--augment SPEC] [--checkpoint DIR] [--resume] [--seed N]\n"
    "         [--cache DIR | --no-cache] [--shots K] [--test TESTDATA] [--report REPORT.html]\n"
    "\n"
    "Fine-tunes MODEL on the labelled images of DATA, the recipe of timm and the Keras transfer\n"
    "guide. The classifier is replaced by a new linear head for DATA's classes (--layer cuts the\n"
    "model at a map instead, pooled by --pool; auto picks it as `graft fit --layer auto`).\n"
    "\n"
    "Phase 1 trains the head on the frozen model. By default a logistic regression fitted on\n"
    "the frozen features (C cross-validated or --probe-C; features cached as in graft extract)\n"
    "becomes the head (LP-FT). --head-init imprint sets it to the normalised class means of the\n"
    "normalised features (weight imprinting); random starts it at random and trains it for\n"
    "--head-epochs.\n"
    "\n"
    "Phase 2 trains --freeze and the head at lr x --lr-ratio for --epochs (< 0: no phase 2),\n"
    "or for --steps optimizer updates rounded up to whole epochs (a budget that does not shrink\n"
    "with the dataset: with --val 0 and batch 32, 500 updates are 500 epochs of 10 images, 20\n"
    "of 800; early stopping still applies with a validation split). With --epochs or --steps\n"
    "below 20 images per class, phase 2 trains last:1 instead of skipping.\n"
    "Freeze specs, comma-separated, applied left to right: all, none, head, last:N (the last N\n"
    "blocks), after:NODE (everything after a node), pattern:GLOB (parameter names), each but\n"
    "all/none with '-' to exclude. BatchNorms of frozen layers stay in inference mode; with\n"
    "--bn frozen all do, their scale and shift still training. AdamW (or SGD with momentum\n"
    "0.9), linear warm-up then cosine, label smoothing, layer-wise rate decay (--layer-decay\n"
    "0.8: each layer down gets 0.8x), dropout before the head. A stratified validation split\n"
    "(--val) scores every epoch; each phase keeps the weights of its lowest validation loss and\n"
    "stops after --patience epochs without a lower one. Training images are augmented\n"
    "(--augment; default: the preprocessing with a random resized crop, and a horizontal flip\n"
    "unless the head reads a grid). --val 0: no validation split (the last weights are kept).\n"
    "\n"
    "Left out, every setting is chosen from the dataset's size and printed first: below 20\n"
    "images per class the probe alone (no validation split could stop phase 2, which measured\n"
    "worse), below 200 the last 2 blocks, else all; BatchNorms in inference mode unless all\n"
    "train from a random head or with 200+ images per class (a probe head is fitted on the\n"
    "running statistics).\n"
    "\n"
    "--checkpoint DIR writes the session after every epoch; --resume continues an interrupted run\n"
    "from it, with the same result. --shots K trains on K images per class (by --seed); --test\n"
    "evaluates the result on another dataset with the same class names, and --report writes the\n"
    "HTML report of that evaluation with the learning curves. The output is one ONNX file\n"
    "(output \"probabilities\"; class names, preprocessing, recipe and curves in its metadata)\n"
    "that graft predict, graft eval and onnxruntime take.\n";

static const char *PREDICT_HELP =
    "usage: graft predict HEAD INPUT... [--top K] [--json] [--model MODEL] [--threads N]\n"
    "\n"
    "Top-K labels (default 5) with probabilities for each image (JPEG, PNG, PGM/PPM) or each "
    "image\n"
    "file in a folder, from a head saved by `graft fit -o HEAD`: the head remembers the model,\n"
    "layer, pooling, preprocessing and class names it was fitted with (--model points elsewhere\n"
    "if the model moved). HEAD may also be a model.onnx made by graft finetune or graft export.\n";

static const char *EVAL_HELP =
    "usage: graft eval HEAD DATA [--report REPORT.html] [--json] [--model MODEL] [--group COLUMN]\n"
    "                  [--cache DIR | --no-cache] [--skip-bad] [--threads N]\n"
    "\n"
    "Evaluates a head saved by `graft fit -o HEAD`, or a model.onnx made by graft finetune or\n"
    "graft export, on a labelled dataset: accuracy, top-5, macro F1,\n"
    "expected calibration error (15 bins) and per-class precision/recall/F1. --report writes one\n"
    "self-contained HTML page with the confusion matrix, the reliability diagram and the tables\n"
    "(and the learning curves of a fine-tuned model). When DATA is a CSV list with a column named\n"
    "group (or the one --group names), the accuracy of each group is reported and the worst\n"
    "group named: the check for a model that fails one part of the population.\n";

static const char *EXPORT_HELP =
    "usage: graft export HEAD --output MODEL.onnx [--model SOURCE.onnx] [--json]\n"
    "\n"
    "Writes the model a head was fitted on (`graft fit -o HEAD`), cut at the head's layer, with "
    "the\n"
    "pooling, the feature normalisation, the head and a Softmax, as one ONNX file that "
    "onnxruntime\n"
    "runs: input as the source model's, output \"probabilities\" (N, classes). The class names "
    "and\n"
    "the preprocessing are in its metadata (graft.classes, graft.transform). kNN heads keep their\n"
    "training rows and cannot be exported.\n";

static const char *FEWSHOT_HELP =
    "usage: graft fewshot MODEL DATA [--method simpleshot|knn|imprint] [--way N] [--shot "
    "K[,K...]]\n"
    "                     [--query Q] [--episodes E] [--seed S] [--json]\n"
    "                     [extract flags: --layer NODE --pool P --transform SPEC --cache DIR ...]\n"
    "\n"
    "Few-shot learning on MODEL's features of DATA (cached, see `graft extract --help`), "
    "evaluated\n"
    "over E episodes (default 600): each draws N classes (default 5), K labelled examples per\n"
    "class (default 1; a list such as 1,5 runs each) and Q queries per class (default 15), and\n"
    "classifies the queries from the K examples alone. simpleshot (default) centres the features\n"
    "on the episode's examples, L2-normalises them and takes the nearest class mean; knn is the\n"
    "cosine nearest neighbour; imprint uses the normalised class means as the weights of a\n"
    "cosine classifier. Prints the mean accuracy and its 95 % confidence interval.\n";

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

static int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, batch = 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(INFO_HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) graft_set_threads(atoi(argv[++i]));
        else if (argv[i][0] == '-') return usage_error("info", "unknown flag");
        else if (!path) path = argv[i];
        else return usage_error("info", "more than one model given");
    }
    if (!path) return usage_error("info", "no model given");
    if (batch <= 0) return usage_error("info", "--batch must be positive");
    graft_model *m;
    graft_status st = graft_model_load(path, &m);
    if (st) return fail(st);
    char *text;
    st = graft_model_info_json(m, batch, &text);
    graft_model_free(m);
    if (st) return fail(st);
    if (json) puts(text);
    else {
        cJSON *o = cJSON_Parse(text);
        print_info_text(o);
        cJSON_Delete(o);
    }
    free(text);
    return 0;
}

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

static int cmd_run(int argc, char **argv)
{
    const char *path = NULL, *input = NULL, *image = NULL, *output = NULL;
    int json = 0, reference = 0;
    graft_image_prep prep;
    graft_image_prep_imagenet(&prep);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(RUN_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--reference")) reference = 1;
        else if (!strcmp(a, "--input") && has) input = argv[++i];
        else if (!strcmp(a, "--image") && has) image = argv[++i];
        else if (!strcmp(a, "--output") && has) output = argv[++i];
        else if (!strcmp(a, "--resize") && has) prep.resize = atoi(argv[++i]);
        else if (!strcmp(a, "--crop") && has) prep.crop = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has) graft_set_threads(atoi(argv[++i]));
        else if (a[0] == '-') return usage_error("run", "unknown flag or missing value");
        else if (!path) path = a;
        else return usage_error("run", "more than one model given");
    }
    if (!path) return usage_error("run", "no model given");
    if (!input == !image) return usage_error("run", "give exactly one of --input and --image");
    graft_tensor *x = NULL, *y = NULL;
    graft_model *m = NULL;
    graft_status st = input ? graft_npy_load(input, &x) : graft_image_load(image, &prep, &x);
    if (!st) st = graft_model_load(path, &m);
    if (!st && graft_model_num_inputs(m) != 1) {
        fprintf(stderr, "graft: %s has %d inputs; graft run feeds one\n", path,
                graft_model_num_inputs(m));
        graft_model_free(m);
        graft_tensor_free(x);
        return EXIT_INPUT;
    }
    if (!st) graft_model_use_reference(m, reference);
    int nout = m ? graft_model_num_outputs(m) : 0;
    graft_tensor **outs = calloc((size_t)nout + 1, sizeof *outs);
    if (!st) st = graft_model_run(m, (const graft_tensor *const *)&x, 1, outs, nout);
    if (!st) {
        y = outs[0];
        print_output(y, json);
        if (output) st = graft_npy_save(output, y);
    }
    for (int i = 0; i < nout; i++) graft_tensor_free(outs[i]);
    free(outs);
    graft_model_free(m);
    graft_tensor_free(x);
    return st ? fail(st) : 0;
}

/* ---- data ---- */

typedef struct bad_list {
    cJSON *arr;
    int json;
} bad_list;

static void report_bad(void *ctx, int64_t i, const char *path, const char *msg)
{
    bad_list *b = ctx;
    if (b->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)i);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddItemToArray(b->arr, o);
    } else printf("  bad: %s\n", msg);
}

static int cmd_data(int argc, char **argv)
{
    const char *path = NULL, *labels = NULL;
    int json = 0, check = 0, threads = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(DATA_HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--check")) check = 1;
        else if (!strcmp(argv[i], "--labels") && i + 1 < argc) labels = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (argv[i][0] == '-') return usage_error("data", "unknown flag or missing value");
        else if (!path) path = argv[i];
        else return usage_error("data", "more than one dataset given");
    }
    if (!path) return usage_error("data", "no dataset given");
    graft_dataset *d;
    graft_status st = graft_dataset_open(path, labels, &d);
    if (st) return fail(st);
    int64_t n = graft_dataset_size(d), unlabelled = 0;
    int k = graft_dataset_num_classes(d);
    int64_t *count = calloc((size_t)k + 1, sizeof *count);
    if (!count) {
        graft_dataset_free(d);
        return fail(GRAFT_E_NOMEM);
    }
    for (int64_t i = 0; i < n; i++) {
        int c = graft_dataset_label(d, i);
        if (c >= 0 && c < k) count[c]++;
        else unlabelled++;
    }
    cJSON *o = cJSON_CreateObject(), *classes = cJSON_AddArrayToObject(o, "classes");
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "kind", graft_dataset_kind(d));
    cJSON_AddNumberToObject(o, "samples", (double)n);
    cJSON_AddNumberToObject(o, "unlabelled", (double)unlabelled);
    for (int c = 0; c < k; c++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", c);
        cJSON_AddStringToObject(e, "name", graft_dataset_class_name(d, c));
        cJSON_AddNumberToObject(e, "count", (double)count[c]);
        cJSON_AddItemToArray(classes, e);
    }
    if (!json) {
        printf("%s: %s dataset, %lld samples, %d classes%s\n", path, graft_dataset_kind(d),
               (long long)n, k, unlabelled ? " (some unlabelled)" : "");
        for (int c = 0; c < k; c++)
            printf("  %3d  %-24s %lld\n", c, graft_dataset_class_name(d, c), (long long)count[c]);
    }
    int64_t nbad = 0;
    if (check && !st) {
        bad_list b = { cJSON_AddArrayToObject(o, "bad"), json };
        st = graft_dataset_check(d, threads > 0 ? threads : graft_threads(), report_bad, &b, &nbad);
        cJSON_AddNumberToObject(o, "nbad", (double)nbad);
        if (!json && !st)
            printf("checked %lld images: %lld unreadable\n", (long long)n, (long long)nbad);
    }
    if (json) {
        char *text = cJSON_Print(o);
        puts(text);
        free(text);
    }
    cJSON_Delete(o);
    free(count);
    graft_dataset_free(d);
    if (st) return fail(st);
    return nbad ? EXIT_INPUT : 0;
}

/* ---- extract ---- */

static graft_status resolve_auto(const char *model, const graft_dataset *d,
                                 const graft_tensor *subset, graft_extract_opts *eo, int json);

void default_cache(char *buf, size_t n, const char *sub)
{
    const char *c = getenv("GRAFT_CACHE"), *home = getenv("HOME");
    if (c && *c) snprintf(buf, n, "%s/%s", c, sub);
    else snprintf(buf, n, "%s/.cache/graft/%s", home ? home : ".", sub);
}

/* --cache DIR / --no-cache / the default folder, as the cache_dir of graft_extract_opts. */
static const char *cache_dir(const char *cache, int nocache, char *buf, size_t n)
{
    if (nocache) return NULL;
    if (cache) return cache;
    default_cache(buf, n, "features");
    return buf;
}

/* The flags of every command that extracts features (extract, fit, fewshot). */
typedef struct extract_flags {
    graft_extract_opts o;
    const char *cache, *pool;
    int nocache;
} extract_flags;

/* Takes argv[*i] (and its value, advancing *i) when it is one of those flags: 1 if it was. */
static int extract_flag(int argc, char **argv, int *i, extract_flags *f)
{
    const char *a = argv[*i];
    int more = *i + 1 < argc;
    if (!strcmp(a, "--no-cache")) f->nocache = 1;
    else if (!strcmp(a, "--skip-bad")) f->o.skip_bad = 1;
    else if (!strcmp(a, "--layer") && more) f->o.layer = argv[++*i];
    else if (!strcmp(a, "--pool") && more) f->pool = argv[++*i];
    else if (!strcmp(a, "--transform") && more) f->o.transform = argv[++*i];
    else if (!strcmp(a, "--cache") && more) f->cache = argv[++*i];
    else if (!strcmp(a, "--batch") && more) f->o.batch = atoi(argv[++*i]);
    else if (!strcmp(a, "--workers") && more) f->o.workers = atoi(argv[++*i]);
    else if (!strcmp(a, "--threads") && more) graft_set_threads(atoi(argv[++*i]));
    else return 0;
    return 1;
}

/* The flags as the API's options: --pool by name, --batch and --workers 0 (or less) the
 * default, the cache folder, and the library's reports on stderr (--json: warnings only). */
static graft_status extract_values(const extract_flags *f, int json, char *cache_buf, size_t n,
                                   graft_extract_opts *o)
{
    graft_extract_opts def;
    graft_extract_opts_init(&def);
    *o = f->o;
    if (o->batch <= 0) o->batch = def.batch;
    if (o->workers <= 0) o->workers = def.workers;
    o->cache_dir = cache_dir(f->cache, f->nocache, cache_buf, n);
    o->progress = json ? cli_warnings : cli_progress;
    return f->pool ? graft_pool_from_name(f->pool, &o->pool) : GRAFT_OK;
}

static int cmd_extract(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *lout = NULL;
    int json = 0;
    extract_flags f = { 0 };
    graft_extract_opts_init(&f.o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(EXTRACT_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (extract_flag(argc, argv, &i, &f)) continue;
        else if ((!strcmp(a, "--output") || !strcmp(a, "-o")) && more) out = argv[++i];
        else if (!strcmp(a, "--labels-output") && more) lout = argv[++i];
        else if (a[0] == '-') return usage_error("extract", "unknown flag or missing value");
        else if (!model) model = a;
        else if (!data) data = a;
        else return usage_error("extract", "more than a model and a dataset given");
    }
    if (!model || !data) return usage_error("extract", "give a model and a dataset");
    if (f.o.batch < 0 || f.o.workers < 0)
        return usage_error("extract", "--batch and --workers must be positive");
    graft_extract_opts o;
    char cache_buf[1024];
    graft_status st = extract_values(&f, json, cache_buf, sizeof cache_buf, &o);
    if (st) return fail(st);
    graft_dataset *d;
    st = graft_dataset_open(data, NULL, &d);
    if (st) return fail(st);
    graft_tensor *x = NULL, *y = NULL;
    int cached = 0;
    st = resolve_auto(model, d, NULL, &o, json);
    if (!st) st = graft_extract(model, d, &o, &x, &y, NULL, &cached);
    graft_dataset_free(d);
    if (!st && out) st = graft_npy_save(out, x);
    if (!st && lout) st = graft_npy_save(lout, y);
    if (!st) {
        if (json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "samples", (double)x->dims[0]);
            cJSON_AddNumberToObject(j, "dim", (double)x->dims[1]);
            cJSON_AddBoolToObject(j, "cached", cached);
            cJSON_AddStringToObject(j, "features", out ? out : "");
            cJSON_AddStringToObject(j, "labels", lout ? lout : "");
            char *text = cJSON_PrintUnformatted(j);
            if (text) puts(text);
            free(text);
            cJSON_Delete(j);
        } else
            printf("%lld samples x %lld features%s%s%s\n", (long long)x->dims[0],
                   (long long)x->dims[1], cached ? " (from the cache)" : "", out ? " -> " : "",
                   out ? out : "");
    }
    graft_tensor_free(x);
    graft_tensor_free(y);
    return st ? fail(st) : 0;
}

static char *auto_choice;
static void free_auto_choice(void) { free(auto_choice); }

/* --layer auto: rank the candidate layers on `subset` (NULL: all), print the ranking, and set
 * eo->layer / eo->pool to the best (the strings stay allocated until exit). */
static graft_status resolve_auto(const char *model, const graft_dataset *d,
                                 const graft_tensor *subset, graft_extract_opts *eo, int json)
{
    if (!eo->layer || strcmp(eo->layer, "auto")) return GRAFT_OK;
    char *ranking, *layer;
    graft_pool pool;
    graft_extract_opts q = *eo;
    q.progress = cli_warnings;
    graft_status st = graft_layer_auto(model, d, subset, &q, 0, &ranking, &layer, &pool);
    if (st) return st;
    cJSON *arr = cJSON_Parse(ranking);
    FILE *out = json ? stderr : stdout;
    fprintf(
        out,
        "layer auto: %d candidates (layer, pooling) ranked by the held-out log-loss of a 3-fold "
        "cross-validated linear probe:\n  log-loss  accuracy\n",
        cJSON_GetArraySize(arr));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (i++ == 10) {
            fprintf(out, "  ...\n");
            break;
        }
        fprintf(out, "  %8.4f  %8.4f  %-40s %-5s (%d features)\n",
                cJSON_GetObjectItem(e, "log_loss")->valuedouble,
                cJSON_GetObjectItem(e, "accuracy")->valuedouble,
                cJSON_GetObjectItem(e, "layer")->valuestring,
                cJSON_GetObjectItem(e, "pool")->valuestring,
                cJSON_GetObjectItem(e, "dim")->valueint);
    }
    fprintf(out, "using %s with %s pooling\n", layer, graft_pool_name(pool));
    cJSON_Delete(arr);
    free(ranking);
    auto_choice = layer; /* kept for the rest of the command, freed at exit */
    atexit(free_auto_choice);
    eo->layer = layer;
    eo->pool = pool;
    return GRAFT_OK;
}

/* ---- fit ---- */

/* The rows of X (and y) whose sample index is in `keep` (sorted int64 indices). */
static int select_rows(const graft_tensor *X, const graft_tensor *y, const graft_tensor *index,
                       const graft_tensor *keep, graft_tensor **xs, graft_tensor **ys)
{
    const int64_t *ix = index->data, *k = keep->data;
    int64_t n = X->dims[0], dim = X->dims[1], nk = keep->dims[0], m = 0;
    int64_t maxi = 0;
    for (int64_t i = 0; i < n; i++) maxi = ix[i] > maxi ? ix[i] : maxi;
    unsigned char *in = calloc((size_t)maxi + 2, 1);
    if (!in) return GRAFT_E_NOMEM;
    for (int64_t j = 0; j < nk; j++)
        if (k[j] <= maxi) in[k[j]] = 1;
    for (int64_t i = 0; i < n; i++) m += in[ix[i]];
    int64_t dx[2] = { m, dim }, dy[1] = { m };
    graft_status st = graft_tensor_new(GRAFT_FLOAT, 2, dx, xs);
    if (!st) st = graft_tensor_new(GRAFT_INT32, 1, dy, ys);
    if (st) {
        free(in);
        return st;
    }
    for (int64_t i = 0, r = 0; i < n; i++)
        if (in[ix[i]]) {
            memcpy((float *)(*xs)->data + r * dim, (const float *)X->data + i * dim,
                   (size_t)dim * sizeof(float));
            ((int32_t *)(*ys)->data)[r++] = ((const int32_t *)y->data)[i];
        }
    free(in);
    return GRAFT_OK;
}

/* Test labels renumbered to the training dataset's ids, matching classes by name (ids are per
 * dataset: a folder sorts its names, an IDX file has its own order). */
static graft_status map_classes(const graft_dataset *train, const graft_dataset *test,
                                graft_tensor *y, const char *path)
{
    int kt = graft_dataset_num_classes(test), k = graft_dataset_num_classes(train);
    int *map = malloc((size_t)(kt + 1) * sizeof *map);
    if (!map) return GRAFT_E_NOMEM;
    for (int c = 0; c < kt; c++) {
        map[c] = -1;
        for (int j = 0; j < k; j++)
            if (!strcmp(graft_dataset_class_name(test, c), graft_dataset_class_name(train, j)))
                map[c] = j;
        if (map[c] < 0) {
            snprintf(cli_error, sizeof cli_error,
                     "class '%s' of %s is not among the training classes",
                     graft_dataset_class_name(test, c), path);
            free(map);
            return GRAFT_E_ARG;
        }
    }
    int32_t *l = y->data;
    for (int64_t i = 0; i < y->dims[0]; i++) l[i] = l[i] >= 0 && l[i] < kt ? map[l[i]] : -1;
    free(map);
    return GRAFT_OK;
}

static int cmd_fit(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *test = NULL;
    int json = 0, shots = 0;
    double val = 0.2;
    const char *kind = NULL, *norm = NULL;
    extract_flags f = { 0 };
    graft_extract_opts_init(&f.o);
    graft_fit_opts fo;
    graft_fit_opts_init(&fo);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(FIT_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (extract_flag(argc, argv, &i, &f)) continue;
        else if (!strcmp(a, "--head") && more) kind = argv[++i];
        else if (!strcmp(a, "--norm") && more) norm = argv[++i];
        else if (!strcmp(a, "--C") && more) fo.C = atof(argv[++i]);
        else if (!strcmp(a, "--seed") && more) fo.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--val") && more) val = atof(argv[++i]);
        else if (!strcmp(a, "--shots") && more) shots = atoi(argv[++i]);
        else if (!strcmp(a, "--test") && more) test = argv[++i];
        else if ((!strcmp(a, "--output") || !strcmp(a, "-o")) && more) out = argv[++i];
        else if (a[0] == '-') return usage_error("fit", "unknown flag or missing value");
        else if (!model) model = a;
        else if (!data) data = a;
        else return usage_error("fit", "more than a model and a dataset given");
    }
    if (!model || !data) return usage_error("fit", "give a model and a dataset");
    if (!(val >= 0 && val < 1)) return usage_error("fit", "--val must be in [0, 1)");
    if (shots < 0) return usage_error("fit", "--shots must be positive");
    if (test) val = 0; /* the test set is the held-out data */
    if (kind && graft_head_kind_from_name(kind, &fo.kind))
        return usage_error("fit", "--head must be logreg, mlp, knn or ncm");
    if (norm && graft_norm_from_name(norm, &fo.norm))
        return usage_error("fit", "--norm must be standardize, l2 or none");
    if (!(fo.C > 0)) fo.C = GRAFT_AUTO; /* --C 0 or less: cross-validated */
    graft_extract_opts eo;
    char cache_buf[1024];
    graft_status st = extract_values(&f, json, cache_buf, sizeof cache_buf, &eo);
    if (st) return fail(st);
    graft_dataset *d;
    st = graft_dataset_open(data, NULL, &d);
    if (st) return fail(st);
    graft_tensor *X = NULL, *y = NULL, *index = NULL, *tr = NULL, *va = NULL, *Xt = NULL,
                 *yt = NULL, *Xv = NULL, *yv = NULL, *prob = NULL;
    graft_head *h = NULL;
    char *metrics = NULL;
    int nclass = graft_dataset_num_classes(d), cached = 0;
    double frac[3] = { 1 - val, val, 0 };
    graft_dataset *td = NULL;
    st = shots ? graft_dataset_kshot(d, shots, fo.seed, &tr)
               : graft_dataset_split(d, frac, fo.seed, &tr, val > 0 ? &va : NULL, NULL);
    if (!st) st = resolve_auto(model, d, tr, &eo, json); /* chosen on the training part only */
    if (!st) st = graft_extract(model, d, &eo, &X, &y, &index, &cached);
    if (!st) st = select_rows(X, y, index, tr, &Xt, &yt);
    if (!st && va) st = select_rows(X, y, index, va, &Xv, &yv);
    if (!st && test) { /* another dataset holds the evaluation samples */
        st = graft_dataset_open(test, NULL, &td);
        if (!st) st = graft_extract(model, td, &eo, &Xv, &yv, NULL, NULL);
        if (!st) st = map_classes(d, td, yv, test);
        if (!st) va = Xv; /* marks "evaluate" below; freed as Xv */
    }
    if (!st) st = graft_head_fit(Xt, yt, nclass, &fo, &h);
    if (!st && Xv) st = graft_head_predict(h, Xv, &prob);
    if (!st && Xv) {
        const char **names = malloc((size_t)nclass * sizeof *names);
        for (int c = 0; names && c < nclass; c++) names[c] = graft_dataset_class_name(d, c);
        st = graft_evaluate_json(prob, yv, NULL, names, NULL, &metrics);
        free(names);
    }
    if (!st && out) {
        cJSON *o = cJSON_CreateObject(), *cls = cJSON_AddArrayToObject(o, "classes");
        char full[4096];
        cJSON_AddStringToObject(o, "model", realpath(model, full) ? full : model);
        if (eo.layer) cJSON_AddStringToObject(o, "layer", eo.layer);
        cJSON_AddStringToObject(o, "pool", graft_pool_name(eo.pool));
        if (eo.transform) cJSON_AddStringToObject(o, "transform", eo.transform);
        for (int c = 0; c < nclass; c++)
            cJSON_AddItemToArray(cls, cJSON_CreateString(graft_dataset_class_name(d, c)));
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        st = text ? graft_head_set_origin(h, text) : GRAFT_E_NOMEM;
        free(text);
        if (!st) st = graft_head_save(h, out);
    }
    if (!st) {
        if (json) {
            printf("{\"train\": %lld, \"val\": %lld, \"features\": %lld, \"cached\": %s, \"C\": "
                   "%g, \"cv_accuracy\": %g, "
                   "\"val_metrics\": %s}\n",
                   (long long)Xt->dims[0], (long long)(Xv ? Xv->dims[0] : 0), (long long)X->dims[1],
                   cached ? "true" : "false", graft_head_C(h), graft_head_cv_accuracy(h),
                   metrics ? metrics : "null");
        } else {
            printf("features %lld x %lld%s; head fitted on %lld samples", (long long)X->dims[0],
                   (long long)X->dims[1], cached ? " (from the cache)" : "",
                   (long long)Xt->dims[0]);
            if (graft_head_cv_accuracy(h) >= 0)
                printf(" (C = %g by cross-validation, CV accuracy %.4f)", graft_head_C(h),
                       graft_head_cv_accuracy(h));
            printf("\n");
            if (metrics) {
                char *acc = strstr(metrics, "\"accuracy\":"),
                     *f1 = strstr(metrics, "\"macro_f1\":"), *ece = strstr(metrics, "\"ece\":");
                printf("%s (%lld samples): accuracy %.4f, macro F1 %.4f, ECE %.4f\n",
                       test ? "test" : "validation", (long long)Xv->dims[0],
                       acc ? atof(acc + 11) : 0, f1 ? atof(f1 + 11) : 0, ece ? atof(ece + 6) : 0);
            }
            if (out) printf("head saved to %s\n", out);
        }
    }
    free(metrics);
    graft_head_free(h);
    if (test) va = NULL; /* it pointed at Xv */
    graft_tensor *all[] = { X, y, index, tr, va, Xt, yt, Xv, yv, prob };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) graft_tensor_free(all[i]);
    graft_dataset_free(td);
    graft_dataset_free(d);
    return st ? fail(st) : 0;
}

/* ---- predict and eval: a saved head and where its features come from ---- */

typedef struct origin {
    cJSON *o;
    const char *model, *layer, *pool, *transform;
    cJSON *classes;
    char *history; /* a fine-tuned model's learning curves (graft.history), or NULL */
    char *recipe;  /* and its recipe (graft.recipe), or NULL */
} origin;

static int is_onnx(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcasecmp(path + n - 5, ".onnx");
}

/* A fine-tuned or exported model (ONNX with output "probabilities"): its own features are the
 * probabilities, so the "head" is the identity (*h = NULL). */
static int load_model_origin(const char *path, origin *org)
{
    graft_model *m;
    graft_status st = graft_model_load(path, &m);
    if (st) return fail(st);
    const char *classes = graft_model_metadata(m, "graft.classes"),
               *tf = graft_model_metadata(m, "graft.transform"),
               *hist = graft_model_metadata(m, "graft.history"),
               *recipe = graft_model_metadata(m, "graft.recipe");
    int ok = 0;
    for (int i = 0; i < graft_model_num_outputs(m); i++)
        ok |= !strcmp(graft_model_output_name(m, i), "probabilities");
    if (!ok) {
        fprintf(stderr,
                "graft: %s has no output 'probabilities': give a model made by graft finetune or "
                "graft export, "
                "or a head saved by graft fit\n",
                path);
        graft_model_free(m);
        return EXIT_INPUT;
    }
    org->o = cJSON_CreateObject();
    cJSON_AddStringToObject(org->o, "model", path);
    cJSON_AddStringToObject(org->o, "layer", "probabilities");
    cJSON_AddStringToObject(org->o, "pool", "none");
    if (tf) cJSON_AddStringToObject(org->o, "transform", tf);
    cJSON *c = classes ? cJSON_Parse(classes) : NULL;
    if (c) cJSON_AddItemToObject(org->o, "classes", c);
    org->model = path;
    org->layer = "probabilities";
    org->pool = "none";
    org->transform = cJSON_GetStringValue(cJSON_GetObjectItem(org->o, "transform"));
    org->classes = c;
    org->history = hist ? strdup(hist) : NULL;
    org->recipe = recipe ? strdup(recipe) : NULL;
    graft_model_free(m);
    return 0;
}

static void free_origin(origin *org)
{
    cJSON_Delete(org->o);
    free(org->history);
    free(org->recipe);
}

/* The extraction a head's origin describes, reporting through `progress`. */
static graft_status origin_opts(const origin *org, graft_progress_fn progress,
                                graft_extract_opts *eo)
{
    graft_extract_opts_init(eo);
    eo->layer = org->layer, eo->transform = org->transform, eo->progress = progress;
    return org->pool ? graft_pool_from_name(org->pool, &eo->pool) : GRAFT_OK;
}

/* A head saved by graft fit, or a whole model (.onnx) made by finetune or export. */
static int load_head(const char *path, const char *model_override, graft_head **h, origin *org)
{
    memset(org, 0, sizeof *org);
    *h = NULL;
    if (is_onnx(path)) return load_model_origin(path, org);
    graft_status st = graft_head_load(path, h);
    if (st) return fail(st);
    const char *text = graft_head_origin(*h);
    org->o = text ? cJSON_Parse(text) : NULL;
    const cJSON *m = cJSON_GetObjectItem(org->o, "model");
    org->model = model_override ? model_override : cJSON_IsString(m) ? m->valuestring : NULL;
    const cJSON *l = cJSON_GetObjectItem(org->o, "layer"), *p = cJSON_GetObjectItem(org->o, "pool"),
                *t = cJSON_GetObjectItem(org->o, "transform");
    org->layer = cJSON_IsString(l) ? l->valuestring : NULL;
    org->pool = cJSON_IsString(p) ? p->valuestring : NULL;
    org->transform = cJSON_IsString(t) ? t->valuestring : NULL;
    org->classes = cJSON_GetObjectItem(org->o, "classes");
    if (!org->model) {
        fprintf(stderr, "graft: %s does not say which model it belongs to; give --model\n", path);
        graft_head_free(*h);
        cJSON_Delete(org->o);
        return EXIT_INPUT;
    }
    return 0;
}

/* Probabilities from the features: the head's, or the features themselves for a whole model
 * (which then owns nothing new: *prob takes X). */
static graft_status head_predict(const graft_head *h, graft_tensor **X, graft_tensor **prob)
{
    if (h) return graft_head_predict(h, *X, prob);
    *prob = *X;
    *X = NULL;
    return GRAFT_OK;
}

static const char *class_name(const origin *org, int c, char *buf, size_t n)
{
    const cJSON *e = cJSON_GetArrayItem(org->classes, c);
    if (cJSON_IsString(e)) return e->valuestring;
    snprintf(buf, n, "%d", c);
    return buf;
}

static int image_file(const char *name)
{
    const char *dot = strrchr(name, '.');
    static const char *const ext[] = { ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm", NULL };
    for (int i = 0; dot && ext[i]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Doubles the list; on failure frees it (and its k strings) and returns NULL. */
static char **grow_list(char **l, int64_t k, int64_t *cap)
{
    char **m = realloc(l, (size_t)(*cap * 2) * sizeof *l);
    if (m) {
        *cap *= 2;
        return m;
    }
    for (int64_t i = 0; i < k; i++) free(l[i]);
    free(l);
    return NULL;
}

/* Files given, and the image files of folders given (sorted), into a malloc'd list. */
static int collect_inputs(char **args, int n, char ***list, int64_t *count)
{
    int64_t cap = 64, k = 0;
    char **l = malloc((size_t)cap * sizeof *l);
    for (int i = 0; l && i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(args[i]);
            struct dirent *e;
            int64_t first = k;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.' || !image_file(e->d_name)) continue;
                if (k == cap && !(l = grow_list(l, k, &cap))) break;
                size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
                l[k] = malloc(len);
                if (l[k]) snprintf(l[k], len, "%s/%s", args[i], e->d_name), k++;
            }
            if (d) closedir(d);
            if (l) qsort(l + first, (size_t)(k - first), sizeof *l, cmp_str);
        } else {
            if (k == cap && !(l = grow_list(l, k, &cap))) break;
            l[k++] = strdup(args[i]);
        }
    }
    if (!l) return fail(GRAFT_E_NOMEM);
    *list = l;
    *count = k;
    return 0;
}

static int cmd_predict(int argc, char **argv)
{
    const char *head = NULL, *model = NULL;
    int json = 0, top = 5, ninputs = 0;
    char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    for (int i = 0; inputs && i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(PREDICT_HELP, stdout);
            free(inputs);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--top") && more) top = atoi(argv[++i]);
        else if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--threads") && more) graft_set_threads(atoi(argv[++i]));
        else if (a[0] == '-') {
            free(inputs);
            return usage_error("predict", "unknown flag or missing value");
        } else if (!head) head = a;
        else inputs[ninputs++] = argv[i];
    }
    if (!head || !ninputs) {
        free(inputs);
        return usage_error("predict", "give a head and at least one image");
    }
    if (top < 1) {
        free(inputs);
        return usage_error("predict", "--top must be positive");
    }
    graft_head *h;
    origin org;
    int rc = load_head(head, model, &h, &org);
    if (rc) {
        free(inputs);
        return rc;
    }
    char **files = NULL;
    int64_t nfiles = 0;
    rc = collect_inputs(inputs, ninputs, &files, &nfiles);
    free(inputs);
    graft_dataset *d = NULL;
    graft_tensor *X = NULL, *prob = NULL;
    graft_status st =
        rc ? GRAFT_E_ARG : graft_dataset_from_files((const char *const *)files, nfiles, &d);
    if (!rc && !st) {
        graft_extract_opts eo;
        st = origin_opts(&org, cli_warnings, &eo);
        if (!st) st = graft_extract(org.model, d, &eo, &X, NULL, NULL, NULL);
    }
    if (!rc && !st) st = head_predict(h, &X, &prob);
    if (!rc && !st) {
        int64_t k = prob->dims[1];
        if (top > k) top = (int)k;
        cJSON *arr = cJSON_CreateArray();
        for (int64_t i = 0; i < prob->dims[0]; i++) {
            const float *p = (const float *)prob->data + i * k;
            cJSON *row = cJSON_CreateObject(), *tops = NULL;
            cJSON_AddStringToObject(row, "input", files[i]);
            tops = cJSON_AddArrayToObject(row, "top");
            if (!json) printf("%s\n", files[i]);
            unsigned char *used = calloc((size_t)k, 1);
            for (int t = 0; used && t < top; t++) {
                int best = -1;
                for (int64_t c = 0; c < k; c++)
                    if (!used[c] && (best < 0 || p[c] > p[best])) best = (int)c;
                used[best] = 1;
                char buf[16];
                const char *name = class_name(&org, best, buf, sizeof buf);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "label", name);
                cJSON_AddNumberToObject(e, "id", best);
                cJSON_AddNumberToObject(e, "probability", p[best]);
                cJSON_AddItemToArray(tops, e);
                if (!json) printf("  %6.2f%%  %s\n", 100.0 * p[best], name);
            }
            free(used);
            cJSON_AddItemToArray(arr, row);
        }
        if (json) {
            char *text = cJSON_Print(arr);
            puts(text);
            free(text);
        }
        cJSON_Delete(arr);
    }
    for (int64_t i = 0; files && i < nfiles; i++) free(files[i]);
    free(files);
    graft_tensor_free(X);
    graft_tensor_free(prob);
    graft_dataset_free(d);
    graft_head_free(h);
    free_origin(&org);
    if (rc) return rc;
    return st ? fail(st) : 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Group ids of the rows (sample index[r]) from a CSV column: the distinct values sorted, as
 * int32 ids, and their names (malloc'd; free each and the array). */
static graft_status group_ids(const graft_dataset *d, int col, const graft_tensor *index,
                              graft_tensor **ids, char ***names, int *ngroup)
{
    int64_t n = index->dims[0], nd = 0;
    const int64_t *ix = index->data;
    const char **vals = malloc((size_t)(n + 1) * sizeof *vals);
    if (!vals) return GRAFT_E_NOMEM;
    for (int64_t r = 0; r < n; r++) {
        const char *v = graft_dataset_value(d, col, ix[r]);
        vals[r] = v ? v : "";
    }
    const char **sorted = malloc((size_t)(n + 1) * sizeof *sorted);
    if (!sorted) {
        free(vals);
        return GRAFT_E_NOMEM;
    }
    memcpy(sorted, vals, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    for (int64_t r = 0; r < n; r++)
        if (r == 0 || strcmp(sorted[r], sorted[nd - 1])) sorted[nd++] = sorted[r];
    graft_status st = graft_tensor_new(GRAFT_INT32, 1, (int64_t[]){ n }, ids);
    char **nm = st ? NULL : calloc((size_t)nd + 1, sizeof *nm);
    if (!st && !nm) st = GRAFT_E_NOMEM;
    for (int64_t g = 0; !st && g < nd; g++)
        if (!(nm[g] = strdup(sorted[g]))) st = GRAFT_E_NOMEM;
    for (int64_t r = 0; !st && r < n; r++) {
        const char **hit = bsearch(&vals[r], sorted, (size_t)nd, sizeof *sorted, cmp_cstr);
        ((int32_t *)(*ids)->data)[r] = (int32_t)(hit - sorted);
    }
    free(vals), free(sorted);
    if (st) {
        for (int64_t g = 0; nm && g < nd; g++) free(nm[g]);
        free(nm);
        return st;
    }
    *names = nm;
    *ngroup = (int)nd;
    return GRAFT_OK;
}

static int cmd_eval(int argc, char **argv)
{
    const char *head = NULL, *data = NULL, *model = NULL, *report = NULL, *cache = NULL,
               *group = NULL;
    int json = 0, nocache = 0, skip_bad = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(EVAL_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--group") && more) group = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--no-cache")) nocache = 1;
        else if (!strcmp(a, "--skip-bad")) skip_bad = 1;
        else if (!strcmp(a, "--report") && more) report = argv[++i];
        else if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--cache") && more) cache = argv[++i];
        else if (!strcmp(a, "--threads") && more) graft_set_threads(atoi(argv[++i]));
        else if (a[0] == '-') return usage_error("eval", "unknown flag or missing value");
        else if (!head) head = a;
        else if (!data) data = a;
        else return usage_error("eval", "more than a head and a dataset given");
    }
    if (!head || !data) return usage_error("eval", "give a head and a dataset");
    graft_head *h;
    origin org;
    int rc = load_head(head, model, &h, &org);
    if (rc) return rc;
    char cache_buf[1024];
    const char *cdir = cache_dir(cache, nocache, cache_buf, sizeof cache_buf);
    double t0 = wall_seconds();
    graft_dataset *d = NULL;
    graft_tensor *X = NULL, *y = NULL, *prob = NULL, *index = NULL, *gids = NULL;
    char *metrics = NULL, **gnames = NULL;
    graft_status st = graft_dataset_open(data, NULL, &d);
    int nclass = 0, ngroup = 0, gcol = -1;
    const char **names = NULL;
    if (!st) { /* per-group accuracy: --group COL, or a CSV column named "group" */
        gcol = graft_dataset_column(d, group ? group : "group");
        if (group && gcol < 0) {
            snprintf(cli_error, sizeof cli_error, "%s has no column '%s' for --group", data, group);
            st = GRAFT_E_ARG;
        }
    }
    if (!st) {
        graft_extract_opts eo;
        st = origin_opts(&org, json ? cli_warnings : cli_progress, &eo);
        eo.cache_dir = cdir, eo.skip_bad = skip_bad;
        if (!st) st = graft_extract(org.model, d, &eo, &X, &y, &index, NULL);
    }
    if (!st && gcol >= 0) st = group_ids(d, gcol, index, &gids, &gnames, &ngroup);
    if (!st) st = head_predict(h, &X, &prob);
    if (!st) {
        nclass = (int)prob->dims[1];
        names = calloc((size_t)nclass + 1, sizeof *names);
        for (int c = 0; names && c < nclass; c++) {
            char buf[16];
            names[c] = strdup(class_name(&org, c, buf, sizeof buf));
        }
        if (graft_dataset_num_classes(d) != nclass)
            fprintf(stderr,
                    "graft: note: the dataset has %d classes, the head %d; ids are compared as "
                    "they are\n",
                    graft_dataset_num_classes(d), nclass);
        st = graft_evaluate_json(prob, y, gids, names, (const char *const *)gnames, &metrics);
    }
    if (!st && report) {
        char recipe[4096];
        if (org.recipe)
            snprintf(recipe, sizeof recipe, "model %s (fine-tuned)\ndata %s\n\n%s", head, data,
                     org.recipe);
        else
            snprintf(
                recipe, sizeof recipe,
                "head %s\nmodel %s\nlayer %s, pooling %s\ntransform %s\ndata %s", head, org.model,
                org.layer ? org.layer : "(the classifier's input)", org.pool ? org.pool : "mean",
                org.transform ? org.transform : "resize=256,crop=224,normalize=imagenet", data);
        st = graft_evaluate_report(prob, y, gids, names, (const char *const *)gnames, "graft eval",
                                   recipe, org.history, wall_seconds() - t0, report);
    }
    if (!st) {
        if (json) puts(metrics);
        else {
            cJSON *m = cJSON_Parse(metrics);
            printf("%s: %lld samples, accuracy %.4f, top-%d %.4f, macro F1 %.4f, ECE %.4f\n", data,
                   (long long)prob->dims[0], cJSON_GetObjectItem(m, "accuracy")->valuedouble,
                   cJSON_GetObjectItem(m, "topk")->valueint,
                   cJSON_GetObjectItem(m, "top5")->valuedouble,
                   cJSON_GetObjectItem(m, "macro_f1")->valuedouble,
                   cJSON_GetObjectItem(m, "ece")->valuedouble);
            printf("  %-24s %9s %9s %9s %8s\n", "class", "precision", "recall", "F1", "support");
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(m, "classes")) printf(
                "  %-24s %9.4f %9.4f %9.4f %8d\n", cJSON_GetObjectItem(c, "name")->valuestring,
                cJSON_GetObjectItem(c, "precision")->valuedouble,
                cJSON_GetObjectItem(c, "recall")->valuedouble,
                cJSON_GetObjectItem(c, "f1")->valuedouble,
                cJSON_GetObjectItem(c, "support")->valueint);
            if (cJSON_GetObjectItem(m, "groups")) {
                printf("  %-24s %9s %8s\n", "group", "accuracy", "samples");
                cJSON_ArrayForEach(c, cJSON_GetObjectItem(m, "groups"))
                    printf("  %-24s %9.4f %8d\n", cJSON_GetObjectItem(c, "name")->valuestring,
                           cJSON_GetObjectItem(c, "accuracy")->valuedouble,
                           cJSON_GetObjectItem(c, "samples")->valueint);
                const cJSON *w = cJSON_GetObjectItem(m, "worst_group");
                if (cJSON_IsString(w)) printf("worst group: %s\n", w->valuestring);
            }
            cJSON_Delete(m);
            if (report) printf("report written to %s\n", report);
        }
    }
    for (int c = 0; names && c < nclass; c++) free((char *)names[c]);
    free(names);
    for (int g = 0; gnames && g < ngroup; g++) free(gnames[g]);
    free(gnames);
    graft_tensor_free(index);
    graft_tensor_free(gids);
    free(metrics);
    graft_tensor_free(X);
    graft_tensor_free(y);
    graft_tensor_free(prob);
    graft_dataset_free(d);
    graft_head_free(h);
    free_origin(&org);
    return st ? fail(st) : 0;
}

/* ---- export ---- */

static int cmd_export(int argc, char **argv)
{
    const char *head = NULL, *out = NULL, *model = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(EXPORT_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if ((!strcmp(a, "--output") || !strcmp(a, "-o")) && more) out = argv[++i];
        else if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (a[0] == '-') return usage_error("export", "unknown flag or missing value");
        else if (!head) head = a;
        else return usage_error("export", "more than one head given");
    }
    if (!head || !out) return usage_error("export", "give a head and --output");
    graft_head *h;
    graft_status st = graft_head_load(head, &h);
    if (st) return fail(st);
    st = graft_head_export(h, model, out);
    graft_head_free(h);
    if (st) return fail(st);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "head", head);
        char *text = cJSON_PrintUnformatted(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else printf("wrote %s\n", out);
    return 0;
}

/* ---- finetune ---- */

/* Probabilities of a graft-made model (output "probabilities") on every sample of d. */
static graft_status model_probs(const char *model, const graft_dataset *d, const char *transform,
                                int quiet, graft_tensor **prob, graft_tensor **y)
{
    graft_extract_opts eo;
    graft_extract_opts_init(&eo);
    eo.layer = "probabilities", eo.pool = GRAFT_POOL_NONE, eo.transform = transform;
    eo.progress = quiet ? cli_warnings : cli_progress;
    return graft_extract(model, d, &eo, prob, y, NULL, NULL);
}

/* The command line's conventions as the API's values: the closed sets by name; 0 for epochs,
 * lr, weight decay and probe C is automatic, 0 for lr ratio, label smoothing, patience, batch and
 * workers the default; negative epochs skip the phase, a negative weight decay or label
 * smoothing is none, a negative patience never stops. */
static graft_status finetune_values(const char *pool, const char *head_init, const char *bn,
                                    const char *optimizer, graft_finetune_opts *o)
{
    graft_finetune_opts def;
    graft_finetune_opts_init(&def);
    graft_status st = pool ? graft_pool_from_name(pool, &o->pool) : GRAFT_OK;
    if (!st && head_init) st = graft_head_init_from_name(head_init, &o->head_init);
    if (!st && bn) st = graft_bn_from_name(bn, &o->bn);
    if (!st && optimizer) st = graft_optimizer_from_name(optimizer, &o->optimizer);
    int *epochs[2] = { &o->head_epochs, &o->epochs };
    for (int k = 0; k < 2; k++)
        if (*epochs[k] == 0) *epochs[k] = GRAFT_AUTO;
        else if (*epochs[k] < 0 && *epochs[k] != GRAFT_AUTO) *epochs[k] = 0;
    if (o->lr == 0) o->lr = GRAFT_AUTO;
    if (o->probe_C <= 0) o->probe_C = GRAFT_AUTO;
    if (o->weight_decay == 0) o->weight_decay = GRAFT_AUTO;
    else if (o->weight_decay < 0 && o->weight_decay != GRAFT_AUTO) o->weight_decay = 0;
    if (o->label_smoothing == 0) o->label_smoothing = def.label_smoothing;
    else if (o->label_smoothing < 0) o->label_smoothing = 0;
    if (o->lr_ratio == 0) o->lr_ratio = def.lr_ratio;
    if (o->patience == 0) o->patience = def.patience;
    else if (o->patience < 0) o->patience = GRAFT_NEVER;
    if (o->batch == 0) o->batch = def.batch;
    if (o->workers == 0) o->workers = def.workers;
    return st;
}

static int cmd_finetune(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *test = NULL, *report = NULL,
               *cache = NULL;
    int json = 0, shots = 0, nocache = 0;
    const char *pool = NULL, *head_init = NULL, *bn = NULL, *optimizer = NULL;
    graft_finetune_opts o;
    graft_finetune_opts_init(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(FINETUNE_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if ((!strcmp(a, "--output") || !strcmp(a, "-o")) && more) out = argv[++i];
        else if (!strcmp(a, "--layer") && more) o.layer = argv[++i];
        else if (!strcmp(a, "--pool") && more) pool = argv[++i];
        else if (!strcmp(a, "--freeze") && more) o.freeze = argv[++i];
        else if (!strcmp(a, "--head-init") && more) head_init = argv[++i];
        else if (!strcmp(a, "--probe-C") && more) o.probe_C = atof(argv[++i]);
        else if (!strcmp(a, "--bn") && more) bn = argv[++i];
        else if (!strcmp(a, "--cache") && more) cache = argv[++i];
        else if (!strcmp(a, "--no-cache")) nocache = 1;
        else if (!strcmp(a, "--head-epochs") && more) o.head_epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--epochs") && more) o.epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) o.steps = atoi(argv[++i]);
        else if (!strcmp(a, "--optimizer") && more) optimizer = argv[++i];
        else if (!strcmp(a, "--lr") && more) o.lr = atof(argv[++i]);
        else if (!strcmp(a, "--lr-ratio") && more) o.lr_ratio = atof(argv[++i]);
        else if (!strcmp(a, "--layer-decay") && more) o.layer_decay = atof(argv[++i]);
        else if (!strcmp(a, "--weight-decay") && more) o.weight_decay = atof(argv[++i]);
        else if (!strcmp(a, "--label-smoothing") && more) o.label_smoothing = atof(argv[++i]);
        else if (!strcmp(a, "--dropout") && more) o.dropout = atof(argv[++i]);
        else if (!strcmp(a, "--val") && more)
            o.val_frac = atof(argv[++i]) <= 0 ? 0 : atof(argv[i]); /* 0 or less: no split */
        else if (!strcmp(a, "--patience") && more) o.patience = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) o.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--workers") && more) o.workers = atoi(argv[++i]);
        else if (!strcmp(a, "--transform") && more) o.transform = argv[++i];
        else if (!strcmp(a, "--augment") && more) o.augment = argv[++i];
        else if (!strcmp(a, "--checkpoint") && more) o.checkpoint_dir = argv[++i];
        else if (!strcmp(a, "--seed") && more) o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--shots") && more) shots = atoi(argv[++i]);
        else if (!strcmp(a, "--test") && more) test = argv[++i];
        else if (!strcmp(a, "--report") && more) report = argv[++i];
        else if (!strcmp(a, "--stop-after-epochs") && more) o.stop_after_epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) graft_set_threads(atoi(argv[++i]));
        else if (a[0] == '-') return usage_error("finetune", "unknown flag or missing value");
        else if (!model) model = a;
        else if (!data) data = a;
        else return usage_error("finetune", "more than a model and a dataset given");
    }
    if (!model || !data || !out)
        return usage_error("finetune", "give a model, a dataset and --output");
    if (shots < 0) return usage_error("finetune", "--shots must be positive");
    if (report && !test)
        return usage_error("finetune", "--report evaluates on --test data; give both");
    if (o.resume && !o.checkpoint_dir)
        return usage_error("finetune", "--resume needs --checkpoint DIR");
    graft_status st = finetune_values(pool, head_init, bn, optimizer, &o);
    if (st) return fail(st);
    o.progress = json ? cli_warnings : cli_progress;
    char cache_buf[1024];
    o.cache_dir = cache_dir(cache, nocache, cache_buf, sizeof cache_buf);
    graft_dataset *d = NULL, *td = NULL;
    graft_tensor *sub = NULL, *prob = NULL, *y = NULL;
    char *summary = NULL, *metrics = NULL;
    double t0 = wall_seconds();
    st = graft_dataset_open(data, NULL, &d);
    if (!st && shots) st = graft_dataset_kshot(d, shots, o.seed, &sub);
    graft_extract_opts eo;
    graft_extract_opts_init(&eo);
    eo.layer = o.layer, eo.pool = o.pool, eo.transform = o.transform;
    if (!st) st = resolve_auto(model, d, sub, &eo, json);
    o.layer = eo.layer, o.pool = eo.pool;
    if (!st) st = graft_finetune(model, d, sub, &o, out, &summary);
    cJSON *sj = summary ? cJSON_Parse(summary) : NULL;
    if (!st && !sj) {
        snprintf(cli_error, sizeof cli_error, "out of memory reading the fine-tuning summary");
        st = GRAFT_E_NOMEM;
    }
    if (!st && test) { /* the fine-tuned model on another dataset, classes matched by name */
        st = graft_dataset_open(test, NULL, &td);
        if (!st) st = model_probs(out, td, o.transform, json, &prob, &y);
        if (!st) st = map_classes(d, td, y, test);
        int nclass = graft_dataset_num_classes(d);
        const char **names = st ? NULL : malloc((size_t)nclass * sizeof *names);
        for (int c = 0; names && c < nclass; c++) names[c] = graft_dataset_class_name(d, c);
        if (!st)
            st = names ? graft_evaluate_json(prob, y, NULL, names, NULL, &metrics) : GRAFT_E_NOMEM;
        if (!st && report) {
            char *hist = cJSON_PrintUnformatted(cJSON_GetObjectItem(sj, "history"));
            st = graft_evaluate_report(prob, y, NULL, names, NULL, "graft finetune",
                                       cJSON_GetStringValue(cJSON_GetObjectItem(sj, "recipe")),
                                       hist, wall_seconds() - t0, report);
            free(hist);
        }
        free(names);
    }
    if (!st && json) {
        cJSON *m = metrics ? cJSON_Parse(metrics) : cJSON_CreateNull();
        cJSON_AddItemToObject(sj, "test_metrics", m);
        cJSON_AddStringToObject(sj, "output", out);
        char *text = cJSON_PrintUnformatted(sj);
        if (text) puts(text);
        free(text);
    } else if (!st) {
        const cJSON *bv = cJSON_GetObjectItem(sj, "best_val_accuracy");
        int best = cJSON_GetObjectItem(sj, "best_epoch")->valueint;
        const cJSON *h = cJSON_GetObjectItem(sj, "history");
        printf("fine-tuned on %d images in %.1f s", cJSON_GetObjectItem(sj, "train")->valueint,
               cJSON_GetObjectItem(sj, "seconds")->valuedouble);
        if (cJSON_IsNumber(bv) && best >= 0 &&
            best < cJSON_GetArraySize(cJSON_GetObjectItem(h, "epoch")))
            printf("; kept phase %d epoch %d (validation loss %.4f, accuracy %.4f)",
                   cJSON_GetArrayItem(cJSON_GetObjectItem(h, "phase"), best)->valueint,
                   cJSON_GetArrayItem(cJSON_GetObjectItem(h, "epoch"), best)->valueint,
                   cJSON_GetArrayItem(cJSON_GetObjectItem(h, "val_loss"), best)->valuedouble,
                   bv->valuedouble);
        printf("\n");
        if (metrics) {
            cJSON *m = cJSON_Parse(metrics);
            printf("test (%s, %lld images): accuracy %.4f, macro F1 %.4f, ECE %.4f\n", test,
                   (long long)prob->dims[0], cJSON_GetObjectItem(m, "accuracy")->valuedouble,
                   cJSON_GetObjectItem(m, "macro_f1")->valuedouble,
                   cJSON_GetObjectItem(m, "ece")->valuedouble);
            cJSON_Delete(m);
        }
        printf("model written to %s%s%s\n", out, report ? ", report to " : "",
               report ? report : "");
    }
    cJSON_Delete(sj);
    free(summary);
    free(metrics);
    graft_tensor_free(sub);
    graft_tensor_free(prob);
    graft_tensor_free(y);
    graft_dataset_free(td);
    graft_dataset_free(d);
    return st ? fail(st) : 0;
}

/* ---- fewshot ---- */

static int cmd_fewshot(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *shots = "1";
    int json = 0;
    const char *method = NULL;
    extract_flags f = { 0 };
    graft_extract_opts_init(&f.o);
    graft_fewshot_opts fo, def;
    graft_fewshot_opts_init(&fo);
    graft_fewshot_opts_init(&def);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(FEWSHOT_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (extract_flag(argc, argv, &i, &f)) continue;
        else if (!strcmp(a, "--method") && more) method = argv[++i];
        else if (!strcmp(a, "--way") && more) fo.way = atoi(argv[++i]);
        else if (!strcmp(a, "--shot") && more) shots = argv[++i];
        else if (!strcmp(a, "--query") && more) fo.query = atoi(argv[++i]);
        else if (!strcmp(a, "--episodes") && more) fo.episodes = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && more) fo.seed = strtoull(argv[++i], NULL, 10);
        else if (a[0] == '-') return usage_error("fewshot", "unknown flag or missing value");
        else if (!model) model = a;
        else if (!data) data = a;
        else return usage_error("fewshot", "more than a model and a dataset given");
    }
    if (!model || !data) return usage_error("fewshot", "give a model and a dataset");
    for (const char *p = shots; *p;) { /* the list is checked before any work */
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || (*end && *end != ','))
            return usage_error("fewshot", "--shot takes numbers such as 1,5");
        p = *end == ',' ? end + 1 : end;
    }
    if (fo.way < 0 || fo.query < 0 || fo.episodes < 0)
        return usage_error("fewshot", "counts must be positive");
    if (method && graft_fewshot_method_from_name(method, &fo.method))
        return usage_error("fewshot", "--method must be simpleshot, knn or imprint");
    if (!fo.way) fo.way = def.way; /* 0: the default */
    if (!fo.query) fo.query = def.query;
    if (!fo.episodes) fo.episodes = def.episodes;
    graft_extract_opts eo;
    char cache_buf[1024];
    graft_status st = extract_values(&f, json, cache_buf, sizeof cache_buf, &eo);
    if (st) return fail(st);
    graft_dataset *d;
    st = graft_dataset_open(data, NULL, &d);
    if (st) return fail(st);
    graft_tensor *X = NULL, *y = NULL;
    st = resolve_auto(model, d, NULL, &eo, json);
    if (!st) st = graft_extract(model, d, &eo, &X, &y, NULL, NULL);
    int nclass = graft_dataset_num_classes(d);
    graft_dataset_free(d);
    if (json && !st) printf("[");
    int first = 1;
    for (const char *p = shots; !st && *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        fo.shot = (int)k;
        double mean, ci;
        st = graft_fewshot_eval(X, y, nclass, &fo, &mean, &ci);
        if (!st && json)
            printf("%s{\"way\": %d, \"shot\": %d, \"query\": %d, \"episodes\": %d, \"accuracy\": "
                   "%.6f, \"ci95\": %.6f}",
                   first ? "" : ", ", fo.way ? fo.way : 5, fo.shot, fo.query ? fo.query : 15,
                   fo.episodes ? fo.episodes : 600, mean, ci);
        else if (!st)
            printf("%d-way %d-shot (%s, %d episodes of %d queries per class): accuracy %.2f%% +- "
                   "%.2f%%\n",
                   fo.way ? fo.way : 5, fo.shot, graft_fewshot_method_name(fo.method),
                   fo.episodes ? fo.episodes : 600, fo.query ? fo.query : 15, 100 * mean, 100 * ci);
        first = 0;
        p = *end == ',' ? end + 1 : end;
    }
    if (json && X) printf("]\n"); /* a well-formed array even when a later shot failed */
    graft_tensor_free(X);
    graft_tensor_free(y);
    return st ? fail(st) : 0;
}

/* "16G", "178956970", "2.5M": a positive count with an optional binary suffix K, M, G, T. */
static int parse_size(const char *s, int64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mult = 1;
    if (*end && !end[1]) {
        const char *units = "KMGT", *u = strchr(units, *end);
        if (!u) return -1;
        for (const char *q = units; q <= u; q++) mult *= 1024;
        end++;
    }
    if (end == s || *end || !(v > 0) || v * mult >= 9.2e18) return -1;
    *out = (int64_t)(v * mult);
    return *out > 0 ? 0 : -1;
}

/* --limit NAME=VALUE, anywhere on the command line and repeatable, for every command: sets the
 * limit and removes the pair from argv. Returns 0, or the exit code of a usage error. */
static int take_limits(int *argc, char **argv)
{
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--limit")) {
            argv[w++] = argv[i];
            continue;
        }
        const char *spec = i + 1 < *argc ? argv[++i] : "";
        const char *eq = strchr(spec, '=');
        char name[64];
        int64_t v;
        int which = -1;
        if (eq && eq - spec < (int)sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
            which = graft_limit_find(name);
        }
        if (which < 0 || parse_size(eq + 1, &v)) {
            fprintf(stderr, "graft: --limit '%s': expected NAME=VALUE with NAME one of", spec);
            for (int k = 0; k < GRAFT_LIMIT_COUNT; k++)
                fprintf(stderr, " %s", graft_limit_name((graft_limit)k));
            fprintf(stderr,
                    " and VALUE a positive number (suffix K, M, G or T for powers of 1024)\n");
            return EXIT_USAGE;
        }
        graft_set_limit((graft_limit)which, v);
    }
    argv[w] = NULL;
    *argc = w;
    return 0;
}

/* SIGXFSZ, see main: caught, not ignored, so that the programs graft runs keep the default. */
static void on_xfsz(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f, RLIMIT_FSIZE) kills a writer with SIGXFSZ by default, before
     * it can remove its temp file or say what happened; caught, the write fails with EFBIG and
     * the atomic writer names the file and "File too large", as for a full disk. A handler
     * rather than SIG_IGN, which sox would inherit: sox exits 0 after a failed write (a
     * truncated clip taken for a good one), while killed by the signal it is seen to fail. */
    struct sigaction xfsz = { .sa_handler = on_xfsz, .sa_flags = SA_RESTART };
    sigaction(SIGXFSZ, &xfsz, NULL);
    cli_catch_assertions();
    int lim = take_limits(&argc, argv);
    if (lim) return lim;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 2, argv + 2);
    if (!strcmp(cmd, "extract")) return cmd_extract(argc - 2, argv + 2);
    if (!strcmp(cmd, "fit")) return cmd_fit(argc - 2, argv + 2);
    if (!strcmp(cmd, "finetune")) return cmd_finetune(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 2, argv + 2);
    if (!strcmp(cmd, "fewshot")) return cmd_fewshot(argc - 2, argv + 2);
    if (!strcmp(cmd, "keyword")) return cmd_keyword(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (argc > 2 && !strcmp(argv[2], "--json"))
            printf("{\"version\": \"%s\"}\n", graft_version());
        else printf("graft %s\n", graft_version());
        return 0;
    }
    fprintf(stderr, "graft: unknown command '%s'\n\n%s", cmd, HELP);
    return EXIT_USAGE;
}
