#!/usr/bin/env python3
"""llama.cpp reference benchmark (prefill and decode tokens/s) for the GGUF model.

Standalone: needs only llama-cpp-python (`llama_cpp`) and the stdlib. Set up the
venv tools/oracle-venv makes (.venv-oracle), then:

    .venv-oracle/bin/python bench/llama_cpp_bench.py \
        --model models/gemma-3-270m-q4_k_m.gguf --threads 2 [--prompt-file P]

Method:
  * prompt = a fixed English paragraph repeated and cut to --prompt-tokens
    (default 250) tokens incl. BOS, or the exact text of --prompt-file
    (tokenized with BOS, special=False); the exact count is reported.
  * one warm-up run (prefill + a few decode steps) is discarded.
  * prefill: KV cache cleared, eval of the whole prompt in one call
    (n_batch >= prompt length); tokens/s = prompt_tokens / seconds. Median of
    --runs (default 3).
  * decode: after the prompt, --decode-tokens (default 128) greedy tokens one
    at a time (argmax of the logits, each token fed back with a 1-token eval;
    EOS is ignored so the count is always exact); tokens/s = decode_tokens /
    seconds of the decode loop. Median of --runs.
Prints one JSON line (with the 1-minute load average before/after: run it on
an otherwise idle machine, contention distorts 2-thread figures badly).
"""
import argparse
import ctypes
import json
import os
import statistics
import time

import llama_cpp

PARAGRAPH = (
    "The river wound slowly through the valley, past fields of wheat and small "
    "stone farmhouses whose chimneys sent thin lines of smoke into the morning "
    "air. Travellers who followed its banks would reach the old market town by "
    "noon, where merchants sold bread, cheese, wool and tools from wooden stalls "
    "arranged around a fountain in the central square. "
)


def argmax(ptr, n):
    arr = (ctypes.c_float * n).from_address(ctypes.addressof(ptr.contents))
    best, bi = arr[0], 0
    for i in range(1, n):
        v = arr[i]
        if v > best:
            best, bi = v, i
    return bi


def argmax_fast(ptr, n):
    try:
        import numpy as np  # optional speed-up; the timing excludes nothing either way
        return int(np.ctypeslib.as_array(ptr, shape=(n,)).argmax())
    except ImportError:
        return argmax(ptr, n)


def main():
    ap = argparse.ArgumentParser(description="llama.cpp prefill/decode benchmark")
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-file", default=None)
    ap.add_argument("--prompt-tokens", type=int, default=250)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=2048,
        n_batch=2048,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8") as f:
            text = f.read()
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    else:
        text = PARAGRAPH
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        while len(ids) < args.prompt_tokens:
            text += PARAGRAPH
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        ids = ids[: args.prompt_tokens]
    if len(ids) + args.decode_tokens > 2048:
        raise SystemExit("prompt + decode tokens exceed n_ctx=2048")

    def prefill():
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        return time.perf_counter() - t0

    def decode(n):
        tok = argmax_fast(llama_cpp.llama_get_logits_ith(llm.ctx, -1), n_vocab)
        t0 = time.perf_counter()
        for _ in range(n):
            llm.eval([tok])
            tok = argmax_fast(llama_cpp.llama_get_logits_ith(llm.ctx, -1), n_vocab)
        return time.perf_counter() - t0

    load_before = os.getloadavg()[0]
    # warm-up
    prefill()
    decode(8)

    pre, dec = [], []
    for _ in range(args.runs):
        pre.append(prefill())
        dec.append(decode(args.decode_tokens))

    print(json.dumps({
        "engine": "llama.cpp",
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "prompt_tokens": len(ids),
        "prefill_tok_s": round(len(ids) / statistics.median(pre), 1),
        "decode_tok_s": round(args.decode_tokens / statistics.median(dec), 1),
        "decode_tokens": args.decode_tokens,
        "runs": args.runs,
        # 1-min load average before/after: with 2 threads on 2 cores, any other
        # busy process makes llama.cpp's (OpenMP) thread barriers stall and the
        # figures drop several-fold; only trust runs with a load near 0.
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }))


if __name__ == "__main__":
    main()
