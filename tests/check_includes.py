#!/usr/bin/env python3
"""Checks the include graph of src/ and cli/ (docs/ARCHITECTURE.md).

A module is a header and the .c file of the same name. Module A depends on
module B when A's header or A's .c file includes B's header. Fails (exit 1,
one line per problem) on a dependency cycle, or when a cli/ file includes a
header of src/: the command-line tool uses the public headers only.
Prints "N passed, N failed" like the other tests."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for top in ("src", "cli"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def resolve(src, inc):
    """The repository path of a quoted include, as the compiler finds it."""
    for base in (os.path.dirname(src), "include", "src", "cli"):
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.exists(os.path.join(ROOT, p)):
            return p
    return None


def module(path):
    return os.path.splitext(path)[0]


def main():
    graph, problems, checks = {}, [], 0
    for src in sources():
        text = open(os.path.join(ROOT, src), encoding="utf-8").read()
        for inc in INCLUDE.findall(text):
            dst = resolve(src, inc)
            checks += 1
            if dst is None:
                problems.append(f"{src}: include \"{inc}\" not found")
                continue
            if src.startswith("cli/") and dst.startswith("src/"):
                problems.append(f"{src}: includes {dst}; the CLI may use include/ only")
            a, b = module(src), module(dst)
            if a != b and not dst.startswith("include/"):
                graph.setdefault(a, set()).add(b)
    # Cycles: depth-first search with colours.
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):] + [m]
                problems.append("include cycle: " + " -> ".join(cyc))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    for p in problems:
        print("FAIL:", p)
    print(f"{checks} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
