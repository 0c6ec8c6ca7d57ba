/* data.c (CLI): `retnet data prepare`: text files to token shards in
 * llm.c's format (include/retnet_data.h), streaming in bounded memory and
 * tokenizing pieces of the text in parallel; `retnet data info`: what a
 * shard directory holds. */
#define _POSIX_C_SOURCE 200809L
#include "args.h"
#include "cli.h"
#include "common.h"
#include "retnet_data.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------ pieces */

/* A printable ASCII byte: not whitespace in any tokenizer's sense. */
static int solid(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* Can the text be cut before b[p] (0 < p, p + 1 < n) without changing how
 * a regex pre-tokenizer (GPT-2's, Llama 3's) splits it? At a single newline
 * between printable bytes ("x\n|y"), or before a single space between them
 * ("x| y"): no pre-token of those patterns crosses either point, and a
 * whitespace run at the end of a piece would (GPT-2's \s+(?!\S) takes a run
 * whole at the end of a text but not before a word), so runs are never cut. */
static int cut_newline(const unsigned char *b, size_t p) {
    return p >= 2 && b[p - 1] == '\n' && solid(b[p - 2]) && solid(b[p]);
}
static int cut_space(const unsigned char *b, size_t p) {
    return p >= 1 && b[p] == ' ' && solid(b[p - 1]) && solid(b[p + 1]);
}

/* The end of the piece that starts at lo, at most at target (lo < target,
 * target + 1 < n): the last newline cut in its second half, else the last
 * space cut, else target moved back to the start of a UTF-8 character (a
 * text with no whitespace at all for half a piece). */
static size_t piece_end(const unsigned char *b, size_t lo, size_t target) {
    size_t half = lo + (target - lo) / 2;
    for (size_t p = target; p > half; p--)
        if (cut_newline(b, p)) return p;
    for (size_t p = target; p > half; p--)
        if (cut_space(b, p)) return p;
    size_t p = target;
    while (p > lo + 1 && (b[p] & 0xC0) == 0x80) p--;
    return p;
}

/* ------------------------------------------------------------ output */

/* One split's shards: NAME_KIND_000000.bin, NAME_KIND_000001.bin, ... */
typedef struct {
    const char *kind;      /* "train" or "val" */
    rn_shard_writer *w;    /* the shard being written, or NULL */
    int shards;            /* shards begun */
    size_t tokens;         /* tokens written in all */
} split_out;

typedef struct {
    const char *out, *name;
    size_t shard_tokens;
    int vocab;
    split_out sp[2];
} outputs;

static void shard_path(char *buf, size_t n, const outputs *o, const split_out *s, int index) {
    snprintf(buf, n, "%s/%s_%s_%06d.bin", o->out, o->name, s->kind, index);
}

/* Appends ids (n) to a split, starting a new shard every shard_tokens. */
static void emit(outputs *o, split_out *s, const int32_t *ids, size_t n) {
    while (n) {
        if (!s->w) {
            char path[4096];
            shard_path(path, sizeof path, o, s, s->shards);
            if (rn_shard_writer_open(path, o->vocab, &s->w) != RN_OK) die("%s", rn_last_error());
            s->shards++;
        }
        size_t room = o->shard_tokens - rn_shard_writer_count(s->w), m = n < room ? n : room;
        if (rn_shard_writer_write(s->w, ids, m) != RN_OK) die("%s", rn_last_error());
        s->tokens += m;
        ids += m;
        n -= m;
        if (rn_shard_writer_count(s->w) == o->shard_tokens) {
            rn_shard_writer *w = s->w;
            s->w = NULL;
            if (rn_shard_writer_close(w) != RN_OK) die("%s", rn_last_error());
        }
    }
}

/* --------------------------------------------------------- the pipeline */

typedef struct {
    const rn_tokenizer *tok;
    size_t piece_bytes;
    int npieces, threads, tty, quiet;
    unsigned char *buf;     /* (npieces + 1) * piece_bytes: the text read, the tail of the last read first */
    size_t *lo, *hi;        /* (npieces): each piece's bytes in buf */
    int32_t **ids;          /* (npieces): each piece's ids ... */
    size_t *cap, *n;        /* ... their capacity and count */
    rn_status *st;          /* (npieces) */
    char **err;             /* (npieces): the error of a failed piece */
    size_t done, total;     /* bytes tokenized, bytes in all */
    double t0, shown;
} pipeline;

static void progress(pipeline *pl, const outputs *o, int last) {
    if (pl->quiet) return;
    double now = now_seconds(), el = now - pl->t0;
    if (!last && now - pl->shown < (pl->tty ? 0.25 : 10.0)) return;
    pl->shown = now;
    double mbs = el > 0 ? pl->done / 1e6 / el : 0;
    char eta[32];
    format_duration(eta, sizeof eta, mbs > 0 ? (pl->total - pl->done) / 1e6 / mbs : -1);
    fprintf(stderr, "%s%.1f / %.1f MB (%.0f%%)  %zu train + %zu val tokens  %.1f MB/s  ETA %s%s", pl->tty ? "\r\033[K" : "",
            pl->done / 1e6, pl->total / 1e6, pl->total ? 100.0 * pl->done / pl->total : 100.0, o->sp[0].tokens,
            o->sp[1].tokens, mbs, eta, pl->tty && !last ? "" : "\n");
}

/* Encodes piece i (count-then-fill when the text expands past its buffer). */
static void encode_piece(pipeline *pl, int i) {
    const char *text = (const char *)pl->buf + pl->lo[i];
    size_t len = pl->hi[i] - pl->lo[i];
    rn_status s = rn_tokenizer_encode(pl->tok, text, len, pl->ids[i], pl->cap[i], &pl->n[i]);
    if (s == RN_OK && pl->n[i] > pl->cap[i]) {
        int32_t *g = realloc(pl->ids[i], pl->n[i] * sizeof *g);
        if (!g) {
            pl->st[i] = RN_ERR_NOMEM;
            pl->err[i] = strdup("out of memory");
            return;
        }
        pl->ids[i] = g;
        pl->cap[i] = pl->n[i];
        s = rn_tokenizer_encode(pl->tok, text, len, pl->ids[i], pl->cap[i], &pl->n[i]);
    }
    pl->st[i] = s;
    if (s != RN_OK) pl->err[i] = strdup(rn_last_error());
}

/* Tokenizes bytes [a, b) of the file (fd, path) into a split: reads up to
 * npieces pieces at a time, cuts them at safe points, encodes them in
 * parallel and writes their ids in order. [a, b) begins and ends at cuts.
 * The pieces do not depend on the number of threads, so neither do the
 * shards. */
static void tokenize_range(pipeline *pl, outputs *o, split_out *s, int fd, const char *path, size_t a, size_t b) {
    size_t carry = 0, pos = a, cap = (size_t)(pl->npieces + 1) * pl->piece_bytes;
    while (pos < b || carry) {
        size_t want = cap - carry;
        if (want > b - pos) want = b - pos;
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(fd, pl->buf + carry + got, want - got, (off_t)(pos + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) die("cannot read %s: %s", path, strerror(errno));
            if (r == 0) die("%s changed while it was read (shorter than %zu bytes)", path, b);
            got += (size_t)r;
        }
        pos += got;
        size_t len = carry + got, lo = 0;
        int eof = pos == b, np = 0;
        while (lo < len && np < pl->npieces) {
            size_t hi;
            if (len - lo > pl->piece_bytes + 1) hi = piece_end(pl->buf, lo, lo + pl->piece_bytes);
            else if (eof) hi = len;
            else break;  /* a short tail waits for the next read, which may give it a better cut */
            pl->lo[np] = lo;
            pl->hi[np++] = hi;
            lo = hi;
        }
        /* One thread per piece; the tokenizer is shared (it is thread-safe). */
#pragma omp parallel for schedule(dynamic, 1) num_threads(pl->threads)
        for (int i = 0; i < np; i++) encode_piece(pl, i);
        for (int i = 0; i < np; i++) {
            if (pl->st[i] != RN_OK) die("%s: %s", path, pl->err[i] ? pl->err[i] : "tokenizer failed");
            emit(o, s, pl->ids[i], pl->n[i]);
        }
        pl->done += lo;
        progress(pl, o, 0);
        carry = len - lo;
        memmove(pl->buf, pl->buf + lo, carry);
        if (eof && carry && np == 0) die("internal error: no progress in %s", path);
    }
}

/* Where the validation part of a file of size bytes begins: the first cut
 * (as between pieces) at or after (1 - val_fraction) of its bytes; size when
 * val_fraction is 0 or no cut is found before the end. */
static size_t val_start(int fd, const char *path, size_t size, double val_fraction, unsigned char *buf, size_t cap) {
    if (val_fraction <= 0) return size;
    size_t at = (size_t)((double)size * (1.0 - val_fraction));
    if (at < 2) at = 2;
    for (size_t base = at - 2; base + 2 < size; base += cap - 3) {
        size_t want = size - base < cap ? size - base : cap;
        ssize_t r = pread(fd, buf, want, (off_t)base);
        if (r < (ssize_t)want) die("cannot read %s: %s", path, r < 0 ? strerror(errno) : "file shrank");
        for (size_t p = 2; p + 1 < want; p++)
            if (cut_newline(buf, p)) return base + p;
        if (base + want >= size) break;
    }
    /* No line break in the tail: a space, else a character boundary. */
    for (size_t base = at - 1; base + 1 < size; base += cap - 2) {
        size_t want = size - base < cap ? size - base : cap;
        ssize_t r = pread(fd, buf, want, (off_t)base);
        if (r < (ssize_t)want) die("cannot read %s: %s", path, r < 0 ? strerror(errno) : "file shrank");
        for (size_t p = 1; p + 1 < want; p++)
            if (cut_space(buf, p)) return base + p;
        if (base + want >= size) break;
    }
    return size;
}

/* Copies the tokenizer's files into the output directory, so that `retnet
 * train --data DIR` (and the model it writes) knows the tokens' meaning:
 * tokenizer.json (from the file given, or the directory's), and
 * tokenizer_config.json, vocab.json, merges.txt where they are beside it. */
static void copy_tokenizer(const char *spec, const char *out) {
    struct stat st;
    char dir[4096];
    const char *file = NULL;
    if (stat(spec, &st) != 0) die("cannot stat %s: %s", spec, strerror(errno));
    if (S_ISDIR(st.st_mode)) snprintf(dir, sizeof dir, "%s", spec);
    else {
        file = spec;
        snprintf(dir, sizeof dir, "%s", spec);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"};
    for (int i = 0; i < 4; i++) {
        char src[4200], dst[4200];
        if (i == 0 && file) snprintf(src, sizeof src, "%s", file);
        else snprintf(src, sizeof src, "%s/%s", dir, names[i]);
        if (stat(src, &st) != 0) continue;
        if (file && i >= 2) continue;  /* a tokenizer.json file: vocab.json + merges.txt are not its */
        char *data;
        size_t len;
        if (rn_read_file(src, 0, &data, &len) != RN_OK) die("%s", rn_last_error());
        snprintf(dst, sizeof dst, "%s/%s", out, names[i]);
        rn_atomic_file af;
        rn_status s = rn_atomic_open(&af, dst);
        if (s == RN_OK && (s = rn_atomic_write(&af, data, len)) == RN_OK) s = rn_atomic_commit(&af);
        else if (s == RN_OK) rn_atomic_abort(&af);
        free(data);
        if (s != RN_OK) die("%s", rn_last_error());
    }
}

/* The default shard name: the first file's name without its directory and
 * extension ("data/brown.txt" -> "brown"). */
static void default_name(char *buf, size_t n, const char *path) {
    const char *base = strrchr(path, '/');
    snprintf(buf, n, "%s", base ? base + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    if (!buf[0]) snprintf(buf, n, "data");
}

/* Does dir hold shards already (which a new set would mix with)? */
static const char *existing_shard(const char *dir) {
    static char found[512];
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    const char *r = NULL;
    for (struct dirent *e; !r && (e = readdir(dp));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0 && (strstr(e->d_name, "train") || strstr(e->d_name, "val"))) {
            snprintf(found, sizeof found, "%s", e->d_name);
            r = found;
        }
    }
    closedir(dp);
    return r;
}

static int cmd_prepare(int argc, char **argv) {
    const char *tpath = NULL, *out = NULL, *name = NULL, *data_help = NULL;
    double val_frac = 0.05;
    int threads = 0, quiet = 0, piece_kb = 1024;
    int64_t shard_tokens = 100000000;
    /* --data takes one or more files: they are taken out of argv here, the
     * rest goes to the flag parser. */
    const char **files = malloc(sizeof *files * (size_t)(argc + 1));
    char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    if (!files || !rest) die("out of memory");
    int nfiles = 0, nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--data=", 7) == 0 && argv[i][7]) files[nfiles++] = argv[i] + 7;
        else if (strcmp(argv[i], "--data") == 0) {
            int j = i + 1;
            for (; j < argc && strncmp(argv[j], "--", 2) != 0; j++) files[nfiles++] = argv[j];
            if (j == i + 1) die_usage("data prepare", "--data needs at least one file");
            i = j - 1;
        } else rest[nrest++] = argv[i];
    }
    opt opts[] = {{"tokenizer", OPT_STR, &tpath, 0, 0, "tokenizer.json, a directory holding one, or 'byte'", 0},
                  {"data", OPT_STR, &data_help, 0, 0, "text files to tokenize (one or more)", 0},
                  {"out", OPT_STR, &out, 0, 0, "output directory for the shards", 0},
                  {"val-fraction", OPT_DOUBLE, &val_frac, 0, 0.5, "the last fraction of each file held out for validation", 0},
                  {"shard-tokens", OPT_I64, &shard_tokens, 1, (double)RN_SHARD_MAX_TOKENS, "tokens per shard (llm.c: 1e8)", 0},
                  {"name", OPT_STR, &name, 0, 0, "shard name prefix (default: the first file's name)", 0},
                  {"threads", OPT_INT, &threads, 0, 4096, "tokenizer threads (0: all cores)", 0},
                  {"piece-kb", OPT_INT, &piece_kb, 1, 1 << 20, "KiB of text one thread tokenizes at a time", 0},
                  {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress display", 0},
                  {0}};
    command_spec cmd = {"data prepare", "--tokenizer T --data FILE... --out DIR [--val-fraction F] [--shard-tokens N]",
                        "Tokenizes text files into token shards in llm.c's format (DIR/NAME_train_000000.bin,\n"
                        "DIR/NAME_val_000000.bin, ...; uint16 tokens for vocabularies up to 65,536, else uint32),\n"
                        "streaming in bounded memory, in parallel; `retnet train --data DIR` trains on them.\n"
                        "The last --val-fraction of each file's bytes (from a line break on) is the validation\n"
                        "split. The tokenizer's files are copied into DIR.",
                        opts};
    args_parse(&cmd, nrest, rest);
    if (!tpath) die_usage("data prepare", "--tokenizer is required (a tokenizer.json, or 'byte')");
    if (!nfiles) die_usage("data prepare", "--data is required");
    if (!out) die_usage("data prepare", "--out is required");

    rn_tokenizer *tok = load_tokenizer_or_die(tpath);
    pipeline pl = {.tok = tok, .piece_bytes = (size_t)piece_kb * 1024, .quiet = quiet};
#ifdef _OPENMP
    pl.threads = threads ? threads : omp_get_num_procs();
#else
    pl.threads = 1;
#endif
    pl.npieces = 2 * pl.threads;
    pl.tty = isatty(2);
    /* Every file is checked before anything is written; each is opened when
     * its turn comes. */
    size_t *sizes = malloc(sizeof *sizes * (size_t)nfiles);
    if (!sizes) die("out of memory");
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0) die("cannot open %s: %s", files[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) die("%s is not a regular file", files[i]);
        sizes[i] = (size_t)st.st_size;
        pl.total += sizes[i];
    }
    if (make_dirs(out) != 0) die("cannot create %s: %s", out, strerror(errno));
    const char *old = existing_shard(out);
    if (old) die("%s already holds shards (%s): remove them or choose another --out", out, old);
    char nbuf[256];
    if (!name) {
        default_name(nbuf, sizeof nbuf, files[0]);
        name = nbuf;
    }
    outputs o = {.out = out, .name = name, .shard_tokens = (size_t)shard_tokens, .vocab = tok->vocab_size,
                 .sp = {{.kind = "train"}, {.kind = "val"}}};

    size_t cap = (size_t)(pl.npieces + 1) * pl.piece_bytes;
    pl.buf = malloc(cap);
    pl.lo = calloc((size_t)pl.npieces, sizeof *pl.lo);
    pl.hi = calloc((size_t)pl.npieces, sizeof *pl.hi);
    pl.ids = calloc((size_t)pl.npieces, sizeof *pl.ids);
    pl.cap = calloc((size_t)pl.npieces, sizeof *pl.cap);
    pl.n = calloc((size_t)pl.npieces, sizeof *pl.n);
    pl.st = calloc((size_t)pl.npieces, sizeof *pl.st);
    pl.err = calloc((size_t)pl.npieces, sizeof *pl.err);
    if (!pl.buf || !pl.lo || !pl.hi || !pl.ids || !pl.cap || !pl.n || !pl.st || !pl.err) die("out of memory");
    for (int i = 0; i < pl.npieces; i++) {
        pl.cap[i] = pl.piece_bytes + 64;
        if (!(pl.ids[i] = malloc(pl.cap[i] * sizeof *pl.ids[i]))) die("out of memory");
    }
    if (!quiet)
        fprintf(stderr, "data prepare: %d file%s, %.1f MB, tokenizer %s (%d ids, %s tokens), %d threads\n", nfiles,
                nfiles == 1 ? "" : "s", pl.total / 1e6, tpath, tok->vocab_size, tok->vocab_size <= 65536 ? "uint16" : "uint32",
                pl.threads);
    pl.t0 = now_seconds();
    for (int i = 0; i < nfiles; i++) {
        int fd = open(files[i], O_RDONLY | O_NONBLOCK);  /* a FIFO put there since is refused, not waited on */
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) die("cannot open %s: %s", files[i], strerror(errno));
        if (!S_ISREG(st.st_mode) || (size_t)st.st_size != sizes[i]) die("%s changed while data prepare ran", files[i]);
        size_t v = val_start(fd, files[i], sizes[i], val_frac, pl.buf, cap);
        tokenize_range(&pl, &o, &o.sp[RN_SPLIT_TRAIN], fd, files[i], 0, v);
        tokenize_range(&pl, &o, &o.sp[RN_SPLIT_VAL], fd, files[i], v, sizes[i]);
        close(fd);
    }
    for (int k = 0; k < 2; k++)
        if (o.sp[k].w) {
            rn_shard_writer *w = o.sp[k].w;
            o.sp[k].w = NULL;
            if (rn_shard_writer_close(w) != RN_OK) die("%s", rn_last_error());
        }
    progress(&pl, &o, 1);
    /* Too little for a split: nothing is left half-made. */
    const char *why = o.sp[0].tokens < 2 ? "training" : val_frac > 0 && o.sp[1].tokens < 2 ? "validation" : NULL;
    if (why) {
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < o.sp[k].shards; j++) {
                char path[4096];
                shard_path(path, sizeof path, &o, &o.sp[k], j);
                unlink(path);
            }
        die("the %s split has %zu tokens (it needs at least 2): more text%s", why, o.sp[why[0] == 'v'].tokens,
            why[0] == 'v' ? ", or a larger --val-fraction" : "");
    }
    if (strcmp(tpath, "byte") != 0) copy_tokenizer(tpath, out);
    if (!quiet)
        fprintf(stderr, "wrote %zu train tokens (%d shard%s) and %zu val tokens (%d shard%s) to %s in %.1fs\n",
                o.sp[0].tokens, o.sp[0].shards, o.sp[0].shards == 1 ? "" : "s", o.sp[1].tokens, o.sp[1].shards,
                o.sp[1].shards == 1 ? "" : "s", out, now_seconds() - pl.t0);
    for (int i = 0; i < pl.npieces; i++) {
        free(pl.ids[i]);
        free(pl.err[i]);
    }
    free(pl.buf); free(pl.lo); free(pl.hi); free(pl.ids); free(pl.cap); free(pl.n); free(pl.st); free(pl.err);
    free(sizes);
    free(files);
    free(rest);
    rn_tokenizer_free(tok);
    return 0;
}

/* `retnet data info --data DIR`: the shards of each split. */
static int cmd_data_info(int argc, char **argv) {
    const char *dir = NULL;
    int vocab = 0;
    opt opts[] = {{"data", OPT_STR, &dir, 0, 0, "shard directory", 0},
                  {"vocab", OPT_INT, &vocab, 0, 1 << 30, "also check every token against this vocabulary (reads all)", 0},
                  {0}};
    command_spec cmd = {"data info", "--data DIR [--vocab N]",
                        "Lists the shards of a directory (train, then val): each one's tokens and width; with\n"
                        "--vocab, reads every token and checks it against the vocabulary.", opts};
    args_parse(&cmd, argc, argv);
    if (!dir) die_usage("data info", "--data is required");
    rn_dataset *ds;
    if (rn_dataset_open_shards(dir, vocab ? vocab : INT32_MAX, &ds) != RN_OK) die("%s", rn_last_error());
    const char *kinds[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        size_t n = rn_dataset_size(ds, (rn_split)k);
        size_t ns = rn_dataset_num_shards(ds, (rn_split)k);
        for (size_t i = 0; i < ns; i++) {
            const rn_shard *sh = rn_dataset_shard(ds, (rn_split)k, i);
            printf("  %s  %zu tokens, uint%d\n", rn_shard_path(sh), rn_shard_size(sh), 8 * rn_shard_width(sh));
        }
        printf("%s: %zu tokens in %zu shard%s\n", kinds[k], n, ns, ns == 1 ? "" : "s");
        if (!vocab) continue;
        int32_t *buf = malloc(sizeof *buf * 65536);
        if (!buf) die("out of memory");
        for (size_t p = 0; p < n; p += 65536) {
            size_t m = n - p < 65536 ? n - p : 65536;
            if (rn_dataset_read(ds, (rn_split)k, p, m, buf) != RN_OK) die("%s", rn_last_error());
        }
        free(buf);
        printf("%s: every token below %d\n", kinds[k], vocab);
    }
    rn_dataset_free(ds);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "prepare") == 0) return cmd_prepare(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "info") == 0) return cmd_data_info(argc - 1, argv + 1);
    /* --help wins wherever it is, as for every command. */
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: retnet data prepare --tokenizer T --data FILE... --out DIR [options]\n"
                   "       retnet data info --data DIR [--vocab N]\n\n"
                   "  prepare  tokenize text files into token shards (llm.c's format)\n"
                   "  info     list a shard directory's shards\n\n"
                   "retnet data <command> --help shows its options.\n");
            return 0;
        }
    if (argc < 1) die_usage("data", "a subcommand is needed: prepare or info");
    die_usage("data", "unknown subcommand '%s' (prepare or info)", argv[0]);
}
