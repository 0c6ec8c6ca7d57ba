/* args.h: declarative flag parsing for the CLI's subcommands. Every flag is
 * range-checked; errors are one line on stderr and exit code 2. */
#ifndef RN_CLI_ARGS_H
#define RN_CLI_ARGS_H

#include <stdint.h>

typedef enum { OPT_INT, OPT_I64, OPT_DOUBLE, OPT_STR, OPT_FLAG } opt_kind;

typedef struct {
    const char *name;     /* without the leading "--" */
    opt_kind kind;
    void *dst;            /* int*, int64_t*, double*, const char**, int* */
    double min, max;      /* range for numbers (inclusive) */
    const char *help;
    int seen;             /* set by the parser */
} opt;

typedef struct {
    const char *name;
    const char *usage;    /* one line: arguments */
    const char *summary;  /* one paragraph */
    opt *opts;            /* terminated by {0} */
} command_spec;

/* Parses argv (after the subcommand name). Prints help and exits 0 on
 * --help; prints one error line and exits 2 on bad input. */
void args_parse(command_spec *cmd, int argc, char **argv);
/* Was the flag given on the command line? */
int args_seen(const command_spec *cmd, const char *name);
void args_help(const command_spec *cmd);

#endif
