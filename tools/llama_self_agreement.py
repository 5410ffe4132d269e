#!/usr/bin/env python3
"""How often does llama.cpp agree WITH ITSELF on 16-token greedy continuations?

Re-runs the greedy fixture (Tests/Fixtures/greedy.json, written by make_fixtures.py
with n_batch=512 prefill, repacked weights, no flash attention) under other,
equally valid llama.cpp configurations of the same GGUF file, and prints, per
configuration, on how many fixture prompts the continuation is identical to the
fixture's. This is the noise floor any second implementation is measured against.

Not needed to build or test the package; needs the oracle venv (see make_fixtures.py):

    .venv-oracle/bin/python tools/llama_self_agreement.py \
        --model models/gemma-3-270m-q4_k_m.gguf --fixtures Tests/Fixtures
"""
import argparse
import json
import sys

import numpy as np


def load_cases(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Runner:
    def __init__(self, model, n_threads, flash_attn, repack, one_token_prefill, type_k=None):
        import llama_cpp
        import llama_cpp.llama_cpp as low

        self.lc = llama_cpp
        original = low.llama_model_default_params

        def params():
            p = original()
            p.use_extra_bufts = repack
            return p

        low.llama_model_default_params = params
        try:
            kw = dict(model_path=model, n_ctx=2048, n_batch=512, n_ubatch=512,
                      n_threads=n_threads, n_threads_batch=n_threads,
                      flash_attn=flash_attn, verbose=False)
            if type_k is not None:
                kw["type_k"] = type_k
                kw["type_v"] = type_k
            self.llm = llama_cpp.Llama(**kw)
        finally:
            low.llama_model_default_params = original
        self.one_token_prefill = one_token_prefill
        self.n_vocab = self.llm.n_vocab()

    def logits(self):
        ptr = self.lc.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32).copy()

    def greedy(self, prompt_ids, n_new, stop_ids):
        self.llm.reset()
        if self.one_token_prefill:
            for t in prompt_ids:
                self.llm.eval([t])
        else:
            self.llm.eval(prompt_ids)
        lg = self.logits()
        out = []
        while True:
            t = int(np.argmax(lg))
            out.append(t)
            if t in stop_ids or len(out) >= n_new:
                return out
            self.llm.eval([t])
            lg = self.logits()


CONFIGS = {
    # name: (n_threads, flash_attn, repack, one_token_prefill, type_k)
    "fixture (repeat)": (2, False, True, False, None),
    "1 thread": (1, False, True, False, None),
    "prefill one token at a time": (2, False, True, True, None),
    "no weight repacking": (2, False, False, False, None),
    "flash attention": (2, True, True, False, None),
    "f32 KV cache": (2, False, True, False, 0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixtures", default="Tests/Fixtures")
    ap.add_argument("--only", default="", help="comma list of configuration names")
    args = ap.parse_args()
    cases = load_cases(f"{args.fixtures}/greedy.json")
    info = load_cases(f"{args.fixtures}/oracle_info.json")
    stop = {info["eos_id"], info["end_of_turn_id"]}
    wanted = set(filter(None, args.only.split(",")))
    for name, (threads, fa, repack, one, tk) in CONFIGS.items():
        if wanted and name not in wanted:
            continue
        r = Runner(args.model, threads, fa, repack, one, tk)
        equal = 0
        firsts = []
        for c in cases:
            got = r.greedy(c["prompt_ids"], 16, stop)
            if got == c["ids"]:
                equal += 1
            else:
                k = next((i for i, (a, b) in enumerate(zip(got, c["ids"])) if a != b), min(len(got), len(c["ids"])))
                firsts.append((k, c["margins"][k] if k < len(c["margins"]) else None))
        print(f"{name:32s} equal {equal}/{len(cases)}  first divergences (step, fixture margin): {firsts}", flush=True)
        del r


if __name__ == "__main__":
    sys.exit(main())
