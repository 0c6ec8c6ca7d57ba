/* args.c: the CLI's flag parser. */
#include "args.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_help(const command_spec *cmd) {
    printf("usage: retnet %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
    for (opt *o = cmd->opts; o->name; o++) {
        char left[64];
        const char *arg = o->kind == OPT_FLAG ? "" : o->kind == OPT_STR ? " S" : o->kind == OPT_DOUBLE ? " X" : " N";
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        printf("  %-22s %s", left, o->help);
        switch (o->kind) {
        case OPT_INT: printf(" [%d]", *(int *)o->dst); break;
        case OPT_I64: printf(" [%lld]", (long long)*(int64_t *)o->dst); break;
        case OPT_DOUBLE: printf(" [%g]", *(double *)o->dst); break;
        case OPT_STR: if (*(const char **)o->dst) printf(" [%s]", *(const char **)o->dst); break;
        case OPT_FLAG: break;
        }
        printf("\n");
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

static void set_value(command_spec *cmd, opt *o, const char *v) {
    if (o->kind == OPT_STR) {
        if (!*v) die_usage(cmd->name, "--%s needs a non-empty value", o->name);
        *(const char **)o->dst = v;
        return;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x))
        die_usage(cmd->name, "--%s expects a number, got '%s'", o->name, v);
    if ((o->kind == OPT_INT || o->kind == OPT_I64) && x != floor(x))
        die_usage(cmd->name, "--%s expects an integer, got '%s'", o->name, v);
    if (x < o->min || x > o->max)
        die_usage(cmd->name, "--%s = %s is out of range [%g, %g]", o->name, v, o->min, o->max);
    if (o->kind == OPT_INT) *(int *)o->dst = (int)x;
    else if (o->kind == OPT_I64) *(int64_t *)o->dst = (int64_t)x;
    else *(double *)o->dst = x;
}

void args_parse(command_spec *cmd, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { args_help(cmd); exit(0); }
        if (strncmp(a, "--", 2) != 0) die_usage(cmd->name, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt *o = NULL;
        for (opt *p = cmd->opts; p->name; p++)
            if (strlen(p->name) == len && strncmp(p->name, name, len) == 0) o = p;
        if (!o) die_usage(cmd->name, "unknown flag '--%.*s'", (int)len, name);
        o->seen = 1;
        if (o->kind == OPT_FLAG) {
            if (eq) die_usage(cmd->name, "--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) die_usage(cmd->name, "--%s needs a value", o->name);
        set_value(cmd, o, v);
    }
}

int args_seen(const command_spec *cmd, const char *name) {
    for (opt *p = cmd->opts; p->name; p++)
        if (strcmp(p->name, name) == 0) return p->seen;
    return 0;
}
