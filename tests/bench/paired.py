#!/usr/bin/python3
"""Runs two `--paced` benchmark programs in turns: a step of the first, a step of
the second, and so on, then each one's final turn (the first's sgemm peak, the
second's input-only backward). The machine this runs on changes speed by up to
2x within minutes (a shared host); taken in turns, both programs' step i run
within seconds of each other, so the ratio of step i to step i is a fair sample
even when the two medians drift apart. Only one program runs at any time.

  paired.py --steps N [--warmup W] --names A,B --out-a A.json --out-b B.json -- CMD_A... -- CMD_B...

Prints each pair of steps (and its ratio) as it goes; writes each program's final
JSON line to its file, with "paired" (the per-step times after the first W warm-up
steps, default 1 when N > 2 else 0, and the median of the per-step ratios) added
to A's."""
import json
import os
import statistics
import subprocess
import sys


def fail(msg):
    sys.exit("paired.py: " + msg)


def parse(argv):
    opts, i = {}, 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] not in ("--steps", "--warmup", "--names", "--out-a", "--out-b") or i + 1 >= len(argv):
            fail("unexpected argument %r (usage: see the top of this file)" % argv[i])
        opts[argv[i][2:]] = argv[i + 1]
        i += 2
    rest = argv[i + 1:]
    usage = "usage: paired.py --steps N [--warmup W] --names A,B --out-a A.json --out-b B.json -- CMD_A... -- CMD_B..."
    if "--" not in rest or not all(k in opts for k in ("steps", "names", "out-a", "out-b")):
        fail(usage)
    names = opts["names"].split(",")
    steps = int(opts["steps"]) if opts["steps"].isdigit() else 0
    warmup = opts.get("warmup", "1" if steps > 2 else "0")
    if len(names) != 2 or steps < 1 or not warmup.isdigit() or int(warmup) >= steps:
        fail(usage + " (W < N)")
    cut = rest.index("--")
    return steps, int(warmup), names, opts["out-a"], opts["out-b"], rest[:cut], rest[cut + 1:]


def turn(proc, name):
    """Hands proc its turn and returns the JSON line it prints at the end of it."""
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    except BrokenPipeError:
        fail("%s stopped early (exit %s)" % (name, proc.wait()))
    line = proc.stdout.readline()
    if not line:
        fail("%s stopped early (exit %s)" % (name, proc.wait()))
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        fail("%s printed %r, expected a JSON line" % (name, line[:200]))


def main():
    steps, warmup, names, out_a, out_b, cmd_a, cmd_b = parse(sys.argv[1:])
    procs = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for c in (cmd_a, cmd_b)]
    ms = [[], []]
    for s in range(1, steps + 1):
        for k in (0, 1):
            j = turn(procs[k], names[k])
            if j.get("step") != s:
                fail("%s: expected step %d, got %r" % (names[k], s, j))
            ms[k].append(j["ms"])
        print("  step %d: %s %.0f ms, %s %.0f ms (%.2fx)" % (s, names[0], ms[0][-1], names[1], ms[1][-1],
                                                            ms[0][-1] / ms[1][-1]), flush=True)
    finals = [turn(procs[k], names[k]) for k in (0, 1)]
    for k in (0, 1):
        if procs[k].wait() != 0:
            fail("%s exited with %d" % (names[k], procs[k].returncode))
    warm = slice(warmup, None)  # the first step pays for first-touch allocation
    ratios = [a / b for a, b in zip(ms[0][warm], ms[1][warm])]
    finals[0]["paired"] = {"ms_a": ms[0][warm], "ms_b": ms[1][warm], "ratios": ratios,
                           "median_ratio": statistics.median(ratios)}
    for path, j in ((out_a, finals[0]), (out_b, finals[1])):
        with open(path + ".tmp", "w") as f:  # written whole, then renamed into place
            f.write(json.dumps(j) + "\n")
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
