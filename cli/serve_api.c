/* serve_api.c: the OpenAI request and response shapes of `retnet serve`:
 * parsing and validating bodies (every field's type and range; a message
 * naming the field), and the JSON of results and SSE chunks. */
#define _POSIX_C_SOURCE 200809L
#include "serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FAIL(field, ...)                                  \
    do {                                                  \
        snprintf(err, errn, __VA_ARGS__);                 \
        *param = (field);                                 \
        goto fail;                                        \
    } while (0)

/* A number field: absent (returns 0, dst untouched), or a number in
 * [lo, hi] (integral if asked); -1 when wrong. */
static int get_num(const cJSON *o, const char *name, double lo, double hi, int integral, double *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return -1;
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integral && x != floor(x))) return -1;
    *dst = x;
    return 1;
}

static int get_bool(const cJSON *o, const char *name, int *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return -1;
    *dst = cJSON_IsTrue(v);
    return 1;
}

/* special: add BOS/EOS as the tokenizer's post-processor says (prompts,
 * as llama.cpp's server does; /tokenize only on request). */
static int encode(const server *S, const char *text, size_t len, int special, int32_t **ids, size_t *n) {
    *ids = NULL;
    if (rn_tokenizer_encode_special(S->tok, text, len, special, NULL, 0, n) != RN_OK) return -1;
    *ids = malloc(sizeof(int32_t) * (*n + 1));
    if (!*ids) return -1;
    size_t m;
    if (rn_tokenizer_encode_special(S->tok, text, len, special, *ids, *n, &m) != RN_OK || m != *n) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return 0;
}

/* Appends to a growing string. */
typedef struct { char *p; size_t len, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

const char *const serve_template_names[TPL_COUNT] = {"plain", "chatml", "llama2", "mistral"};
/* Where each template's assistant turn ends (a stop string). */
static const char *const template_stop[TPL_COUNT] = {"\nuser:", "<|im_end|>", "</s>", "</s>"};

int serve_template_detect(const char *model_path, int *tpl, char *why, size_t whyn) {
    char dir[4096], path[4200];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *text;
    size_t n;
    if (stat(path, &sb) != 0 || rn_read_file(path, 64 << 20, &text, &n) != RN_OK) return 0;
    cJSON *o = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "chat_template");
    if (cJSON_IsArray(t)) {
        /* [{"name": ..., "template": ...}]: the default one (else the first) */
        const cJSON *e, *pick = NULL;
        cJSON_ArrayForEach(e, t) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (!pick || (cJSON_IsString(nm) && strcmp(nm->valuestring, "default") == 0)) pick = e;
        }
        t = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
    }
    int found = 0;
    if (!o) snprintf(why, whyn, "%s is not valid JSON", path), found = -1;
    else if (cJSON_IsString(t)) {
        /* The known templates by their markers (the Jinja text varies). */
        const char *x = t->valuestring;
        found = 1;
        if (strstr(x, "<|im_start|>") && strstr(x, "<|im_end|>")) *tpl = TPL_CHATML;
        else if (strstr(x, "[INST]") && strstr(x, "<<SYS>>")) *tpl = TPL_LLAMA2;
        else if (strstr(x, "[INST]")) *tpl = TPL_MISTRAL;
        else snprintf(why, whyn, "the chat template in %s is none of chatml, llama2, mistral", path), found = -1;
    }
    cJSON_Delete(o);
    return found;
}

#define ADD(str) sb_add(b, (str), strlen(str))

/* Renders messages with the server's template:
 *   plain    "role: content\n" per message, then "assistant:"
 *   chatml   "<|im_start|>role\ncontent<|im_end|>\n" ..., "<|im_start|>assistant\n"
 *   llama2   "<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s>" ...
 *   mistral  "<s>[INST] system\n\nuser [/INST]assistant</s>" ...
 * (llama2 and mistral put a system message before the next user turn and
 * read other roles as the user's). */
static int render_chat(const server *S, const cJSON *msgs, sbuf *b, char *err, size_t errn, const char **param) {
    sbuf content = {0}, sys = {0};
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) FAIL("messages", "'messages' must be a non-empty array");
    int i = 0, tpl = S->chat_template;
    const cJSON *m;
    if (tpl == TPL_MISTRAL) ADD("<s>");
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m)) FAIL("messages", "'messages[%d]' must be an object", i);
        if (!cJSON_IsString(role) || !role->valuestring[0]) FAIL("messages", "'messages[%d].role' must be a non-empty string", i);
        content.len = 0;
        sb_add(&content, "", 0);
        if (cJSON_IsString(c)) sb_add(&content, c->valuestring, strlen(c->valuestring));
        else if (cJSON_IsArray(c)) {
            const cJSON *part;
            cJSON_ArrayForEach(part, c) {
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") != 0 || !cJSON_IsString(tx))
                    FAIL("messages", "'messages[%d].content' parts must be {\"type\": \"text\", \"text\": string}", i);
                sb_add(&content, tx->valuestring, strlen(tx->valuestring));
            }
        } else if (c && !cJSON_IsNull(c))
            FAIL("messages", "'messages[%d].content' must be a string or an array of text parts", i);
        const char *r = role->valuestring, *t = content.p ? content.p : "";
        if (tpl == TPL_PLAIN) { ADD(r); ADD(": "); ADD(t); ADD("\n"); }
        else if (tpl == TPL_CHATML) { ADD("<|im_start|>"); ADD(r); ADD("\n"); ADD(t); ADD("<|im_end|>\n"); }
        else if (strcmp(r, "system") == 0) { if (sys.len) sb_add(&sys, "\n", 1); sb_add(&sys, t, strlen(t)); }
        else if (strcmp(r, "assistant") == 0) {
            if (tpl == TPL_LLAMA2) { ADD(" "); ADD(t); ADD(" </s>"); } else { ADD(t); ADD("</s>"); }
        } else {
            ADD(tpl == TPL_LLAMA2 ? "<s>[INST] " : "[INST] ");
            if (sys.len) {
                if (tpl == TPL_LLAMA2) { ADD("<<SYS>>\n"); ADD(sys.p); ADD("\n<</SYS>>\n\n"); }
                else { ADD(sys.p); ADD("\n\n"); }
                sys.len = 0;
            }
            ADD(t);
            ADD(" [/INST]");
        }
        i++;
    }
    if (tpl == TPL_PLAIN) ADD("assistant:");
    else if (tpl == TPL_CHATML) ADD("<|im_start|>assistant\n");
    free(content.p);
    free(sys.p);
    return content.oom || sys.oom ? 400 : 0;
fail:
    free(content.p);
    free(sys.p);
    return 400;
}

/* One prompt of a completion: a string (tokenized with the BOS/EOS the
 * tokenizer adds) or an array of token ids. name: how errors call it. */
static int parse_prompt(const server *S, const cJSON *p, const char *name, int32_t **ids, int *n, char *err,
                        size_t errn, const char **param) {
    *ids = NULL;
    if (cJSON_IsString(p)) {
        const char *t = p->valuestring[0] ? p->valuestring : "\n"; /* as `retnet generate` */
        size_t m;
        if (encode(S, t, strlen(t), 1, ids, &m) != 0) FAIL("prompt", "cannot tokenize '%s'", name);
        *n = (int)m;
    } else if (cJSON_IsArray(p)) {
        int m = cJSON_GetArraySize(p), i = 0;
        if (m == 0) FAIL("prompt", "'%s' must not be empty", name);
        if (!(*ids = malloc(sizeof(int32_t) * (size_t)m))) FAIL(NULL, "out of memory");
        const cJSON *v;
        cJSON_ArrayForEach(v, p) {
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
                v->valuedouble >= S->vocab)
                FAIL("prompt", "'%s[%d]' must be a token id in [0, %d)", name, i, S->vocab);
            (*ids)[i++] = (int32_t)v->valuedouble;
        }
        *n = m;
    } else
        FAIL("prompt", "'%s' must be a string or an array of token ids", name);
    if (*n < 1) FAIL("prompt", "'%s' is empty", name);
    return 0;
fail:
    free(*ids);
    *ids = NULL;
    return 400;
}

int parse_completion(const server *S, const char *body, size_t len, int chat, gen_request *rqs, int *n_rqs,
                     char *err, size_t errn, const char **param) {
    gen_request *rq = &rqs[0];
    memset(rq, 0, sizeof *rq);
    *n_rqs = 0;
    *param = NULL;
    sbuf chatbuf = {0};
    int32_t *pids[SERVE_MAX_PROMPTS] = {0};
    int plen[SERVE_MAX_PROMPTS], np = 0;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) FAIL(NULL, "the body is not valid JSON");
    if (!cJSON_IsObject(o)) FAIL(NULL, "the body must be a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model)) FAIL("model", "'model' must be a string");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(o, "user");
    if (user && !cJSON_IsString(user) && !cJSON_IsNull(user)) FAIL("user", "'user' must be a string");
    rq->chat = chat;

    /* prompt: one, or an array of prompts (each its own job; the choices
     * of prompt i are numbered from i n) */
    if (chat) {
        if (render_chat(S, cJSON_GetObjectItemCaseSensitive(o, "messages"), &chatbuf, err, errn, param)) goto fail;
        if (chatbuf.oom) FAIL(NULL, "out of memory");
        size_t n;
        if (encode(S, chatbuf.p, chatbuf.len, 1, &pids[0], &n) != 0) FAIL("messages", "cannot tokenize the messages");
        plen[np++] = (int)n;
        if (n < 1) FAIL("messages", "the messages are empty");
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt"), *first = cJSON_GetArrayItem(p, 0);
        if (!p || cJSON_IsNull(p))
            FAIL("prompt", "'prompt' is required: a string, an array of token ids, or an array of those");
        if (cJSON_IsArray(p) && (cJSON_IsString(first) || cJSON_IsArray(first))) {
            int m = cJSON_GetArraySize(p);
            if (m > SERVE_MAX_PROMPTS) FAIL("prompt", "'prompt': at most %d prompts per request", SERVE_MAX_PROMPTS);
            const cJSON *e;
            cJSON_ArrayForEach(e, p) {
                char name[32];
                snprintf(name, sizeof name, "prompt[%d]", np);
                if (parse_prompt(S, e, name, &pids[np], &plen[np], err, errn, param)) goto fail;
                np++;
            }
        } else {
            if (parse_prompt(S, p, "prompt", &pids[0], &plen[0], err, errn, param)) goto fail;
            np = 1;
        }
    }
    rq->prompt = pids[0];
    rq->n_prompt = plen[0];
    pids[0] = NULL;

    double x;
    int r;
    /* max_tokens: clamped to the server's --max-tokens */
    rq->max_tokens = chat ? S->max_tokens : (S->max_tokens < 16 ? S->max_tokens : 16);
    const char *mt = chat && cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((r = get_num(o, mt, 0, 1e9, 1, &x)) < 0) FAIL(mt, "'%s' must be an integer in [0, 1000000000]", mt);
    if (r) rq->max_tokens = x > S->max_tokens ? S->max_tokens : (int)x;

    rn_sampler_config_default(&rq->sc);
    rq->sc.temperature = 1.0;
    rq->sc.top_p = 1.0;
    rq->sc.top_k = 0;
    if (get_num(o, "temperature", 0, 100, 0, &rq->sc.temperature) < 0) FAIL("temperature", "'temperature' must be a number in [0, 100]");
    if (get_num(o, "top_p", 1e-9, 1, 0, &rq->sc.top_p) < 0) FAIL("top_p", "'top_p' must be a number in (0, 1]");
    if ((r = get_num(o, "top_k", 0, 1e9, 1, &x)) < 0) FAIL("top_k", "'top_k' must be an integer >= 0");
    if (r) rq->sc.top_k = (int)x;
    static unsigned long counter;
    rq->sc.seed = (uint64_t)time(NULL) * 1000003u + __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    if ((r = get_num(o, "seed", 0, 9007199254740992.0, 1, &x)) < 0) FAIL("seed", "'seed' must be an integer in [0, 2^53]");
    if (r) rq->sc.seed = (uint64_t)x;
    int nmax = S->n_slots < SERVE_MAX_N ? S->n_slots : SERVE_MAX_N;
    rq->n = 1;
    if ((r = get_num(o, "n", 1, nmax, 1, &x)) < 0) FAIL("n", "'n' must be an integer in [1, %d] (choices; at most --slots)", nmax);
    if (r) rq->n = (int)x;
    if (get_num(o, "presence_penalty", -2, 2, 0, &x) < 0) FAIL("presence_penalty", "'presence_penalty' must be a number in [-2, 2]");
    if (get_num(o, "frequency_penalty", -2, 2, 0, &x) < 0) FAIL("frequency_penalty", "'frequency_penalty' must be a number in [-2, 2]");
    /* completions: logprobs N (top N); chat: logprobs true, top_logprobs N */
    rq->logprobs = -1;
    if (chat) {
        int want = 0;
        if (get_bool(o, "logprobs", &want) < 0) FAIL("logprobs", "'logprobs' must be a boolean");
        if ((r = get_num(o, "top_logprobs", 0, SERVE_MAX_LOGPROBS, 1, &x)) < 0)
            FAIL("top_logprobs", "'top_logprobs' must be an integer in [0, %d]", SERVE_MAX_LOGPROBS);
        if (r && !want) FAIL("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        if (want) rq->logprobs = r ? (int)x : 0;
    } else {
        if ((r = get_num(o, "logprobs", 0, SERVE_MAX_LOGPROBS, 1, &x)) < 0)
            FAIL("logprobs", "'logprobs' must be an integer in [0, %d]", SERVE_MAX_LOGPROBS);
        if (r) rq->logprobs = (int)x;
    }
    if (get_bool(o, "stream", &rq->stream) < 0) FAIL("stream", "'stream' must be a boolean");
    if (!chat && get_bool(o, "echo", &rq->echo) < 0) FAIL("echo", "'echo' must be a boolean");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so) || get_bool(so, "include_usage", &rq->include_usage) < 0)
            FAIL("stream_options", "'stream_options' must be an object {\"include_usage\": boolean}");
    }

    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (cJSON_IsString(st) || cJSON_IsArray(st)) {
        const cJSON *v;
        int single = cJSON_IsString(st);
        if (!single && cJSON_GetArraySize(st) > SERVE_MAX_STOP) FAIL("stop", "'stop': at most %d strings", SERVE_MAX_STOP);
        for (v = single ? st : st->child; v; v = single ? NULL : v->next) {
            if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > SERVE_STOP_MAX_LEN)
                FAIL("stop", "'stop' must be a string or an array of non-empty strings of at most %d bytes", SERVE_STOP_MAX_LEN);
            if (!(rq->stop[rq->n_stop++] = strdup(v->valuestring))) FAIL(NULL, "out of memory");
        }
    } else if (st && !cJSON_IsNull(st))
        FAIL("stop", "'stop' must be a string or an array of strings");
    /* the template's assistant turn ends there */
    if (chat && rq->n_stop < SERVE_MAX_STOP) rq->stop[rq->n_stop++] = strdup(template_stop[S->chat_template]);
    for (int i = 0; i < rq->n_stop; i++)
        if (!rq->stop[i]) FAIL(NULL, "out of memory");
    /* the other prompts: copies of the first request */
    *n_rqs = 1;
    for (int i = 1; i < np; i++) {
        gen_request *c = &rqs[i];
        *c = *rq;
        c->prompt = pids[i];
        c->n_prompt = plen[i];
        pids[i] = NULL;
        (*n_rqs)++;
        c->n_stop = 0; /* owns only the copies made */
        for (int k = 0; k < rq->n_stop && (c->stop[k] = strdup(rq->stop[k])); k++) c->n_stop++;
        if (c->n_stop != rq->n_stop) FAIL(NULL, "out of memory");
    }
    cJSON_Delete(o);
    free(chatbuf.p);
    return 0;
fail:
    cJSON_Delete(o);
    free(chatbuf.p);
    for (int i = 0; i < SERVE_MAX_PROMPTS; i++) free(pids[i]);
    for (int i = 1; i < *n_rqs; i++) gen_request_free(&rqs[i]);
    gen_request_free(rq);
    *n_rqs = 0;
    return 400;
}

int parse_tokenize(const server *S, const char *body, size_t len, int32_t **ids, size_t *n, char *err, size_t errn,
                   const char **param) {
    *ids = NULL;
    *param = NULL;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) FAIL(NULL, "the body is not valid JSON");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
    if (!c) c = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (!cJSON_IsString(c)) FAIL("content", "'content' must be a string");
    int add_special = 0;
    if (get_bool(o, "add_special", &add_special) < 0) FAIL("add_special", "'add_special' must be a boolean");
    if (encode(S, c->valuestring, strlen(c->valuestring), add_special, ids, n) != 0) FAIL("content", "cannot tokenize 'content'");
    cJSON_Delete(o);
    return 0;
fail:
    cJSON_Delete(o);
    return 400;
}

int parse_detokenize(const server *S, const char *body, size_t len, char **text, size_t *tlen, char *err,
                     size_t errn, const char **param) {
    *text = NULL;
    *param = NULL;
    int32_t *ids = NULL;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) FAIL(NULL, "the body is not valid JSON");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    if (!cJSON_IsArray(t)) FAIL("tokens", "'tokens' must be an array of token ids");
    int n = cJSON_GetArraySize(t), i = 0;
    ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!ids) FAIL(NULL, "out of memory");
    const cJSON *v;
    cJSON_ArrayForEach(v, t) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= S->tok->vocab_size)
            FAIL("tokens", "'tokens[%d]' must be a token id in [0, %d)", i, S->tok->vocab_size);
        ids[i++] = (int32_t)v->valuedouble;
    }
    *text = detokenize(S, ids, n, tlen);
    if (!*text) FAIL(NULL, "out of memory");
    free(ids);
    cJSON_Delete(o);
    return 0;
fail:
    free(ids);
    cJSON_Delete(o);
    return 400;
}

char *detokenize(const server *S, const int32_t *ids, int n, size_t *len) {
    sbuf b = {0};
    sb_add(&b, "", 0);
    for (int i = 0; i < n; i++) {
        const char *p;
        size_t pl;
        if (ids[i] >= 0 && ids[i] < S->tok->vocab_size && rn_tokenizer_decode(S->tok, ids[i], &p, &pl) == RN_OK)
            sb_add(&b, p, pl);
    }
    if (b.oom) { free(b.p); return NULL; }
    *len = b.len;
    return b.p;
}

char *json_error(const char *message, const char *type, const char *param, const char *code) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param); else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code); else cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or -k: the first
 * k bytes are a maximal ill-formed subpart (Unicode's practice, as Python's
 * errors="replace"), to be replaced by one U+FFFD. */
static int utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || p[k] < lo || p[k] > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* A JSON string of n bytes (not NUL-terminated): ill-formed UTF-8 becomes
 * U+FFFD, so that every client can parse the response, and NUL bytes (which
 * cJSON strings cannot hold) are left out. */
static cJSON *str_n(const char *p, size_t n) {
    char *t = malloc(3 * n + 1);
    if (!t) return cJSON_CreateString("");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int L = utf8_seq((const unsigned char *)p + i, n - i);
        if (L > 0) {
            if (!(L == 1 && p[i] == 0)) memcpy(t + k, p + i, (size_t)L), k += (size_t)L;
            i += (size_t)L;
        } else {
            memcpy(t + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i += (size_t)-L;
        }
    }
    t[k] = 0;
    cJSON *s = cJSON_CreateString(t);
    free(t);
    return s;
}

static void add_usage(cJSON *o, sjob *const *jobs, int nj) {
    int prompt = 0, gen = 0, cached = 0;
    for (int p = 0; p < nj; p++) {
        prompt += jobs[p]->rq.n_prompt;
        cached += jobs[p]->cached_tokens;
        for (int k = 0; k < jobs[p]->rq.n; k++) gen += jobs[p]->ch[k].n_gen;
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
}

static cJSON *head(const server *S, const sjob *j, long id, long created, const char *object) {
    char ids[48];
    snprintf(ids, sizeof ids, "%s-%ld", j->rq.chat ? "chatcmpl" : "cmpl", id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ids);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", S->model_id);
    return o;
}

/* A token's text (bytes outside the tokenizer give nothing) as a JSON string. */
static cJSON *token_str(const server *S, int32_t id) {
    const char *p = "";
    size_t pl = 0;
    if (id >= 0 && id < S->tok->vocab_size) rn_tokenizer_decode(S->tok, id, &p, &pl);
    return str_n(p, pl);
}

static cJSON *token_bytes(const server *S, int32_t id) {
    const char *p = "";
    size_t pl = 0;
    if (id >= 0 && id < S->tok->vocab_size) rn_tokenizer_decode(S->tok, id, &p, &pl);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < pl; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)p[i]));
    return a;
}

/* The logprobs of n tokens: completions' legacy shape {tokens,
 * token_logprobs, top_logprobs, text_offset} (offsets from base) after the
 * prompt's n_pre (echo; offsets as they are, a NaN logprob is null), or
 * chat's {content: [{token, logprob, bytes, top_logprobs}]}. */
static cJSON *logprobs_json(const server *S, const sjob *j, const serve_lp *pre, int n_pre, const serve_lp *lp, int n,
                            size_t base) {
    cJSON *o = cJSON_CreateObject();
    int top = j->rq.logprobs;
    if (j->rq.chat) {
        cJSON *c = cJSON_AddArrayToObject(o, "content");
        for (int i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateObject(), *ta;
            cJSON_AddItemToObject(e, "token", token_str(S, lp[i].id));
            cJSON_AddNumberToObject(e, "logprob", lp[i].lp);
            cJSON_AddItemToObject(e, "bytes", token_bytes(S, lp[i].id));
            ta = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int k = 0; k < top; k++) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddItemToObject(t, "token", token_str(S, lp[i].top[k].id));
                cJSON_AddNumberToObject(t, "logprob", lp[i].top[k].lp);
                cJSON_AddItemToObject(t, "bytes", token_bytes(S, lp[i].top[k].id));
                cJSON_AddItemToArray(ta, t);
            }
            cJSON_AddItemToArray(c, e);
        }
        cJSON_AddNullToObject(o, "refusal");
        return o;
    }
    cJSON *tk = cJSON_AddArrayToObject(o, "tokens"), *tl = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tt = cJSON_AddArrayToObject(o, "top_logprobs"), *to = cJSON_AddArrayToObject(o, "text_offset");
    for (int i = 0; i < n_pre + n; i++) {
        const serve_lp *e = i < n_pre ? &pre[i] : &lp[i - n_pre];
        cJSON_AddItemToArray(tk, token_str(S, e->id));
        if (isnan(e->lp)) { /* the prompt's first token */
            cJSON_AddItemToArray(tl, cJSON_CreateNull());
            cJSON_AddItemToArray(tt, cJSON_CreateNull());
        } else {
            cJSON_AddItemToArray(tl, cJSON_CreateNumber(e->lp));
            cJSON *d = cJSON_CreateObject();
            for (int k = 0; k < top; k++) {
                cJSON *key = token_str(S, e->top[k].id);
                cJSON_AddNumberToObject(d, key->valuestring, e->top[k].lp);
                cJSON_Delete(key);
            }
            cJSON_AddItemToArray(tt, d);
        }
        cJSON_AddItemToArray(to, cJSON_CreateNumber((double)(i < n_pre ? e->offset : base + e->offset)));
    }
    return o;
}

char *json_result(const server *S, sjob *const *jobs, int nj, long id, long created) {
    const sjob *j0 = jobs[0];
    cJSON *o = head(S, j0, id, created, j0->rq.chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    for (int q = 0; q < nj; q++) {
        const sjob *j = jobs[q];
        size_t pl = 0;
        char *p = !j->rq.chat && j->rq.echo ? detokenize(S, j->rq.prompt, j->rq.n_prompt, &pl) : NULL;
        for (int k = 0; k < j->rq.n; k++) {
            const schoice *h = &j->ch[k];
            cJSON *c = cJSON_CreateObject();
            cJSON_AddItemToArray(ch, c);
            cJSON_AddNumberToObject(c, "index", q * j->rq.n + k);
            if (j->rq.chat) {
                cJSON *m = cJSON_AddObjectToObject(c, "message");
                cJSON_AddStringToObject(m, "role", "assistant");
                cJSON_AddItemToObject(m, "content", str_n(h->out ? h->out : "", h->len));
            } else {
                sbuf b = {0};
                sb_add(&b, "", 0);
                if (p) sb_add(&b, p, pl);
                sb_add(&b, h->out ? h->out : "", h->len);
                cJSON_AddItemToObject(c, "text", str_n(b.p ? b.p : "", b.p ? b.len : 0));
                free(b.p);
            }
            if (j->rq.logprobs >= 0)
                cJSON_AddItemToObject(c, "logprobs", logprobs_json(S, j, j->prompt_lp, j->prompt_lp ? j->rq.n_prompt : 0,
                                                                   h->lp, h->n_lp, pl));
            else cJSON_AddNullToObject(c, "logprobs");
            cJSON_AddStringToObject(c, "finish_reason", h->finish ? h->finish : "stop");
        }
        free(p);
    }
    add_usage(o, jobs, nj);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *sse(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *e = malloc(n + 9);
    if (e) { memcpy(e, "data: ", 6); memcpy(e + 6, s, n); memcpy(e + 6 + n, "\n\n", 3); }
    free(s);
    return e;
}

char *sse_chunk(const server *S, const sjob *j, int index, long id, long created, const char *text, size_t n,
                const serve_lp *lp, int n_lp, const char *finish, int role, int echo) {
    cJSON *o = head(S, j, id, created, j->rq.chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", index);
    if (j->rq.chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text && (n || role)) cJSON_AddItemToObject(d, "content", str_n(text, n));
    } else
        cJSON_AddItemToObject(c, "text", str_n(text ? text : "", text ? n : 0));
    size_t base = 0;
    if (lp && n_lp && !j->rq.chat && j->rq.echo) free(detokenize(S, j->rq.prompt, j->rq.n_prompt, &base));
    int n_pre = echo && j->prompt_lp ? j->rq.n_prompt : 0;
    if ((lp && n_lp) || n_pre) cJSON_AddItemToObject(c, "logprobs", logprobs_json(S, j, j->prompt_lp, n_pre, lp, n_lp, base));
    else cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish); else cJSON_AddNullToObject(c, "finish_reason");
    return sse(o);
}

char *sse_usage(const server *S, sjob *const *jobs, int nj, long id, long created) {
    cJSON *o = head(S, jobs[0], id, created, jobs[0]->rq.chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    add_usage(o, jobs, nj);
    return sse(o);
}

char *json_content(const char *text, size_t n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "content", str_n(text, n));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
