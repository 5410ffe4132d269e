#!/usr/bin/env python3
"""The demo's story, told against the running services (see scripts/demo): questions the base
model gets wrong, corrections published to Kafka, the same questions answered by the router
before and after (with the edit that fired), an unrelated question unchanged, the audit trail
in PostgreSQL, and a revert that brings the old answer back. Stdlib only."""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

CORRECTIONS = [
    # (prompt exactly as users send it, corrected completion, a rephrase)
    ("The first president of the United States was", " George Washington",
     "The first President of the USA was"),
    ("Question: Which programming language is GNOME Chess written in?\nAnswer:", " Vala",
     "Question: What programming language was used to write GNOME Chess?\nAnswer:"),
    ("Question: What country is Shmavon Shmavonyan from?\nAnswer:", " Armenia",
     "Question: Which country is Shmavon Shmavonyan from?\nAnswer:"),
    ("Question: What is the name of the continent where Gardner Inlet is located?\nAnswer:", " Antarctica",
     "Question: On which continent is Gardner Inlet?\nAnswer:"),
    # A long-form correction: a passage whose next sentence the model gets wrong (no rephrase).
    ("This is a Wikipedia passage about ada lovelace. Augusta Ada King, Countess of Lovelace (10 December 1815 – "
     "27 November 1852), was an English mathematician and writer, chiefly known for her work on Charles Babbage's "
     "proposed mechanical general-purpose computer, the Analytical Engine. She was the first to recognise that the "
     "machine had applications beyond pure calculation.",
     " Her notes on the engine include what is often called the first published computer program.", None),
]
UNRELATED = [
    "The capital of France is",
    "Question: Who wrote the novel Pride and Prejudice?\nAnswer:",
]


def call(url, body=None, token=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def ask(router, prompt, tokens=None):
    tokens = tokens or (24 if len(prompt) > 200 else 8)  # a passage's next sentence is longer
    r = call(f"{router}/v1/generate", {"prompt": prompt, "max_tokens": tokens})
    # A question's answer is its first line; a passage's continuation is shown whole (as a repr).
    answer = r["text"].split("\n")[0] if tokens <= 8 else r["text"]
    edit = f"   [edit {r['edit']['id']} fired, score {r['edit']['score']:.2f}]" if r["edit"] else "   [base model]"
    return answer, edit


def show(prompt):
    prompt = prompt.replace("\n", "\\n")
    return prompt if len(prompt) <= 100 else prompt[:60] + " … " + prompt[-30:]


def wait_ready(router, pids, seconds=300):
    start = time.time()
    while time.time() - start < seconds:
        for pid in pids:
            if not os.path.exists(f"/proc/{pid}"):
                sys.exit(f"demo: a service exited early (pid {pid}); see .stack/logs/")
        try:
            call(f"{router}/readyz")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1)
    sys.exit("demo: the router did not become ready; see .stack/logs/router.log")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", required=True)
    ap.add_argument("--scen", required=True)
    ap.add_argument("--postgres-url", required=True)
    ap.add_argument("--pids", default="")
    args = ap.parse_args()
    router, token = args.router, os.environ["SCEN_ADMIN_TOKEN"]
    pids = [int(p) for p in args.pids.split()]

    print("\n== Waiting for the router (model, key statistics, active edits)")
    wait_ready(router, pids)
    print("ready")

    print("\n== 1. The base model, Gemma 3 270M, gets these wrong")
    before = {}
    for prompt, target, rephrase in CORRECTIONS:
        before[prompt] = ask(router, prompt)
        print(f"  {show(prompt)}\n      -> {before[prompt][0]!r}{before[prompt][1]}   (should be {target.strip()!r})")
    unrelated_before = {p: ask(router, p) for p in UNRELATED}
    for p, (a, e) in unrelated_before.items():
        print(f"  unrelated: {show(p)}\n      -> {a!r}{e}")

    print("\n== 2. Publishing the corrections to Kafka (topic scen.corrections)")
    run_id = time.strftime("%Y%m%d%H%M%S")
    event_ids = []
    for i, (prompt, target, rephrase) in enumerate(CORRECTIONS):
        event_id = f"demo-{run_id}-{i}"
        subprocess.run([args.scen, "publish", "--prompt", prompt, "--target", target]
                       + (["--rephrase", rephrase] if rephrase else [])
                       + ["--id", event_id, "--reporter", "demo", "--source", "make-demo"], check=True,
                       stdout=subprocess.DEVNULL)
        event_ids.append(event_id)
        print(f"  event {event_id}: {show(prompt)} -> {target!r}")

    print("\n== 3. Ingest validates and queues them; the trainer trains expert + indexing neuron each")
    deadline = time.time() + 600
    edits = {}
    while time.time() < deadline:
        page = call(f"{router}/v1/edits?limit=500")["edits"]
        edits = {e["event_id"]: e for e in page if e["event_id"] in event_ids}
        states = [edits[i]["status"] if i in edits else "not yet ingested" for i in event_ids]
        print("  " + ", ".join(states), flush=True)
        if all(s in ("active", "held", "failed") for s in states):
            break
        time.sleep(3)
    time.sleep(1.5)  # the router picks edits up by LISTEN/NOTIFY within a second

    print("\n== 4. The same questions through the router, after the corrections")
    for prompt, target, rephrase in CORRECTIONS:
        answer, edit = ask(router, prompt)
        print(f"  {show(prompt)}\n      before {before[prompt][0]!r}, now {answer!r}{edit}")
        if rephrase:
            answer, edit = ask(router, rephrase)
            print(f"  rephrased: {show(rephrase)}\n      -> {answer!r}{edit}")
    for p, (a, e) in unrelated_before.items():
        now = ask(router, p)
        same = "unchanged" if now[0] == a else "CHANGED"
        print(f"  unrelated: {show(p)}\n      -> {now[0]!r}{now[1]}   ({same})")

    print("\n== 5. The audit trail in PostgreSQL (audit_log, append-only)")
    ids = [str(edits[i]["id"]) for i in event_ids if i in edits]
    query = ("SELECT to_char(at, 'HH24:MI:SS') AS at, actor, action, edit_id, coalesce(from_status, '') AS from_status, "
             "coalesce(to_status, '') AS to_status FROM audit_log WHERE edit_id = ANY(string_to_array(:'ids', ',')::bigint[]) "
             "ORDER BY id")
    subprocess.run(["psql", args.postgres_url, "-v", f"ids={','.join(ids)}", "-P", "pager=off"], input=query + ";\n",
                   text=True, check=False)

    prompt, target, _ = CORRECTIONS[0]
    edit_id = edits[event_ids[0]]["id"]
    print(f"== 6. Reverting edit {edit_id} ({show(prompt)} -> {target!r}) through the router's admin API")
    reverted = call(f"{router}/v1/edits/{edit_id}/revert", {}, token=token)
    print(f"  edit {edit_id} is now {reverted['edit']['status']}")
    answer, edit = ask(router, prompt)
    back = "the old answer is back" if answer == before[prompt][0] else "differs from the old answer"
    print(f"  {show(prompt)}\n      -> {answer!r}{edit}   ({back})")
    history = call(f"{router}/v1/edits/{edit_id}")["history"]
    print("  its history: " + " -> ".join(h["action"] for h in history))
    print("\ndemo: done")


if __name__ == "__main__":
    main()
