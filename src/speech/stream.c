/* stream.c — the live path: audio in pieces of any size -> a score per 80 ms step, equal to the
 * batch path (frontend.c, head.c) on the same audio. */
#include "speech.h"

#include <string.h>

struct gr_kw_stream {
    gr_kw_frontend *fe; /* stream plans (batch 1), not owned */
    gr_kw_head *head;   /* batch 1, not owned */
    float audio[GR_KW_CHUNK];
    int have;               /* samples of the current chunk so far */
    int64_t pushed, chunks; /* samples received, chunks done */
    float mel[GR_KW_CHUNKS_PER_EMB * GR_KW_FRAMES_PER_HOP *
              GR_KW_MELS]; /* the last 10 chunks' frames */
    float *emb;            /* the last `window` embeddings */
    int64_t nemb;
    int ended; /* flushed: the grid and its context are gone */
};

int gr_kw_stream_new(gr_kw_frontend *fe, gr_kw_head *head, gr_kw_stream **out)
{
    if (!gr_kw_frontend_is_stream(fe) || gr_kw_head_batch(head) != 1)
        return gr_err(GRAFT_E_ARG,
                      "gr_kw_stream_new: needs a stream front end and a head of batch 1");
    gr_kw_stream *s = calloc(1, sizeof *s);
    if (s) s->emb = calloc((size_t)gr_kw_head_window(head) * GR_KW_DIM, sizeof(float));
    if (!s || !s->emb) {
        free(s);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    s->fe = fe;
    s->head = head;
    *out = s;
    return GRAFT_OK;
}

void gr_kw_stream_free(gr_kw_stream *s)
{
    if (!s) return;
    free(s->emb);
    free(s);
}

/* Chunk complete (zero-padded at the end of a stream): frames, maybe an embedding, maybe a score. */
static int stream_chunk(gr_kw_stream *s, float *score)
{
    const int per = GR_KW_FRAMES_PER_HOP * GR_KW_MELS, nmel = (int)(sizeof s->mel / sizeof *s->mel);
    memmove(s->mel, s->mel + per, (size_t)(nmel - per) * sizeof(float));
    gr_kw_mel_step(s->fe, s->audio, s->have, s->mel + nmel - per);
    s->chunks++;
    int keep = s->have > GR_KW_HOP ? s->have - GR_KW_HOP : 0;
    memmove(s->audio, s->audio + GR_KW_HOP, (size_t)keep * sizeof(float));
    s->have = keep;
    if (s->chunks < GR_KW_CHUNKS_PER_EMB) return 0;
    int w = gr_kw_head_window(s->head);
    memmove(s->emb, s->emb + GR_KW_DIM, (size_t)(w - 1) * GR_KW_DIM * sizeof(float));
    gr_kw_embed_step(s->fe, s->mel + GR_KW_FIRST_FRAME * GR_KW_MELS,
                     s->emb + (size_t)(w - 1) * GR_KW_DIM);
    if (++s->nemb < w) return 0;
    gr_kw_head_score(s->head, s->emb, w, score);
    return 1;
}

int64_t gr_kw_stream_push(gr_kw_stream *s, const float *x, int64_t n, float *scores)
{
    if (s->ended) return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        s->audio[s->have++] = x[i];
        s->pushed++;
        if (s->have == GR_KW_CHUNK) k += stream_chunk(s, scores + k);
    }
    return k;
}

int64_t gr_kw_stream_flush(gr_kw_stream *s, float *scores)
{
    int64_t k = 0;
    while (s->chunks * GR_KW_HOP < s->pushed) k += stream_chunk(s, scores + k);
    s->ended = 1;
    return k;
}

int64_t gr_kw_stream_steps(const gr_kw_stream *s) { return s->nemb; }
