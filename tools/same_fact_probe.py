#!/usr/bin/env python3
"""Which signals tell "the same fact in other words" from "another question about the same
subject" and "the same question about another subject" (the probe behind `SameFact`, README
"Routing"). Offline: no neuron is trained.

Pairs:
  same fact      two prompts of one fact in --edits (same subject and original answer);
  other question a subject of --edits that appears twice, in question shapes of --shapes
                 (its cases' prompts with their subject replaced); some of these shapes really
                 ask the same question, so this rate overstates the harm;
  real other     the subjects of --shapes with two different facts;
  other subject  pairs of --edits prompts with different subjects and weighted-key cosine >= 0.5.
Signals: weighted-key cosine (standardised with the generic pool, as the product does), the
last-token row's cosine (raw, centred by the generic pool's mean, standardised), the names,
numbers and rarest-token test, and the overlap of the model's next-token distributions after each prompt.

    python3 tools/same_fact_probe.py --edits ../shared/data/zsre-dev.jsonl \
        --shapes ../shared/data/zsre-scale.jsonl --limit 1000 --work /tmp/same-fact

Needs numpy and a built `scen` (.build/release/scen). Not part of the build or the tests.
"""
import argparse
import json
import os
import random
import re
import subprocess

import numpy as np

from routing_key_probe import TEMPLATE, generic_prompts, load_acts


def load_next(path, n, k):
    raw = open(path, "rb").read()
    out = []
    for i in range(n):
        o = i * k * 8
        ids = np.frombuffer(raw, np.int32, k, o)
        pr = np.frombuffer(raw, np.float32, k, o + 4 * k)
        out.append(dict(zip(ids.tolist(), pr.tolist())))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", required=True)
    ap.add_argument("--shapes", required=True, help="file whose question shapes and one-subject-two-facts pairs are used")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--layer", type=int, default=13)
    ap.add_argument("--width", type=int, default=2048, help="F of the model")
    ap.add_argument("--top", type=int, default=32)
    ap.add_argument("--work", required=True)
    ap.add_argument("--scen", default=".build/release/scen")
    ap.add_argument("--reuse", action="store_true", help="keep the activations already in --work")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(args.work, exist_ok=True)

    edits = [json.loads(l) for l in open(args.edits)][: args.limit]
    shapes = [json.loads(l) for l in open(args.shapes)]
    rows = []  # (kind, fact, subject, text)
    for c in edits:
        rows.append(("p", c["subject"] + "|" + c["original_answer"], c["subject"], c["prompt"]))
    shape = [c["prompt"].replace(c["subject"], "{}") for c in shapes if c["subject"] in c["prompt"]]
    random.Random(3).shuffle(shape)
    count = {}
    for c in edits:
        count[c["subject"]] = count.get(c["subject"], 0) + 1
    k = 0
    for s in sorted(s for s, n in count.items() if n > 1):
        for _ in range(3):
            rows.append(("n", None, s, shape[k % len(shape)].format(s)))
            k += 1
    by = {}
    for c in shapes:
        by.setdefault(c["subject"], []).append(c)
    for s, v in by.items():
        if len(v) > 1:
            rows += [("s", s + "|" + c["original_answer"], s, c["prompt"]) for c in v]

    prompts, generic = os.path.join(args.work, "prompts.txt"), os.path.join(args.work, "generic.txt")
    open(prompts, "w").write("".join(TEMPLATE.format(r[3].replace("\n", " ")) + "\n" for r in rows))
    gp = generic_prompts(root)
    open(generic, "w").write("\n".join(gp) + "\n")
    untemplated = os.path.join(args.work, "untemplated.txt")
    open(untemplated, "w").write("\n".join(p for p in gp if not p.startswith("Question: ")) + "\n")

    def dump(src, out, *extra):
        if args.reuse and os.path.exists(out):
            return
        subprocess.run([args.scen, "dump-activations", "--prompts", src, "--out", out, "--layer", str(args.layer), *extra], check=True)
    dump(prompts, os.path.join(args.work, "acts.bin"), "--next-token", os.path.join(args.work, "next.bin"), "--top", str(args.top))
    dump(generic, os.path.join(args.work, "generic.bin"))
    dump(untemplated, os.path.join(args.work, "untemplated.bin"), "--marginal", os.path.join(args.work, "marginal.bin"))

    toks, acts = load_acts(os.path.join(args.work, "acts.bin"), args.width)
    gtoks, gacts = load_acts(os.path.join(args.work, "generic.bin"), args.width)
    nxt = load_next(os.path.join(args.work, "next.bin"), len(rows), args.top)
    q = np.fromfile(os.path.join(args.work, "marginal.bin"), np.float32).astype(np.float64)
    weights = (-np.log(q + 1e-7)) ** 2

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def standardised(key):
        K = np.stack([key(toks[i], acts[i]) for i in range(len(rows))])
        G = np.stack([key(gtoks[i], gacts[i]) for i in range(len(gtoks))])
        return unit((K - G.mean(0)) / (G.std(0) + 1e-6))

    Zw = standardised(lambda t, a: (weights[t[1:]] @ a[1:]) / weights[t[1:]].sum())
    L = np.stack([a[-1] for a in acts])
    G = np.stack([a[-1] for a in gacts])
    last = {"raw": unit(L), "centred": unit(L - G.mean(0)), "standardised": unit((L - G.mean(0)) / (G.std(0) + 1e-6))}

    def rarest(t):
        return max(t[1:].tolist(), key=lambda x: weights[x])

    def names(text):
        """Words that start with a capital or a digit, and those of them that open a sentence."""
        proper, initial, opens = set(), set(), True
        for m in re.finditer(r"[^\W_]+|[.?!:\n]", text):
            w = m.group()
            if w in ".?!:\n":
                opens = True
                continue
            if w[0].isupper() or w[0].isdigit():
                proper.add(w)
                if opens:
                    initial.add(w)
            opens = False
        return proper, initial

    def same_subject(i, j):
        (pa, ia), (pb, ib) = names(rows[i][3]), names(rows[j][3])
        return (pa ^ pb) <= (ia | ib) and rarest(toks[i]) in toks[j][1:] and rarest(toks[j]) in toks[i][1:]

    def overlap(i, j):
        a, b = nxt[i], nxt[j]
        return sum(np.sqrt(a[t] * b[t]) for t in a if t in b)

    kind = [r[0] for r in rows]
    P = [i for i in range(len(rows)) if kind[i] == "p"]
    S = [i for i in range(len(rows)) if kind[i] == "s"]
    pairs = {
        "same fact": [(i, j) for a, i in enumerate(P) for j in P[a + 1:] if rows[i][1] == rows[j][1] and rows[i][3] != rows[j][3]],
        "other question": [(i, j) for i in P for j in range(len(rows)) if kind[j] == "n" and rows[j][2] == rows[i][2]],
        "real other": [(i, j) for a, i in enumerate(S) for j in S[a + 1:] if rows[i][2] == rows[j][2]],
    }
    C = Zw[P] @ Zw[P].T
    pairs["other subject"] = [(P[a], P[b]) for a, b in zip(*np.where(np.triu(C, 1) >= 0.5)) if rows[P[a]][2] != rows[P[b]][2]]
    print("pairs:", {n: len(p) for n, p in pairs.items()})
    for n, p in pairs.items():
        w = [Zw[i] @ Zw[j] for i, j in p]
        lc = [last["centred"][i] @ last["centred"][j] for i, j in p]
        ov = [overlap(i, j) for i, j in p]
        print(f"{n:15s} weighted cos q10/50/90 {np.round(np.quantile(w, [.1, .5, .9]), 2)}  centred last-token cos "
              f"{np.round(np.quantile(lc, [.1, .5, .9]), 2)}  next-token overlap {np.round(np.quantile(ov, [.1, .5, .9]), 2)}")
    print("linked share (other subject: count) with weighted cos >= 0.6 and the names/rarest-token test:")
    for name, Zl in last.items():
        for cut in ([0.6, 0.7, 0.8] if name != "raw" else [0.8, 0.9]):
            def linked(n):
                return [Zw[i] @ Zw[j] >= 0.6 and same_subject(i, j) and Zl[i] @ Zl[j] >= cut for i, j in pairs[n]]
            print(f"  last-token {name:12s} >= {cut}: same fact {np.mean(linked('same fact')):.3f}  other question "
                  f"{np.mean(linked('other question')):.3f}  real other {sum(linked('real other'))}/{len(pairs['real other'])}  "
                  f"other subject {sum(linked('other subject'))}")


if __name__ == "__main__":
    main()
