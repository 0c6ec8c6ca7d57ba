#!/usr/bin/env python3
"""serve_bench.py: figures of a running `retnet serve` (stdlib only).

  python3 bench/serve_bench.py http://127.0.0.1:PORT [--tokens 64] [--streams 1,4] [--prefix 2000]

Aggregate generated tokens/s with C concurrent greedy requests (each
--tokens long), and the time to first token of a streamed request whose
--prefix-token prompt is new (a miss) against the same prompt again (its
prefix states come from the cache)."""
import argparse
import json
import threading
import time
import urllib.request


def post(url, body, stream=False):
    r = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(r, timeout=600)


def completion(base, prompt, n, out):
    with post(base + "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0}) as f:
        out.append(json.load(f)["usage"]["completion_tokens"])


def ttft(base, prompt):
    t0 = time.perf_counter()
    with post(base + "/v1/completions", {"prompt": prompt, "max_tokens": 4, "temperature": 0, "stream": True}) as f:
        for line in f:
            if line.startswith(b"data: {"):
                return time.perf_counter() - t0
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--prefix", type=int, default=2000)
    a = ap.parse_args()
    base = a.url.rstrip("/")
    completion(base, "warm up", 4, [])
    one = None
    for c in [int(x) for x in a.streams.split(",")]:
        got = []
        th = [threading.Thread(target=completion, args=(base, "Stream %d says" % i, a.tokens, got)) for i in range(c)]
        t0 = time.perf_counter()
        for t in th: t.start()
        for t in th: t.join()
        dt = time.perf_counter() - t0
        tps = sum(got) / dt
        one = one or tps
        print("streams %3d: %6d tokens in %6.2f s = %8.1f tok/s (x%.2f of one stream)" % (c, sum(got), dt, tps, tps / one))
    sysp = ("You are a careful assistant. Answer briefly and precisely. " * 64)[: a.prefix - 20]
    for k in range(3):
        p = "[%d] " % k + sysp + " user: hi"
        miss = ttft(base, p)
        hit = ttft(base, p)
        print("prompt %d tokens: time to first token, miss %.1f ms, hit %.1f ms (x%.1f)" % (len(p), miss * 1e3, hit * 1e3, miss / hit))


main()
