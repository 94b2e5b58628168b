/* flags.c — the table engine of flags.h: parsing, checking, --help and --flags-table. */
#include "flags.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const cli_word cli_words_auto[] = { { "auto", GRAFT_AUTO }, { NULL, 0 } };
const cli_word cli_words_auto_none[] = { { "auto", GRAFT_AUTO }, { "none", 0 }, { NULL, 0 } };
const cli_word cli_words_all[] = { { "all", 0 }, { NULL, 0 } };

static const char *const TYPE_NAME[] = { "int",  "int",  "real",   "size",  "ints",
                                         "text", "path", "choice", "switch" };

int cli_parse_size(const char *s, int64_t *out)
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

static int is_numeric(cli_type t)
{
    return t == CLI_INT || t == CLI_U64 || t == CLI_REAL || t == CLI_SIZE || t == CLI_INTS;
}

/* 100000, 0.5, 9007199254740991 */
static void number_text(double v, char *buf, size_t n)
{
    if (v == floor(v) && fabs(v) < 1e17) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.15g", v);
}

/* "[0, 100000]", "(0, 1)" */
static void range_text(const cli_flag *f, char *buf, size_t n)
{
    char lo[32], hi[32];
    number_text(f->lo, lo, sizeof lo);
    number_text(f->hi, hi, sizeof hi);
    snprintf(buf, n, "%c%s, %s%c", f->bits & CLI_LO_OPEN ? '(' : '[', lo, hi,
             f->bits & CLI_HI_OPEN ? ')' : ']');
}

static int in_range(const cli_flag *f, double v)
{
    int lo_ok = f->bits & CLI_LO_OPEN ? v > f->lo : v >= f->lo;
    int hi_ok = f->bits & CLI_HI_OPEN ? v < f->hi : v <= f->hi;
    return lo_ok && hi_ok;
}

/* " or auto", ", auto or none": the words a numeric flag also takes, for messages. */
static void words_text(const cli_word *w, char *buf, size_t n)
{
    size_t k = 0, count = 0;
    buf[0] = 0;
    for (const cli_word *p = w; p && p->word; p++) count++;
    for (size_t i = 0; i < count && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i + 1 == count ? " or " : ", ", w[i].word);
}

/* "mean, grid2, grid4 or none" from "mean|grid2|grid4|none" */
static void choices_text(const char *choices, char *buf, size_t n)
{
    size_t k = 0;
    const char *last = strrchr(choices, '|');
    for (const char *p = choices; *p && k + 5 < n; p++) {
        if (*p != '|') buf[k++] = *p;
        else k += (size_t)snprintf(buf + k, n - k, p == last ? " or " : ", ");
    }
    buf[k < n ? k : n - 1] = 0;
}

static int is_choice(const char *choices, const char *s)
{
    size_t len = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (len && k == len && !strncmp(p, s, k)) return 1;
        p += bar ? k + 1 : k;
    }
    return 0;
}

/* A whole number (or list element): 0, or -1 when not one, -2 when out of range. */
static int whole(const cli_flag *f, const char *s, const char **end, int64_t *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    *end = e;
    if (e == s || (*e && *e != ',') || (*e == ',' && f->type != CLI_INTS)) return -1;
    if (errno == ERANGE || !in_range(f, (double)v)) return -2;
    *out = v;
    return 0;
}

/* The value of f in s: 0 for a number, 1 for a word; or a message in why (without the command
 * and flag) and -1 or -2. */
static int parse_number(const cli_flag *f, const char *s, cli_value *v, char *why, size_t n)
{
    char range[96], words[96];
    range_text(f, range, sizeof range);
    words_text(f->words, words, sizeof words);
    for (const cli_word *w = f->words; w && w->word; w++)
        if (!strcmp(s, w->word)) {
            if (f->type == CLI_REAL) v->r = w->value;
            else v->i = (int64_t)w->value;
            return 1;
        }
    int bad = 0; /* -1: not of the type; -2: out of range */
    const char *what = "a whole number";
    if (f->type == CLI_REAL) {
        char *e;
        v->r = strtod(s, &e);
        what = "a real number";
        bad = e == s || *e || !isfinite(v->r) ? -1 : in_range(f, v->r) ? 0 : -2;
    } else if (f->type == CLI_SIZE) {
        what = "a size (such as 512M or 16G)";
        bad = cli_parse_size(s, &v->i) ? -1 : in_range(f, (double)v->i) ? 0 : -2;
    } else if (f->type == CLI_INTS) {
        what = "a list of whole numbers (such as 1,5)";
        v->s = s;
        for (const char *p = s, *e; !bad; p = e + 1) {
            int64_t k;
            bad = whole(f, p, &e, &k);
            if (!*e) break;
        }
    } else {
        const char *e;
        bad = whole(f, s, &e, &v->i);
    }
    if (bad == -1) snprintf(why, n, "'%s' is not %s%s", s, what, words);
    else if (bad == -2) snprintf(why, n, "%s is out of range %s", s, range);
    return bad;
}

static int parse_value(const cli_flag *f, const char *s, cli_value *v, char *why, size_t n)
{
    if (is_numeric(f->type)) return parse_number(f, s, v, why, n);
    if (f->type == CLI_CHOICE && !is_choice(f->choices, s)) {
        char list[256];
        choices_text(f->choices, list, sizeof list);
        snprintf(why, n, "'%s' is not one of %s", s, list);
        return -1;
    }
    v->s = s;
    return 0;
}

static void store(void *base, const cli_flag *f, cli_value v)
{
    char *p = (char *)base + f->off;
    if (f->set) f->set(base, f, v);
    else if (f->type == CLI_INT || f->type == CLI_SWITCH) *(int *)p = (int)v.i;
    else if (f->type == CLI_U64) *(uint64_t *)p = (uint64_t)v.i;
    else if (f->type == CLI_SIZE) *(int64_t *)p = v.i;
    else if (f->type == CLI_REAL) *(double *)p = v.r;
    else *(const char **)p = v.s;
}

/* Edit distance of a and b (short names only). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_flag(const cli_command *cmd, const char *arg)
{
    const char *name = arg + strspn(arg, "-"), *best = NULL;
    char bare[64];
    snprintf(bare, sizeof bare, "%.*s", (int)strcspn(name, "="), name);
    size_t bd = 99;
    for (const cli_flag *f = cmd->flags; f->name; f++) {
        size_t d = distance(bare, f->name);
        if (!(f->bits & CLI_HIDDEN) && d < bd) bd = d, best = f->name;
    }
    size_t len = strlen(bare);
    if (best && bd <= (len / 3 > 2 ? len / 3 : 2) && bd < len)
        fprintf(stderr, "graft %s: unknown flag %.*s (did you mean --%s?)\n", cmd->name,
                (int)strcspn(arg, "="), arg, best);
    else
        fprintf(stderr, "graft %s: unknown flag %.*s (see graft %s --help)\n", cmd->name,
                (int)strcspn(arg, "="), arg, cmd->name);
    return EXIT_USAGE;
}

/* The row argv names ("--epochs", "--epochs=3", "-o"), or NULL; *inline_value: after '='. */
static const cli_flag *find_flag(const cli_command *cmd, const char *a, const char **inline_value)
{
    *inline_value = NULL;
    if (a[1] != '-') {
        for (const cli_flag *f = cmd->flags; f->name; f++)
            if (f->alias && a[1] == f->alias && !a[2]) return f;
        return NULL;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (const cli_flag *f = cmd->flags; f->name; f++)
        if (strlen(f->name) == len && !strncmp(f->name, name, len)) {
            *inline_value = eq ? eq + 1 : NULL;
            return f;
        }
    return NULL;
}

/* The numeric rows' values before parsing (auto stores them), by row. */
static void starting_values(const cli_command *cmd, const void *base, cli_value *start)
{
    for (int r = 0; cmd->flags[r].name && r < CLI_MAX_ROWS; r++) {
        const cli_flag *f = &cmd->flags[r];
        const char *p = (const char *)base + f->off;
        if (f->type == CLI_INT) start[r].i = *(const int *)p;
        else if (f->type == CLI_REAL) start[r].r = *(const double *)p;
    }
}

/* A number 0 in a CLI_ZERO_AUTO row is auto; auto (GRAFT_AUTO) stores the field's value before
 * parsing (`start`): graft_*_opts_init's default, or GRAFT_AUTO where graft chooses. */
static void auto_value(const cli_flag *f, int word, cli_value start, cli_value *v)
{
    int zero_auto = !word && (f->bits & CLI_ZERO_AUTO);
    if (f->type == CLI_REAL) {
        if (zero_auto && v->r == 0) v->r = GRAFT_AUTO;
        if (v->r == GRAFT_AUTO) v->r = start.r;
    } else if (f->type == CLI_INT) {
        if (zero_auto && v->i == 0) v->i = GRAFT_AUTO;
        if (v->i == GRAFT_AUTO) v->i = start.i;
    }
}

/* One flag at argv[*i] (and its value); returns CLI_GO or an exit code. */
static int take_flag(const cli_command *cmd, int argc, char **argv, int *i, void *base,
                     const cli_value *start)
{
    const char *value;
    const cli_flag *f = find_flag(cmd, argv[*i], &value);
    if (!f) return unknown_flag(cmd, argv[*i]);
    cli_value v = { .i = 1 };
    char why[512];
    if (f->type == CLI_SWITCH && value) {
        fprintf(stderr, "graft %s: --%s takes no value\n", cmd->name, f->name);
        return EXIT_USAGE;
    }
    if (f->type != CLI_SWITCH && !value) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "graft %s: --%s needs a value (%s)\n", cmd->name, f->name,
                    f->type == CLI_CHOICE ? f->choices : f->meta);
            return EXIT_USAGE;
        }
        value = argv[++*i];
    }
    int word = f->type == CLI_SWITCH ? 0 : parse_value(f, value, &v, why, sizeof why);
    if (word < 0) {
        fprintf(stderr, "graft %s: --%s: %s\n", cmd->name, f->name, why);
        return EXIT_USAGE;
    }
    if (f - cmd->flags < CLI_MAX_ROWS) auto_value(f, word, start[f - cmd->flags], &v);
    store(base, f, v);
    return CLI_GO;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, void *base, int *npos)
{
    int n = 0;
    cli_value start[CLI_MAX_ROWS] = { { 0 } };
    starting_values(cmd, base, start);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_help(cmd, stdout);
            return 0;
        }
        if (a[0] != '-' || !a[1]) { /* "-" is a positional: stdin */
            argv[n++] = argv[i];
            continue;
        }
        int rc = take_flag(cmd, argc, argv, &i, base, start);
        if (rc != CLI_GO) return rc;
    }
    *npos = n;
    return CLI_GO;
}

/* "--epochs N|auto|none", "-o, --output OUT.onnx" */
static void flag_synopsis(const cli_flag *f, char *buf, size_t n)
{
    size_t k = 0;
    if (f->alias) k += (size_t)snprintf(buf, n, "-%c, ", f->alias);
    k += (size_t)snprintf(buf + k, n - k, "--%s", f->name);
    if (f->type == CLI_SWITCH) return;
    k += (size_t)snprintf(buf + k, n - k, " %s", f->type == CLI_CHOICE ? f->choices : f->meta);
    for (const cli_word *w = f->words; w && w->word && k < n; w++)
        k += (size_t)snprintf(buf + k, n - k, "|%s", w->word);
}

/* text from column 31 on, wrapped at 100 columns at spaces (0x1f: a space not to break at) */
static void print_wrapped(const char *text, FILE *out)
{
    int col = 31;
    for (const char *p = text; *p;) {
        size_t w = strcspn(p, " ");
        if (col > 31 && col + 1 + (int)w > 100) {
            fprintf(out, "\n%31s", "");
            col = 31;
        } else if (col > 31) {
            fputc(' ', out);
            col++;
        }
        for (size_t i = 0; i < w; i++) fputc(p[i] == '\x1f' ? ' ' : p[i], out); /* unbreakable */
        col += (int)w;
        p += w;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

static void print_flag(const cli_flag *f, FILE *out)
{
    char syn[160], range[96] = "", text[1024];
    flag_synopsis(f, syn, sizeof syn);
    if (is_numeric(f->type)) {
        range[0] = ' ';
        range_text(f, range + 1, sizeof range - 1);
        char *sp = strchr(range + 1, ' ');
        if (sp) *sp = '\x1f';
    }
    if (strlen(syn) > 28) fprintf(out, "  %s\n%31s", syn, "");
    else fprintf(out, "  %-28s ", syn);
    int k = snprintf(text, sizeof text, "%s%s", f->help, range);
    if (f->def && k > 0 && (size_t)k < sizeof text)
        snprintf(text + k, sizeof text - (size_t)k, " (default %s)", f->def);
    print_wrapped(text, out);
}

void cli_print_help(const cli_command *cmd, FILE *out)
{
    fprintf(out, "usage: graft %s%s%s [flags]\n\n%s\nflags:\n", cmd->name, cmd->args[0] ? " " : "",
            cmd->args, cmd->about);
    for (const cli_flag *f = cmd->flags; f->name; f++)
        if (!(f->bits & CLI_HIDDEN)) print_flag(f, out);
    fprintf(out, "  --limit NAME=VALUE           what a file may make graft allocate (see graft "
                 "--help)\n  --help                       this text\n");
}

void cli_print_table(const cli_command *cmd, FILE *out)
{
    for (const cli_flag *f = cmd->flags; f->name; f++) {
        fprintf(out, "%s\t--%s\t%s", cmd->name, f->name, TYPE_NAME[f->type]);
        char lo[32] = "-", hi[32] = "-";
        if (is_numeric(f->type))
            number_text(f->lo, lo, sizeof lo), number_text(f->hi, hi, sizeof hi);
        fprintf(out, "\t%s\t%s\n", lo, hi);
    }
}
