#!/usr/bin/env python3
"""Dump llama.cpp's intermediate tensors for one fixture prompt (debugging numerics).

Registers a ggml graph-evaluation callback and writes every F32 tensor whose name (before the
"-<layer>" suffix) is asked for, e.g. l_out-3, ffn_geglu-3, kq-3, result_output, as
OUT/NAME.K.f32 (little-endian float32, row-major) with OUT/NAME.K.json holding ggml's ne
([ne0, ne1, ne2, ne3], ne0 the contiguous length). K counts the evaluations of that name:
0 is the batched prefill of the prompt, then one per decode step (names that appear several
times per evaluation, such as Qcur, take several K per step; a prompt over 512 tokens is
evaluated in 512-token micro-batches, one K each). Decode steps feed the fixture's
own greedy tokens (Tests/Fixtures/greedy.json or --file), so they can be compared one to one with
`GemmaSession` runs in llama.cpp numerics.

Not needed to build or test the package; needs the oracle venv (see make_fixtures.py):

    .venv-oracle/bin/python tools/llama_dump_activations.py --case 9 --steps 2 \
        --names l_out,ffn_geglu,ffn_out,kq,kq_soft_max,kqv,result_output --out /tmp/llama-case9
"""
import argparse
import ctypes
import json
import os

import numpy as np


class TensorHead(ctypes.Structure):
    # The leading fields of struct ggml_tensor (type, buffer, ne, nb).
    _fields_ = [("type", ctypes.c_int32), ("buffer", ctypes.c_void_p),
                ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--fixtures", default="Tests/Fixtures")
    ap.add_argument("--file", default="greedy.json", help="fixture file with the prompts (greedy.json, greedy_long.json)")
    ap.add_argument("--case", type=int, required=True, help="index into --file")
    ap.add_argument("--steps", type=int, default=0, help="decode steps after the prefill")
    ap.add_argument("--names", default="*", help="comma list of tensor names without the layer suffix, or *")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp._internals import LlamaContext

    base = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    base.ggml_get_name.restype = ctypes.c_char_p
    base.ggml_get_name.argtypes = [ctypes.c_void_p]
    base.ggml_get_data.restype = ctypes.c_void_p
    base.ggml_get_data.argtypes = [ctypes.c_void_p]
    base.ggml_nbytes.restype = ctypes.c_size_t
    base.ggml_nbytes.argtypes = [ctypes.c_void_p]
    base.ggml_is_contiguous.restype = ctypes.c_bool
    base.ggml_is_contiguous.argtypes = [ctypes.c_void_p]

    os.makedirs(args.out, exist_ok=True)
    wanted = set(args.names.split(","))
    counts = {}

    @llama_cpp.ggml_backend_sched_eval_callback
    def callback(tensor, ask, _user):
        name = base.ggml_get_name(tensor).decode()
        if ask:
            return "*" in wanted or name.split("-")[0] in wanted
        head = TensorHead.from_address(tensor)
        if head.type == 0 and base.ggml_is_contiguous(tensor):  # F32 only
            n = base.ggml_nbytes(tensor) // 4
            data = ctypes.cast(base.ggml_get_data(tensor), ctypes.POINTER(ctypes.c_float))
            k = counts.get(name, 0)
            counts[name] = k + 1
            np.ctypeslib.as_array(data, shape=(n,)).tofile(f"{args.out}/{name}.{k}.f32")
            with open(f"{args.out}/{name}.{k}.json", "w") as f:
                json.dump(list(head.ne), f)
        return True

    with open(f"{args.fixtures}/{args.file}", encoding="utf-8") as f:
        case = json.load(f)[args.case]
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=2048, n_batch=512, n_ubatch=512,
                          n_threads=2, n_threads_batch=2, verbose=False)
    llm.context_params.cb_eval = callback
    llm._ctx = LlamaContext(model=llm._model, params=llm.context_params, verbose=False)
    llm.reset()
    llm.eval(case["prompt_ids"])
    for token in case["ids"][: args.steps]:
        llm.eval([token])
    print(f"case {args.case}: {len(case['prompt_ids'])} prompt tokens, {args.steps} decode steps, "
          f"{sum(counts.values())} tensors written to {args.out}")


if __name__ == "__main__":
    main()
