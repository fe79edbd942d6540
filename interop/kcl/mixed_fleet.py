"""A mixed fleet on one lease table: two workers of the real KCL 3.x and two of ours.

Run by isolated.sh inside a private network namespace with kinesis-mock and DynamoDB Local
on loopback. Steps, each with a deadline:

1. an 8-shard stream; a producer (our `produce` example) sends `key-NNNN:N` records at a
   steady rate for the whole run;
2. two KCL workers and two of ours start with one application name (the second KCL worker
   once the first has initialised: see below): every shard gets an owner and each of the
   four ends up holding two leases (each side its share);
3. `kill -9` of one KCL worker: its leases get live owners again;
4. `kill -9` of one of ours: the same;
5. once the producer is done, every record it sent has been processed (at least once), and
   within each processor's tenure of a shard the records came in stream order (a batch
   delivered again after a failed checkpoint is a replay, not disorder).

Prints one JSON line of figures; exits non-zero on any failure.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import boto3

KINESIS = "http://127.0.0.1:4568"
DYNAMODB = "http://127.0.0.1:8001"
STREAM = "mixed"
APP = "mixed-fleet"
SHARDS = 8
KEYS = 64
RATE = 40.0
SECONDS = 75

BIN = os.environ["BIN"]
KCL_CLASSPATH = os.environ["KCL_CLASSPATH"]
WORK = os.environ["WORK"]

ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
           AWS_REGION="us-east-1", RUST_LOG="kinesis_consumer=info")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fail(message):
    log(f"FAILED: {message}")
    sys.exit(1)


def out_file(worker):
    return os.path.join(WORK, f"{worker}.records")


def start_kcl(worker):
    return subprocess.Popen(
        ["java", "-Xmx512m", "-Dorg.slf4j.simpleLogger.showDateTime=true",
         "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
         "-cp", KCL_CLASSPATH, "interop.KclWorker", "--stream", STREAM, "--app", APP,
         "--kinesis", KINESIS, "--dynamodb", DYNAMODB, "--worker-id", worker,
         "--out", out_file(worker)],
        stdout=open(os.path.join(WORK, f"{worker}.log"), "w"), stderr=subprocess.STDOUT, env=ENV)


def start_ours(worker):
    return subprocess.Popen(
        [os.path.join(BIN, "examples", "consume"), "--stream", STREAM, "--app-name", APP,
         "--kinesis-endpoint", KINESIS, "--dynamodb-endpoint", DYNAMODB, "--worker-id", worker,
         "--records-out", out_file(worker)],
        stdout=open(os.path.join(WORK, f"{worker}.out"), "w"),
        stderr=open(os.path.join(WORK, f"{worker}.log"), "w"), env=ENV)


def leases(dynamodb):
    """The lease items of the table (KCL 3.5 keeps other kinds of entries there too)."""
    items, start = [], None
    while True:
        kwargs = {"TableName": APP, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = dynamodb.scan(**kwargs)
        items.extend(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return {i["leaseKey"]["S"]: i for i in items
            if i.get("entityType", {"S": "LEASE"})["S"] == "LEASE"}


def owners(dynamodb):
    try:
        return {k: v.get("leaseOwner", {}).get("S") for k, v in leases(dynamodb).items()}
    except dynamodb.exceptions.ResourceNotFoundException:
        return {}


def wait_for(what, deadline_s, check, dynamodb):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        state = owners(dynamodb)
        if check(state):
            seconds = time.monotonic() - start
            log(f"{what} after {seconds:.1f} s: {count_by_owner(state)}")
            return seconds
        time.sleep(0.5)
    fail(f"{what}: not within {deadline_s} s; owners {count_by_owner(owners(dynamodb))}")


def dynamodb_has(dynamodb, key):
    try:
        return "Item" in dynamodb.get_item(TableName=APP, Key={"leaseKey": {"S": key}})
    except dynamodb.exceptions.ResourceNotFoundException:
        return False


def count_by_owner(state):
    counts = defaultdict(int)
    for owner in state.values():
        counts[owner or "-"] += 1
    return dict(sorted(counts.items()))


def read_records(worker):
    """Tenures (shard, [(seq, sub, key, n)]) in the order the worker processed them."""
    tenures, current = [], {}
    if not os.path.exists(out_file(worker)):
        return tenures
    with open(out_file(worker), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "#init":
                current[parts[1]] = []
                tenures.append((parts[1], current[parts[1]]))
                continue
            if len(parts) != 5:
                continue  # a line cut short by kill -9
            shard, key, seq, sub, data = parts
            if shard not in current:
                current[shard] = []
                tenures.append((shard, current[shard]))
            current[shard].append((int(seq), int(sub), key, int(data.split(":")[1])))
    return tenures


def main():
    os.makedirs(WORK, exist_ok=True)
    dynamodb = boto3.client("dynamodb", endpoint_url=DYNAMODB, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")
    produce = os.path.join(BIN, "examples", "produce")
    subprocess.run([produce, "--stream", STREAM, "--records", "0", "--create-shards",
                    str(SHARDS), "--kinesis-endpoint", KINESIS], env=ENV, check=True,
                   stdout=subprocess.DEVNULL)
    records = int(RATE * SECONDS)
    producer = subprocess.Popen(
        [produce, "--stream", STREAM, "--records", str(records), "--keys", str(KEYS),
         "--rate", str(RATE), "--kinesis-endpoint", KINESIS],
        stdout=open(os.path.join(WORK, "produce.out"), "w"),
        stderr=open(os.path.join(WORK, "produce.log"), "w"), env=ENV)
    workers = {"kcl-1": start_kcl("kcl-1"), "rs-1": start_ours("rs-1"),
               "rs-2": start_ours("rs-2")}
    figures = {"records_sent": records}
    try:
        # Two KCL 3.5 workers starting at the same instant on a new application race to
        # create its migration state; the loser fails to initialise for good ("Failed to
        # create migration state for CLIENT_VERSION_3X", then "AssignmentMode is not
        # initialized" on every retry). So the second starts once the first has written it.
        start = time.monotonic()
        while not dynamodb_has(dynamodb, "Migration3.0"):
            if time.monotonic() - start > 90:
                fail("kcl-1 did not initialise within 90 s")
            time.sleep(0.5)
        workers["kcl-2"] = start_kcl("kcl-2")
        log(f"kcl-2 started, {time.monotonic() - start:.1f} s after the others")
        figures["all_owned_s"] = wait_for(
            "every shard owned", 120,
            lambda s: len(s) == SHARDS and all(s.values()), dynamodb)
        figures["shared_s"] = wait_for(
            "each of the 4 workers holds 2 leases", 150,
            lambda s: len(s) == SHARDS and count_by_owner(s) == {w: 2 for w in workers},
            dynamodb)
        start = time.monotonic()
        while not all(sum(len(b) for _, b in read_records(w)) for w in workers):
            if time.monotonic() - start > 60:
                fail("not every worker processed records within 60 s of sharing")
            time.sleep(0.5)
        figures["all_processing_s"] = round(time.monotonic() - start, 1)
        log(f"every worker is processing, {figures['all_processing_s']} s after sharing")
        for victim in ["kcl-2", "rs-2"]:
            os.kill(workers[victim].pid, signal.SIGKILL)
            workers[victim].wait()
            log(f"kill -9 {victim}")
            alive = [w for w in workers if workers[w].poll() is None]
            figures[f"failover_{victim}_s"] = wait_for(
                f"{victim}'s leases have live owners", 120,
                lambda s: len(s) == SHARDS and all(o in alive for o in s.values()), dynamodb)
        if producer.wait(timeout=SECONDS * 2 + 60) != 0:
            fail("the producer failed; see produce.log")
        log("producer done")
        sent = {(f"key-{i % KEYS:04d}", i // KEYS) for i in range(records)}
        start = time.monotonic()
        while True:
            seen = set()
            for w in workers:
                for _, batch in read_records(w):
                    seen.update((key, n) for _, _, key, n in batch)
            missing = sent - seen
            if not missing:
                break
            if time.monotonic() - start > 120:
                fail(f"{len(missing)} records never processed, e.g. {sorted(missing)[:5]}")
            time.sleep(1)
        figures["drain_after_producer_s"] = round(time.monotonic() - start, 1)
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if producer.poll() is None:
            producer.kill()

    processed, out_of_order, per_worker = 0, 0, {}
    for w in workers:
        tenures = read_records(w)
        per_worker[w] = sum(len(b) for _, b in tenures)
        processed += per_worker[w]
        for shard, batch in tenures:
            # A batch whose checkpoint failed is delivered again (at least once): going back
            # is a replay if every record it goes back to came in this tenure already.
            seen, last = set(), None
            for seq, sub, _, _ in batch:
                if last is not None and (seq, sub) <= last and (seq, sub) not in seen:
                    out_of_order += 1
                seen.add((seq, sub))
                last = (seq, sub)
    # The stream's order of each key, as the producer put it: a property of the producer.
    by_key = defaultdict(dict)
    for w in workers:
        for _, batch in read_records(w):
            for seq, sub, key, n in batch:
                by_key[key][(seq, sub)] = n
    key_reorders = 0
    for by_position in by_key.values():
        ns = [n for _, n in sorted(by_position.items())]
        key_reorders += sum(1 for a, b in zip(ns, ns[1:]) if b < a)
    figures.update(processed=processed, duplicates=processed - records,
                   per_worker=per_worker, out_of_stream_order=out_of_order,
                   keys_out_of_send_order_in_stream=key_reorders)
    print(json.dumps(figures), flush=True)
    if out_of_order:
        fail(f"{out_of_order} records processed out of stream order within a tenure")
    for w in workers:
        if per_worker[w] == 0:
            fail(f"{w} processed nothing")
    log("mixed fleet: OK")


if __name__ == "__main__":
    main()
