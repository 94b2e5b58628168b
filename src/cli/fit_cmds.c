#define _DEFAULT_SOURCE
/* fit_cmds.c — `graft fit` (a new head on cached features), `graft fewshot` (episodic few-shot
 * accuracy) and `graft export` (a fitted head and its model as one ONNX file). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fit ---- */

/* Labels an unlabelled set has (class folders), renumbered to the training classes by name for
 * reporting; a class the training data lacks, or none, is -1. */
static void reporting_labels(const graft_dataset *train, const graft_dataset *u, graft_tensor *y)
{
    int ku = graft_dataset_num_classes(u), k = graft_dataset_num_classes(train);
    int32_t *l = y->data;
    for (int64_t i = 0; i < y->dims[0]; i++) {
        int c = l[i], to = -1;
        for (int j = 0; c >= 0 && c < ku && j < k && to < 0; j++)
            if (!strcmp(graft_dataset_class_name(u, c), graft_dataset_class_name(train, j))) to = j;
        l[i] = to;
    }
}

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

/* The setters of the choice rows: the name (checked by the row) as its enum. */
static void set_head_kind(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_head_kind_from_name(v.s, (graft_head_kind *)((char *)base + f->off));
}

static void set_norm(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_norm_from_name(v.s, (graft_norm *)((char *)base + f->off));
}

static void set_method(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_fewshot_method_from_name(v.s, (graft_fewshot_method *)((char *)base + f->off));
}

typedef struct fit_args {
    extract_flags f;
    graft_fit_opts fo;
    graft_semi_opts so;
    const char *out, *test, *unlabeled, *target;
    int json, shots, semi, adapt;
    double val;
} fit_args;

static void set_semi(void *base, const cli_flag *f, cli_value v)
{
    *(int *)((char *)base + f->off) = !strcmp(v.s, "pseudo");
}

static void set_adapt(void *base, const cli_flag *f, cli_value v)
{
    *(int *)((char *)base + f->off) = !strcmp(v.s, "coral");
}

static const cli_flag FIT_FLAGS[] = {
    { .name = "head",
      .type = CLI_CHOICE,
      .choices = "logreg|mlp|knn|ncm",
      .def = "logreg",
      .help = "the classifier",
      .off = offsetof(fit_args, fo.kind),
      .set = set_head_kind },
    { .name = "norm",
      .type = CLI_CHOICE,
      .choices = "standardize|l2|none",
      .def = "standardize for logreg and mlp, l2 for knn and ncm",
      .help = "feature normalisation",
      .off = offsetof(fit_args, fo.norm),
      .set = set_norm },
    { .name = "C",
      .type = CLI_REAL,
      .meta = "X",
      .lo = 0,
      .hi = 1e12,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "auto",
      .help = "logreg's inverse L2 strength (0 or auto: 5-fold cross-validated)",
      .off = offsetof(fit_args, fo.C) },
    { .name = "val",
      .type = CLI_REAL,
      .meta = "F",
      .lo = 0,
      .hi = 1,
      .bits = CLI_HI_OPEN,
      .def = "0.2",
      .help = "stratified validation fraction (0: train on everything)",
      .off = offsetof(fit_args, val) },
    { .name = "test",
      .type = CLI_PATH,
      .meta = "TESTDATA",
      .help = "evaluate on this dataset (same classes) instead of a validation split",
      .off = offsetof(fit_args, test) },
    { .name = "shots",
      .type = CLI_INT,
      .meta = "K",
      .lo = 0,
      .hi = 1000000,
      .def = "all",
      .help = "train on K examples per class (0: all)",
      .off = offsetof(fit_args, shots) },
    { .name = "unlabeled",
      .type = CLI_PATH,
      .meta = "DATA",
      .help = "unlabelled images for self-training (labels it has are only reported)",
      .off = offsetof(fit_args, unlabeled) },
    { .name = "semi",
      .type = CLI_CHOICE,
      .choices = "pseudo",
      .def = "pseudo with --unlabeled",
      .help = "semi-supervised method: class-balanced self-training",
      .off = offsetof(fit_args, semi),
      .set = set_semi },
    { .name = "target",
      .type = CLI_PATH,
      .meta = "DATA",
      .help = "unlabelled images of the target domain the head is for (--adapt coral)",
      .off = offsetof(fit_args, target) },
    { .name = "adapt",
      .type = CLI_CHOICE,
      .choices = "coral",
      .def = "coral with --target",
      .help = "domain alignment of the training features to the target's",
      .off = offsetof(fit_args, adapt),
      .set = set_adapt },
    { .name = "rounds",
      .type = CLI_INT,
      .meta = "N",
      .lo = 1,
      .hi = 1000,
      .def = "5",
      .help = "self-training rounds (at most)",
      .off = offsetof(fit_args, so.rounds) },
    { .name = "threshold",
      .type = CLI_REAL,
      .meta = "P",
      .lo = 0,
      .hi = 1,
      .bits = CLI_LO_OPEN | CLI_HI_OPEN,
      .def = "0.9",
      .help = "a prediction more confident than this becomes a pseudo-label",
      .off = offsetof(fit_args, so.threshold) },
    { .name = "balance",
      .type = CLI_SWITCH,
      .help = "cap each class's pseudo-labels a round (class-balanced)",
      .off = offsetof(fit_args, so.balance) },
    CLI_ROW_SEED(fit_args, fo.seed),
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "HEAD.safetensors",
      .help = "save the head",
      .off = offsetof(fit_args, out) },
    CLI_ROW_JSON(fit_args, json),
    EXTRACT_ROWS(fit_args, f),
    { 0 },
};

/* What one `graft fit` holds; freed by fit_free. */
typedef struct fit_state {
    graft_dataset *d, *td, *ud, *tg;
    graft_tensor *X, *y, *index, *tr, *va, *Xt, *yt, *Xv, *yv, *prob, *XU, *yU, *XT;
    graft_head *h;
    char *metrics, *semi; /* semi: self-training's summary */
    int nclass, cached;
    graft_extract_opts eo;
} fit_state;

static void fit_free(fit_state *s)
{
    graft_tensor *all[] = { s->X,  s->y,  s->index, s->tr, s->va, s->Xt, s->yt,
                            s->Xv, s->yv, s->prob,  s->XU, s->yU, s->XT };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) graft_tensor_free(all[i]);
    free(s->metrics);
    free(s->semi);
    graft_dataset_free(s->ud);
    graft_dataset_free(s->tg);
    graft_head_free(s->h);
    graft_dataset_free(s->td);
    graft_dataset_free(s->d);
}

/* --target T --adapt coral: every labelled row (training and validation) re-coloured to the
 * covariance of T's features (closed-form CORAL), so the head fits the target's statistics. */
static graft_status align_to_target(const fit_args *a, graft_model *m, fit_state *s)
{
    graft_tensor *yT = NULL, *al = NULL;
    graft_status st = graft_dataset_open_unlabeled(a->target, NULL, &s->tg);
    if (!st) st = graft_model_extract(m, s->tg, &s->eo, &s->XT, &yT, NULL, NULL);
    if (!st) st = graft_coral_align(s->X, s->XT, &al);
    graft_tensor_free(yT);
    if (st) return st;
    graft_tensor_free(s->X);
    s->X = al;
    return GRAFT_OK;
}

/* The training rows (Xt, yt) and the evaluation rows (Xv, yv: the validation split, or --test). */
static graft_status fit_features(const fit_args *a, const char *model, fit_state *s)
{
    double frac[3] = { 1 - a->val, a->val, 0 };
    graft_status st = a->shots ? graft_dataset_kshot(s->d, a->shots, a->fo.seed, &s->tr)
                               : graft_dataset_split(s->d, frac, a->fo.seed, &s->tr,
                                                     a->val > 0 ? &s->va : NULL, NULL);
    graft_model *m = NULL; /* parsed once for the layer choice and both extractions */
    if (!st) st = graft_model_load(model, &m);
    if (!st) st = resolve_auto(m, s->d, s->tr, &s->eo, a->json); /* on the training part */
    if (!st) st = graft_model_extract(m, s->d, &s->eo, &s->X, &s->y, &s->index, &s->cached);
    if (!st && a->target) st = align_to_target(a, m, s);
    if (!st) st = select_rows(s->X, s->y, s->index, s->tr, &s->Xt, &s->yt);
    if (!st && s->va) st = select_rows(s->X, s->y, s->index, s->va, &s->Xv, &s->yv);
    if (!st && a->test) { /* another dataset holds the evaluation samples */
        st = graft_dataset_open(a->test, NULL, &s->td);
        if (!st) st = graft_model_extract(m, s->td, &s->eo, &s->Xv, &s->yv, NULL, NULL);
        if (!st) st = map_classes(s->d, s->td, s->yv, a->test);
    }
    if (!st && a->unlabeled) { /* self-training's rows, from the same model, layer and cache */
        st = graft_dataset_open_unlabeled(a->unlabeled, NULL, &s->ud);
        if (!st) st = graft_model_extract(m, s->ud, &s->eo, &s->XU, &s->yU, NULL, NULL);
        if (!st) reporting_labels(s->d, s->ud, s->yU);
    }
    graft_model_free(m);
    return st;
}

static graft_status fit_evaluate(fit_state *s)
{
    graft_status st = graft_head_predict(s->h, s->Xv, &s->prob);
    if (st) return st;
    const char **names = malloc((size_t)s->nclass * sizeof *names);
    if (!names) return GRAFT_E_NOMEM;
    for (int c = 0; c < s->nclass; c++) names[c] = graft_dataset_class_name(s->d, c);
    st = graft_evaluate_json(s->prob, s->yv, NULL, names, NULL, &s->metrics);
    free(names);
    return st;
}

/* The head with its origin (model, layer, pooling, transform, classes) saved to out. */
static graft_status fit_save(fit_state *s, const char *model, const char *out)
{
    cJSON *o = cJSON_CreateObject(), *cls = cJSON_AddArrayToObject(o, "classes");
    char full[4096];
    cJSON_AddStringToObject(o, "model", realpath(model, full) ? full : model);
    if (s->eo.layer) cJSON_AddStringToObject(o, "layer", s->eo.layer);
    cJSON_AddStringToObject(o, "pool", graft_pool_name(s->eo.pool));
    if (s->eo.transform) cJSON_AddStringToObject(o, "transform", s->eo.transform);
    for (int c = 0; c < s->nclass; c++)
        cJSON_AddItemToArray(cls, cJSON_CreateString(graft_dataset_class_name(s->d, c)));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    graft_status st = text ? graft_head_set_origin(s->h, text) : GRAFT_E_NOMEM;
    free(text);
    return st ? st : graft_head_save(s->h, out);
}

/* Self-training's rounds, one line each. */
static void print_rounds(const fit_state *s)
{
    cJSON *j = s->semi ? cJSON_Parse(s->semi) : NULL;
    const cJSON *r;
    int i = 1;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "rounds"))
    {
        const cJSON *c = cJSON_GetObjectItem(r, "confidence"),
                    *acc = cJSON_GetObjectItem(r, "accuracy");
        const cJSON *np = cJSON_GetObjectItem(r, "pseudo_labels");
        printf("self-training round %d: %d of %lld unlabelled rows pseudo-labelled", i++,
               cJSON_IsNumber(np) ? np->valueint : 0, (long long)s->XU->dims[0]);
        if (cJSON_IsNumber(c)) printf(", mean confidence %.4f", c->valuedouble);
        if (cJSON_IsNumber(acc)) printf(", accuracy %.2f %%", 100 * acc->valuedouble);
        printf("\n");
    }
    cJSON_Delete(j);
}

static void fit_print(const fit_args *a, const fit_state *s)
{
    const graft_head *h = s->h;
    char adapt_json[96] = "null";
    if (s->XT)
        snprintf(adapt_json, sizeof adapt_json, "{\"method\": \"coral\", \"target\": %lld}",
                 (long long)s->XT->dims[0]);
    if (a->json) {
        printf("{\"train\": %lld, \"val\": %lld, \"features\": %lld, \"cached\": %s, \"C\": "
               "%g, \"cv_accuracy\": %g, "
               "\"val_metrics\": %s, \"self_training\": %s, \"adapt\": %s}\n",
               (long long)s->Xt->dims[0], (long long)(s->Xv ? s->Xv->dims[0] : 0),
               (long long)s->X->dims[1], s->cached ? "true" : "false", graft_head_C(h),
               graft_head_cv_accuracy(h), s->metrics ? s->metrics : "null",
               s->semi ? s->semi : "null", adapt_json);
        return;
    }
    printf("features %lld x %lld%s; head fitted on %lld samples", (long long)s->X->dims[0],
           (long long)s->X->dims[1], s->cached ? " (from the cache)" : "",
           (long long)s->Xt->dims[0]);
    if (graft_head_cv_accuracy(h) >= 0)
        printf(" (C = %g by cross-validation, CV accuracy %.4f)", graft_head_C(h),
               graft_head_cv_accuracy(h));
    printf("\n");
    if (s->XT)
        printf("coral: the %lld labelled rows re-coloured to the covariance of %lld target rows\n",
               (long long)s->X->dims[0], (long long)s->XT->dims[0]);
    print_rounds(s);
    if (s->metrics) {
        cJSON *m = cJSON_Parse(s->metrics);
        printf("%s (%lld samples): accuracy %.4f, macro F1 %.4f, ECE %.4f\n",
               a->test ? "test" : "validation", (long long)s->Xv->dims[0],
               cJSON_GetNumberValue(cJSON_GetObjectItem(m, "accuracy")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(m, "macro_f1")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(m, "ece")));
        cJSON_Delete(m);
    }
    if (a->out) printf("head saved to %s\n", a->out);
}

static int cmd_fit(int argc, char **argv)
{
    fit_args a = { .f.threads = -1, .val = 0.2, .semi = -1, .adapt = -1 };
    graft_extract_opts_init(&a.f.o);
    graft_fit_opts_init(&a.fo);
    graft_semi_opts_init(&a.so);
    int npos, rc = cli_parse(&CMD_FIT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos != 2) return usage_error("fit", "give a model and a dataset");
    if (a.semi >= 0 && !a.unlabeled)
        return usage_error("fit", "--semi learns from --unlabeled images; give them");
    if (a.adapt >= 0 && !a.target)
        return usage_error("fit", "--adapt aligns to the --target images; give them");
    apply_threads(a.f.threads);
    if (a.test) a.val = 0; /* the test set is the held-out data */
    const char *model = argv[0];
    fit_state s = { 0 };
    char cache_buf[1024];
    s.eo = extract_opts(&a.f, a.json, cache_buf, sizeof cache_buf);
    graft_status st = graft_dataset_open(argv[1], NULL, &s.d);
    if (st) return fail(st);
    s.nclass = graft_dataset_num_classes(s.d);
    st = fit_features(&a, model, &s);
    if (!st && a.unlabeled)
        st = graft_head_fit_self(s.Xt, s.yt, s.nclass, s.XU, s.yU, &a.fo, &a.so, &s.h, &s.semi);
    else if (!st) st = graft_head_fit(s.Xt, s.yt, s.nclass, &a.fo, &s.h);
    if (!st && s.Xv) st = fit_evaluate(&s);
    if (!st && a.out) st = fit_save(&s, model, a.out);
    if (!st) fit_print(&a, &s);
    fit_free(&s);
    return st ? fail(st) : 0;
}

const cli_command CMD_FIT = {
    "fit",
    "MODEL DATA",
    "a new head on the cached features, validated",
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
    "dataset with the same classes instead of a validation split.\n"
    "\n"
    "--unlabeled U adds self-training (--semi pseudo, scikit-learn's SelfTrainingClassifier): the\n"
    "head labels U's features, the predictions more than --threshold confident join the training\n"
    "rows for good, and the head is refitted, for --rounds rounds or until none qualifies\n"
    "(--balance caps each class's additions a round). logreg then uses C = 1 unless --C is\n"
    "given: cross-validating C on a few labels is noise, and a small C leaves no prediction\n"
    "confident. Each round's pseudo-label count, confidence and (when U has class folders)\n"
    "accuracy are printed.\n"
    "\n"
    "--target T (--adapt coral) is for a head that will see another domain (other cameras,\n"
    "scans, lighting) of which T holds unlabelled images: the labelled rows are re-coloured to\n"
    "the covariance of T's features before the fit (closed-form CORAL, Sun et al. 2016: each\n"
    "domain standardised, whitened by its covariance + I, coloured by the target's + I, in the\n"
    "target's units), so the head applies to the target as it is. Alignment while fine-tuning\n"
    "(coral, mmd, dann) is graft finetune --target --adapt.\n",
    FIT_FLAGS,
    cmd_fit
};

/* ---- fewshot ---- */

typedef struct fewshot_args {
    extract_flags f;
    graft_fewshot_opts fo;
    const char *shots;
    int json;
} fewshot_args;

static const cli_flag FEWSHOT_FLAGS[] = {
    { .name = "method",
      .type = CLI_CHOICE,
      .choices = "simpleshot|knn|imprint",
      .def = "simpleshot",
      .help = "the few-shot classifier",
      .off = offsetof(fewshot_args, fo.method),
      .set = set_method },
    { .name = "way",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 1000000,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "5",
      .help = "classes an episode",
      .off = offsetof(fewshot_args, fo.way) },
    { .name = "shot",
      .type = CLI_INTS,
      .meta = "K[,K...]",
      .lo = 1,
      .hi = 1000000,
      .def = "1",
      .help = "labelled examples per class (a list runs each)",
      .off = offsetof(fewshot_args, shots) },
    { .name = "query",
      .type = CLI_INT,
      .meta = "Q",
      .lo = 0,
      .hi = 1000000,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "15",
      .help = "queries per class",
      .off = offsetof(fewshot_args, fo.query) },
    { .name = "episodes",
      .type = CLI_INT,
      .meta = "E",
      .lo = 0,
      .hi = 10000000,
      .words = cli_words_auto,
      .bits = CLI_ZERO_AUTO,
      .def = "600",
      .help = "episodes",
      .off = offsetof(fewshot_args, fo.episodes) },
    { .name = "transductive",
      .type = CLI_SWITCH,
      .help = "refine simpleshot's prototypes with each episode's unlabelled queries",
      .off = offsetof(fewshot_args, fo.transductive) },
    CLI_ROW_SEED(fewshot_args, fo.seed),
    CLI_ROW_JSON(fewshot_args, json),
    EXTRACT_ROWS(fewshot_args, f),
    { 0 },
};

/* Each K of the --shot list on the features: one line of text, or one object of a JSON array. */
static graft_status fewshot_runs(const fewshot_args *a, const graft_tensor *X,
                                 const graft_tensor *y, int nclass)
{
    graft_fewshot_opts fo = a->fo;
    graft_status st = GRAFT_OK;
    if (a->json) printf("[");
    for (const char *p = a->shots; !st && *p;) {
        char *end;
        fo.shot = (int)strtol(p, &end, 10); /* checked by the flag's row */
        double mean, ci;
        st = graft_fewshot_eval(X, y, nclass, &fo, &mean, &ci);
        if (!st && a->json)
            printf("%s{\"way\": %d, \"shot\": %d, \"query\": %d, \"episodes\": %d, "
                   "\"transductive\": %s, \"accuracy\": %.6f, \"ci95\": %.6f}",
                   p == a->shots ? "" : ", ", fo.way, fo.shot, fo.query, fo.episodes,
                   fo.transductive ? "true" : "false", mean, ci);
        else if (!st)
            printf("%d-way %d-shot (%s%s, %d episodes of %d queries per class): accuracy %.2f%% "
                   "+- %.2f%%\n",
                   fo.way, fo.shot, graft_fewshot_method_name(fo.method),
                   fo.transductive ? ", transductive" : "", fo.episodes, fo.query, 100 * mean,
                   100 * ci);
        p = *end == ',' ? end + 1 : end;
    }
    if (a->json) printf("]\n"); /* a well-formed array even when a later shot failed */
    return st;
}

static int cmd_fewshot(int argc, char **argv)
{
    fewshot_args a = { .f.threads = -1, .shots = "1" };
    graft_extract_opts_init(&a.f.o);
    graft_fewshot_opts_init(&a.fo);
    int npos, rc = cli_parse(&CMD_FEWSHOT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos != 2) return usage_error("fewshot", "give a model and a dataset");
    apply_threads(a.f.threads);
    char cache_buf[1024];
    graft_extract_opts eo = extract_opts(&a.f, a.json, cache_buf, sizeof cache_buf);
    graft_dataset *d;
    graft_status st = graft_dataset_open(argv[1], NULL, &d);
    if (st) return fail(st);
    graft_tensor *X = NULL, *y = NULL;
    graft_model *m = NULL;
    st = graft_model_load(argv[0], &m);
    if (!st) st = resolve_auto(m, d, NULL, &eo, a.json);
    if (!st) st = graft_model_extract(m, d, &eo, &X, &y, NULL, NULL);
    graft_model_free(m);
    int nclass = graft_dataset_num_classes(d);
    graft_dataset_free(d);
    if (!st) st = fewshot_runs(&a, X, y, nclass);
    graft_tensor_free(X);
    graft_tensor_free(y);
    return st ? fail(st) : 0;
}

const cli_command CMD_FEWSHOT = {
    "fewshot",
    "MODEL DATA",
    "episodic N-way K-shot accuracy with a 95 % interval",
    "Few-shot learning on MODEL's features of DATA (cached, see `graft extract --help`), "
    "evaluated\n"
    "over E episodes (default 600): each draws N classes (default 5), K labelled examples per\n"
    "class (default 1; a list such as 1,5 runs each) and Q queries per class (default 15), and\n"
    "classifies the queries from the K examples alone. simpleshot (default) centres the features\n"
    "on the episode's examples, L2-normalises them and takes the nearest class mean; knn is the\n"
    "cosine nearest neighbour; imprint uses the normalised class means as the weights of a\n"
    "cosine classifier. --transductive also uses the episode's queries, unlabelled: simpleshot's\n"
    "class means are refined by 10 rounds of soft k-means over them (Ren et al. 2018). Prints\n"
    "the mean accuracy and its 95 % confidence interval.\n",
    FEWSHOT_FLAGS,
    cmd_fewshot
};

/* ---- export ---- */

typedef struct export_args {
    const char *out, *model;
    int json;
} export_args;

static const cli_flag EXPORT_FLAGS[] = {
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "MODEL.onnx",
      .help = "the ONNX file to write (required)",
      .off = offsetof(export_args, out) },
    { .name = "model",
      .type = CLI_PATH,
      .meta = "SOURCE.onnx",
      .help = "the model the head was fitted on, if it moved",
      .off = offsetof(export_args, model) },
    CLI_ROW_JSON(export_args, json),
    { 0 },
};

static int cmd_export(int argc, char **argv)
{
    export_args a = { 0 };
    int npos, rc = cli_parse(&CMD_EXPORT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos > 1) return usage_error("export", "more than one head given");
    if (npos < 1 || !a.out) return usage_error("export", "give a head and --output");
    const char *head = argv[0];
    graft_head *h;
    graft_status st = graft_head_load(head, &h);
    if (st) return fail(st);
    st = graft_head_export(h, a.model, a.out);
    graft_head_free(h);
    if (st) return fail(st);
    if (a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "output", a.out);
        cJSON_AddStringToObject(o, "head", head);
        char *text = cJSON_PrintUnformatted(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else printf("wrote %s\n", a.out);
    return 0;
}

const cli_command CMD_EXPORT = {
    "export",
    "HEAD --output MODEL.onnx",
    "the model and a fitted head as one ONNX file",
    "Writes the model a head was fitted on (`graft fit -o HEAD`), cut at the head's layer, with "
    "the\n"
    "pooling, the feature normalisation, the head and a Softmax, as one ONNX file that "
    "onnxruntime\n"
    "runs: input as the source model's, output \"probabilities\" (N, classes). The class names "
    "and\n"
    "the preprocessing are in its metadata (graft.classes, graft.transform). kNN heads keep their\n"
    "training rows and cannot be exported.\n",
    EXPORT_FLAGS,
    cmd_export
};
