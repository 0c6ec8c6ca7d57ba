#!/usr/bin/env python3
"""serve_check.py: exact checks of `retnet serve` answers for
tests/cli/test_serve.sh. The byte tokenizer of an untrained model emits
arbitrary bytes; the server sends them as valid UTF-8 (ill-formed sequences
become U+FFFD, as Python's errors="replace"; NUL bytes are left out), so
generate's raw bytes are compared after the same replacement.

  serve_check.py text FILE            completion/chat text of a response, as bytes on stdout
  serve_check.py same RESP GEN PROMPT  RESP's text == GEN's output minus PROMPT and the final newline
  serve_check.py sse FILE TEXTFILE    FILE is a well-formed SSE stream whose text equals TEXTFILE's bytes
  serve_check.py stop FILE            prints a 2-byte ASCII stop string taken from FILE's text (or nothing)
  serve_check.py cut FILE STOP FULL   FILE's text is FULL's text before the first STOP, finish "stop"
  serve_check.py logprobs FILE N      a greedy completion's logprobs (legacy shape): one entry per
                                      token, top N sorted, the token's own equal to the top one
  serve_check.py chatlogprobs FILE N  the same for chat's shape; the tokens' bytes make up the text
  serve_check.py lpsame A B           A's and B's (chat or completion) token logprobs are equal
  serve_check.py choices FILE N MAX   N choices indexed 0..N-1 of MAX tokens each, usage their sum
  serve_check.py ssen STREAM RESP     a stream of several choices: per index the text (and the
                                      logprobs) of RESP's choice, each with its finish_reason
  serve_check.py conc URL KEY OUT BODY...  POSTs the bodies to URL at once (one thread each),
                                      response i into OUTi (1-based)
"""
import math
import json
import sys


def load(path):
    with open(path, "rb") as f:
        # strict: responses are valid UTF-8; objects as pairs lists where
        # keys may repeat (top_logprobs of byte tokens that all print U+FFFD)
        return json.loads(f.read().decode("utf-8"), object_pairs_hook=pairs)


class Pairs(dict):
    pass


def pairs(kv):
    d = Pairs(kv)
    d.items_list = kv
    return d


def token_lps(o):
    """(choice index, list of the tokens' logprobs) of every choice."""
    out = {}
    for c in o["choices"]:
        lp = c["logprobs"]
        out[c["index"]] = [e["logprob"] for e in lp["content"]] if "content" in lp else list(lp["token_logprobs"])
    return out


def sorted_desc(v):
    return all(v[i] >= v[i + 1] for i in range(len(v) - 1))


def fail(msg):
    print(msg, file=sys.stderr)
    return 1


def b(s):
    return s.encode("utf-8")


def text_of(o):
    c = o["choices"][0]
    return b(c["message"]["content"] if "message" in c else c["text"])


def main():
    cmd = sys.argv[1]
    if cmd == "text":
        sys.stdout.buffer.write(text_of(load(sys.argv[2])))
        return 0
    if cmd == "same":
        got = text_of(load(sys.argv[2]))
        gen = open(sys.argv[3], "rb").read()
        prompt = sys.argv[4].encode()
        if not gen.startswith(prompt) or not gen.endswith(b"\n"):
            print("generate output malformed", file=sys.stderr)
            return 1
        want = gen[len(prompt):-1].decode("utf-8", "replace").replace("\0", "").encode()
        if got != want:
            print("server %r != generate %r" % (got, want), file=sys.stderr)
            return 1
        return 0
    if cmd == "sse":
        raw = open(sys.argv[2], "rb").read().decode("utf-8")
        want = open(sys.argv[3], "rb").read()
        events = raw.split("\n\n")
        if events[-1] != "":
            print("stream does not end with a blank line", file=sys.stderr)
            return 1
        events = events[:-1]
        if events[-1] != "data: [DONE]":
            print("stream does not end with [DONE]: %r" % events[-1:], file=sys.stderr)
            return 1
        text, finish = b"", None
        for e in events[:-1]:
            if not e.startswith("data: "):
                print("bad event %r" % e, file=sys.stderr)
                return 1
            o = json.loads(e[6:])
            if not o["choices"]:  # the usage chunk of stream_options.include_usage
                continue
            c = o["choices"][0]
            t = c.get("delta", {}).get("content") if "delta" in c else c.get("text")
            text += b(t or "")
            finish = c.get("finish_reason") or finish
        if text != want or finish not in ("stop", "length"):
            print("stream text %r != %r (finish %r)" % (text, want, finish), file=sys.stderr)
            return 1
        return 0
    if cmd == "stop":
        t = text_of(load(sys.argv[2]))
        for i in range(3, len(t) - 1):
            s = t[i:i + 2]
            if all(0x21 <= c < 0x7f and c not in (0x22, 0x5c) for c in s):
                sys.stdout.write(s.decode())
                return 0
        return 0
    if cmd == "cut":
        o = load(sys.argv[2])
        stop = sys.argv[3].encode()
        full = text_of(load(sys.argv[4]))
        want = full[:full.find(stop)]
        got = text_of(o)
        if got != want or o["choices"][0]["finish_reason"] != "stop":
            print("stop: %r != %r (finish %r)" % (got, want, o["choices"][0]["finish_reason"]), file=sys.stderr)
            return 1
        return 0
    if cmd == "logprobs":
        o, n = load(sys.argv[2]), int(sys.argv[3])
        lp = o["choices"][0]["logprobs"]
        k = o["usage"]["completion_tokens"]
        if not all(len(lp[f]) == k for f in ("tokens", "token_logprobs", "top_logprobs", "text_offset")):
            return fail("logprobs: not one entry per token (%d): %r" % (k, lp))
        if lp["text_offset"][0] != 0 or not all(a <= b for a, b in zip(lp["text_offset"], lp["text_offset"][1:])):
            return fail("text_offset %r" % lp["text_offset"])
        for own, top in zip(lp["token_logprobs"], lp["top_logprobs"]):
            v = [x for _, x in top.items_list]
            if len(v) != n or not sorted_desc(v) or abs(own - v[0]) > 1e-6 or own > 0 or sum(map(math.exp, v)) > 1 + 1e-6:
                return fail("logprobs: token %r, top %r (top %d)" % (own, top.items_list, n))
        return 0
    if cmd == "chatlogprobs":
        o, n = load(sys.argv[2]), int(sys.argv[3])
        c = o["choices"][0]
        ents = c["logprobs"]["content"]
        if len(ents) != o["usage"]["completion_tokens"]:
            return fail("chat logprobs: %d entries for %d tokens" % (len(ents), o["usage"]["completion_tokens"]))
        raw = bytes(x for e in ents for x in e["bytes"])
        if raw.decode("utf-8", "replace").replace("\0", "") != c["message"]["content"]:
            return fail("chat logprobs: bytes %r do not make up the text %r" % (raw, c["message"]["content"]))
        for e in ents:
            v = [t["logprob"] for t in e["top_logprobs"]]
            if len(v) != n or not sorted_desc(v) or abs(e["logprob"] - v[0]) > 1e-6 or e["logprob"] > 0:
                return fail("chat logprobs: %r" % e)
        return 0
    if cmd == "lpsame":
        a, b2 = token_lps(load(sys.argv[2])), token_lps(load(sys.argv[3]))
        if a != b2:
            return fail("logprobs differ: %r != %r" % (a, b2))
        return 0
    if cmd == "choices":
        o, n, mx = load(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        idx = [c["index"] for c in o["choices"]]
        if idx != list(range(n)) or any(c["finish_reason"] != "length" for c in o["choices"]):
            return fail("choices: %r" % o["choices"])
        if o["usage"]["completion_tokens"] != n * mx:
            return fail("choices: usage %r for %d x %d" % (o["usage"], n, mx))
        return 0
    if cmd == "echolp":
        # echo with logprobs: one entry per prompt token then per generated
        # one; the first has none; entry i (i >= 1) is what a request for
        # the prompt's first i tokens reports for its first token
        o, n, ntok = load(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        c = o["choices"][0]
        lp = c["logprobs"]
        k = ntok + o["usage"]["completion_tokens"]
        if not all(len(lp[f]) == k for f in ("tokens", "token_logprobs", "top_logprobs", "text_offset")):
            return fail("echo logprobs: not one entry per token (%d): %r" % (k, lp))
        if lp["token_logprobs"][0] is not None or lp["top_logprobs"][0] is not None:
            return fail("echo logprobs: the first prompt token has a logprob: %r" % lp["token_logprobs"][:2])
        if b("".join(lp["tokens"])) != b(c["text"]) or lp["text_offset"] != sorted(lp["text_offset"]):
            return fail("echo logprobs: tokens %r / offsets %r do not make up %r" % (lp["tokens"], lp["text_offset"], c["text"]))
        for arg in sys.argv[5:]:
            i, path = arg.split("=")
            one = load(path)["choices"][0]["logprobs"]
            want, got = one["top_logprobs"][0].items_list, lp["top_logprobs"][int(i)].items_list
            if len(got) != n or [t for t, _ in got] != [t for t, _ in want] or \
                    any(abs(x - y) > 1e-4 for (_, x), (_, y) in zip(got, want)):
                return fail("echo logprobs: entry %s %r != %r" % (i, got, want))
        return 0
    if cmd == "prompts":
        # a request of several prompts (n choices each) against one
        # request per prompt: choice q n + k is prompt q's text
        o, n, single = load(sys.argv[2]), int(sys.argv[3]), [load(f) for f in sys.argv[4:]]
        idx = [c["index"] for c in o["choices"]]
        if idx != list(range(n * len(single))):
            return fail("prompts: indices %r" % idx)
        for c in o["choices"]:
            want = text_of(single[c["index"] // n])
            if b(c["text"]) != want:
                return fail("prompts: choice %d %r != %r" % (c["index"], c["text"], want))
        u = o["usage"]
        if u["prompt_tokens"] != sum(x["usage"]["prompt_tokens"] for x in single) or \
                u["completion_tokens"] != n * sum(x["usage"]["completion_tokens"] for x in single):
            return fail("prompts: usage %r" % u)
        return 0
    if cmd == "ssen":
        raw = open(sys.argv[2], "rb").read().decode("utf-8")
        resp = load(sys.argv[3])
        events = raw.split("\n\n")
        if events[-2:] != ["data: [DONE]", ""]:
            return fail("stream does not end with [DONE]")
        text, fin, lps = {}, {}, {}
        for e in events[:-2]:
            o = json.loads(e[6:], object_pairs_hook=pairs)
            for c in o["choices"]:
                i = c["index"]
                t = c.get("delta", {}).get("content") if "delta" in c else c.get("text")
                text[i] = text.get(i, "") + (t or "")
                if c.get("finish_reason"):
                    fin[i] = c["finish_reason"]
                if c.get("logprobs"):
                    lps.setdefault(i, []).extend(token_lps({"choices": [c]})[i])
        want = {c["index"]: c.get("message", {}).get("content") if "message" in c else c["text"] for c in resp["choices"]}
        wfin = {c["index"]: c["finish_reason"] for c in resp["choices"]}
        if text != want or fin != wfin:
            return fail("stream choices %r %r != %r %r" % (text, fin, want, wfin))
        if resp["choices"][0].get("logprobs") and lps != token_lps(resp):
            return fail("stream logprobs %r != %r" % (lps, token_lps(resp)))
        return 0
    if cmd == "conc":
        import threading
        import urllib.request
        url, key, out, bodies = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

        def post(i, body):
            r = urllib.request.Request(url, data=body.encode(), headers={
                "Authorization": "Bearer " + key, "Content-Type": "application/json"})
            with urllib.request.urlopen(r, timeout=60) as f, open("%s%d" % (out, i + 1), "wb") as w:
                w.write(f.read())
        th = [threading.Thread(target=post, args=(i, b)) for i, b in enumerate(bodies)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        return 0
    return 2


sys.exit(main())
