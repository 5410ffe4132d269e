#!/usr/bin/env python3
"""Generate llama.cpp / gguf-python *oracle fixtures* for the Swift tests.

Quirks worth knowing (llama.cpp, this GGUF: tokenizer.ggml.model=llama (SPM),
add_space_prefix=false): spaces become U+2581 with no prefix space; digits are
always single tokens; runs of spaces/newlines/tabs have their own tokens; chars
absent from the vocab fall back to byte tokens <0xNN>; a literal U+2581 in the
input is indistinguishable from a space; "<bos>" typed as text (special=False)
is '<' 'bos' '>'. The 165 USER_DEFINED tokens (runs of 1-31 newlines, 2-31
spaces, 1-31 tabs, ~70 HTML tags such as <b> <td> </table>, "[multimodal]",
"<start_of_image>") are cut out of the text first, longest match, even with
special=False; so "hello    world" is 'hello' '    ' 'world' (no ' world').

The Swift engine is compared against llama.cpp (via llama-cpp-python) and the
reference GGUF reader/dequantiser of the `gguf` Python package. This script is
NOT needed to build or test the Swift package: its outputs are committed under
Tests/Fixtures/. Re-run it only to regenerate them.

Setup (once; the venv is .venv-oracle/, git-ignored; llama-cpp-python compiles
llama.cpp from source, ~10-25 min on 2 cores):

    tools/oracle-venv      # .venv-oracle/ in the package root; prints its python

Run (from the repo root):

    .venv-oracle/bin/python tools/make_fixtures.py \
        --model models/gemma-3-270m-q4_k_m.gguf --out Tests/Fixtures

Files written to --out (all UTF-8 JSON; the list files have one entry a line):

  tokenizer.json   list of {"text", "ids", "pieces", "piece_hex"}.
                   ids = llama.cpp tokenize(text, add_bos=True, special=False)
                   (so "<bos>" typed in the text is ordinary text, not id 2).
                   piece_hex = raw bytes of llama_token_to_piece(id,
                   special=False) per id, hex; pieces = the same bytes decoded
                   as UTF-8 with errors="replace". With special=False control
                   tokens such as BOS render as "" (empty).
  logits.json      list of {"prompt", "special", "ids", "top10", "logit_stats",
                   "probe"}. ids = tokenize(prompt, add_bos=True, special)
                   (special is true only for the chat-formatted prompts).
                   Logits at the LAST prompt position after evaluating ids
                   (BOS included) in one batch; n_ctx=2048, n_batch=512,
                   2 threads. top10 = [[id, logit]] by logit desc;
                   logit_stats = mean/std/max over the whole vocabulary
                   (float64, population std); probe = [[id, logit]] for the
                   fixed id list PROBE_IDS (0..9 + 10 seeded random ids).
                   self_diff = how far llama.cpp disagrees WITH ITSELF when the
                   same prompt is fed one token at a time (max/mean abs logit
                   difference over the vocab, top1_same): llama.cpp quantises
                   activations (Q8) and picks kernels by batch size, so ~0.5-1.0
                   max abs differences are normal; use it to size tolerances.
  greedy_long.json the same for LONG_PROMPT_TOKENS-token prompts (LONG_PROMPT repeated
                   and cut; "prompt" only describes them, prompt_ids are the input).
  greedy.json      list of {"prompt", "special", "prompt_ids", "ids", "text",
                   "stop_reason", "margins"}: same prompts as logits.json; up
                   to 16 new tokens by explicit argmax over llama.cpp's logits
                   step by step (1-token evals, no sampler), stopping after
                   EOS (tokenizer.ggml.eos_token_id) or <end_of_turn> (the stop
                   token is included in ids, excluded from text). text is the
                   concatenation of the pieces (special=False) of ids.
                   margins[i] = top1 - top2 logit at step i: a step with a tiny
                   margin may legitimately flip in another implementation.
  dequant.json     list of {"name", "type", "shape", "rows", "row_prefix",
                   "sum", "sum_abs", "n_elements"} for up to 3 tensors of each
                   ggml type in the file (token_embd.weight included), via
                   gguf.GGUFReader + gguf.quants.dequantize. shape is GGUF ne
                   order (ne0 first); a row is ne0 consecutive values; rows maps
                   row index (string) -> values rounded to 7 significant
                   digits, only the first row_prefix values of each row (when
                   row_prefix == ne0 the rows are complete). sum / sum_abs are
                   over the whole dequantised tensor in float64.
  model_meta.json  {"gguf_version", "tensor_count", "kv_count", "data_offset",
                   "alignment",
                   "metadata": {key: {"type", "value"} or for arrays
                   {"type": "ARRAY", "elem_type", "length", "first5"}},
                   "tensors": [{"name", "type", "shape", "offset",
                   "file_offset", "n_bytes"}]}.  offset is relative to the
                   tensor data section (as stored in the GGUF tensor info),
                   file_offset = data_offset + offset.
  oracle_info.json provenance: versions, model sha256, special token ids,
                   PROBE_IDS, llama.cpp settings.
"""
import argparse
import ctypes
import hashlib
import json
import os
import random
import sys

import numpy as np

N_CTX = 2048
N_BATCH = 512
N_THREADS = 2
GREEDY_NEW_TOKENS = 16
MAX_ROW_VALUES = 2048  # rows longer than this would be truncated (row_prefix); none are in this model

# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

_rng = random.Random(20240601)
RANDOM_LETTERS_300 = "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300))

TOKENIZER_TEXTS = [
    "",
    " ",
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "The first president of the United States was",
    "I can't believe it's already 5 o'clock; we're late!",
    "hello    world",
    "a  b   c    d     e",
    "        ",
    "\t",
    "col1\tcol2\t\tcol3",
    "\n",
    "line1\nline2",
    "para1\n\npara2",
    "\n\n\n",
    "a\n\n\n\nb",
    "\r\n",
    " leading space",
    "   three leading spaces",
    "trailing space ",
    "trailing spaces   ",
    " both ",
    "1234567890",
    "3.14159",
    "12345678901234567890123",
    "In 1776, 13 colonies; in 2024, 50 states.",
    "!!! ??? ... ;;; ::: ---",
    "(a+b)*[c/d]-{e%f}^g=h!",
    "\"quoted\" 'single' `back` <angle> &amp;",
    "café naïve Ångström résumé façade",
    "Größe Straße über ñandú",
    "我爱北京天安门。",
    "こんにちは、世界！カタカナとひらがな",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "안녕하세요 세계",
    "Γειά σου Κόσμε",
    "नमस्ते दुनिया",
    "😀👍🏽🎉",
    "👨‍👩‍👧‍👦 family",
    "🇫🇷🇯🇵🇺🇸",
    "<bos>",
    "<bos>The capital of France is",
    "<start_of_turn>user\nHi<end_of_turn>",
    "<eos> <pad> <unk> <mask>",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    RANDOM_LETTERS_300,
    "def foo(x):\n    return x * 2  # double\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "https://www.example.com/path/to/page?query=1&lang=en#frag",
    "user@example.org",
    "Hello мир 世界 مرحبا 🌍!",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\ufffd replacement char",
    "zero\u200bwidth\u00a0nbsp",
    "Question: What is the capital of France?\nAnswer:",
    "ALL CAPS TEXT AND MiXeD cAsE",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "▁already has U+2581 ▁▁",
    # user-defined tokens (type 4) are split out BEFORE the SPM merge, even
    # with special=False: runs of 1-31 "\n", 2-31 spaces, 1-31 tabs, HTML tags
    # like <b> <table> <td>, "[multimodal]", "<start_of_image>"
    "<b>bold</b> and <table><tr><td>x</td></tr></table>",
    "<h1>Title</h1>\n<p>para</p> <code>x</code>",
    "[multimodal] <start_of_image><end_of_image>",
    "word" + " " * 40 + "end",
    "x" + "\n" * 35 + "y",
    "  \n  \t \n",
    "a \n b",
]

LONG_PROMPT = (
    "The history of the printing press begins in the fifteenth century, when "
    "Johannes Gutenberg, a goldsmith from Mainz, combined movable metal type, "
    "oil-based ink and a wooden screw press into a practical system for "
    "producing books. Before his invention, texts in Europe were copied by hand, "
    "usually by monks working in monasteries, and a single book could take "
    "months to complete. The new method spread rapidly: within fifty years, "
    "presses were operating in more than two hundred cities, and millions of "
    "volumes had been printed. Historians often argue that the printing press "
    "made the Reformation, the Scientific Revolution and the rise of modern "
    "newspapers possible, because ideas could now travel faster than ever "
    "before. In summary, the most important consequence of the printing press was"
)

LOGIT_PROMPTS = [
    "The first president of the United States was",
    "The Eiffel Tower is located in",
    "Question: What is the capital of France?\nAnswer:",
    "Question: What is the capital of Japan?\nAnswer:",
    "Question: Who wrote Romeo and Juliet?\nAnswer:",
    "Question: What is the largest planet in the solar system?\nAnswer:",
    "Question: What is the chemical symbol for gold?\nAnswer:",
    "Question: In which year did World War II end?\nAnswer:",
    "The capital of Germany is",
    "Water boils at a temperature of",
    "The mother tongue of Danielle Darrieux is",
    "Apple was founded by",
    "The Space Needle is located in the city of",
    "What is the native language of Michel Foucault?",
    "Which continent is Kenya located on?",
    "Which company developed the iPhone?",
    "Hello",
    "Paris",
    "1, 2, 3, 4, 5,",
    "def fibonacci(n):",
    "La capitale de la France est",
    "東京は日本の",
    "Once upon a time, there was a",
    "My favourite colour is",
    LONG_PROMPT,
    # chat-formatted: tokenized with special=True so the turn markers are the
    # control tokens 105/106 (entries carry "special": true)
    ("<start_of_turn>user\nWhat is the capital of Italy?<end_of_turn>\n<start_of_turn>model\n", True),
    ("<start_of_turn>user\nSay hello in one word.<end_of_turn>\n<start_of_turn>model\n", True),
]


def prompt_spec(p):
    """(text, special) for a LOGIT_PROMPTS entry."""
    return p if isinstance(p, tuple) else (p, False)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def dump_list(path, entries):
    """A JSON list with one entry a line (diff- and grep-friendly)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i, e in enumerate(entries):
            f.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(entries) else "\n")
        f.write("]\n")


def dump_meta(path, obj):
    """model_meta.json: top-level keys, then one metadata key / tensor a line."""
    j = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in obj.items():
            if k in ("metadata", "tensors"):
                continue
            f.write(f"{j(k)}:{j(v)},\n")
        f.write('"metadata":{\n')
        items = list(obj["metadata"].items())
        f.write(",\n".join(f"{j(k)}:{j(v)}" for k, v in items))
        f.write('\n},\n"tensors":[\n')
        f.write(",\n".join(j(t) for t in obj["tensors"]))
        f.write("\n]\n}\n")


def dump_obj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def sig7(x):
    return float(f"{float(x):.7g}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# llama.cpp side
# --------------------------------------------------------------------------


class Oracle:
    def __init__(self, model_path):
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=model_path,
            n_ctx=N_CTX,
            n_batch=N_BATCH,
            n_ubatch=N_BATCH,
            n_threads=N_THREADS,
            n_threads_batch=N_THREADS,
            logits_all=False,
            verbose=False,
        )
        self.n_vocab = self.llm.n_vocab()
        m = self.llm.model
        self.vocab = llama_cpp.llama_model_get_vocab(m)

    def tokenize(self, text, add_bos=True, special=False):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def piece(self, tok, special=False):
        lc = self.llama_cpp
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_token_to_piece(self.vocab, tok, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n + 1

    def token_text(self, tok):
        return self.llama_cpp.llama_vocab_get_text(self.vocab, tok).decode("utf-8", "replace")

    def last_logits(self, ids):
        """Evaluate ids from scratch (one batch) and return last-position logits."""
        self.llm.reset()
        self.llm.eval(ids)
        return self._current_logits()

    def _current_logits(self):
        ptr = self.llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32).copy()

    def step(self, tok):
        self.llm.eval([tok])
        return self._current_logits()


def make_tokenizer(orc):
    out = []
    for text in TOKENIZER_TEXTS:
        ids = orc.tokenize(text)
        raw = [orc.piece(t) for t in ids]
        out.append({
            "text": text,
            "ids": ids,
            "pieces": [b.decode("utf-8", "replace") for b in raw],
            "piece_hex": [b.hex() for b in raw],
        })
    return out


def make_logits(orc, probe_ids):
    out = []
    for spec in LOGIT_PROMPTS:
        p, special = prompt_spec(spec)
        ids = orc.tokenize(p, special=special)
        lg = orc.last_logits(ids)
        order = np.argsort(-lg, kind="stable")[:10]
        l64 = lg.astype(np.float64)
        # llama.cpp's own kernel noise: same prompt fed one token at a time
        # (different matmul kernels / activation quantisation than the batch)
        orc.llm.reset()
        for t in ids:
            lg1 = orc.step(t)
        d = np.abs(lg1.astype(np.float64) - l64)
        out.append({
            "prompt": p,
            "special": special,
            "ids": ids,
            "top10": [[int(i), sig7(lg[i])] for i in order],
            "logit_stats": {"mean": sig7(l64.mean()), "std": sig7(l64.std()), "max": sig7(l64.max())},
            "probe": [[int(i), sig7(lg[i])] for i in probe_ids],
            "self_diff": {"max_abs": sig7(d.max()), "mean_abs": sig7(d.mean()),
                          "top1_same": bool(int(np.argmax(lg1)) == int(order[0]))},
        })
    return out


# Long prompts for greedy_long.json: LONG_PROMPT repeated, cut to a token count that puts
# llama.cpp past its 512-token sliding window and its 512-token micro-batch (n_ubatch), with a
# last micro-batch of 88, 3 and 388 rows (kernel choice depends on the row count).
LONG_PROMPT_TOKENS = [600, 515, 900]


def long_prompt_ids(orc, n):
    ids = orc.tokenize((LONG_PROMPT + " ") * 12)
    assert len(ids) >= n, (len(ids), n)
    return ids[:n]


def make_greedy(orc, stop_ids, long=False):
    out = []
    specs = [(f"LONG_PROMPT repeated, first {n} tokens", n) for n in LONG_PROMPT_TOKENS] if long else LOGIT_PROMPTS
    for spec in specs:
        if long:
            p, special = spec[0], False
            ids = long_prompt_ids(orc, spec[1])
        else:
            p, special = prompt_spec(spec)
            ids = orc.tokenize(p, special=special)
        lg = orc.last_logits(ids)
        new = []
        margins = []
        reason = "length"
        while True:
            t = int(np.argmax(lg))
            top2 = np.partition(lg, -2)[-2:]
            margins.append(round(float(top2[1] - top2[0]), 4))
            new.append(t)
            if t in stop_ids:
                reason = "stop_token"
                break
            if len(new) >= GREEDY_NEW_TOKENS:
                break
            lg = orc.step(t)
        text_ids = [t for t in new if t not in stop_ids]
        text = b"".join(orc.piece(t) for t in text_ids).decode("utf-8", "replace")
        out.append({"prompt": p, "special": special, "prompt_ids": ids, "ids": new, "text": text,
                    "stop_reason": reason, "margins": margins})
    return out


# --------------------------------------------------------------------------
# gguf side
# --------------------------------------------------------------------------


def field_value(reader, field):
    import gguf

    VT = gguf.GGUFValueType
    types = [VT(t).name for t in field.types]
    if field.types[0] == VT.ARRAY:
        n = len(field.data)
        first = [field.contents(i) for i in range(min(5, n))]
        first = [x.item() if hasattr(x, "item") else x for x in first]
        return {"type": "ARRAY", "elem_type": types[1] if len(types) > 1 else None,
                "length": n, "first5": first}
    v = field.contents()
    if hasattr(v, "item"):
        v = v.item()
    return {"type": types[0], "value": v}


def make_model_meta(reader):
    meta = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF."):  # header pseudo-fields of GGUFReader, not KV pairs
            continue
        meta[k] = field_value(reader, f)
    tensors = []
    for t in reader.tensors:
        rel = int(t.data_offset) - int(reader.data_offset)
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(x) for x in t.shape],
            "offset": rel,
            "file_offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
        })
    g = lambda k: reader.fields[k].contents()
    assert g("GGUF.kv_count") == len(meta), (g("GGUF.kv_count"), len(meta))
    return {
        "gguf_version": g("GGUF.version"),
        "tensor_count": g("GGUF.tensor_count"),
        "kv_count": g("GGUF.kv_count"),
        "data_offset": int(reader.data_offset),
        "alignment": int(getattr(reader, "alignment", 32)),
        "metadata": meta,
        "tensors": tensors,
    }


def make_dequant(reader):
    from gguf.quants import dequantize

    by_type = {}
    for t in reader.tensors:
        by_type.setdefault(t.tensor_type.name, []).append(t)
    chosen = []
    for tname in sorted(by_type):
        ts = sorted(by_type[tname], key=lambda t: (int(t.n_elements), t.name))
        pick = [t for t in ts if t.name == "token_embd.weight"]
        for t in ts:
            if len(pick) >= 3:
                break
            if t not in pick:
                pick.append(t)
        chosen.extend(pick)

    out = []
    for t in chosen:
        ne = [int(x) for x in t.shape]
        ne0 = ne[0]
        nrows = int(t.n_elements) // ne0
        data = np.asarray(t.data)
        data2 = data.reshape(nrows, -1)  # one row of raw data per ggml row
        rows_idx = sorted({0, nrows // 2, nrows - 1} | ({2} if t.name == "token_embd.weight" else set()))
        prefix = min(ne0, MAX_ROW_VALUES)
        rows = {}
        for r in rows_idx:
            vals = dequantize(data2[r:r + 1], t.tensor_type).reshape(-1)
            assert vals.shape[0] == ne0, (t.name, vals.shape, ne0)
            rows[str(r)] = [sig7(v) for v in vals[:prefix]]
        s = 0.0
        sa = 0.0
        chunk = max(1, (1 << 22) // ne0)
        for r0 in range(0, nrows, chunk):
            v = dequantize(data2[r0:r0 + chunk], t.tensor_type).astype(np.float64)
            s += float(v.sum())
            sa += float(np.abs(v).sum())
        out.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": ne,
            "n_elements": int(t.n_elements),
            "row_prefix": prefix,
            "rows": rows,
            "sum": s,
            "sum_abs": sa,
        })
    return out


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--out", default="Tests/Fixtures")
    ap.add_argument("--only", default="", help="comma list: tokenizer,logits,greedy,greedy_long,dequant,meta")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only
    os.makedirs(args.out, exist_ok=True)

    import gguf

    reader = gguf.GGUFReader(args.model)
    eos_id = int(reader.fields["tokenizer.ggml.eos_token_id"].contents())
    bos_id = int(reader.fields["tokenizer.ggml.bos_token_id"].contents())

    if want("meta"):
        dump_meta(os.path.join(args.out, "model_meta.json"), make_model_meta(reader))
        print("model_meta.json written", file=sys.stderr)
    if want("dequant"):
        dump_list(os.path.join(args.out, "dequant.json"), make_dequant(reader))
        print("dequant.json written", file=sys.stderr)

    if not (want("tokenizer") or want("logits") or want("greedy") or want("greedy_long")):
        return
    import llama_cpp

    orc = Oracle(args.model)
    eot_ids = orc.tokenize("<end_of_turn>", add_bos=False, special=True)
    assert len(eot_ids) == 1, eot_ids
    eot_id = eot_ids[0]
    sot_id = orc.tokenize("<start_of_turn>", add_bos=False, special=True)[0]
    prng = random.Random(12345)
    probe_ids = list(range(10)) + sorted(prng.sample(range(10, orc.n_vocab), 10))

    if want("tokenizer"):
        dump_list(os.path.join(args.out, "tokenizer.json"), make_tokenizer(orc))
        print("tokenizer.json written", file=sys.stderr)
    if want("logits"):
        dump_list(os.path.join(args.out, "logits.json"), make_logits(orc, probe_ids))
        print("logits.json written", file=sys.stderr)
    if want("greedy"):
        dump_list(os.path.join(args.out, "greedy.json"), make_greedy(orc, {eos_id, eot_id}))
        print("greedy.json written", file=sys.stderr)
    if want("greedy_long"):
        dump_list(os.path.join(args.out, "greedy_long.json"), make_greedy(orc, {eos_id, eot_id}, long=True))
        print("greedy_long.json written", file=sys.stderr)

    specials = {}
    for tid in sorted({0, 1, 2, 3, 4, sot_id, eot_id}):
        specials[orc.token_text(tid)] = tid
    dump_obj(os.path.join(args.out, "oracle_info.json"), {
        "generator": "tools/make_fixtures.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "gguf_python_version": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
        "numpy_version": np.__version__,
        "model_file": os.path.basename(args.model),
        "model_sha256": sha256_file(args.model),
        "n_vocab": orc.n_vocab,
        "bos_id": bos_id,
        "eos_id": eos_id,
        "end_of_turn_id": eot_id,
        "start_of_turn_id": sot_id,
        "special_tokens": specials,
        "probe_ids": probe_ids,
        "llama_settings": {"n_ctx": N_CTX, "n_batch": N_BATCH, "n_threads": N_THREADS,
                           "tokenize": "add_bos=True, special=False",
                           "token_to_piece": "lstrip=0, special=False"},
        "greedy_new_tokens": GREEDY_NEW_TOKENS,
        "max_row_values": MAX_ROW_VALUES,
    })
    print("oracle_info.json written", file=sys.stderr)


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    main()
