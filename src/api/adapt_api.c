/* adapt_api.c — the public adaptation API (graft_adapt) over transfer/adapt.c. */
#include "api.h"

#include "transfer/transfer.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <string.h>

_Static_assert((int)GRAFT_ADAPT_ADABN == GR_ADAPT_ADABN && (int)GRAFT_ADAPT_TENT == GR_ADAPT_TENT &&
                   (int)GRAFT_ADAPT_SHOT == GR_ADAPT_SHOT,
               "graft_adapt_method mirrors GR_ADAPT_*");

int gr_api_model_transform(const gr_model *m, const char *given, gr_transform *t)
{
    const char *spec = given;
    for (int i = 0; !spec && i < m->g->nmeta; i++)
        if (!strcmp(m->g->meta[i].key, "graft.transform")) spec = m->g->meta[i].value;
    if (!spec) {
        gr_transform_default(t);
        return GRAFT_OK;
    }
    int st = gr_transform_parse(spec, t);
    return st ? gr_err_prefix(st, given ? "transform" : "%s: its graft.transform", m->path) : st;
}

static int adapt_opts(const gr_model *m, const graft_adapt_opts *o, gr_adapt_opts *r)
{
    if ((int)o->method < 0 || (int)o->method >= GR_ADAPT_NMETHOD)
        return gr_err(GRAFT_E_ARG, "unknown adaptation method %d", (int)o->method);
    if ((o->epochs != GRAFT_AUTO && o->epochs <= 0) || (o->lr != GRAFT_AUTO && !(o->lr > 0)) ||
        !(o->shot_beta >= 0) || o->batch <= 0 || o->workers <= 0)
        return gr_err(GRAFT_E_ARG, "adaptation options out of range (epochs, lr, batch and "
                                   "workers > 0; shot beta >= 0; GRAFT_AUTO where documented)");
    *r = (gr_adapt_opts){ .method = (int)o->method,
                          .epochs = o->epochs == GRAFT_AUTO ? 0 : o->epochs,
                          .lr = o->lr == GRAFT_AUTO ? 0 : o->lr,
                          .shot_beta = o->shot_beta,
                          .batch = o->batch,
                          .workers = o->workers,
                          .seed = o->seed,
                          .progress = { o->progress, o->progress_ctx } };
    return gr_api_model_transform(m, o->transform, &r->t);
}

static void add_number(cJSON *o, const char *key, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static char *adapt_summary(const gr_adapt_opts *r, const gr_adapt_result *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", gr_adapt_method_name(r->method));
    cJSON_AddNumberToObject(o, "target", (double)res->ntarget);
    cJSON_AddNumberToObject(o, "labelled", (double)res->nlabeled);
    cJSON_AddNumberToObject(o, "batchnorms", res->nbn);
    cJSON_AddNumberToObject(o, "params_trained", (double)res->nparams);
    add_number(o, "entropy_before", res->ent_before);
    add_number(o, "entropy_after", res->ent_after);
    add_number(o, "diversity_before", res->div_before);
    add_number(o, "diversity_after", res->div_after);
    add_number(o, "accuracy_before", res->acc_before);
    add_number(o, "accuracy_after", res->acc_after);
    if (res->npseudo) {
        cJSON *p = cJSON_AddObjectToObject(o, "pseudo_labels");
        cJSON_AddNumberToObject(p, "count", (double)res->npseudo);
        add_number(p, "confidence", res->pseudo_conf);
        add_number(p, "accuracy", res->pseudo_acc);
    }
    if (r->method != GR_ADAPT_ADABN) {
        add_number(o, "loss_first", res->loss_first);
        add_number(o, "loss_last", res->loss_last);
    }
    cJSON_AddBoolToObject(o, "harm", res->harm);
    cJSON_AddNumberToObject(o, "seconds", res->seconds);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static graft_status adapt(const gr_model *m, const graft_dataset *d, const graft_adapt_opts *o,
                          const char *out_path, char **summary)
{
    if (!d || !out_path)
        return gr_err(GRAFT_E_ARG, "graft_adapt: model, target and output must not be NULL");
    graft_adapt_opts def;
    graft_adapt_opts_init(&def);
    gr_adapt_opts r;
    int st = adapt_opts(m, o ? o : &def, &r);
    if (st) return (graft_status)st;
    gr_adapt_result res;
    st = gr_adapt(m, d->ds, &r, out_path, &res);
    if (!st && summary && !(*summary = adapt_summary(&r, &res)))
        st = gr_err(GRAFT_E_NOMEM, "out of memory");
    return (graft_status)st;
}

graft_status graft_model_adapt(const graft_model *m, const graft_dataset *target,
                               const graft_adapt_opts *o, const char *out_path, char **summary)
{
    if (!m) return gr_err(GRAFT_E_ARG, "graft_model_adapt: NULL model");
    return adapt(&m->src, target, o, out_path, summary);
}

graft_status graft_adapt(const char *model_path, const graft_dataset *target,
                         const graft_adapt_opts *o, const char *out_path, char **summary)
{
    if (!model_path)
        return gr_err(GRAFT_E_ARG, "graft_adapt: model, target and output must not be NULL");
    gr_model m;
    int st = gr_model_open(model_path, &m);
    if (st) return (graft_status)st;
    st = adapt(&m, target, o, out_path, summary);
    gr_model_close(&m);
    return (graft_status)st;
}

int gr_api_adapt_file(const char *path, const graft_dataset *target, const graft_adapt_opts *o,
                      char **summary)
{
    gr_model m;
    int st = gr_model_open(path, &m);
    if (st) return st;
    st = adapt(&m, target, o, path, summary); /* the file is replaced atomically */
    gr_model_close(&m);
    return st ? gr_err_prefix(st, "adapting the fine-tuned model") : st;
}
