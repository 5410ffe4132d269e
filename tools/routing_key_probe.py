#!/usr/bin/env python3
"""How well candidate routing keys separate paraphrases from unrelated same-template questions,
before any neuron is trained (the probe behind `KeyPooling.weighted`, README "Routing").

Writes prompt files, runs `scen dump-activations` (layer L's down-projection input at every
prompt token, and the model's mean next-token distribution over the generic prompts), then
compares poolings by cosine of standardised keys: paraphrase recall at a 0.1 % pairwise false-
positive rate against same-template questions of other subjects.

    python3 tools/routing_key_probe.py --edits ../shared/data/zsre-dev.jsonl \
        --traffic ../shared/data/zsre-scale.jsonl --limit 1000 --work /tmp/key-probe

Needs numpy and a built `scen` (.build/release/scen). Not part of the build or the tests.
"""
import argparse
import json
import os
import random
import re
import subprocess

import numpy as np

TEMPLATE = "Question: {}\\nAnswer:"  # `\n` written as two characters: dump-activations expands it


def load_acts(path, width):
    raw = open(path, "rb").read()
    off, toks, acts = 0, [], []
    while off < len(raw):
        t = int(np.frombuffer(raw, np.int32, 1, off)[0]); off += 4
        toks.append(np.frombuffer(raw, np.int32, t, off)); off += 4 * t
        acts.append(np.frombuffer(raw, np.float32, t * width, off).reshape(t, width)); off += 4 * t * width
    return toks, acts


def generic_prompts(root):
    src = open(os.path.join(root, "Sources/Core/SCEN/GenericPrompts.swift")).read()
    def arr(name):
        body = re.search(r"static let %s: \[String\] = \[(.*?)\n    \]" % name, src, re.S).group(1)
        return re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    q = arr("questions")
    return [TEMPLATE.format(x) for x in q] + q + arr("completions") + arr("requests")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", required=True)
    ap.add_argument("--traffic", required=True, help="file whose other subjects give same-template questions")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--traffic-count", type=int, default=1500)
    ap.add_argument("--layer", type=int, default=13)
    ap.add_argument("--width", type=int, default=2048, help="F of the model")
    ap.add_argument("--work", required=True)
    ap.add_argument("--scen", default=".build/release/scen")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(args.work, exist_ok=True)

    edits = [json.loads(l) for l in open(args.edits)][: args.limit]
    subjects = {c["subject"] for c in edits}
    rows = []  # (kind, case index, subject, text)
    for i, c in enumerate(edits):
        rows.append(("p", i, c["subject"], c["prompt"]))
        rows += [("r", i, c["subject"], r) for r in c["rephrases"]]
    others = [c for c in (json.loads(l) for l in open(args.traffic)) if c["subject"] not in subjects]
    random.Random(1).shuffle(others)
    rows += [("t", -1, c["subject"], c["prompt"]) for c in others[: args.traffic_count]]
    prompts = os.path.join(args.work, "prompts.txt")
    open(prompts, "w").write("".join(TEMPLATE.format(r[3].replace("\n", " ")) + "\n" for r in rows))
    generic = os.path.join(args.work, "generic.txt")
    gp = generic_prompts(root)
    open(generic, "w").write("\n".join(gp) + "\n")
    untemplated = os.path.join(args.work, "untemplated.txt")
    open(untemplated, "w").write("\n".join(p for p in gp if not p.startswith("Question: ")) + "\n")

    def dump(src, out, *extra):
        subprocess.run([args.scen, "dump-activations", "--prompts", src, "--out", out, "--layer", str(args.layer), *extra], check=True)
    dump(prompts, os.path.join(args.work, "acts.bin"))
    dump(generic, os.path.join(args.work, "generic.bin"))
    dump(untemplated, os.path.join(args.work, "untemplated.bin"), "--marginal", os.path.join(args.work, "marginal.bin"))

    toks, acts = load_acts(os.path.join(args.work, "acts.bin"), args.width)
    gtoks, gacts = load_acts(os.path.join(args.work, "generic.bin"), args.width)
    q = np.fromfile(os.path.join(args.work, "marginal.bin"), np.float32).astype(np.float64)
    kind = np.array([r[0] for r in rows]); case = np.array([r[1] for r in rows]); subj = [r[2] for r in rows]
    P, R, T = (np.where(kind == k)[0] for k in "prt")
    own = {case[i]: j for j, i in enumerate(P)}
    weights = (-np.log(q + 1e-7)) ** 2

    def evaluate(name, key):
        K = np.stack([key(toks[i], acts[i]) for i in range(len(rows))])
        G = np.stack([key(gtoks[i], gacts[i]) for i in range(len(gtoks))])
        Z = (K - G.mean(0)) / (G.std(0) + 1e-6)  # standardised with the generic pool, as the product does
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
        tau = np.quantile((Z[P] @ Z[T].T).ravel(), 0.999)
        S = Z[R] @ Z[P].T
        o = np.array([own[case[r]] for r in R])
        recall = (S[np.arange(len(R)), o] >= tau).mean()
        best = S.argmax(1)
        nearest = np.mean([best[j] == o[j] or subj[P[best[j]]] == subj[R[j]] for j in range(len(R))])
        print(f"{name:28s} paraphrase recall at 0.1 % FPR {recall:.3f}   nearest edit is its own {nearest:.3f}")

    evaluate("last token", lambda t, a: a[-1])
    evaluate("mean (after <bos>)", lambda t, a: a[1:].mean(0))
    evaluate("weighted (surprisal^2)", lambda t, a: (weights[t[1:]] @ a[1:]) / weights[t[1:]].sum())


if __name__ == "__main__":
    main()
