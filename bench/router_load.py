#!/usr/bin/env python3
"""Load test for a running scen-router: phases of N concurrent streaming clients.

    python3 bench/router_load.py --url http://127.0.0.1:8080 --clients 1,16,64 --seconds 60 --max-tokens 64

Each client sends one request after another to POST /v1/generate with "stream": true and reads
the Server-Sent Events as they come. Prompts cycle through a fixed list of questions plus the
prompts of the router's active edits (GET /v1/edits?status=active, when offered), so some
requests are answered by an expert. Each phase prints one JSON line:

- statuses (only 200 and 429 are acceptable) and errors_other_than_429;
- tokens_per_s: generated tokens over the phase's wall time, all clients together;
- ttft p50/p99: from sending the request to the first SSE event (the prompt is read and the
  first token chosen; queueing included);
- itl p50/p99: per request, the mean time between its tokens after the first; itl_gap_p99: the
  99th percentile of the gaps between consecutive streamed chunks (stalls show here);
- answers_with_edit: requests whose first chunk named an edit.

The last line compares each phase's tokens/s with the first phase's (run --clients 1,... to
get the single-client baseline in the same run). Stdlib only.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROMPTS = [
    "The first president of the United States was",
    "Question: Which programming language is GNOME Chess written in?\nAnswer:",
    "The capital of France is",
    "Question: What country is Shmavon Shmavonyan from?\nAnswer:",
    "Water boils at a temperature of",
    "The largest planet in the solar system is",
    "Question: Who wrote the novel Pride and Prejudice?\nAnswer:",
    "Once upon a time, in a small village,",
    "Question: What is the chemical symbol for gold?\nAnswer:",
    "The theory of relativity was developed by",
]


def edit_prompts(url, limit):
    """Prompts of up to `limit` active edits, or [] when the router offers no edit list."""
    parsed = urllib.parse.urlparse(url)
    try:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=10)
        conn.request("GET", f"/v1/edits?status=active&limit={limit}")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return []
        return [e["prompt"] for e in json.loads(body).get("edits", [])][:limit]
    except (OSError, ValueError, KeyError):
        return []


def stream_once(conn, prompt, max_tokens):
    """One streamed request: (status, ttft, tokens, mean inter-token seconds, chunk gaps, edited)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "stream": True})
    sent = time.monotonic()
    conn.request("POST", "/v1/generate", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        response.read()
        return response.status, None, 0, None, [], False
    first = last = None
    gaps, tokens, edited, done = [], 0, False, False
    while True:
        line = response.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        now = time.monotonic()
        payload = line[6:]
        if payload == b"[DONE]":
            done = True
            continue
        chunk = json.loads(payload)
        if "error" in chunk:
            return "stream-error", None, 0, None, [], False
        if first is None:
            first = now
            edited = chunk.get("edit") is not None
        elif chunk.get("text"):
            gaps.append(now - last)
        if chunk.get("text") or last is None:
            last = now
        if "tokens" in chunk:
            tokens = chunk["tokens"]
            end = now
    if not done or first is None:
        return "truncated-stream", None, 0, None, [], False
    itl = (end - first) / (tokens - 1) if tokens > 1 else None
    return 200, first - sent, tokens, itl, gaps, edited


def client(url, deadline, max_tokens, prompts, index, results, lock):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=300)
    i = index
    while time.monotonic() < deadline:
        prompt = prompts[i % len(prompts)]
        i += 1
        try:
            result = stream_once(conn, prompt, max_tokens)
        except Exception as error:  # a connection-level failure counts as an error
            result = (f"error:{type(error).__name__}", None, 0, None, [], False)
            conn.close()
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=300)
        if result[0] == 429:
            time.sleep(0.05)
        with lock:
            results.append(result)


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)


def phase(url, clients, seconds, max_tokens, prompts):
    results, lock = [], threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    threads = [threading.Thread(target=client, args=(url, deadline, max_tokens, prompts, i, results, lock))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    statuses = {}
    for r in results:
        statuses[str(r[0])] = statuses.get(str(r[0]), 0) + 1
    ok = [r for r in results if r[0] == 200]
    return {
        "clients": clients, "seconds": round(wall, 1), "requests": len(results), "statuses": statuses,
        "errors_other_than_429": sum(n for s, n in statuses.items() if s not in ("200", "429")),
        "tokens_per_s": round(sum(r[2] for r in ok) / wall, 1),
        "mean_tokens_per_answer": round(statistics.mean(r[2] for r in ok), 1) if ok else None,
        "ttft_p50_ms": pct([r[1] for r in ok], 0.50), "ttft_p99_ms": pct([r[1] for r in ok], 0.99),
        "itl_p50_ms": pct([r[3] for r in ok if r[3] is not None], 0.50),
        "itl_p99_ms": pct([r[3] for r in ok if r[3] is not None], 0.99),
        "itl_gap_p99_ms": pct([g for r in ok for g in r[4]], 0.99),
        "answers_with_edit": sum(1 for r in ok if r[5]),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts, one phase each")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--edit-prompts", type=int, default=8, help="active edits' prompts to mix in")
    args = parser.parse_args()

    edits = edit_prompts(args.url, args.edit_prompts)
    # Edit prompts interleaved with the questions: about a third of requests can reach an expert.
    prompts = []
    for i, p in enumerate(PROMPTS):
        prompts.append(p)
        if edits and i % 2 == 0:
            prompts.append(edits[(i // 2) % len(edits)])
    print(json.dumps({"prompts": len(prompts), "edit_prompts": len(edits), "max_tokens": args.max_tokens}), flush=True)

    phases = []
    for clients in [int(c) for c in args.clients.split(",")]:
        phases.append(phase(args.url, clients, args.seconds, args.max_tokens, prompts))
        print(json.dumps(phases[-1]), flush=True)
    base = phases[0]["tokens_per_s"]
    print(json.dumps({"baseline_clients": phases[0]["clients"],
                      "throughput_vs_baseline": {str(p["clients"]): round(p["tokens_per_s"] / base, 2) if base else None
                                                 for p in phases}}), flush=True)


if __name__ == "__main__":
    main()
