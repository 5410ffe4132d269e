#!/usr/bin/env python3
"""Float64 numpy reference forward pass of Gemma 3 (270M GGUF) -> reference_f64.json.

Why: llama.cpp is not an exact oracle. It quantises activations to Q8 for its
quantised dot products and picks kernels by batch size, so its own logits move
by up to ~1.0 (mean ~0.2) between batch and token-by-token evaluation of the
same prompt (see "self_diff" in logits.json). A Swift engine that keeps
activations in f32 can be held to a much tighter tolerance against this
float64 reference, computed from the SAME dequantised weights
(gguf.quants.dequantize) with no activation quantisation.

Architecture (mirrors llama.cpp's gemma3 graph):
  x = embd[tok] * sqrt(640)
  per layer l (18):  h = rms(x)*attn_norm; q,k,v = Wq h, Wk h, Wv h
                     q,k per head rms(.)*q_norm / k_norm; NeoX RoPE, base 1e6 on
                     global layers (l % 6 == 5) and 10000 on sliding ones
                     (window 512); q *= 1/sqrt(256); causal softmax attention
                     (4 q heads share 1 kv head); o = Wo attn
                     x = x + rms(o)*post_attention_norm
                     h = rms(x)*ffn_norm; f = Wdown(gelu_tanh(Wgate h) * Wup h)
                     x = x + rms(f)*post_ffw_norm
  logits = embd @ (rms(x)*output_norm)      (tied output; no soft-capping)
  rms(v) = v / sqrt(mean(v^2) + 1e-6); the GGUF norm weights already hold 1+w.

Run (venv as in tools/make_fixtures.py; reads the prompts/ids of logits.json):
    .venv-oracle/bin/python tools/ref_forward.py \
        --model models/gemma-3-270m-q4_k_m.gguf --fixtures Tests/Fixtures

Writes reference_f64.json: a list, one entry a line, same order as
logits.json: {"prompt", "special", "ids", "top10", "logit_stats", "probe",
"vs_llama": {"max_abs_on_stored_ids", "mean_abs_on_stored_ids", "top1_same"}
(vs llama.cpp's batch logits, on the ids logits.json stores: its top10 and
probe ids), "greedy": {"ids", "margins"} (16 greedy tokens,
same stop rule as greedy.json)}. Values rounded to 7 significant digits.
Takes ~5 min and ~6 GB RAM.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import dump_list, sig7  # noqa: E402

EPS = 1e-6
N_EMBD = 640
N_HEAD = 4
N_HEAD_KV = 1
HEAD_DIM = 256
N_LAYER = 18
SWA_PATTERN = 6
SWA_WINDOW = 512
ROPE_BASE_GLOBAL = 1e6
ROPE_BASE_LOCAL = 1e4


def load_weights(path):
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(path)
    meta = {k: r.fields[k].contents() for k in (
        "gemma3.embedding_length", "gemma3.block_count", "gemma3.attention.head_count",
        "gemma3.attention.head_count_kv", "gemma3.attention.key_length",
        "gemma3.attention.sliding_window", "gemma3.rope.freq_base",
        "gemma3.attention.layer_norm_rms_epsilon")}
    assert meta["gemma3.embedding_length"] == N_EMBD and meta["gemma3.block_count"] == N_LAYER
    assert meta["gemma3.attention.head_count"] == N_HEAD and meta["gemma3.attention.head_count_kv"] == N_HEAD_KV
    assert meta["gemma3.attention.key_length"] == HEAD_DIM
    assert meta["gemma3.attention.sliding_window"] == SWA_WINDOW
    assert meta["gemma3.rope.freq_base"] == ROPE_BASE_GLOBAL
    W = {}
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        a = dequantize(np.asarray(t.data), t.tensor_type)
        a = np.asarray(a, dtype=np.float32).reshape(list(reversed(ne)))  # rows = ne1
        W[t.name] = a if t.name == "token_embd.weight" else a.astype(np.float64)
    return W


def rms(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope_neox(x, pos, base):
    # x: (T, H, D); pairs (i, i + D/2)
    half = HEAD_DIM // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / HEAD_DIM)
    ang = pos[:, None].astype(np.float64) * inv[None, :]  # (T, half)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


class Model:
    def __init__(self, W):
        self.W = W
        self.embd = W["token_embd.weight"]  # float32 (262144, 640)

    def new_cache(self):
        return [([], []) for _ in range(N_LAYER)]

    def forward(self, toks, start, cache):
        """Process toks at positions start.. ; returns last-position logits (float64)."""
        W = self.W
        T = len(toks)
        pos = np.arange(start, start + T)
        x = self.embd[toks].astype(np.float64) * math.sqrt(N_EMBD)
        for l in range(N_LAYER):
            p = f"blk.{l}."
            is_global = (l % SWA_PATTERN) == SWA_PATTERN - 1
            base = ROPE_BASE_GLOBAL if is_global else ROPE_BASE_LOCAL
            h = rms(x, W[p + "attn_norm.weight"])
            q = (h @ W[p + "attn_q.weight"].T).reshape(T, N_HEAD, HEAD_DIM)
            k = (h @ W[p + "attn_k.weight"].T).reshape(T, N_HEAD_KV, HEAD_DIM)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, N_HEAD_KV, HEAD_DIM)
            q = rope_neox(rms(q, W[p + "attn_q_norm.weight"]), pos, base) / math.sqrt(HEAD_DIM)
            k = rope_neox(rms(k, W[p + "attn_k_norm.weight"]), pos, base)
            ck, cv = cache[l]
            ck.append(k)
            cv.append(v)
            K = np.concatenate(ck, axis=0)  # (S, 1, D)
            V = np.concatenate(cv, axis=0)
            S = K.shape[0]
            kpos = np.arange(S)
            mask = kpos[None, :] <= pos[:, None]
            if not is_global:
                mask &= (pos[:, None] - kpos[None, :]) < SWA_WINDOW
            att = np.einsum("thd,sd->hts", q, K[:, 0, :])
            att = np.where(mask[None], att, -np.inf)
            att = att - att.max(axis=-1, keepdims=True)
            att = np.exp(att)
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,sd->thd", att, V[:, 0, :]).reshape(T, N_HEAD * HEAD_DIM)
            o = o @ W[p + "attn_output.weight"].T
            x = x + rms(o, W[p + "post_attention_norm.weight"])
            h = rms(x, W[p + "ffn_norm.weight"])
            f = gelu_tanh(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)
            f = f @ W[p + "ffn_down.weight"].T
            x = x + rms(f, W[p + "post_ffw_norm.weight"])
        hl = rms(x[-1], W["output_norm.weight"])
        # embd kept in float32 for memory; do the product in float64 by chunks
        out = np.empty(self.embd.shape[0], dtype=np.float64)
        step = 32768
        for i in range(0, self.embd.shape[0], step):
            out[i:i + step] = self.embd[i:i + step].astype(np.float64) @ hl
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--fixtures", default="Tests/Fixtures")
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts (debug)")
    args = ap.parse_args()

    with open(os.path.join(args.fixtures, "oracle_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    with open(os.path.join(args.fixtures, "logits.json"), encoding="utf-8") as f:
        llama_entries = json.load(f)
    probe_ids = info["probe_ids"]
    stop_ids = {info["eos_id"], info["end_of_turn_id"]}
    n_new = info["greedy_new_tokens"]
    if args.limit:
        llama_entries = llama_entries[: args.limit]

    model = Model(load_weights(args.model))
    print("weights loaded", file=sys.stderr)

    out = []
    for e in llama_entries:
        ids = e["ids"]
        cache = model.new_cache()
        lg = model.forward(ids, 0, cache)
        order = np.argsort(-lg, kind="stable")[:10]
        # compare with llama.cpp on what logits.json holds (top10 + probe ids)
        ref = {i: v for i, v in e["top10"] + e["probe"]}
        diffs = np.array([abs(lg[i] - v) for i, v in ref.items()])
        entry = {
            "prompt": e["prompt"],
            "special": e.get("special", False),
            "ids": ids,
            "top10": [[int(i), sig7(lg[i])] for i in order],
            "logit_stats": {"mean": sig7(lg.mean()), "std": sig7(lg.std()), "max": sig7(lg.max())},
            "probe": [[int(i), sig7(lg[i])] for i in probe_ids],
            "vs_llama": {"max_abs_on_stored_ids": sig7(diffs.max()),
                         "mean_abs_on_stored_ids": sig7(diffs.mean()),
                         "top1_same": int(order[0]) == int(e["top10"][0][0])},
        }
        new, margins = [], []
        n = len(ids)
        while True:
            t = int(np.argmax(lg))
            top2 = np.partition(lg, -2)[-2:]
            margins.append(round(float(top2[1] - top2[0]), 4))
            new.append(t)
            if t in stop_ids or len(new) >= n_new:
                break
            lg = model.forward([t], n, cache)
            n += 1
        entry["greedy"] = {"ids": new, "margins": margins}
        out.append(entry)
        print(len(out), repr(e["prompt"][:40]), entry["vs_llama"], new[:4], file=sys.stderr)

    dump_list(os.path.join(args.fixtures, "reference_f64.json"), out)
    print("reference_f64.json written", file=sys.stderr)


if __name__ == "__main__":
    main()
