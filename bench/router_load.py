#!/usr/bin/env python3
"""Load test for scen-router: N concurrent clients POST /v1/generate for a fixed duration.

    python3 bench/router_load.py --url http://127.0.0.1:8080 --clients 16 --seconds 30 --max-tokens 16

Each client sends prompts from a small fixed list, one request after another. Prints one JSON
line: requests, status counts (only 200 and 429 are acceptable), p50/p90/p99 latency of the
200s, generated tokens/s over the run, and how many answers named an edit. Stdlib only.
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
]


def client(url, deadline, max_tokens, index, results, lock):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=120)
    i = index
    while time.monotonic() < deadline:
        body = json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens})
        i += 1
        start = time.monotonic()
        try:
            conn.request("POST", "/v1/generate", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except Exception as error:  # connection-level failure counts as an error
            status, data = f"error:{type(error).__name__}", b""
            conn.close()
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=120)
        elapsed = time.monotonic() - start
        tokens, edited = 0, False
        if status == 200:
            payload = json.loads(data)
            tokens, edited = payload.get("tokens", 0), payload.get("edit") is not None
        elif status == 429:
            time.sleep(0.05)
        with lock:
            results.append((status, elapsed, tokens, edited))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    results, lock = [], threading.Lock()
    start = time.monotonic()
    deadline = start + args.seconds
    threads = [threading.Thread(target=client, args=(args.url, deadline, args.max_tokens, i, results, lock))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start

    statuses = {}
    for status, *_ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = sorted(r[1] for r in results if r[0] == 200)

    def pct(p):
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else None

    print(json.dumps({
        "clients": args.clients, "seconds": round(wall, 1), "requests": len(results), "statuses": statuses,
        "errors_other_than_429": sum(n for s, n in statuses.items() if s not in ("200", "429")),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "tokens_per_s": round(sum(r[2] for r in results) / wall, 1),
        "answers_with_edit": sum(1 for r in results if r[3]),
    }))


if __name__ == "__main__":
    main()
