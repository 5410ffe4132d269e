#!/usr/bin/env bash
# Prefill/decode throughput of scen against llama.cpp on the same GGUF, same prompt, same
# thread count, at 1 and at 2 threads (or --threads N only). The two engines run back to back,
# --rounds times (default 3) per thread count, because a shared 2-core VM drifts by ±20 %
# between minutes: each round's ratio compares runs a few seconds apart, and the medians are
# reported. Prints each JSON line, the ratios scen / llama.cpp, and each engine's 2-thread /
# 1-thread scaling. Needs llama-cpp-python: PYTHON=…, else the venv tools/oracle-venv makes.
# Usage: bench/generate.sh [--threads N] [--rounds R] [--numerics float32|llamaCppCompatible]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="1 2"
rounds=3
numerics=float32
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --numerics) numerics=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-$(tools/oracle-venv)}
model=${SCEN_MODEL:-models/gemma-3-270m-q4_k_m.gguf}
prompt=$(mktemp); results=$(mktemp); trap 'rm -f "$prompt" "$results"' EXIT
for _ in 1 2 3 4 5 6; do
  printf '%s ' "The history of science is the study of the development of science and scientific knowledge, including both the natural and social sciences. Science is a body of empirical, theoretical, and practical knowledge about the natural world, produced by scientists who emphasize the observation, explanation, and prediction of real-world phenomena."
done >"$prompt"

for n in $threads; do
  for r in $(seq "$rounds"); do
    .build/release/scen bench generate --model "$model" --threads "$n" --numerics "$numerics" --prompt-file "$prompt" 2>/dev/null \
      | tail -n1 | sed "s/^{/{\"round\": $r, /" | tee -a "$results"
    "$py" bench/llama_cpp_bench.py --model "$model" --threads "$n" --prompt-file "$prompt" 2>/dev/null \
      | tail -n1 | sed "s/^{/{\"round\": $r, /" | tee -a "$results"
  done
done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def runs(engine, t):
    return sorted((r for r in rows if r["engine"] == engine and r["threads"] == t), key=lambda r: r["round"])
med = statistics.median
for t in sorted({r["threads"] for r in rows}):
    a, b = runs("scen", t), runs("llama.cpp", t)
    pre = [x["prefill_tok_s"] / y["prefill_tok_s"] for x, y in zip(a, b)]
    dec = [x["decode_tok_s"] / y["decode_tok_s"] for x, y in zip(a, b)]
    print(f"{t} thread(s), {a[0]['prompt_tokens']} prompt tokens, scen kernels {a[0].get('kernels', '?')}, {len(a)} rounds:")
    print(f"  prefill tok/s: scen {[x['prefill_tok_s'] for x in a]}, llama.cpp {[y['prefill_tok_s'] for y in b]}")
    print(f"  prefill ratio per round {[round(v, 2) for v in pre]}, median {med(pre):.2f}")
    print(f"  decode tok/s:  scen {[x['decode_tok_s'] for x in a]}, llama.cpp {[y['decode_tok_s'] for y in b]}")
    print(f"  decode ratio per round {[round(v, 2) for v in dec]}, median {med(dec):.2f}")
    print(f"  scen peak RSS: {max(x['peak_rss_mb'] for x in a)} MB; llama.cpp load average before/after: {[y.get('loadavg_1m') for y in b]}")
ts = {r["threads"] for r in rows}
if {1, 2} <= ts:
    for e in ("scen", "llama.cpp"):
        one, two = runs(e, 1), runs(e, 2)
        p = med([y["prefill_tok_s"] for y in two]) / med([x["prefill_tok_s"] for x in one])
        d = med([y["decode_tok_s"] for y in two]) / med([x["decode_tok_s"] for x in one])
        print(f"{e} 2-thread / 1-thread (medians): prefill {p:.2f}x, decode {d:.2f}x")
PY
