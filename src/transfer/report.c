/* report.c — one self-contained HTML page for a run: headline numbers, the recipe, learning
 * curves, the confusion matrix, the reliability diagram, per-class and per-group tables. Inline
 * CSS and SVG only: no script, no external resource, so the page opens anywhere and leaks
 * nothing. Every text from data is escaped (the SVG blocks are well-formed XML). The page is
 * built in memory and written atomically through io's gr_wfile. Depends on core and io. */
#include "transfer.h"

#include "io/io.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* ---- a growing string ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void __attribute__((format(printf, 2, 3))) pf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    GR_ASSERT(k >= 0 && (size_t)k < sizeof tmp); /* formats here are short: longer is a bug */
    put(b, tmp, (size_t)k);
}

/* Text for HTML and XML alike: the five special characters as entities; control characters
 * (not allowed in XML 1.0) as U+FFFD. At most maxch code points (0: all), then an ellipsis. */
static void esc_n(sbuf *b, const char *s, size_t maxch)
{
    size_t ch = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80 && maxch && ch++ == maxch) {
            puts_(b, "\xE2\x80\xA6");
            return;
        }
        switch (*p) {
        case '&': puts_(b, "&amp;"); break;
        case '<': puts_(b, "&lt;"); break;
        case '>': puts_(b, "&gt;"); break;
        case '"': puts_(b, "&quot;"); break;
        case '\'': puts_(b, "&#39;"); break;
        default:
            if ((*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p == 0x7F)
                puts_(b, "\xEF\xBF\xBD");
            else put(b, (const char *)p, 1);
        }
    }
}

static void esc(sbuf *b, const char *s) { esc_n(b, s, 0); }

/* Code points in a UTF-8 string (for label widths). */
static size_t nchars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- names and numbers ---- */

typedef struct ctx {
    sbuf b;
    const gr_report *r;
    const gr_metrics *m;
    char tmp[32];
} ctx;

static const char *class_name(ctx *c, int k)
{
    if (c->r->class_names && c->r->class_names[k]) return c->r->class_names[k];
    snprintf(c->tmp, sizeof c->tmp, "class %d", k);
    return c->tmp;
}

static const char *group_name(ctx *c, int g)
{
    if (c->r->group_names && c->r->group_names[g]) return c->r->group_names[g];
    snprintf(c->tmp, sizeof c->tmp, "group %d", g);
    return c->tmp;
}

/* A tick step of 1, 2 or 5 times a power of ten giving about 5 ticks over [lo, hi]. */
static double tick_step(double lo, double hi)
{
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static const char *const palette[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                       "#9467bd", "#8c564b", "#e377c2", "#17becf" };

static const char css[] =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 "
    "1em;color:#222}"
    "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    "#headline th{background:#f0f4fa;font-weight:normal}#headline "
    "td{font-size:1.3em;font-weight:bold}"
    "tr.worst td{background:#fde2e1;font-weight:bold}"
    ".note{color:#555;font-size:.9em}"
    "svg{font-family:system-ui,sans-serif;display:block;margin:.5em 0}";

/* ---- sections ---- */

static void headline(ctx *c)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    puts_(b, "<table id=\"headline\">\n");
    pf(b, "<tr><th>accuracy</th><td>%.2f%%</td></tr>\n", 100 * m->accuracy);
    pf(b, "<tr><th>top-%d accuracy</th><td>%.2f%%</td></tr>\n", m->topk, 100 * m->top5);
    pf(b, "<tr><th>macro F1</th><td>%.3f</td></tr>\n", m->macro_f1);
    pf(b, "<tr><th>ECE (%d bins)</th><td>%.4f</td></tr>\n", m->nbins, m->ece);
    pf(b, "<tr><th>time</th><td>%.1f s</td></tr>\n", c->r->seconds);
    pf(b, "<tr><th>peak memory</th><td>%.1f MB</td></tr>\n", c->r->peak_mb);
    pf(b, "<tr><th>rows, classes</th><td>%lld, %d</td></tr>\n", (long long)m->n, m->nclass);
    puts_(b, "</table>\n");
}

/* The data range of all finite curve points; 0 if there is none. */
static int curve_range(const gr_report *r, double *x0, double *x1, double *y0, double *y1)
{
    int any = 0;
    for (int k = 0; k < r->ncurves; k++)
        for (int i = 0; i < r->curves[k].n; i++) {
            double x = r->curves[k].x[i], y = r->curves[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            if (!any) *x0 = *x1 = x, *y0 = *y1 = y;
            *x0 = fmin(*x0, x), *x1 = fmax(*x1, x), *y0 = fmin(*y0, y), *y1 = fmax(*y1, y);
            any = 1;
        }
    return any;
}

/* One axis: ticks, grid lines and labels. horiz: x axis along the bottom. */
typedef struct axis {
    double lo, hi; /* data range shown */
    double p0, p1; /* pixel positions of lo and hi */
} axis;

static double ax_px(const axis *a, double v)
{
    return a->p0 + (v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* Widens [lo, hi] to whole ticks (and a degenerate range to a unit one). */
static axis nice_axis(double lo, double hi, double p0, double p1)
{
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) lo -= 0.5, hi += 0.5;
    double s = tick_step(lo, hi);
    return (axis){ floor(lo / s) * s, ceil(hi / s) * s, p0, p1 };
}

static void draw_ticks(sbuf *b, const axis *a, int horiz, double cross0, double cross1)
{
    double s = tick_step(a->lo, a->hi);
    long n = lround((a->hi - a->lo) / s);
    for (long i = 0; i <= n; i++) {
        double t = a->lo + (double)i * s, p;
        if (fabs(t) < s * 1e-9) t = 0; /* not "-2.7e-17" */
        p = ax_px(a, t);
        if (horiz)
            pf(b,
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
               p, cross0, p, cross1, p, cross0 + 15, t);
        else
            pf(b,
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
               cross0, p, cross1, p, cross0 - 5, p + 4, t);
    }
}

/* A polyline per run of finite points; a run of one point is a dot (a one-point polyline
 * draws nothing). */
static void curve_path(sbuf *b, const gr_curve *cv, const axis *ax, const axis *ay,
                       const char *color)
{
    int run = 0;
    double px = 0, py = 0;
    for (int i = 0; i <= cv->n; i++) {
        if (i < cv->n && isfinite(cv->x[i]) && isfinite(cv->y[i])) {
            px = ax_px(ax, cv->x[i]), py = ax_px(ay, cv->y[i]);
            if (!run)
                pf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
            pf(b, "%s%.1f,%.1f", run ? " " : "", px, py);
            run++;
            continue;
        }
        if (!run) continue;
        puts_(b, "\"/>\n");
        if (run == 1)
            pf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px, py, color);
        run = 0;
    }
}

static void curves(ctx *c)
{
    const gr_report *r = c->r;
    sbuf *b = &c->b;
    double x0, x1, y0, y1;
    puts_(b, "<h2>Learning curves</h2>\n");
    if (!r->curves || r->ncurves <= 0 || !curve_range(r, &x0, &x1, &y0, &y1)) {
        puts_(b, "<p class=\"note\">No learning curves were recorded.</p>\n");
        return;
    }
    const double L = 60, T = 15, PW = 560, PH = 280, LEGW = 220;
    axis ax = nice_axis(x0, x1, L, L + PW), ay = nice_axis(y0, y1, T + PH, T);
    double H = fmax(T + PH + 45, T + 20 * r->ncurves + 10), W = L + PW + LEGW;
    pf(b,
       "<svg id=\"curves\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
       "role=\"img\">\n",
       W, H, W, H);
    draw_ticks(b, &ax, 1, T + PH, T);
    draw_ticks(b, &ay, 0, L, L + PW);
    pf(b,
       "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
       "stroke=\"#444\"/>\n",
       L, T, PW, PH);
    pf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">epoch</text>\n",
       L + PW / 2, H - 5);
    for (int k = 0; k < r->ncurves; k++) {
        const gr_curve *cv = &r->curves[k];
        const char *color = palette[k % 8];
        if (cv->n > 0 && cv->x && cv->y) curve_path(b, cv, &ax, &ay, color);
        double ly = T + 10 + 20 * k;
        pf(b,
           "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
           "stroke-width=\"3\"/>",
           L + PW + 15, ly, L + PW + 40, ly, color);
        pf(b, "<text class=\"legend\" x=\"%.0f\" y=\"%.0f\" font-size=\"12\">", L + PW + 46,
           ly + 4);
        esc_n(b, cv->name ? cv->name : "", 28);
        puts_(b, "</text>\n");
    }
    puts_(b, "</svg>\n");
}

/* White to dark blue by the share f in [0, 1]. */
static void heat_color(sbuf *b, double f)
{
    pf(b, "rgb(%d,%d,%d)", (int)lround(255 + f * (8 - 255)), (int)lround(255 + f * (81 - 255)),
       (int)lround(255 + f * (156 - 255)));
}

static void heat_cell(ctx *c, int t, int p, double x, double y, double cell)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    int64_t cnt = m->confusion[(size_t)t * m->nclass + p], sup = m->support[t];
    double f = sup ? (double)cnt / (double)sup : 0;
    pf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"", x, y, cell, cell);
    heat_color(b, sqrt(f)); /* square root: a few stray rows still show */
    puts_(b, "\"><title>true ");
    esc(b, class_name(c, t));
    puts_(b, ", predicted ");
    esc(b, class_name(c, p));
    pf(b, ": %lld (%.1f%% of the true class)</title></rect>", (long long)cnt, 100 * f);
    if (cell >= 24 && cnt > 0)
        pf(b,
           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
           "fill=\"%s\">%lld</text>",
           x + cell / 2, y + cell / 2 + 3.5, f > 0.3 ? "#fff" : "#000", (long long)cnt);
    puts_(b, "\n");
}

/* The matrix as a heat map, colour = share of the true class's rows (so rare classes show). */
static void heatmap(ctx *c)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    int K = m->nclass;
    const size_t maxch = 24;
    size_t longest = 1;
    for (int k = 0; k < K; k++) {
        size_t n = nchars(class_name(c, k));
        longest = n > longest ? n : longest;
    }
    if (longest > maxch + 1) longest = maxch + 1;
    double cell = fmax(12, fmin(40, floor(600.0 / K))), font = fmin(12, cell - 2);
    double labw = (double)longest * font * 0.6 + 8;
    /* column labels at -45 degrees while they fit under a cell, upright (-90) when dense */
    int steep = cell < 20;
    double L = labw + 24, T = 10, G = cell * K, B = labw * (steep ? 1 : 0.75) + 36;
    double W = L + G + 10, H = T + G + B;
    pf(b,
       "<svg id=\"confusion\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
       "role=\"img\">\n",
       W, H, W, H);
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) heat_cell(c, t, p, L + p * cell, T + t * cell, cell);
    pf(b,
       "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
       "stroke=\"#444\"/>\n",
       L, T, G, G);
    for (int k = 0; k < K; k++) {
        double mid = k * cell + cell / 2;
        pf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"end\">", L - 4,
           T + mid + font / 3, font);
        esc_n(b, class_name(c, k), maxch);
        pf(b,
           "</text><text font-size=\"%.0f\" text-anchor=\"end\" transform=\"translate(%.1f,%.1f) "
           "rotate(%d)\">",
           font, L + mid + font / 3, T + G + 6, steep ? -90 : -45);
        esc_n(b, class_name(c, k), maxch);
        puts_(b, "</text>\n");
    }
    pf(b,
       "<text font-size=\"12\" text-anchor=\"middle\" transform=\"translate(12,%.1f) rotate(-90)\">"
       "true class</text>\n",
       T + G / 2);
    pf(b,
       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">predicted "
       "class</text>\n",
       L + G / 2, H - 6);
    puts_(b, "</svg>\n<p class=\"note\">Rows: true class; columns: predicted class; colour: share "
             "of the true "
             "class's rows, square-root scale (hover a cell for its count).</p>\n");
}

static void top_confusions(ctx *c)
{
    sbuf *b = &c->b;
    gr_confusion_cell cells[GR_REPORT_TOP_CONFUSIONS];
    int n = gr_metrics_top_confusions(c->m, GR_REPORT_TOP_CONFUSIONS, cells);
    pf(b,
       "<p class=\"note\">%d classes: too many for a heat map; the %d largest confusions "
       "follow.</p>\n",
       c->m->nclass, GR_REPORT_TOP_CONFUSIONS);
    puts_(b,
          "<table id=\"top-confusions\">\n<tr><th>true class</th><th>predicted as</th><th>rows</th>"
          "<th>share of the true class</th></tr>\n");
    for (int i = 0; i < n; i++) {
        puts_(b, "<tr><td>");
        esc(b, class_name(c, cells[i].truth));
        puts_(b, "</td><td>");
        esc(b, class_name(c, cells[i].pred));
        pf(b, "</td><td>%lld</td><td>%.2f%%</td></tr>\n", (long long)cells[i].count,
           100.0 * (double)cells[i].count / (double)c->m->support[cells[i].truth]);
    }
    puts_(b, "</table>\n");
}

static void confusion(ctx *c)
{
    puts_(&c->b, "<h2>Confusion matrix</h2>\n");
    if (c->m->nclass <= GR_REPORT_MAX_HEATMAP) heatmap(c);
    else top_confusions(c);
}

/* Bars of accuracy per confidence bin against the diagonal (perfect calibration). */
static void reliability(ctx *c)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    const double L = 50, T = 30, S = 320;
    int B = m->nbins;
    axis a = { 0, 1, L, L + S }, v = { 0, 1, T + S, T };
    double bw = S / B;
    pf(b,
       "<h2>Calibration</h2>\n<p>Expected calibration error: <strong>%.4f</strong> (%d equal-width "
       "bins of the "
       "top-class confidence; count of rows above each bar).</p>\n",
       m->ece, B);
    pf(b,
       "<svg id=\"reliability\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
       "role=\"img\">\n",
       L + S + 20, T + S + 45, L + S + 20, T + S + 45);
    draw_ticks(b, &a, 1, T + S, T);
    draw_ticks(b, &v, 0, L, L + S);
    for (int k = 0; k < B; k++) {
        if (!m->bin_count[k]) continue;
        double x = L + k * bw, h = m->bin_acc[k] * S;
        pf(b,
           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7fc1\" "
           "stroke=\"#fff\">"
           "<title>confidence (%.3f, %.3f]: %lld rows, accuracy %.3f, mean confidence "
           "%.3f</title></rect>",
           x, T + S - h, bw, h, (double)k / B, (double)(k + 1) / B, (long long)m->bin_count[k],
           m->bin_acc[k], m->bin_conf[k]);
        pf(b,
           "<text class=\"count\" font-size=\"9\" transform=\"translate(%.1f,%.1f) "
           "rotate(-90)\">%lld</text>\n",
           x + bw / 2 + 3, T + S - h - 3, (long long)m->bin_count[k]);
    }
    pf(b,
       "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" "
       "stroke-dasharray=\"5,4\"/>\n",
       L, T + S, L + S, T);
    pf(b,
       "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
       "stroke=\"#444\"/>\n",
       L, T, S, S);
    pf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">confidence</text>\n",
       L + S / 2, T + S + 38);
    pf(b,
       "<text font-size=\"12\" text-anchor=\"middle\" transform=\"translate(14,%.0f) rotate(-90)\">"
       "accuracy</text>\n",
       T + S / 2);
    puts_(b, "</svg>\n<details><summary>bins</summary>\n<table "
             "id=\"bins\">\n<tr><th>confidence</th><th>rows</th>"
             "<th>accuracy</th><th>mean confidence</th></tr>\n");
    for (int k = 0; k < B; k++) {
        pf(b, "<tr><td>%c%.3f, %.3f]</td><td>%lld</td>", k ? '(' : '[', (double)k / B,
           (double)(k + 1) / B, (long long)m->bin_count[k]);
        if (m->bin_count[k])
            pf(b, "<td>%.3f</td><td>%.3f</td></tr>\n", m->bin_acc[k], m->bin_conf[k]);
        else puts_(b, "<td>n/a</td><td>n/a</td></tr>\n");
    }
    puts_(b, "</table>\n</details>\n");
}

static void per_class(ctx *c)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    pf(b,
       "<h2>Per class</h2>\n<p>Macro F1 over the %d classes present: <strong>%.3f</strong>.</p>\n",
       m->nclass_present, m->macro_f1);
    puts_(b,
          "<table id=\"per-class\">\n<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
          "<th>support</th></tr>\n");
    for (int k = 0; k < m->nclass; k++) {
        puts_(b, "<tr><td>");
        esc(b, class_name(c, k));
        pf(b, "</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%lld</td></tr>\n", m->precision[k],
           m->recall[k], m->f1[k], (long long)m->support[k]);
    }
    puts_(b, "</table>\n");
}

static void per_group(ctx *c)
{
    const gr_metrics *m = c->m;
    sbuf *b = &c->b;
    if (m->ngroup <= 0) return;
    puts_(b, "<h2>Per group</h2>\n");
    if (m->worst_group >= 0) {
        puts_(b, "<p id=\"worst-group\">Worst group: <strong>");
        esc(b, group_name(c, m->worst_group));
        pf(b, "</strong> (accuracy %.2f%%, %lld rows).</p>\n", 100 * m->group_acc[m->worst_group],
           (long long)m->group_n[m->worst_group]);
    }
    puts_(b, "<table id=\"per-group\">\n<tr><th>group</th><th>accuracy</th><th>rows</th></tr>\n");
    for (int g = 0; g < m->ngroup; g++) {
        puts_(b, g == m->worst_group ? "<tr class=\"worst\"><td>" : "<tr><td>");
        esc(b, group_name(c, g));
        if (m->group_n[g])
            pf(b, "</td><td>%.2f%%</td><td>%lld</td></tr>\n", 100 * m->group_acc[g],
               (long long)m->group_n[g]);
        else puts_(b, "</td><td>n/a</td><td>0</td></tr>\n");
    }
    puts_(b, "</table>\n");
}

static void page(ctx *c)
{
    const gr_report *r = c->r;
    sbuf *b = &c->b;
    const char *title = r->title ? r->title : "graft report";
    puts_(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    esc(b, title);
    puts_(b, "</title>\n<style>");
    puts_(b, css);
    puts_(b, "</style>\n</head>\n<body>\n<h1 id=\"title\">");
    esc(b, title);
    puts_(b, "</h1>\n");
    headline(c);
    if (r->recipe) {
        puts_(b, "<h2>Recipe</h2>\n<pre id=\"recipe\">");
        esc(b, r->recipe);
        puts_(b, "</pre>\n");
    }
    curves(c);
    confusion(c);
    reliability(c);
    per_class(c);
    per_group(c);
    if (r->extra_html) {
        puts_(b, "<section id=\"extra\">\n");
        puts_(b, r->extra_html);
        puts_(b, "\n</section>\n");
    }
    puts_(b, "<p class=\"note\">Written by graft.</p>\n</body>\n</html>\n");
}

int gr_report_write(const char *path, const gr_report *r)
{
    if (!path) return gr_err(GRAFT_E_ARG, "report: no path given");
    if (!r || !r->m || r->m->nclass < 2 || !r->m->confusion)
        return gr_err(GRAFT_E_ARG, "%s: report: no metrics to write", path);
    for (int k = 0; k < r->ncurves; k++)
        if (r->curves[k].n > 0 && (!r->curves[k].x || !r->curves[k].y))
            return gr_err(GRAFT_E_ARG, "%s: report: curve %d has no points", path, k);
    ctx c = { .r = r, .m = r->m };
    page(&c);
    if (c.b.oom) {
        free(c.b.p);
        return gr_err(GRAFT_E_NOMEM, "%s: report: out of memory", path);
    }
    gr_wfile w;
    int st = gr_wfile_open(&w, path);
    if (!st) {
        gr_wfile_write(&w, c.b.p, c.b.n);
        st = gr_wfile_commit(&w);
    }
    free(c.b.p);
    return st;
}
