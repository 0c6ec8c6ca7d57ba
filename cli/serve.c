/* serve.c (CLI): `retnet serve`, an OpenAI-compatible HTTP server on
 * libmicrohttpd: the command, routing, authentication, errors and SSE
 * streaming. See serve.h for the threads. */
#define _DEFAULT_SOURCE
#include "args.h"
#include "cli.h"
#include "common.h"
#include "serve.h"
#include "retnet_data.h"
#include "util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------ responses */

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
} req_ctx;

static enum MHD_Result send_body(server *S, struct MHD_Connection *c, int status, char *body, const char *ctype) {
    if (!body) { status = 500; body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}"); }
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 405) MHD_add_response_header(r, "Allow", "GET, POST");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    count_status(S, status);
    return ret;
}

static enum MHD_Result send_error(server *S, struct MHD_Connection *c, int status, const char *msg,
                                  const char *param) {
    const char *type = status == 401   ? "authentication_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401 ? "invalid_api_key" : status == 404 ? "not_found" : status == 405 ? "method_not_allowed"
                       : status == 413 ? "request_too_large" : status == 503 ? "server_busy" : NULL;
    return send_body(S, c, status, json_error(msg, type, param, code), "application/json");
}

/* Has the client closed its end? (a peek that reads nothing: orderly
 * shutdown, or an error other than "no data yet") */
static int peer_gone(int fd) {
    if (fd < 0) return 0;
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int connection_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* A request's jobs, one per prompt: the connection waits on the first's
 * condition variable, which the others also signal. */
typedef struct {
    sjob *j[SERVE_MAX_PROMPTS];
    int n;
} job_set;

static int set_done(const job_set *js) {
    for (int q = 0; q < js->n; q++)
        if (js->j[q]->phase != JOB_DONE) return 0;
    return 1;
}

/* Waits (mu held) until a job has news; every 200 ms checks that the
 * client is still there, and cancels the jobs when it is not. */
static void wait_jobs(server *S, job_set *js, int fd) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&js->j[0]->cv, &S->mu, &ts);
    if (!set_done(js) && peer_gone(fd))
        for (int q = 0; q < js->n; q++)
            if (js->j[q]->phase != JOB_DONE) js->j[q]->cancelled = 1;
}

/* Lets the jobs go (mu held): unfinished ones are cancelled (their slots
 * freed within one scheduler step); no job signals the first's cv after. */
static void release_jobs_locked(server *S, job_set *js) {
    for (int q = 0; q < js->n; q++) {
        js->j[q]->wake = NULL;
        if (js->j[q]->phase != JOB_DONE) js->j[q]->cancelled = 1;
    }
    for (int q = 0; q < js->n; q++) job_unref_locked(S, js->j[q]);
    js->n = 0;
}

/* ------------------------------------------------------------- streaming */

typedef struct {
    server *S;
    job_set js;
    long id, created;
    int fd;
    char *buf;
    size_t len, off;
    int stage; /* 0 start, 1 tokens, 2 finished */
} stream_ctx;

static void stream_emit(stream_ctx *c, char *ev) {
    if (!ev) return;
    size_t n = strlen(ev);
    char *b = realloc(c->buf, c->len + n + 1);
    if (!b) { free(ev); return; }
    memcpy(b + c->len, ev, n + 1);
    c->buf = b;
    c->len += n;
    free(ev);
}

/* What a stream has to send of choice k of job j (mu held). */
static int choice_news(const sjob *j, int k) {
    const schoice *ch = &j->ch[k];
    return ch->ready > ch->sent || (ch->finish && !ch->finish_sent);
}

static int job_news(const sjob *j) {
    for (int k = 0; k < j->rq.n; k++)
        if (choice_news(j, k)) return 1;
    return 0;
}

/* A copy of what choice k of job j has to send, taken under mu and sent
 * outside it. */
typedef struct { char *text; size_t len; serve_lp *lp; int n_lp; const char *finish; } news;

static void take_news_locked(sjob *j, int k, news *o) {
    schoice *ch = &j->ch[k];
    memset(o, 0, sizeof *o);
    if (!choice_news(j, k)) return;
    size_t from = ch->sent, to = ch->ready;
    int last = ch->finish && to == ch->len;
    int m = ch->lp_sent;
    while (m < ch->n_lp && (last || ch->lp[m].offset < to)) m++;
    if (to > from && (o->text = malloc(to - from))) memcpy(o->text, ch->out + from, to - from);
    o->len = o->text ? to - from : 0;
    if (m > ch->lp_sent && (o->lp = malloc(sizeof(serve_lp) * (size_t)(m - ch->lp_sent)))) {
        memcpy(o->lp, ch->lp + ch->lp_sent, sizeof(serve_lp) * (size_t)(m - ch->lp_sent));
        o->n_lp = m - ch->lp_sent;
    }
    ch->sent = to;
    ch->lp_sent = m;
    if (last) { o->finish = ch->finish; ch->finish_sent = 1; }
}

/* Fills c->buf with the next events, blocking until the jobs have some. */
static void stream_produce(stream_ctx *c) {
    server *S = c->S;
    job_set *js = &c->js;
    if (c->stage == 0) {
        c->stage = 1;
        /* the echoed prompt's logprobs come from its prefill */
        pthread_mutex_lock(&S->mu);
        for (int q = 0; q < js->n; q++)
            while (wants_prompt_lp(&js->j[q]->rq) && !js->j[q]->prompt_done) wait_jobs(S, js, c->fd);
        pthread_mutex_unlock(&S->mu);
        for (int q = 0; q < js->n; q++) {
            const sjob *j = js->j[q];
            size_t pl = 0;
            char *p = !j->rq.chat && j->rq.echo ? detokenize(S, j->rq.prompt, j->rq.n_prompt, &pl) : NULL;
            for (int k = 0; k < j->rq.n; k++) {
                int index = q * j->rq.n + k;
                if (j->rq.chat) stream_emit(c, sse_chunk(S, j, index, c->id, c->created, "", 0, NULL, 0, NULL, 1, 0));
                else if (p) stream_emit(c, sse_chunk(S, j, index, c->id, c->created, p, pl, NULL, 0, NULL, 0, 1));
            }
            free(p);
        }
        if (c->len) return;
    }
    pthread_mutex_lock(&S->mu);
    for (;;) {
        int any = 0;
        for (int q = 0; q < js->n; q++) any |= job_news(js->j[q]);
        if (any || set_done(js)) break;
        wait_jobs(S, js, c->fd);
    }
    news out[SERVE_MAX_PROMPTS][SERVE_MAX_N];
    for (int q = 0; q < js->n; q++)
        for (int k = 0; k < js->j[q]->rq.n; k++) take_news_locked(js->j[q], k, &out[q][k]);
    int done = set_done(js);
    for (int q = 0; q < js->n; q++) done &= !job_news(js->j[q]);
    pthread_mutex_unlock(&S->mu);
    for (int q = 0; q < js->n; q++) {
        const sjob *j = js->j[q];
        for (int k = 0; k < j->rq.n; k++) {
            news *o = &out[q][k];
            int index = q * j->rq.n + k;
            if (o->len || o->n_lp)
                stream_emit(c, sse_chunk(S, j, index, c->id, c->created, o->text, o->len, o->lp, o->n_lp, NULL, 0, 0));
            if (o->finish) stream_emit(c, sse_chunk(S, j, index, c->id, c->created, NULL, 0, NULL, 0, o->finish, 0, 0));
            free(o->text);
            free(o->lp);
        }
    }
    if (!done) return;
    const sjob *failed = NULL;
    for (int q = 0; q < js->n && !failed; q++)
        if (!js->j[q]->ok) failed = js->j[q];
    if (failed) {
        char msg[300];
        snprintf(msg, sizeof msg, "generation failed: %s", failed->error);
        char *e = json_error(msg, "server_error", NULL, NULL);
        if (e) {
            char *ev = malloc(strlen(e) + 9);
            if (ev) sprintf(ev, "data: %s\n\n", e);
            stream_emit(c, ev);
            free(e);
        }
    } else if (js->j[0]->rq.include_usage)
        stream_emit(c, sse_usage(S, js->j, js->n, c->id, c->created));
    stream_emit(c, strdup("data: [DONE]\n\n"));
    c->stage = 2;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *c = cls;
    while (c->off == c->len) {
        free(c->buf);
        c->buf = NULL;
        c->len = c->off = 0;
        if (c->stage == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        stream_produce(c);
    }
    size_t n = c->len - c->off < max ? c->len - c->off : max;
    memcpy(buf, c->buf + c->off, n);
    c->off += n;
    return (ssize_t)n;
}

/* Called when the response ends or the client goes away: jobs still
 * running are cancelled and their slots freed within one scheduler step. */
static void stream_free(void *cls) {
    stream_ctx *c = cls;
    pthread_mutex_lock(&c->S->mu);
    release_jobs_locked(c->S, &c->js);
    pthread_mutex_unlock(&c->S->mu);
    free(c->buf);
    free(c);
}

/* -------------------------------------------------------------- handlers */

/* Queues one job per prompt (all or none); 0, or -1 when the queue is full. */
static int submit_all(server *S, gen_request *rqs, int n, job_set *js) {
    js->n = 0;
    for (int q = 0; q < n; q++) {
        sjob *j = job_submit(S, &rqs[q]);
        if (!j) {
            for (int r = q + 1; r < n; r++) gen_request_free(&rqs[r]);
            pthread_mutex_lock(&S->mu);
            release_jobs_locked(S, js);
            pthread_mutex_unlock(&S->mu);
            return -1;
        }
        pthread_mutex_lock(&S->mu);
        if (q) j->wake = &js->j[0]->cv;
        pthread_mutex_unlock(&S->mu);
        js->j[js->n++] = j;
    }
    return 0;
}

static enum MHD_Result handle_generate(server *S, struct MHD_Connection *c, req_ctx *r, int chat) {
    gen_request rqs[SERVE_MAX_PROMPTS];
    int nrq;
    char err[512];
    const char *param;
    if (parse_completion(S, r->body ? r->body : "", r->len, chat, rqs, &nrq, err, sizeof err, &param))
        return send_error(S, c, 400, err, param);
    int stream = rqs[0].stream;
    job_set js;
    if (submit_all(S, rqs, nrq, &js) != 0)
        return send_error(S, c, 503, "the server is busy: every slot is taken and the queue is full", NULL);
    pthread_mutex_lock(&S->mu);
    long id = ++S->next_id;
    pthread_mutex_unlock(&S->mu);
    long created = (long)time(NULL);
    if (stream) {
        stream_ctx *sc = calloc(1, sizeof *sc);
        struct MHD_Response *resp = NULL;
        if (sc) {
            sc->S = S;
            sc->js = js;
            sc->id = id;
            sc->created = created;
            sc->fd = connection_fd(c);
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc, stream_free);
        }
        if (!resp) {
            pthread_mutex_lock(&S->mu);
            release_jobs_locked(S, &js);
            pthread_mutex_unlock(&S->mu);
            free(sc);
            return send_error(S, c, 500, "out of memory", NULL);
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        count_status(S, 200);
        return ret;
    }
    int fd = connection_fd(c);
    pthread_mutex_lock(&S->mu);
    while (!set_done(&js)) wait_jobs(S, &js, fd);
    int gone = 0;
    const sjob *failed = NULL;
    for (int q = 0; q < js.n; q++) {
        gone |= js.j[q]->cancelled;
        if (!js.j[q]->ok && !failed) failed = js.j[q];
    }
    pthread_mutex_unlock(&S->mu);
    enum MHD_Result ret;
    if (gone) ret = MHD_NO; /* the client went away: close, nothing to answer */
    else if (failed) {
        char msg[300];
        snprintf(msg, sizeof msg, "generation failed: %s", failed->error);
        ret = send_error(S, c, strstr(failed->error, "shutting down") ? 503 : 500, msg, NULL);
    } else
        ret = send_body(S, c, 200, json_result(S, js.j, js.n, id, created), "application/json");
    pthread_mutex_lock(&S->mu);
    release_jobs_locked(S, &js);
    pthread_mutex_unlock(&S->mu);
    return ret;
}

static char *metrics_text(server *S) {
    size_t cap = 8192;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__)
    pthread_mutex_lock(&S->mu);
    OUT("# HELP retnet_requests_total HTTP responses by status code.\n# TYPE retnet_requests_total counter\n");
    for (int i = 0; i < SERVE_N_CODES; i++) {
        if (serve_codes[i]) OUT("retnet_requests_total{status=\"%d\"} %ld\n", serve_codes[i], S->status_count[i]);
        else OUT("retnet_requests_total{status=\"other\"} %ld\n", S->status_count[i]);
    }
    OUT("# TYPE retnet_prompt_tokens_total counter\nretnet_prompt_tokens_total %ld\n", S->prompt_tokens);
    OUT("# TYPE retnet_generated_tokens_total counter\nretnet_generated_tokens_total %ld\n", S->gen_tokens);
    OUT("# TYPE retnet_generations_total counter\nretnet_generations_total %ld\n", S->requests_done);
    OUT("# HELP retnet_generation_seconds_total Sum over requests of first token to done.\n"
        "# TYPE retnet_generation_seconds_total counter\nretnet_generation_seconds_total %.6f\n", S->gen_seconds);
    OUT("# TYPE retnet_slots gauge\nretnet_slots %d\n", S->n_slots);
    OUT("# TYPE retnet_slots_busy gauge\nretnet_slots_busy %d\n", S->busy);
    OUT("# TYPE retnet_queue_length gauge\nretnet_queue_length %d\n", S->qlen);
    OUT("# HELP retnet_batch_steps_total Batched decoding steps (one rn_forward over every decoding stream).\n"
        "# TYPE retnet_batch_steps_total counter\nretnet_batch_steps_total %ld\n", S->steps);
    OUT("# HELP retnet_batch_rows_total Streams advanced by those steps (divided by the steps: the mean batch).\n"
        "# TYPE retnet_batch_rows_total counter\nretnet_batch_rows_total %ld\n", S->step_rows);
    OUT("# TYPE retnet_cache_hits_total counter\nretnet_cache_hits_total %ld\n", S->cache_hits);
    OUT("# TYPE retnet_cache_misses_total counter\nretnet_cache_misses_total %ld\n", S->cache_misses);
    OUT("# TYPE retnet_cache_cached_tokens_total counter\nretnet_cache_cached_tokens_total %ld\n", S->cached_tokens);
    OUT("# TYPE retnet_cache_entries gauge\nretnet_cache_entries %ld\n", S->cache_entries);
    OUT("# TYPE retnet_cache_bytes gauge\nretnet_cache_bytes %zu\n", S->cache_bytes);
    OUT("# TYPE retnet_cache_capacity_bytes gauge\nretnet_cache_capacity_bytes %zu\n", S->cache_cap);
    OUT("# TYPE retnet_state_bytes gauge\nretnet_state_bytes %zu\n", S->state_bytes);
    pthread_mutex_unlock(&S->mu);
#undef OUT
    if (n >= cap) b[cap - 1] = 0;
    return b;
}

/* Constant time in the length of the presented key. */
static int key_ok(const server *S, const char *auth) {
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) return 0;
    const char *k = auth + 7;
    size_t n = strlen(k);
    unsigned char d = (unsigned char)(n != S->api_key_len);
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(k[i] ^ (i < S->api_key_len ? S->api_key[i] : 0));
    return d == 0;
}

static enum MHD_Result route(server *S, struct MHD_Connection *c, const char *url, const char *method, req_ctx *r) {
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    if (!__atomic_load_n(&S->ready, __ATOMIC_ACQUIRE)) {
        if (strcmp(url, "/health") == 0)
            return send_body(S, c, 503, strdup("{\"status\":\"loading\"}"), "application/json");
        return send_error(S, c, 503, "the model is loading", NULL);
    }
    if (strcmp(url, "/health") == 0) {
        if (!get) return send_error(S, c, 405, "use GET for /health", NULL);
        return send_body(S, c, 200, strdup("{\"status\":\"ok\"}"), "application/json");
    }
    if (S->api_key && !key_ok(S, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))
        return send_error(S, c, 401, "a valid API key is required (Authorization: Bearer KEY)", NULL);
    static const struct { const char *path; int post; } paths[] = {
        {"/v1/models", 0}, {"/metrics", 0}, {"/v1/completions", 1}, {"/v1/chat/completions", 1},
        {"/tokenize", 1}, {"/detokenize", 1}};
    int k = -1;
    for (int i = 0; i < (int)(sizeof paths / sizeof *paths); i++)
        if (strcmp(url, paths[i].path) == 0) k = i;
    if (k < 0) return send_error(S, c, 404, "unknown path", NULL);
    if (paths[k].post ? !post : !get) {
        char msg[96];
        snprintf(msg, sizeof msg, "use %s for %s", paths[k].post ? "POST" : "GET", url);
        return send_error(S, c, 405, msg, NULL);
    }
    if (r->too_big) return send_error(S, c, 413, "the request body is too large", NULL);
    char err[512];
    const char *param;
    switch (k) {
    case 0: {
        cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data"), *e = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON_AddItemToArray(data, e);
        cJSON_AddStringToObject(e, "id", S->model_id);
        cJSON_AddStringToObject(e, "object", "model");
        cJSON_AddNumberToObject(e, "created", (double)time(NULL));
        cJSON_AddStringToObject(e, "owned_by", "retnet");
        cJSON_AddStringToObject(e, "chat_template", serve_template_names[S->chat_template]);
        cJSON_AddStringToObject(e, "chat_template_source", S->template_source);
        cJSON_AddNumberToObject(e, "slots", S->n_slots);
        cJSON_AddStringToObject(e, "tokenizer", S->tok->name ? S->tok->name : "");
        cJSON_AddNumberToObject(e, "vocab", S->vocab);
        char *js = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return send_body(S, c, 200, js, "application/json");
    }
    case 1: return send_body(S, c, 200, metrics_text(S), "text/plain; version=0.0.4");
    case 2: return handle_generate(S, c, r, 0);
    case 3: return handle_generate(S, c, r, 1);
    case 4: {
        int32_t *ids;
        size_t n;
        if (parse_tokenize(S, r->body ? r->body : "", r->len, &ids, &n, err, sizeof err, &param))
            return send_error(S, c, 400, err, param);
        char *b = malloc(n * 12 + 16);
        if (b) {
            size_t o = (size_t)sprintf(b, "{\"tokens\":[");
            for (size_t i = 0; i < n; i++) o += (size_t)sprintf(b + o, "%s%d", i ? "," : "", (int)ids[i]);
            sprintf(b + o, "]}");
        }
        free(ids);
        return send_body(S, c, 200, b, "application/json");
    }
    default: {
        char *text;
        size_t tl;
        if (parse_detokenize(S, r->body ? r->body : "", r->len, &text, &tl, err, sizeof err, &param))
            return send_error(S, c, 400, err, param);
        char *b = json_content(text, tl);
        free(text);
        return send_body(S, c, 200, b, "application/json");
    }
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *S = cls;
    req_ctx *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > S->body_cap) {
            r->too_big = 1;
            return send_error(S, c, 413, "the request body is too large", NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && r->len + *upload_size > S->body_cap) {
            r->too_big = 1;
            free(r->body);
            r->body = NULL;
            r->len = 0;
        }
        if (!r->too_big) {
            if (r->len + *upload_size + 1 > r->cap) {
                size_t cap = (r->len + *upload_size + 1) * 2;
                if (cap > S->body_cap + 1) cap = S->body_cap + 1;
                char *b = realloc(r->body, cap);
                if (!b) return MHD_NO;
                r->body = b;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
            r->body[r->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(S, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)cls;
    (void)c;
    (void)t;
    req_ctx *r = *con_cls;
    if (r) { free(r->body); free(r); }
    *con_cls = NULL;
}

/* --------------------------------------------------------------- command */

static const char *basename_of(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    const char *b = p;
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '/') b = p + i + 1;
    return b;
}

int cmd_serve(int argc, char **argv) {
    const char *path = NULL, *host = "127.0.0.1", *api_key = NULL, *api_key_file = NULL, *tpl = NULL;
    int port = 8080, slots = 4, queue = 64, max_tokens = 2048, threads = 0, chunk = 256, timeout = 30, f32 = 0;
    double cache_mb = 256, max_body_mb = 1;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file or directory", 0},
                  {"host", OPT_STR, &host, 0, 0, "address to bind (IPv4)", 0},
                  {"port", OPT_INT, &port, 0, 65535, "port (0: any free port, printed)", 0},
                  {"slots", OPT_INT, &slots, 1, 1024, "concurrent generation streams (rows of the batch)", 0},
                  {"queue", OPT_INT, &queue, 0, 1 << 20, "requests waiting for a slot before 503", 0},
                  {"api-key", OPT_STR, &api_key, 0, 0, "require Authorization: Bearer KEY", 0},
                  {"api-key-file", OPT_STR, &api_key_file, 0, 0, "read the API key from a file", 0},
                  {"cache-mb", OPT_DOUBLE, &cache_mb, 0, 1 << 20, "prefix-state cache size in MB (0: off)", 0},
                  {"max-tokens", OPT_INT, &max_tokens, 1, 1e9, "cap on tokens per request (larger requests are clamped)", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "prefill piece and chunk length (as generate --chunk)", 0},
                  {"timeout", OPT_INT, &timeout, 1, 86400, "seconds an idle connection is kept", 0},
                  {"chat-template", OPT_STR, &tpl, 0, 0,
                   "chat template: plain, chatml, llama2 or mistral (default: tokenizer_config.json's if known, else plain)", 0},
                  {"max-body-mb", OPT_DOUBLE, &max_body_mb, 1e-3, 1024, "request body cap in MB (413 beyond)", 0},
                  F32_OPT(f32),
                  {0}};
    command_spec cmd = {"serve", "--model PATH [--host H] [--port P] [--slots N] [--api-key KEY] ...",
                        "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (SSE\n"
                        "streaming), /v1/models, /tokenize, /detokenize, /health, /metrics. Continuous\n"
                        "batching: every decoding stream advances in one batched step per token, prompts\n"
                        "are prefilled in --chunk pieces between steps; prompt-prefix states are cached (LRU).",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!path) die_usage("serve", "--model is required");
    if (api_key && api_key_file) die_usage("serve", "give --api-key or --api-key-file, not both");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die_usage("serve", "--host: '%s' is not an IPv4 address", host);
    if (threads) rn_set_threads(threads);

    int tpl_id = -1;
    for (int i = 0; tpl && i < TPL_COUNT; i++)
        if (strcmp(tpl, serve_template_names[i]) == 0) tpl_id = i;
    if (tpl && tpl_id < 0) die_usage("serve", "--chat-template: '%s' is not plain, chatml, llama2 or mistral", tpl);
    const char *tpl_source = "--chat-template";
    if (!tpl) {
        char why[4400];
        int found = serve_template_detect(path, &tpl_id, why, sizeof why);
        if (found < 0) fprintf(stderr, "retnet serve: %s: using plain (choose one with --chat-template)\n", why);
        if (found <= 0) tpl_id = TPL_PLAIN;
        tpl_source = found > 0 ? "tokenizer_config.json" : "default";
    }
    /* The headers alone (instant): a wrong path fails before listening. */
    rn_model_info info;
    if (rn_model_inspect(path, &info) != RN_OK) die("%s", rn_last_error());
    server *S = calloc(1, sizeof *S);
    if (!S) die("out of memory");
    if (api_key_file) {
        size_t n;
        if (rn_read_file(api_key_file, 1 << 16, &S->api_key, &n) != RN_OK) die("%s", rn_last_error());
        while (n && (S->api_key[n - 1] == '\n' || S->api_key[n - 1] == '\r' || S->api_key[n - 1] == ' ')) S->api_key[--n] = 0;
        if (!n) die_usage("serve", "--api-key-file: %s is empty", api_key_file);
    } else if (api_key) {
        if (!*api_key) die_usage("serve", "--api-key is empty");
        S->api_key = strdup(api_key);
    }
    if (S->api_key) S->api_key_len = strlen(S->api_key);
    S->chunk = chunk;
    S->chat_template = tpl_id;
    S->template_source = tpl_source;
    S->max_tokens = max_tokens;
    S->n_slots = slots;
    S->queue_cap = queue;
    S->body_cap = (size_t)(max_body_mb * 1048576);
    S->cache_cap = (size_t)(cache_mb * 1048576);
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);

    /* SIGINT/SIGTERM go to sigwait below, not to the workers. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    unsigned limit = (unsigned)(slots + queue + 32);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, on_request, S, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)timeout, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, S,
        MHD_OPTION_END);
    if (!d) die("cannot listen on %s:%d", host, port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = di ? di->port : port;
    S->model_id = basename_of(path);
    printf("listening on http://%s:%d (model %s, %d slots, cache %.0f MB)\n", host, bound, S->model_id, slots,
           cache_mb);
    fflush(stdout);
    /* Listening already: /health answers 503 until the model is loaded. */
    S->model = load_model_as_or_die(path, f32);
    /* the model directory's tokenizer.json (BOS as it says), else bytes */
    S->tok = model_tokenizer("serve", path, NULL, rn_model_config(S->model)->vocab);
    S->eos = rn_tokenizer_eos(S->tok);
    S->vocab = rn_model_config(S->model)->vocab;
    if (S->vocab < S->tok->vocab_size)
        die_usage("serve", "the model's vocabulary (%d) is smaller than the tokenizer's (%d)", S->vocab,
                  S->tok->vocab_size);
    if (sched_start(S) != 0) die("cannot start the scheduler: %s", rn_last_error());
    __atomic_store_n(&S->ready, 1, __ATOMIC_RELEASE);
    fprintf(stderr, "retnet serve: ready\n");
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "retnet serve: signal %d, stopping\n", sig);
    MHD_quiesce_daemon(d);
    sched_stop(S);
    MHD_stop_daemon(d);
    rn_tokenizer_free(S->tok);
    rn_model_free(S->model);
    free(S->api_key);
    free(S);
    return 0;
}
