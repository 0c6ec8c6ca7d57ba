/* fuzz_serve.c: the request bodies of `retnet serve` (cli/serve_api.c): the
 * first byte picks the endpoint (completions, chat completions, tokenize,
 * detokenize) and the chat template, the rest is the body. Properties, for every input:
 * - no crash, leak or undefined behaviour;
 * - a refusal is 400 with a message (and the request holds nothing);
 * - an accepted generation request has 1+ prompt tokens inside the model's
 *   vocabulary, 0 <= max_tokens <= the server's cap, at most 4 non-empty
 *   stop strings of at most 256 bytes, 1 <= n <= the server's slots,
 *   logprobs -1 (none) to 20, a valid sampler config; a completion with
 *   an array of prompts gives 1-32 such requests, alike but for the prompt,
 *   each owning its stop strings; the response JSON and SSE chunks (with
 *   logprobs where asked) can be built. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include "serve.h"

#include <math.h>
#include <string.h>

static server S;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!S.tok) {
        if (rn_tokenizer_byte_create(&S.tok) != RN_OK) fuzz_fail("tokenizer", rn_last_error());
        S.vocab = 300;
        S.max_tokens = 64;
        S.model_id = "fuzz";
        S.eos = -1;
        S.n_slots = 4;
    }
    if (size < 1) return 0;
    int which = data[0] % 4;
    S.chat_template = (data[0] / 4) % TPL_COUNT;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char err[512] = "";
    const char *param = NULL;
    if (which <= 1) {
        gen_request rqs[SERVE_MAX_PROMPTS];
        int nrq = -1;
        int st = parse_completion(&S, body, len, which, rqs, &nrq, err, sizeof err, &param);
        if (st) {
            if (st != 400 || !err[0]) fuzz_fail("refusal", "not a 400 with a message");
            if (nrq != 0 || rqs[0].prompt || rqs[0].n_stop) fuzz_fail("refusal", "left buffers behind");
            return 0;
        }
        if (nrq < 1 || nrq > SERVE_MAX_PROMPTS || (which == 1 && nrq != 1)) fuzz_fail("accepted", "prompt count");
        /* the responses of jobs whose choices hold the body's bytes as
         * their output, with 4 logprob entries of prompt tokens */
        sjob jobs[SERVE_MAX_PROMPTS], *jp[SERVE_MAX_PROMPTS];
        static schoice ch[SERVE_MAX_PROMPTS][SERVE_MAX_N];
        static serve_lp lp[SERVE_MAX_PROMPTS][4];
        memset(jobs, 0, sizeof jobs);
        memset(ch, 0, sizeof ch);
        memset(lp, 0, sizeof lp);
        for (int q = 0; q < nrq; q++) {
            gen_request *rq = &rqs[q];
            if (rq->n_prompt < 1 || !rq->prompt) fuzz_fail("accepted", "no prompt");
            for (int i = 0; i < rq->n_prompt; i++)
                if (rq->prompt[i] < 0 || rq->prompt[i] >= S.vocab) fuzz_fail("accepted", "prompt token out of range");
            if (rq->max_tokens < 0 || rq->max_tokens > S.max_tokens) fuzz_fail("accepted", "max_tokens out of range");
            if (rq->n_stop > SERVE_MAX_STOP) fuzz_fail("accepted", "too many stop strings");
            if (rq->n < 1 || rq->n > S.n_slots) fuzz_fail("accepted", "n out of range");
            if (rq->logprobs < -1 || rq->logprobs > SERVE_MAX_LOGPROBS) fuzz_fail("accepted", "logprobs out of range");
            for (int i = 0; i < rq->n_stop; i++)
                if (!rq->stop[i][0] || strlen(rq->stop[i]) > SERVE_STOP_MAX_LEN) fuzz_fail("accepted", "bad stop string");
            if (q && (rq->n != rqs[0].n || rq->n_stop != rqs[0].n_stop || (rq->n_stop && rq->stop[0] == rqs[0].stop[0])))
                fuzz_fail("accepted", "the prompts' requests differ beyond the prompt, or share stop strings");
            rn_sampler *sm;
            if (rn_sampler_create(S.vocab, &rq->sc, &sm) != RN_OK) fuzz_fail("accepted", rn_last_error());
            rn_sampler_free(sm);
            for (int i = 0; i < 4; i++) {
                lp[q][i].id = rq->prompt[i % rq->n_prompt];
                lp[q][i].offset = (size_t)i;
                for (int k = 0; k < SERVE_MAX_LOGPROBS; k++)
                    lp[q][i].top[k] = (serve_alt){(int32_t)(k * 13 % S.vocab), -k};
            }
            jobs[q].rq = *rq;
            if (wants_prompt_lp(rq)) {
                if (!(jobs[q].prompt_lp = calloc((size_t)rq->n_prompt, sizeof(serve_lp)))) fuzz_fail("echo", "out of memory");
                jobs[q].prompt_lp[0].lp = NAN;
                for (int i = 0; i < rq->n_prompt; i++) jobs[q].prompt_lp[i].id = rq->prompt[i];
            }
            jobs[q].ch = ch[q];
            jobs[q].ok = 1;
            jp[q] = &jobs[q];
            for (int k = 0; k < rq->n; k++) {
                ch[q][k].out = (char *)body;
                ch[q][k].len = len;
                ch[q][k].n_gen = 1;
                ch[q][k].finish = "stop";
                ch[q][k].lp = lp[q];
                ch[q][k].n_lp = rq->logprobs >= 0 ? 4 : 0;
            }
        }
        const gen_request *last = &rqs[nrq - 1];
        char *r = json_result(&S, jp, nrq, 1, 2),
             *c = sse_chunk(&S, jp[nrq - 1], nrq * last->n - 1, 1, 2, body, len, lp[nrq - 1],
                            last->logprobs >= 0 ? 4 : 0, NULL, 1, 1),
             *u = sse_usage(&S, jp, nrq, 1, 2);
        if (!r || !c || !u) fuzz_fail("responses", "NULL");
        free(r);
        free(c);
        free(u);
        for (int q = 0; q < nrq; q++) {
            free(jobs[q].prompt_lp);
            gen_request_free(&rqs[q]);
        }
    } else if (which == 2) {
        int32_t *ids;
        size_t n;
        if (parse_tokenize(&S, body, len, &ids, &n, err, sizeof err, &param)) {
            if (!err[0]) fuzz_fail("tokenize", "a refusal without a message");
            return 0;
        }
        free(ids);
    } else {
        char *text;
        size_t n;
        if (parse_detokenize(&S, body, len, &text, &n, err, sizeof err, &param)) {
            if (!err[0]) fuzz_fail("detokenize", "a refusal without a message");
            return 0;
        }
        char *js = json_content(text, n);
        if (!js) fuzz_fail("detokenize", "no JSON");
        free(js);
        free(text);
    }
    return 0;
}
