#!/usr/bin/env python3
"""Fault soak: the whole pipeline (scen-ingest → scen-trainer → scen-router) under the faults
production brings, on a local stack of its own.

    python3 bench/fault_soak.py --events 10000 --fuzzed 1000

What it does:
  * writes a tiny random Gemma-3-shaped model with the real model's tokenizer (`scen tiny-model`:
    D = 16, six blocks), so thousands of edits train in minutes; the services run unchanged on it;
  * starts a durable stack (scripts/stack, tansu on S3 via scripts/s3_local.py) on ports of its own,
    migrates it and runs the three services as their own database roles;
  * publishes --events valid corrections (distinct prompts) in batches, --duplicates of them a
    second time, and --fuzzed malformed events (invalid JSON and UTF-8, 2 MB payloads, deep
    nesting, 30k-token prompts, wrong types, missing and empty fields, NUL characters, …);
  * meanwhile SIGKILLs each service --kills times at random moments spread over the run (when a
    random share of the events are final edits; restarting it after a moment, as an orchestrator
    would), restarts PostgreSQL once and the broker once;
  * waits until every valid event is an edit in a final state, then prints one JSON report:
    valid events lost, duplicate edits, malformed events without a dead letter (by the SHA-256
    of their bytes), exits nobody asked for (crash loops), and each fault's recovery time (until
    the pipeline made progress again; the router's until /healthz answered).

Needs the release build (`swift build -c release`; or $SCEN_BIN: a folder holding copies of
scen, scen-ingest, scen-trainer and scen-router, so a long soak survives a rebuild) and the
packages scripts/bootstrap installs.
Stdlib only. Exit status 0 when nothing was lost, doubled or left without a dead letter, and no
service exited on its own.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SCEN_BIN", os.path.join(ROOT, ".build", "release"))
FINAL = ("active", "held", "failed", "superseded", "reverted")


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Stack:
    """scripts/stack in a folder of its own (durable broker), stopped by down()."""

    def __init__(self, folder, pg_port, kafka_port, durable=True):
        self.env = dict(os.environ, SCEN_STACK_DIR=folder, SCEN_STACK_PG_PORT=str(pg_port),
                        SCEN_STACK_KAFKA_PORT=str(kafka_port), SCEN_STACK_DURABLE="1" if durable else "0")
        self.folder = folder
        self.script("up")
        self.settings = {}
        with open(os.path.join(folder, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    self.settings[k] = v

    def script(self, *args):
        # os.system waits for the script alone; the broker and the S3 endpoint it starts keep running.
        cmd = " ".join([os.path.join(ROOT, "scripts", "stack")] + list(args))
        status = subprocess.call(cmd, shell=True, env=self.env, stdout=subprocess.DEVNULL, start_new_session=True)
        if status != 0:
            raise RuntimeError(f"scripts/stack {' '.join(args)} failed ({status})")

    def down(self):
        try:
            self.script("down")
        except RuntimeError as e:
            log(str(e))


class Service:
    """One service binary, restarted on demand; counts exits nobody asked for."""

    def __init__(self, name, args, env, logdir):
        self.name, self.args, self.env, self.logdir = name, args, env, logdir
        self.proc = None
        self.starts = 0
        self.unasked_exits = []
        self.lock = threading.Lock()  # a kill and its restart are one step for check()
        self.start()

    def restart_killed(self, pause):
        """SIGKILL, a pause, and a start again."""
        with self.lock:
            self.kill9()
            time.sleep(pause)
            self.start()

    def start(self):
        self.starts += 1
        out = open(os.path.join(self.logdir, f"{self.name}.{self.starts}.log"), "wb")
        self.proc = subprocess.Popen([os.path.join(BIN, self.name)] + self.args, env=self.env, cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT)

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def check(self):
        """Restarts the service if it exited on its own (and records that)."""
        with self.lock:
            self._check()

    def _check(self):
        code = self.proc.poll()
        if code is not None:
            self.unasked_exits.append({"at": time.time(), "code": code, "log": f"{self.name}.{self.starts}.log"})
            log(f"{self.name} exited on its own ({code}); restarting")
            self.start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()


def valid_event(i, run):
    animals = ["otter", "heron", "lynx", "walrus", "ibis", "okapi", "tapir", "quokka"]
    return {"id": f"{run}-v{i}", "prompt": f"Fact {i}: the mascot of the team from town {i} is",
            "target": f" a {animals[i % len(animals)]}", "reporter": "soak", "source": "fault-soak",
            "created_at": "2026-01-31T12:00:00Z"}


def malformed_events(n, run, rng):
    """n malformed events, each unique bytes (a nonce), of many kinds; (kind, bytes)."""
    def base(j):
        return {"id": f"{run}-m{j}", "prompt": "Some prompt", "target": " some target", "reporter": "soak",
                "source": "fault-soak", "created_at": "2026-01-31T12:00:00Z"}

    def dump(o):
        return json.dumps(o).encode()

    kinds = []
    for j in range(n):
        k = j % 16
        o = base(j)
        if k == 0:
            b = dump(o)[: rng.randint(1, 40)] + f"#{j}".encode()
            kinds.append(("invalid-json", b))
        elif k == 1:
            b = dump(o)
            cut = rng.randint(5, len(b) - 5)
            kinds.append(("invalid-utf8", b[:cut] + bytes([0xC3, 0x28, 0xFF]) + b[cut:]))
        elif k == 2:
            depth = rng.choice([1_000, 10_000, 100_000])
            kinds.append(("deep-nesting", b'{"id": "%s-m%d", "x": ' % (run.encode(), j) + b"[" * depth + b"]" * depth + b"}"))
        elif k == 3:
            o["prompt"] = " ".join(f"w{t % 97}" for t in range(30_000))  # ~30k+ tokens
            kinds.append(("30k-token-prompt", dump(o)))
        elif k == 4:
            o["prompt"] = rng.choice([42, None, True, ["a"], {"a": 1}])
            kinds.append(("wrong-type", dump(o)))
        elif k == 5:
            del o[rng.choice(["id", "prompt", "target", "reporter", "source", "created_at"])]
            kinds.append(("missing-field", dump(o)))
        elif k == 6:
            o[rng.choice(["prompt", "target", "reporter"])] = rng.choice(["", "   ", "\t\n"])
            kinds.append(("empty-field", dump(o)))
        elif k == 7:
            o["prompt"] = f"nul \u0000 inside {j}"
            kinds.append(("nul-character", dump(o)))
        elif k == 8:
            o["created_at"] = rng.choice(["yesterday", "2026-13-45T99:00:00Z", "", "1700000000"])
            kinds.append(("bad-timestamp", dump(o)))
        elif k == 9:
            o["rephrases"] = rng.choice(["not a list", [1, 2], [f"r{x}" for x in range(40)]])
            kinds.append(("bad-rephrases", dump(o)))
        elif k == 10:
            kinds.append(("not-an-object", rng.choice([b"[1, 2, 3", b"null", b'"text"', b"17", b"[]"]) + b" " * (j % 7) + f"\n{j}".encode()))
        elif k == 11:
            o["id"] = "x" * rng.choice([129, 1000, 10_000])
            o["n"] = j
            kinds.append(("field-too-long", dump(o)))
        elif k == 12:
            o["prompt"] = " ".join(f"t{t % 89}" for t in range(700))  # within characters, over the token limit
            kinds.append(("over-token-limit", dump(o)))
        elif k == 13:
            kinds.append(("empty-payload" if j < 16 else "whitespace-payload", b" " * (j // 16)))
        elif k == 14:
            kinds.append(("binary", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) + f"{j}".encode()))
        else:
            o["target"] = "z" * rng.choice([5_000, 70_000])
            kinds.append(("oversized-field", dump(o)))
    return kinds


def publish(stack, lines_b64, extra=()):
    """Publishes base64 lines through `scen publish --file --base64`; retries while the broker is down."""
    with tempfile.NamedTemporaryFile("w", suffix=".b64", delete=False) as f:
        f.write("\n".join(lines_b64) + "\n")
        path = f.name
    env = dict(os.environ, SCEN_STACK_ENV=os.path.join(stack.folder, "env"))
    for attempt in range(20):
        r = subprocess.run([os.path.join(BIN, "scen"), "publish", "--file", path, "--base64", *extra],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode == 0:
            os.unlink(path)
            return True
        log(f"publish failed (attempt {attempt + 1}): {r.stderr.decode(errors='replace').strip()[-200:]}")
        time.sleep(3)
    os.unlink(path)
    return False


def psql(url, sql):
    r = subprocess.run(["psql", url, "-tAXc", sql], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return [line.split("|") for line in r.stdout.splitlines() if line]


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--duplicates", type=int, default=200)
    ap.add_argument("--fuzzed", type=int, default=1_000)
    ap.add_argument("--large", type=int, default=5, help="2 MB payloads among the fuzzed ones")
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs of each service")
    ap.add_argument("--batch", type=int, default=1_000, help="events per publish")
    ap.add_argument("--pg-port", type=int, default=55451)
    ap.add_argument("--kafka-port", type=int, default=59111)
    ap.add_argument("--router-port", type=int, default=18091)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for every event")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--memory-broker", action="store_true",
                    help="keep the broker's log in memory and skip the broker restart")
    ap.add_argument("--model", default=os.environ.get("SCEN_MODEL", os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")),
                    help="the real model whose tokenizer the tiny model gets")
    ap.add_argument("--keep", action="store_true", help="leave the stack and its folder for inspection")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    run = f"soak{int(time.time()) % 100000}"
    work = tempfile.mkdtemp(prefix="scen-soak-")
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user when we are root
    logdir = os.path.join(work, "logs")
    os.makedirs(logdir)
    log(f"folder {work}")

    tiny = os.path.join(work, "tiny.gguf")
    subprocess.run([os.path.join(BIN, "scen"), "tiny-model", "--model", args.model, "--out", tiny], check=True,
                   stdout=subprocess.DEVNULL)
    hp = os.path.join(work, "hyperparameters.json")
    with open(hp, "w") as f:
        json.dump({"layer": 3}, f)

    stack = Stack(os.path.join(work, "stack"), args.pg_port, args.kafka_port, durable=not args.memory_broker)
    services = []
    report = {}
    try:
        owner = stack.settings["SCEN_POSTGRES_URL"]
        env = dict(os.environ, SCEN_STACK_ENV=os.path.join(stack.folder, "env"), SCEN_MODEL=tiny, SCEN_METRICS_PORT="0",
                   SCEN_KAFKA_SETTINGS="session.timeout.ms=6000,heartbeat.interval.ms=1000", OPENBLAS_NUM_THREADS="1",
                   SCEN_LOG_LEVEL="notice")
        subprocess.run([os.path.join(BIN, "scen"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        ingest = Service("scen-ingest", [], env, logdir)
        trainer = Service("scen-trainer", ["--hyperparameters", hp, "--threads", "1"], env, logdir)
        router = Service("scen-router", ["--hyperparameters", hp, "--port", str(args.router_port), "--threads", "1"], env, logdir)
        services = [ingest, trainer, router]

        valid = [valid_event(i, run) for i in range(args.events)]
        valid_lines = [base64.b64encode(json.dumps(v).encode()).decode() for v in valid]
        dup_lines = rng.sample(valid_lines, min(args.duplicates, len(valid_lines)))
        malformed = malformed_events(args.fuzzed, run, rng)
        big = [("2mb-payload", json.dumps({**valid_event(10**7 + j, run), "prompt": "p" * 2_100_000}).encode())
               for j in range(args.large)]
        all_bad = malformed + big
        bad_sha = {hashlib.sha256(b).hexdigest(): kind for kind, b in all_bad}
        bad_lines = [base64.b64encode(b).decode() for _, b in malformed]
        # Valid, duplicate and malformed events interleaved, in batches.
        stream = [("v", l) for l in valid_lines] + [("d", l) for l in dup_lines] + [("m", l) for l in bad_lines]
        head = stream[: args.events]
        tail = stream[args.events:]
        rng.shuffle(tail)
        for line in tail:
            head.insert(rng.randint(0, len(head)), line)
        batches = [[l for _, l in head[i:i + args.batch]] for i in range(0, len(head), args.batch)]

        # Faults: each service killed --kills times, PostgreSQL and (durable) the broker restarted once.
        faults = ["scen-ingest", "scen-trainer", "scen-router"] * args.kills + ["postgres"] + ([] if args.memory_broker else ["kafka"])
        rng.shuffle(faults)
        done = threading.Event()
        recoveries = []
        started = time.time()

        def counts():
            rows = psql(owner, "SELECT (SELECT count(*) FROM corrections), (SELECT count(*) FROM edits WHERE status IN "
                               "('active','held','failed','superseded','reverted')), (SELECT count(*) FROM dead_letters)")
            return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

        def monitor():
            while not done.is_set():
                for s in services:
                    s.check()
                time.sleep(0.5)

        def publisher():
            for i, b in enumerate(batches):
                publish(stack, b)
                log(f"published batch {i + 1}/{len(batches)}")
                time.sleep(1)
            for kind, b in big:
                ok = publish(stack, [base64.b64encode(b).decode()], ("--kafka-setting", "message.max.bytes=4000000"))
                if not ok:
                    bad_sha.pop(hashlib.sha256(b).hexdigest(), None)
                    log("the broker refused a 2 MB payload; not counted")

        probes = []

        def progress():
            """(events handled by ingest, edits in a final state), or None while PostgreSQL is away."""
            try:
                c, fin, dl = counts()
                return c + dl, fin
            except Exception:
                return None

        def recovery(at, before, watch, extra_check=None, limit=600):
            """Seconds from the fault until the pipeline works again (and `extra_check()` holds): a
            count in `watch` (0: events ingest handled, 1: edits final) moved past its value before
            the fault, or, when there was nothing left to do, a correction published right after
            the fault became a final edit."""
            probe = valid_event(len(probes), run + "-probe")
            # Its own numbers: a valid event with the same names would be the same fact to SameFact.
            probe["prompt"] = f"Probe {len(probes)}: the mascot of the team from village {900_000 + len(probes)} is"
            probes.append(probe["id"])
            threading.Thread(target=publish, args=(stack, [base64.b64encode(json.dumps(probe).encode()).decode()]),
                             daemon=True).start()
            while time.time() - at < limit:
                now = progress()
                moved = now is not None and before is not None and any(now[i] > before[i] for i in watch)
                if not moved:
                    try:
                        moved = bool(psql(owner, f"SELECT 1 FROM edits WHERE event_id = '{probe['id']}' AND status IN "
                                                 "('active','held','failed','superseded','reverted')"))
                    except Exception:
                        moved = False
                if moved and (extra_check is None or extra_check()):
                    return round(time.time() - at, 2)
                time.sleep(0.2)
            return None

        threading.Thread(target=monitor, daemon=True).start()
        pub = threading.Thread(target=publisher, daemon=True)
        pub.start()
        by_name = {s.name: s for s in services}
        # Faults spread over the whole run: each waits until a random share (2–90 %) of the valid
        # events are final edits, then a few seconds more.
        shares = sorted(rng.uniform(0.02, 0.9) for _ in faults)
        give_up = started + args.timeout
        for fault, share in zip(faults, shares):
            while (progress() or (0, 0))[1] < share * args.events and time.time() < give_up:
                time.sleep(2)
            if time.time() >= give_up:
                log(f"no progress to {share:.0%} of the events within --timeout; {fault} comes now")
            time.sleep(rng.uniform(0, 5))
            before = progress()
            at = time.time()
            if fault in by_name:
                s = by_name[fault]
                log(f"SIGKILL {fault}")
                s.restart_killed(rng.uniform(0.2, 2))
                watch = {"scen-ingest": [0], "scen-trainer": [1], "scen-router": [0, 1]}[fault]
                rec = recovery(at, before, watch, (lambda: healthy(args.router_port)) if fault == "scen-router" else None)
            else:
                log(f"restart {fault}")
                stack.script("restart", fault)
                rec = recovery(at, before, [0, 1])
            recoveries.append({"fault": fault, "at_s": round(at - started, 1), "recovery_s": rec})
            log(f"{fault}: progress again after {rec} s")
        pub.join()

        # Wait for every valid event to be an edit in a final state.
        deadline = time.time() + args.timeout
        ids = {v["id"] for v in valid} | set(probes)
        while time.time() < deadline:
            for s in services:
                s.check()
            try:
                _, fin, dl = counts()
            except Exception:
                fin, dl = -1, -1
            log(f"final edits {fin}/{len(ids)}, dead letters {dl}")
            if fin >= len(ids) and dl >= len(bad_sha):
                break
            time.sleep(5)
        # The services must stay up (no crash loop) for a while at the end.
        time.sleep(10)
        for s in services:
            s.check()
        done.set()
        elapsed = time.time() - started

        edits = psql(owner, f"SELECT event_id, status FROM edits WHERE event_id LIKE '{run}-%'")
        per_event = {}
        for event_id, status in edits:
            per_event.setdefault(event_id, []).append(status)
        statuses = {}
        for sts in per_event.values():
            for st in sts:
                statuses[st] = statuses.get(st, 0) + 1
        dls = psql(owner, "SELECT encode(raw_sha256, 'hex'), reason FROM dead_letters")
        dl_reason = {}
        for sha, reason in dls:
            dl_reason.setdefault(sha, reason)
        undead = sorted({bad_sha[s] for s in bad_sha if s not in dl_reason})
        reasons = {}
        for sha, kind in bad_sha.items():
            if sha in dl_reason:
                reasons.setdefault(kind, {}).setdefault(dl_reason[sha], 0)
                reasons[kind][dl_reason[sha]] += 1
        report = {
            "valid_events": len(ids), "probe_events": len(probes), "duplicates_sent": len(dup_lines), "malformed_sent": len(bad_sha),
            "lost": len(ids - set(per_event)), "not_final": sum(1 for sts in per_event.values() if not set(sts) & set(FINAL)),
            "duplicate_edits": sum(len(s) - 1 for s in per_event.values()), "edit_status": statuses,
            "malformed_without_dead_letter": len([s for s in bad_sha if s not in dl_reason]), "undead_kinds": undead,
            "dead_letter_reasons": reasons,
            "faults": recoveries, "unasked_exits": {s.name: s.unasked_exits for s in services},
            "alive_at_end": {s.name: s.proc.poll() is None for s in services},
            "router_healthy_at_end": healthy(args.router_port),
            "seconds": round(elapsed, 1), "folder": work,
            "broker": "memory: no broker restart" if args.memory_broker else "durable (tansu on S3, scripts/s3_local.py)",
        }
    finally:
        for s in services:
            s.stop()
        if not args.keep:
            stack.down()
    print(json.dumps(report, indent=1))
    ok = (report.get("lost") == 0 and report.get("duplicate_edits") == 0 and report.get("not_final") == 0
          and report.get("malformed_without_dead_letter") == 0 and not any(report.get("unasked_exits", {"x": [1]}).values()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
