/* finetune_cmd.c — `graft finetune`: a new head, trained, then more of the model unfrozen and
 * trained, written as one ONNX file; optionally tested on another dataset with an HTML report. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct finetune_args {
    graft_finetune_opts o;
    const char *out, *test, *report, *cache, *target;
    int json, shots, nocache, threads;
    int adapt_given; /* --adapt was on the command line */
} finetune_args;

/* The setters of the choice rows: the name (checked by the row) as its enum. */
static void set_head_init(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_head_init_from_name(v.s, (graft_head_init *)((char *)base + f->off));
}

static void set_bn(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_bn_from_name(v.s, (graft_bn *)((char *)base + f->off));
}

static void set_adapt(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_adapt_method_from_name(v.s, (graft_adapt_method *)((char *)base + f->off));
    ((finetune_args *)base)->adapt_given = 1;
}

static void set_optimizer(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_optimizer_from_name(v.s, (graft_optimizer *)((char *)base + f->off));
}

/* The numeric rows start at graft_finetune_opts_init's values: auto (and 0 where the row says
 * CLI_ZERO_AUTO) keeps that default, GRAFT_AUTO where graft chooses from the data. */
static const cli_word WORDS_PATIENCE[] = { { "auto", GRAFT_AUTO },
                                           { "never", GRAFT_NEVER },
                                           { NULL, 0 } };

#define FT(field) offsetof(finetune_args, field)
static const cli_flag FINETUNE_FLAGS[] = {
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "OUT.onnx",
      .help = "the fine-tuned model (required)",
      .off = FT(out) },
    { .name = "layer",
      .type = CLI_STRING,
      .meta = "NODE|auto",
      .def = "the classifier's input",
      .help = "cut the model at a map and pool it (auto: measured)",
      .off = FT(o.layer) },
    { .name = "pool",
      .type = CLI_CHOICE,
      .choices = "mean|grid2|grid4",
      .def = "mean",
      .help = "pooling of a cut map",
      .off = FT(o.pool),
      .set = cli_set_pool },
    { .name = "head-init",
      .type = CLI_CHOICE,
      .choices = "probe|imprint|random",
      .def = "probe",
      .help = "how the new head starts",
      .off = FT(o.head_init),
      .set = set_head_init },
    { .name = "probe-C",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1e12,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "auto: cross-validated",
      .help = "the probe's inverse L2 strength",
      .off = FT(o.probe_C) },
    { .name = "freeze",
      .type = CLI_STRING,
      .meta = "SPEC",
      .def = "auto",
      .help = "what phase 2 trains besides the head (all, none, head, last:N, after:NODE, ...)",
      .off = FT(o.freeze) },
    { .name = "head-epochs",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 100000,
      .words = cli_words_auto_none,
      .bits = CLI_ZERO_AUTO,
      .def = "auto",
      .help = "phase 1 epochs of a random head (none: no phase 1 training)",
      .off = FT(o.head_epochs) },
    { .name = "epochs",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 100000,
      .words = cli_words_auto_none,
      .bits = CLI_ZERO_AUTO,
      .def = "auto",
      .help = "phase 2 epochs (none: no phase 2)",
      .off = FT(o.epochs) },
    { .name = "steps",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 100000000,
      .help = "phase 2 optimizer updates instead of epochs (0: epochs decide)",
      .off = FT(o.steps) },
    { .name = "bn",
      .type = CLI_CHOICE,
      .choices = "train|frozen",
      .def = "auto",
      .help = "BatchNorms that train use batch statistics, or all stay frozen",
      .off = FT(o.bn),
      .set = set_bn },
    { .name = "optimizer",
      .type = CLI_CHOICE,
      .choices = "adamw|sgd",
      .def = "adamw",
      .help = "the optimizer",
      .off = FT(o.optimizer),
      .set = set_optimizer },
    { .name = "lr",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 10,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "1e-3 AdamW, 0.01 SGD",
      .help = "phase 1 learning rate",
      .off = FT(o.lr) },
    { .name = "lr-ratio",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1000,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "0.1",
      .help = "phase 2 rate = lr x ratio",
      .off = FT(o.lr_ratio) },
    { .name = "layer-decay",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1,
      .bits = CLI_HI_OPEN,
      .def = "0: none",
      .help = "phase 2: each layer down gets X times the rate",
      .off = FT(o.layer_decay) },
    { .name = "weight-decay",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 10,
      .words = cli_words_auto_none,
      .bits = CLI_ZERO_AUTO,
      .def = "auto: 0.01 AdamW, 1e-4 SGD",
      .help = "weight decay (0 or auto: the optimizer's default; none: no decay)",
      .off = FT(o.weight_decay) },
    { .name = "label-smoothing",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1,
      .bits = CLI_HI_OPEN | CLI_ZERO_AUTO,
      .words = cli_words_auto_none,
      .def = "auto: 0.1",
      .help = "label smoothing (0 or auto: 0.1; none: no smoothing)",
      .off = FT(o.label_smoothing) },
    { .name = "dropout",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1,
      .bits = CLI_HI_OPEN,
      .def = "0",
      .help = "dropout before the new head",
      .off = FT(o.dropout) },
    { .name = "val",
      .type = CLI_REAL,
      .meta = "F",
      .lo = 0,
      .hi = 1,
      .bits = CLI_HI_OPEN,
      .def = "auto",
      .words = cli_words_auto,
      .help = "stratified validation fraction (0: no split, no early stopping)",
      .off = FT(o.val_frac) },
    { .name = "patience",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 100000,
      .words = WORDS_PATIENCE,
      .bits = CLI_ZERO_AUTO,
      .def = "auto: 5",
      .help = "epochs without a lower validation loss before a phase stops",
      .off = FT(o.patience) },
    { .name = "batch",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 65536,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "32",
      .help = "images a step",
      .off = FT(o.batch) },
    { .name = "workers",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 256,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "2",
      .help = "image decoding threads",
      .off = FT(o.workers) },
    { .name = "transform",
      .type = CLI_STRING,
      .meta = "SPEC",
      .def = "resize=256,crop=224,normalize=imagenet",
      .help = "evaluation preprocessing",
      .off = FT(o.transform) },
    { .name = "augment",
      .type = CLI_STRING,
      .meta = "SPEC",
      .def = "the preprocessing with a random resized crop and a flip",
      .help = "training preprocessing",
      .off = FT(o.augment) },
    { .name = "checkpoint",
      .type = CLI_PATH,
      .meta = "DIR",
      .help = "write the session after every epoch",
      .off = FT(o.checkpoint_dir) },
    { .name = "resume",
      .type = CLI_SWITCH,
      .help = "continue an interrupted run (--checkpoint)",
      .off = FT(o.resume) },
    CLI_ROW_SEED(finetune_args, o.seed),
    { .name = "cache",
      .type = CLI_PATH,
      .meta = "DIR",
      .def = "$GRAFT_CACHE/features",
      .help = "the probe's feature cache",
      .off = FT(cache) },
    { .name = "no-cache",
      .type = CLI_SWITCH,
      .help = "neither read nor write the cache",
      .off = FT(nocache) },
    { .name = "shots",
      .type = CLI_INT,
      .meta = "K",
      .lo = 0,
      .hi = 1000000,
      .def = "all",
      .help = "train on K images per class (0: all)",
      .off = FT(shots) },
    { .name = "test",
      .type = CLI_PATH,
      .meta = "TESTDATA",
      .help = "evaluate the result on this dataset (same class names)",
      .off = FT(test) },
    { .name = "report",
      .type = CLI_PATH,
      .meta = "REPORT.html",
      .help = "the HTML report of the --test evaluation",
      .off = FT(report) },
    { .name = "stop-after-epochs",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 1000000,
      .bits = CLI_HIDDEN,
      .help = "stop with an error after N epochs (tests)",
      .off = FT(o.stop_after_epochs) },
    { .name = "target",
      .type = CLI_PATH,
      .meta = "DATA",
      .help = "unlabelled target images to adapt the result to (labels only reported)",
      .off = FT(target) },
    { .name = "adapt",
      .type = CLI_CHOICE,
      .choices = "adabn|tent|shot|coral|mmd|dann",
      .def = "adabn",
      .help = "how to adapt to --target: align while training (coral, mmd, dann) or adapt the "
              "result (adabn, tent, shot; see graft adapt)",
      .off = FT(o.adapt),
      .set = set_adapt },
    { .name = "adapt-weight",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 1e-9,
      .hi = 1e6,
      .def = "1",
      .help = "weight of the alignment loss (coral, mmd, dann)",
      .off = FT(o.adapt_weight) },
    CLI_ROW_JSON(finetune_args, json),
    CLI_ROW_THREADS(finetune_args, threads, "all"),
    { 0 },
};
#undef FT

/* What one `graft finetune` holds; freed by finetune_free. */
typedef struct finetune_state {
    graft_dataset *d, *td;
    graft_tensor *sub, *prob, *y;
    graft_dataset *target;
    char *summary, *metrics;
    cJSON *sj; /* the summary, parsed */
} finetune_state;

static void finetune_free(finetune_state *s)
{
    cJSON_Delete(s->sj);
    free(s->summary);
    free(s->metrics);
    graft_tensor_free(s->sub);
    graft_tensor_free(s->prob);
    graft_tensor_free(s->y);
    graft_dataset_free(s->target);
    graft_dataset_free(s->td);
    graft_dataset_free(s->d);
}

/* The fine-tuned model on --test data, classes matched by name; --report writes the HTML. */
static graft_status finetune_test(const finetune_args *a, finetune_state *s, double t0)
{
    graft_extract_opts eo;
    graft_extract_opts_init(&eo);
    eo.layer = "probabilities", eo.pool = GRAFT_POOL_NONE, eo.transform = a->o.transform;
    eo.progress = a->json ? cli_warnings : cli_progress;
    graft_status st = graft_dataset_open(a->test, NULL, &s->td);
    if (!st) st = graft_extract(a->out, s->td, &eo, &s->prob, &s->y, NULL, NULL);
    if (!st) st = map_classes(s->d, s->td, s->y, a->test);
    int nclass = graft_dataset_num_classes(s->d);
    const char **names = st ? NULL : malloc((size_t)nclass * sizeof *names);
    for (int c = 0; names && c < nclass; c++) names[c] = graft_dataset_class_name(s->d, c);
    if (!st)
        st = names ? graft_evaluate_json(s->prob, s->y, NULL, names, NULL, &s->metrics)
                   : GRAFT_E_NOMEM;
    if (!st && a->report) {
        char *hist = cJSON_PrintUnformatted(cJSON_GetObjectItem(s->sj, "history"));
        st = graft_evaluate_report(s->prob, s->y, NULL, names, NULL, "graft finetune",
                                   cJSON_GetStringValue(cJSON_GetObjectItem(s->sj, "recipe")), hist,
                                   wall_seconds() - t0, a->report);
        free(hist);
    }
    free(names);
    return st;
}

/* A number of the summary (NaN when it is missing: the library writes every key it documents). */
static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void print_finetune(const finetune_args *a, const finetune_state *s)
{
    const cJSON *sj = s->sj, *bv = cJSON_GetObjectItem(sj, "best_val_accuracy");
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
    const cJSON *ad = cJSON_GetObjectItem(sj, "adapt");
    const char *method = cJSON_GetStringValue(cJSON_GetObjectItem(ad, "method"));
    if (ad && cJSON_GetObjectItem(ad, "loss")) {
        printf("aligned with %s (%s, weight %g): last epoch's alignment loss %.4f", a->target,
               method ? method : "?", number(ad, "weight"), number(ad, "loss"));
        if (cJSON_IsNumber(cJSON_GetObjectItem(ad, "domain_accuracy")))
            printf(", domain classifier accuracy %.1f %%", 100 * number(ad, "domain_accuracy"));
        printf("\n");
    } else if (ad) {
        printf("adapted to %s (%s): prediction entropy %.4f -> %.4f", a->target,
               method ? method : "?", number(ad, "entropy_before"), number(ad, "entropy_after"));
        if (cJSON_IsNumber(cJSON_GetObjectItem(ad, "accuracy_after")))
            printf(", target accuracy %.2f %% -> %.2f %%", 100 * number(ad, "accuracy_before"),
                   100 * number(ad, "accuracy_after"));
        printf("\n");
    }
    if (s->metrics) {
        cJSON *m = cJSON_Parse(s->metrics);
        printf("test (%s, %lld images): accuracy %.4f, macro F1 %.4f, ECE %.4f\n", a->test,
               (long long)s->prob->dims[0], cJSON_GetObjectItem(m, "accuracy")->valuedouble,
               cJSON_GetObjectItem(m, "macro_f1")->valuedouble,
               cJSON_GetObjectItem(m, "ece")->valuedouble);
        cJSON_Delete(m);
    }
    printf("model written to %s%s%s\n", a->out, a->report ? ", report to " : "",
           a->report ? a->report : "");
}

static void print_finetune_json(const finetune_args *a, finetune_state *s)
{
    cJSON *m = s->metrics ? cJSON_Parse(s->metrics) : cJSON_CreateNull();
    cJSON_AddItemToObject(s->sj, "test_metrics", m);
    cJSON_AddStringToObject(s->sj, "output", a->out);
    char *text = cJSON_PrintUnformatted(s->sj);
    if (text) puts(text);
    free(text);
}

/* The usage errors finetune's table cannot see: positionals and flags that go together. */
static int finetune_usage(const finetune_args *a, int npos)
{
    if (npos > 2) return usage_error("finetune", "more than a model and a dataset given");
    if (npos < 2 || !a->out) return usage_error("finetune", "give a model, a dataset and --output");
    if (a->report && !a->test)
        return usage_error("finetune", "--report evaluates on --test data; give both");
    if (a->o.resume && !a->o.checkpoint_dir)
        return usage_error("finetune", "--resume needs --checkpoint DIR");
    if (a->adapt_given && !a->target)
        return usage_error("finetune", "--adapt adapts to --target images; give them");
    return 0;
}

static int cmd_finetune(int argc, char **argv)
{
    finetune_args a = { .threads = -1 };
    graft_finetune_opts_init(&a.o);
    int npos, rc = cli_parse(&CMD_FINETUNE, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if ((rc = finetune_usage(&a, npos))) return rc;
    apply_threads(a.threads);
    const char *model = argv[0];
    graft_finetune_opts o = a.o;
    o.progress = a.json ? cli_warnings : cli_progress;
    char cache_buf[1024];
    o.cache_dir = cache_dir(a.cache, a.nocache, cache_buf, sizeof cache_buf);
    finetune_state s = { 0 };
    double t0 = wall_seconds();
    graft_status st = graft_dataset_open(argv[1], NULL, &s.d);
    if (!st && a.shots) st = graft_dataset_kshot(s.d, a.shots, o.seed, &s.sub);
    if (!st && a.target) st = graft_dataset_open_unlabeled(a.target, NULL, &s.target);
    o.target = s.target;
    /* layer "auto" is the API's: it parses the model once for the choice and the training */
    if (!st) st = graft_finetune(model, s.d, s.sub, &o, a.out, &s.summary);
    s.sj = s.summary ? cJSON_Parse(s.summary) : NULL;
    if (!st && !s.sj) {
        snprintf(cli_error, sizeof cli_error, "out of memory reading the fine-tuning summary");
        st = GRAFT_E_NOMEM;
    }
    const cJSON *ranking = s.sj ? cJSON_GetObjectItem(s.sj, "layer_auto") : NULL;
    if (!st && ranking) print_layer_ranking(ranking, a.json ? stderr : stdout);
    if (!st && a.test) st = finetune_test(&a, &s, t0);
    if (!st && a.json) print_finetune_json(&a, &s);
    else if (!st) print_finetune(&a, &s);
    finetune_free(&s);
    return st ? fail(st) : 0;
}

const cli_command CMD_FINETUNE = {
    "finetune",
    "MODEL DATA --output OUT.onnx",
    "new head, train it, unfreeze, train more: one ONNX",
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
    "Phase 2 trains --freeze and the head at lr x --lr-ratio for --epochs (none: no phase 2),\n"
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
    "that graft predict, graft eval and onnxruntime take.\n",
    FINETUNE_FLAGS,
    cmd_finetune
};
