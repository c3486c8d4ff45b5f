#!/usr/bin/env python3
"""layers.py: no two source files call each other in a loop.

Reads the object files of each program (the `nm` of every .o under a CMake target's
directory), draws an arrow A -> B when A uses a symbol that B defines, and fails when
the arrows of gateway/, router/, persister/ or common/ form a cycle, or when a file calls
into a higher layer of its process (RANKS): every call must go down the layers or
through a callback registered at creation (docs/architecture.md).

    scripts/layers.py BUILD_DIR            # every cycle, exit 1 when there is one
    scripts/layers.py BUILD_DIR --graph    # also the arrows, file by file
"""
import os
import subprocess
import sys

TARGETS = ["natter", "natter-gateway", "natter-router", "natter-persister"]
# Layers of a process, lowest first (docs/architecture.md): a file may call files of its
# own layer or lower, never higher. A path matches the longest prefix listed.
RANKS = {
    "gateway/gw.c": 0,             # the context every layer reads
    "gateway/transport/": 0,
    "gateway/core/": 1,
    "gateway/dialect/": 2,
    "gateway/http/": 2,
    "gateway/main.c": 3,
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True,
                         check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) >= 3}
    out = subprocess.run(["nm", "-u", obj], capture_output=True, text=True, check=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.strip()}
    return defined, used


def objects(build):
    objs = {}
    for t in TARGETS:
        d = os.path.join(build, "CMakeFiles", t + ".dir")
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".c.o"):
                    p = os.path.join(root, f)
                    src = os.path.relpath(p, d)[:-2]  # gateway/conn.c
                    if os.path.exists(os.path.join(ROOT, src)):   # not a removed file's
                        objs[src] = p
    return objs


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def rank(src):
    best = None
    for prefix, r in RANKS.items():
        if src.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, r)
    return best[1] if best else None


def upward(graph):
    """Arrows from a file to a file of a higher layer."""
    out = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            ra, rb = rank(a), rank(b)
            if ra is not None and rb is not None and rb > ra:
                out.append((a, b))
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    objs = objects(build)
    if not objs:
        print(f"layers: no object files under {build}/CMakeFiles: build first", file=sys.stderr)
        return 2
    syms = {src: symbols(p) for src, p in objs.items()}
    # a symbol is owned by the file of the same process (or common/) that defines it
    graph = {}
    for src, (_, used) in syms.items():
        proc = src.split("/")[0]
        for dst, (defined, _) in syms.items():
            if dst == src:
                continue
            dproc = dst.split("/")[0]
            if dproc not in (proc, "common"):
                continue
            if used & defined:
                graph.setdefault(src, set()).add(dst)
    if "--graph" in sys.argv:
        for src in sorted(graph):
            print(f"{src} -> {', '.join(sorted(graph[src]))}")
    found = cycles(graph)
    for comp in found:
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph.get(a, ())) if b in comp]
        print(f"layers: files calling each other in a loop: {' '.join(comp)}")
        for e in edges:
            print(f"    {e}")
    up = upward(graph)
    for a, b in up:
        print(f"layers: {a} calls up into {b}")
    if found or up:
        return 1
    print(f"layers: {len(objs)} files, {sum(len(v) for v in graph.values())} arrows, no loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
