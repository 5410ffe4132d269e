#!/usr/bin/env bash
# Prefill/decode throughput of scen against llama.cpp on the same GGUF, same prompt, same
# thread count, one after the other in this script; prints both JSON lines and the ratios.
# Needs llama-cpp-python: PYTHON=…, else the venv tools/oracle-venv makes (built on first use).
# Usage: bench/generate.sh [--threads N] [--numerics float32|llamaCppCompatible]   (idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
numerics=float32
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --numerics) numerics=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-$(tools/oracle-venv)}
model=${SCEN_MODEL:-models/gemma-3-270m-q4_k_m.gguf}
prompt=$(mktemp); trap 'rm -f "$prompt"' EXIT
for _ in 1 2 3 4 5 6; do
  printf '%s ' "The history of science is the study of the development of science and scientific knowledge, including both the natural and social sciences. Science is a body of empirical, theoretical, and practical knowledge about the natural world, produced by scientists who emphasize the observation, explanation, and prediction of real-world phenomena."
done >"$prompt"

ours=$(.build/release/scen bench generate --model "$model" --threads "$threads" --numerics "$numerics" --prompt-file "$prompt" 2>/dev/null | tail -n1)
theirs=$("$py" bench/llama_cpp_bench.py --model "$model" --threads "$threads" --prompt-file "$prompt" | tail -n1)
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"prompt tokens: scen {a['prompt_tokens']}, llama.cpp {b['prompt_tokens']}")
print(f"prefill: scen {a['prefill_tok_s']:.1f} tok/s, llama.cpp {b['prefill_tok_s']:.1f} tok/s, ratio {a['prefill_tok_s']/b['prefill_tok_s']:.2f}")
print(f"decode:  scen {a['decode_tok_s']:.1f} tok/s, llama.cpp {b['decode_tok_s']:.1f} tok/s, ratio {a['decode_tok_s']/b['decode_tok_s']:.2f}")
print(f"scen peak RSS: {a['peak_rss_mb']} MB")
PY
