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
"""
import json
import sys


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))  # strict: responses are valid UTF-8


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
    return 2


sys.exit(main())
