/* flags.h — the CLI's flag tables. Each command describes its flags once, as rows of a table
 * (name, type, range, default, help, where the value goes); flags.c parses argv against the
 * table, refuses a bad value with exit 2 before any file is read, writes `graft CMD --help`
 * and the machine-readable `graft --flags-table`. Only the CLI includes it. */
#ifndef GRAFT_CLI_FLAGS_H
#define GRAFT_CLI_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_type {
    CLI_INT,    /* a whole number, stored as int */
    CLI_U64,    /* a whole number, stored as uint64_t (seeds) */
    CLI_REAL,   /* a real number, stored as double */
    CLI_SIZE,   /* a byte count such as 16G (suffix K, M, G, T: powers of 1024), int64_t */
    CLI_INTS,   /* a comma-separated list of whole numbers ("1,5"), kept as its text */
    CLI_STRING, /* any text, const char * */
    CLI_PATH,   /* a file or folder, const char * */
    CLI_CHOICE, /* one of the names in `choices`, const char * */
    CLI_SWITCH, /* no value: sets an int to 1 */
} cli_type;

/* A special value spelt as a word ("auto", "none"), stored as `value` (the API's value: none is
 * 0 for epochs, never is GRAFT_NEVER), never read as a number (CLI_ZERO_AUTO does not apply).
 * GRAFT_AUTO, from a word or CLI_ZERO_AUTO, stores the field's value before parsing: the
 * default graft_*_opts_init() gave it, GRAFT_AUTO itself where graft chooses. */
typedef struct cli_word {
    const char *word;
    double value;
} cli_word;

typedef union cli_value {
    int64_t i; /* CLI_INT, CLI_U64, CLI_SIZE, CLI_SWITCH (1) */
    double r;  /* CLI_REAL */
    const char *s;
} cli_value;

struct cli_flag;
/* Stores a parsed, checked value into the command's argument struct `base`. A row without
 * one stores by its type at its offset; a row with one converts the value (a choice's name to
 * its enum). */
typedef void (*cli_setter)(void *base, const struct cli_flag *f, cli_value v);

enum {
    CLI_LO_OPEN = 1,   /* the range excludes lo */
    CLI_HI_OPEN = 2,   /* the range excludes hi */
    CLI_HIDDEN = 4,    /* parsed and checked, left out of --help (test hooks) */
    CLI_ZERO_AUTO = 8, /* the number 0 means auto (the command line's spelling of it) */
};

typedef struct cli_flag {
    const char *name; /* without the dashes: "epochs"; NULL ends a table */
    char alias;       /* a one-letter alias ('o' for -o), or 0 */
    cli_type type;
    const char *meta;      /* the value's placeholder in --help: "N", "X", "DIR" */
    double lo, hi;         /* numeric types: the accepted range (inclusive unless CLI_*_OPEN) */
    unsigned bits;         /* CLI_LO_OPEN, CLI_HI_OPEN, CLI_HIDDEN, CLI_ZERO_AUTO */
    const char *choices;   /* CLI_CHOICE: "mean|grid2|grid4|none" */
    const cli_word *words; /* numeric types: special values as words, ended by {NULL} */
    const char *def;       /* the default as --help shows it, or NULL */
    const char *help;      /* one line */
    size_t off;            /* where the value goes in the command's argument struct */
    cli_setter set;        /* NULL: store by type at off */
} cli_flag;

typedef struct cli_command {
    const char *name;      /* "finetune", "keyword train" */
    const char *args;      /* positional arguments for the usage line: "MODEL DATA" */
    const char *summary;   /* one line for `graft --help` */
    const char *about;     /* the prose of `graft CMD --help` */
    const cli_flag *flags; /* at most CLI_MAX_ROWS rows (finetune's has 34) */
    int (*run)(int argc, char **argv);
} cli_command;

enum { CLI_GO = -1, CLI_MAX_ROWS = 64 };

/* Parses argv (the arguments after the command's name) against cmd->flags, storing values into
 * base. Positional arguments are moved to argv[0 .. *npos). Returns CLI_GO to go on, 0 after
 * printing --help, or EXIT_USAGE after printing what was wrong ("graft CMD: --flag: ..."). */
int cli_parse(const cli_command *cmd, int argc, char **argv, void *base, int *npos);

/* `graft CMD --help`: the usage line, the prose and the table of flags. */
void cli_print_help(const cli_command *cmd, FILE *out);

/* One line per flag: command, flag, type, min, max (tab-separated; "-" where none). */
void cli_print_table(const cli_command *cmd, FILE *out);

/* "16G", "178956970", "2.5M": a positive count with an optional binary suffix K, M, G, T.
 * Returns 0 or -1. */
int cli_parse_size(const char *s, int64_t *out);

/* Common rows. T is the command's argument struct. */
#define CLI_ROW_JSON(T, field)                                                                     \
    {                                                                                              \
        .name = "json", .type = CLI_SWITCH, .help = "machine-readable output on stdout",           \
        .off = offsetof(T, field)                                                                  \
    }
#define CLI_ROW_THREADS(T, field, dflt)                                                            \
    {                                                                                              \
        .name = "threads", .type = CLI_INT, .meta = "N", .lo = 0, .hi = 4096,                      \
        .words = cli_words_all, .def = dflt, .help = "compute threads (0 or all: every core)",     \
        .off = offsetof(T, field)                                                                  \
    }
#define CLI_ROW_SEED(T, field)                                                                     \
    {                                                                                              \
        .name = "seed", .type = CLI_U64, .meta = "N", .lo = 0, .hi = 9007199254740991.0,           \
        .def = "0", .help = "random seed", .off = offsetof(T, field)                               \
    }

extern const cli_word cli_words_auto[];      /* auto = GRAFT_AUTO */
extern const cli_word cli_words_auto_none[]; /* auto = GRAFT_AUTO, none = 0 */
extern const cli_word cli_words_all[];       /* all = 0 (threads) */

#endif
