#!/usr/bin/env bash
# The layers stay apart: no two core files need each other (the include graph of core/ has no
# cycle), and core reads no environment (the program reads it once in app/ and passes it on).
source tests/cli/lib.sh

check core_include_graph_has_no_cycle python3 - <<'PY'
import glob, os, re, sys
deps = {}
for f in glob.glob("core/*.c") + glob.glob("core/*.h"):
    me = os.path.splitext(os.path.basename(f))[0]
    for inc in re.findall(r'^\s*#\s*include\s+"([^"/]+)\.h"', open(f, errors="replace").read(), re.M):
        if inc != me and os.path.exists("core/%s.h" % inc):
            deps.setdefault(me, set()).add(inc)
state, path, cycles = {}, [], []
def visit(u):
    state[u] = 1
    path.append(u)
    for v in sorted(deps.get(u, ())):
        if state.get(v) == 1:
            cycles.append(path[path.index(v):] + [v])
        elif not state.get(v):
            visit(v)
    path.pop()
    state[u] = 2
for u in sorted(deps):
    if not state.get(u):
        visit(u)
for c in cycles:
    print("    cycle: " + " -> ".join(c), file=sys.stderr)
sys.exit(1 if cycles else 0)
PY

check core_reads_no_environment sh -c '! grep -n "getenv\|secure_getenv\|environ\b" core/*.c core/*.h'
