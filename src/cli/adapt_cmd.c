/* adapt_cmd.c — `graft adapt`: a trained classifier adapted to unlabelled target images. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct adapt_args {
    graft_adapt_opts o;
    const char *out, *target, *labels, *source;
    int json, threads;
} adapt_args;

static void set_method(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_adapt_method_from_name(v.s, (graft_adapt_method *)((char *)base + f->off));
}

#define AD(field) offsetof(adapt_args, field)
static const cli_flag ADAPT_FLAGS[] = {
    { .name = "target",
      .type = CLI_PATH,
      .meta = "DATA",
      .help = "the unlabelled target images (required; labels it has are only reported)",
      .off = AD(target) },
    { .name = "target-labels",
      .type = CLI_PATH,
      .meta = "Y.npy",
      .help = "the labels of a .npy target, to report its accuracy (never used to adapt)",
      .off = AD(labels) },
    { .name = "source",
      .type = CLI_PATH,
      .meta = "DATA",
      .help = "the labelled source images (coral, mmd, dann: fine-tuned on them)",
      .off = AD(source) },
    { .name = "method",
      .type = CLI_CHOICE,
      .choices = "adabn|tent|shot|coral|mmd|dann",
      .def = "adabn",
      .help = "what adapts (see above)",
      .off = AD(o.method),
      .set = set_method },
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "OUT.onnx",
      .help = "the adapted model (required)",
      .off = AD(out) },
    { .name = "epochs",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 100000,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "1 tent, 10 shot",
      .help = "passes over the target (tent, shot); with --source, fine-tuning's epochs",
      .off = AD(o.epochs) },
    { .name = "lr",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 10,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "1e-3",
      .help = "learning rate (tent, shot; with --source, fine-tuning's)",
      .off = AD(o.lr) },
    { .name = "shot-beta",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 100,
      .def = "0.3",
      .help = "weight of shot's pseudo-label loss (0: SHOT-IM)",
      .off = AD(o.shot_beta) },
    { .name = "transform",
      .type = CLI_STRING,
      .meta = "SPEC",
      .def = "the model's, else ImageNet's",
      .help = "the target's preprocessing",
      .off = AD(o.transform) },
    { .name = "batch",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 65536,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "64",
      .help = "images a batch (its statistics normalise it)",
      .off = AD(o.batch) },
    { .name = "workers",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 256,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "2",
      .help = "image decoding threads",
      .off = AD(o.workers) },
    CLI_ROW_SEED(adapt_args, o.seed),
    CLI_ROW_JSON(adapt_args, json),
    CLI_ROW_THREADS(adapt_args, threads, "all"),
    { 0 },
};
#undef AD

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void print_adapt(const adapt_args *a, const cJSON *s)
{
    const char *method = cJSON_GetStringValue(cJSON_GetObjectItem(s, "method"));
    if (!method) method = "?";
    printf("adapt: %s on %.0f target images in %.1f s (%.0f BatchNorms", method, num(s, "target"),
           num(s, "seconds"), num(s, "batchnorms"));
    if (strcmp(method, "adabn")) printf(", %.0f parameters trained", num(s, "params_trained"));
    printf(")\n  prediction entropy %.4f -> %.4f, class diversity %.4f -> %.4f nats\n",
           num(s, "entropy_before"), num(s, "entropy_after"), num(s, "diversity_before"),
           num(s, "diversity_after"));
    const cJSON *p = cJSON_GetObjectItem(s, "pseudo_labels");
    if (p) {
        printf("  pseudo-labels: %.0f, mean confidence %.4f", num(p, "count"),
               num(p, "confidence"));
        if (cJSON_IsNumber(cJSON_GetObjectItem(p, "accuracy")))
            printf(", accuracy %.2f %%", 100 * num(p, "accuracy"));
        printf("\n");
    }
    if (num(s, "labelled") > 0)
        printf("  target accuracy (its %.0f labels, for reporting): %.2f %% -> %.2f %%\n",
               num(s, "labelled"), 100 * num(s, "accuracy_before"), 100 * num(s, "accuracy_after"));
    printf("model written to %s\n", a->out);
}

static void warn_harm(const cJSON *s)
{
    if (!cJSON_IsTrue(cJSON_GetObjectItem(s, "harm"))) return;
    fprintf(stderr,
            "graft adapt: warning: the predictions collapsed onto fewer classes (class diversity "
            "%.4f -> %.4f nats): the adaptation may have hurt; check it on labelled target data "
            "before using it\n",
            num(s, "diversity_before"), num(s, "diversity_after"));
}

/* coral, mmd, dann: graft finetune on the source with the target aligned. */
static int adapt_with_source(const adapt_args *a, const char *model)
{
    graft_finetune_opts o;
    graft_finetune_opts_init(&o);
    o.transform = a->o.transform, o.seed = a->o.seed, o.workers = a->o.workers;
    o.batch = a->o.batch, o.adapt = a->o.method;
    if (a->o.epochs != GRAFT_AUTO) o.epochs = a->o.epochs; /* fine-tuning's phase 2 */
    if (a->o.lr != GRAFT_AUTO) o.lr = a->o.lr;
    o.progress = a->json ? cli_warnings : cli_progress;
    graft_dataset *src = NULL, *tgt = NULL;
    char *summary = NULL;
    graft_status st = graft_dataset_open(a->source, NULL, &src);
    if (!st) st = graft_dataset_open_unlabeled(a->target, a->labels, &tgt);
    o.target = tgt;
    if (!st) st = graft_finetune(model, src, NULL, &o, a->out, &summary);
    cJSON *s = summary ? cJSON_Parse(summary) : NULL, *ad = cJSON_GetObjectItem(s, "adapt");
    if (!st && a->json) {
        cJSON_AddStringToObject(s, "output", a->out);
        char *text = cJSON_PrintUnformatted(s);
        if (text) puts(text);
        free(text);
    } else if (!st && ad) {
        const cJSON *da = cJSON_GetObjectItem(ad, "domain_accuracy");
        printf("adapt: %s, fine-tuned on %s with %s aligned in %.1f s: last epoch's alignment "
               "loss %.4f",
               cJSON_GetStringValue(cJSON_GetObjectItem(ad, "method")), a->source, a->target,
               num(s, "seconds"), num(ad, "loss"));
        if (cJSON_IsNumber(da))
            printf(", domain classifier accuracy %.1f %%", 100 * da->valuedouble);
        printf("\nmodel written to %s\n", a->out);
    }
    cJSON_Delete(s);
    free(summary);
    graft_dataset_free(src);
    graft_dataset_free(tgt);
    return st ? fail(st) : 0;
}

static int cmd_adapt(int argc, char **argv)
{
    adapt_args a = { .threads = -1 };
    graft_adapt_opts_init(&a.o);
    int npos, rc = cli_parse(&CMD_ADAPT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos != 1) return usage_error("adapt", "give one model");
    if (!a.target || !a.out) return usage_error("adapt", "give --target DATA and --output");
    int aligns = a.o.method == GRAFT_ADAPT_CORAL || a.o.method == GRAFT_ADAPT_MMD ||
                 a.o.method == GRAFT_ADAPT_DANN;
    if (aligns && !a.source)
        return usage_error("adapt", "coral, mmd and dann align with the labelled source: give "
                                    "--source DATA");
    if (!aligns && a.source)
        return usage_error("adapt", "adabn, tent and shot adapt without the source; --source is "
                                    "for coral, mmd and dann");
    apply_threads(a.threads);
    if (aligns) return adapt_with_source(&a, argv[0]);
    graft_adapt_opts o = a.o;
    o.progress = a.json ? cli_warnings : cli_progress;
    graft_dataset *d = NULL;
    char *summary = NULL;
    graft_status st = graft_dataset_open_unlabeled(a.target, a.labels, &d);
    if (!st) st = graft_adapt(argv[0], d, &o, a.out, &summary);
    cJSON *s = summary ? cJSON_Parse(summary) : NULL;
    if (!st && !s) {
        snprintf(cli_error, sizeof cli_error, "out of memory reading the adaptation summary");
        st = GRAFT_E_NOMEM;
    }
    if (!st) {
        warn_harm(s);
        if (a.json) {
            cJSON_AddStringToObject(s, "output", a.out);
            char *text = cJSON_PrintUnformatted(s);
            if (text) puts(text);
            free(text);
        } else print_adapt(&a, s);
    }
    cJSON_Delete(s);
    free(summary);
    graft_dataset_free(d);
    return st ? fail(st) : 0;
}

const cli_command CMD_ADAPT = {
    "adapt",
    "MODEL [--source DATA] --target DATA --output OUT.onnx",
    "adapt a classifier to unlabelled target images",
    "Adapts MODEL, a trained classifier (e.g. one graft finetune wrote; its preprocessing comes\n"
    "from its metadata), to the images of DATA, whose labels are not used: a folder without class\n"
    "subfolders, IDX or NPY without labels, or labelled data whose labels are only reported. No\n"
    "source data is needed. The output has the model's inputs, outputs and metadata, the adapted\n"
    "weights, and what was done in \"graft.adapt\".\n"
    "\n"
    "  adabn  re-estimates every BatchNorm's running statistics on the target (Li et al. 2016):\n"
    "         each batch normalised with its own statistics, the running values the mean over\n"
    "         the batches (PyTorch's momentum=None). Seconds; nothing is trained.\n"
    "  tent   trains the BatchNorms' scale and shift to minimise the entropy of the predictions,\n"
    "         normalising with batch statistics (Wang et al. 2021; Adam), then re-estimates the\n"
    "         statistics as adabn so the exported model normalises as it was adapted.\n"
    "  shot   freezes the classifier and trains every layer before it (SGD, Nesterov) with\n"
    "         information maximisation (confident, diverse predictions) plus --shot-beta times\n"
    "         the cross-entropy on pseudo-labels from a clustering of the features, recomputed\n"
    "         each epoch (Liang et al. 2020).\n"
    "\n"
    "With the labelled source (--source), the features of the two domains are aligned while\n"
    "fine-tuning MODEL on the source: `graft finetune MODEL SOURCE --target DATA --adapt M`\n"
    "with its defaults (a new head; see graft finetune for every setting):\n"
    "  coral  Deep CORAL (Sun & Saenko 2016): the covariances of the features made equal;\n"
    "  mmd    DAN (Long et al. 2015): their multi-kernel maximum mean discrepancy;\n"
    "  dann   a domain classifier behind a gradient-reversal layer (Ganin et al. 2016), the\n"
    "         reversal's weight rising as 2 / (1 + exp(-10 p)) - 1 over training; its accuracy\n"
    "         is printed (near 100 %: the domains are still apart).\n"
    "\n"
    "adabn and tent need BatchNorms; a model without them is refused. It prints the mean entropy\n"
    "of the predictions and the diversity of the classes predicted (entropy of the mean\n"
    "prediction) before and after, shot's pseudo-labels, and the target accuracy when DATA has\n"
    "labels; it warns when the predictions collapsed onto fewer classes (diversity halved), the\n"
    "usual way these methods hurt.\n",
    ADAPT_FLAGS,
    cmd_adapt
};
