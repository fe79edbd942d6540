"""Side-by-side benchmark of our producer and consumer against the peers a user would pick
instead, on one emulator (our kinesis-testkit binary, with and without shard limits) and
one workload. Called by run.sh, which installs the peers and builds our binaries.

  python run.py BIN_DIR [--records 100000] [--big-records 2000] [--consumer-records 20000]
                [--kpl-classpath CP]

Every producer runs as its own process under /usr/bin/time -v (CPU seconds, peak RSS) and
writes its own stream; every stream is read back with boto3 and deaggregated to count lost
and duplicate records, and the PUT payload units its Kinesis records cost. The real KPL
(Java, with its native daemon) talks to the emulator's HTTPS endpoint and reports its own CPU
and memory, the daemon's included; its stream is also read by our consumer. Consumers are timed from process start to first record, and, with
two workers sharing a stream, from `kill -9` of one until its shards deliver again.
"""

import argparse
import base64
import math
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import boto3
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = [sys.executable, os.path.join(HERE, "peers.py")]
MIB = 1024 * 1024
# Kinesis bills PUT payload units of 25 KB per record, rounded up.
PUT_UNIT = 25 * 1024
KPL = "KPL 1.1.1 (Java)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Emulator:
    """Our kinesis-testkit binary on loopback ports, as a child process."""

    def __init__(self, bin_dir, limits):
        self.kport, self.dport = free_port(), free_port()
        self.tls_port = free_port()
        args = [os.path.join(bin_dir, "kinesis-testkit"), "--kinesis-port", str(self.kport), "--dynamodb-port", str(self.dport),
                "--kinesis-tls-port", str(self.tls_port)]
        if limits:
            args.append("--enforce-limits")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if line.startswith("dynamodb"):
                break
        self.env = dict(
            os.environ,
            AWS_ENDPOINT_URL_KINESIS=f"http://127.0.0.1:{self.kport}",
            AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{self.dport}",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            RUST_LOG="warn",
        )
        self.kinesis = boto3.client("kinesis", endpoint_url=self.env["AWS_ENDPOINT_URL_KINESIS"], region_name="us-east-1",
                                    aws_access_key_id="local", aws_secret_access_key="local")

    def create(self, stream, shards):
        self.kinesis.create_stream(StreamName=stream, ShardCount=shards)
        while self.kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            time.sleep(0.05)

    def read_back(self, stream):
        """(user records, distinct payloads, Kinesis records, PUT payload units) of the stream."""
        total, distinct, stored, units = 0, set(), 0, 0
        for shard in self.kinesis.list_shards(StreamName=stream)["Shards"]:
            it = self.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                page = self.kinesis.get_records(ShardIterator=it, Limit=10000)
                for record in page["Records"]:
                    stored += 1
                    units += math.ceil((len(record["Data"]) + len(record["PartitionKey"].encode())) / PUT_UNIT)
                for user in iter_deaggregate_records(page["Records"], data_format="Boto3"):
                    total += 1
                    data = user["kinesis"]["data"]
                    # Deaggregated records come base64-encoded, plain ones as they were.
                    distinct.add(base64.b64decode(data) if isinstance(data, str) else bytes(data))
                if not page["Records"]:
                    break
                it = page.get("NextShardIterator")
        return total, len(distinct), stored, units

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)


def timed(args, env):
    """Runs a command under /usr/bin/time -v; returns (stdout, cpu seconds, peak RSS MiB)."""
    out = subprocess.run(["/usr/bin/time", "-v", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {out.stderr[-2000:]}")
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", out.stderr).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", out.stderr).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    return out.stdout, user + system, rss


def last_json(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def read_by_ours(bin_dir, emulator, stream, work):
    """Distinct payloads our consumer delivers from the whole stream (KPL-aggregated records
    deaggregated by our worker), once it has been idle for 6 s (counted from its start until
    the first record: generous, for a loaded CI machine)."""
    out = os.path.join(work, f"{stream}-read.tsv")
    if os.path.exists(out):
        os.remove(out)
    subprocess.run([os.path.join(bin_dir, "examples", "consume"), "--stream", stream, "--app-name", f"read-{stream}-{os.getpid()}",
                    "--until-idle", "6", "--records-out", out], env=emulator.env, check=True, capture_output=True, timeout=300)
    with open(out, encoding="utf-8") as f:
        return len({line.rstrip("\n").split("\t", 4)[4] for line in f if not line.startswith("#")})


def producers(bin_dir, records, size, shards, limits, kpl_classpath=None):
    rows = []
    emulator = Emulator(bin_dir, limits)
    try:
        runs = [
            ("ours", [os.path.join(bin_dir, "examples", "produce"), "--stream", "ours", "--records", str(records), "--size", str(size)]),
            ("aiokpl 0.2.0", [*PEERS, "aiokpl", "aiokpl", str(records), str(size)]),
            ("boto3 PutRecords", [*PEERS, "boto3", "boto3", str(records), str(size)]),
        ]
        if kpl_classpath:
            runs.append((KPL, ["java", "-cp", kpl_classpath, "peers.KplProducer", "127.0.0.1", str(emulator.tls_port), "kpl",
                               str(records), str(size)]))
        for name, args in runs:
            stream = "kpl" if name == KPL else args[args.index("--stream") + 1] if "--stream" in args else args[len(PEERS) + 1]
            emulator.create(stream, shards)
            stdout, cpu, rss = timed(args, emulator.env)
            result = last_json(stdout)
            if name == KPL:
                # The KPL's daemon is a process of its own, alive beside the JVM: its peak adds
                # to the JVM's (/usr/bin/time reports the larger); its CPU counts in
                # /usr/bin/time's once the JVM has reaped it, as KplProducer makes sure.
                cpu = max(cpu, result["jvm_cpu_s"] + result["daemon_cpu_s"])
                rss = result["jvm_peak_rss_mib"] + result["daemon_peak_rss_mib"]
            acked = result["acknowledged"]
            total, distinct, stored, units = emulator.read_back(stream)
            rows.append({
                "producer": name, "limits": "on" if limits else "off", "records": records, "size": size, "shards": shards,
                "records_per_s": acked / result["seconds"],
                "mb_per_s_per_shard": acked * size / MIB / result["seconds"] / shards,
                "throttled_entries": result.get("throttled_entries", 0),
                "cpu_s_per_100k": cpu / records * 100_000, "peak_rss_mib": rss,
                "lost": records - distinct, "duplicates": total - distinct, "failed": result.get("failed", 0),
                "kinesis_records": stored, "put_payload_units": units,
            })
            if name == KPL:
                rows[-1]["kpl_split"] = {k: result[k] for k in ("jvm_cpu_s", "daemon_cpu_s", "jvm_peak_rss_mib", "daemon_peak_rss_mib")}
                rows[-1]["read_by_our_consumer"] = read_by_ours(bin_dir, emulator, stream, os.path.dirname(bin_dir.rstrip("/")))
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        emulator.stop()
    return rows


class Worker:
    """A consumer process whose stdout lines ("shard key data") are timestamped as they come."""

    def __init__(self, args, env):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(["/usr/bin/time", "-v", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []  # (time, shard, data)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr = ""
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0].startswith("shardId"):
                with self.lock:
                    self.lines.append((time.monotonic(), parts[0], parts[2]))

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def seen(self):
        with self.lock:
            return list(self.lines)

    def kill(self):
        # SIGKILL the consumer itself, not /usr/bin/time.
        child = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in child:
            os.kill(int(pid), signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        child = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in child:
            os.kill(int(pid), signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        time.sleep(0.2)
        cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", self.stderr))
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", self.stderr)
        return cpu, (int(rss.group(1)) / 1024 if rss else 0)


def consumer_command(name, bin_dir, stream, app):
    if name == "ours":
        return [os.path.join(bin_dir, "examples", "consume"), "--stream", stream, "--app-name", app, "--print"]
    return [*PEERS, "kcl", stream, app]


def trickle(emulator, stream, stop):
    """One record per shard every 100 ms, so every shard always has something to deliver."""
    shards = emulator.kinesis.list_shards(StreamName=stream)["Shards"]
    n = 0
    while not stop.is_set():
        entries = [{"Data": f"tick-{n}-{i}".encode(), "PartitionKey": "t", "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"]}
                   for i, s in enumerate(shards)]
        emulator.kinesis.put_records(StreamName=stream, Records=entries)
        n += 1
        time.sleep(0.1)


def consumers(bin_dir, records, size, shards, bound, peer_failover, names):
    rows = []
    emulator = Emulator(bin_dir, False)
    try:
        emulator.create("consume-src", shards)
        subprocess.run([os.path.join(bin_dir, "examples", "produce"), "--stream", "consume-src", "--records", str(records),
                        "--size", str(size)], env=emulator.env, check=True, capture_output=True)
        for name in names:
            app = "read-" + name.split()[0]
            worker = Worker(consumer_command(name, bin_dir, "consume-src", app), emulator.env)
            deadline = time.monotonic() + bound
            while time.monotonic() < deadline and len({d for _, _, d in worker.seen()}) < records:
                time.sleep(0.2)
            seen = worker.seen()
            cpu, rss = worker.stop()
            distinct = {d for _, _, d in seen}
            first = seen[0][0] - worker.start if seen else None
            took = (seen[-1][0] - seen[0][0]) if len(seen) > 1 else None

            failover, victim_shards = None, set()
            if name != "ours" and not peer_failover:
                rows.append(row(name, records, shards, distinct, first, seen, took, cpu, rss, failover, victim_shards))
                continue
            # Failover: two workers share a fresh stream; kill -9 one; time until its shards
            # deliver again through the other.
            stream = "failover-" + name.split()[0]
            emulator.create(stream, shards)
            stop = threading.Event()
            ticker = threading.Thread(target=trickle, args=(emulator, stream, stop), daemon=True)
            ticker.start()
            app = "failover-" + name.split()[0]
            a = Worker(consumer_command(name, bin_dir, stream, app), emulator.env)
            b = Worker(consumer_command(name, bin_dir, stream, app), emulator.env)
            failover = None
            deadline = time.monotonic() + bound
            while time.monotonic() < deadline:
                now = time.monotonic()
                recent_a = {s for t, s, _ in a.seen() if t > now - 2}
                recent_b = {s for t, s, _ in b.seen() if t > now - 2}
                if recent_a and recent_b and len(recent_a | recent_b) == shards:
                    break
                time.sleep(0.2)
            else:
                print(f"{name}: the two workers never shared the shards", file=sys.stderr)
            victim_shards = {s for t, s, _ in a.seen() if t > time.monotonic() - 2}
            killed_at = time.monotonic()
            a.kill()
            deadline = killed_at + bound
            while time.monotonic() < deadline:
                back = {s for t, s, _ in b.seen() if t > killed_at}
                if victim_shards and victim_shards <= back:
                    failover = max(min(t for t, s2, _ in b.seen() if s2 == s and t > killed_at) for s in victim_shards) - killed_at
                    break
                time.sleep(0.1)
            b.stop()
            stop.set()
            ticker.join()
            rows.append(row(name, records, shards, distinct, first, seen, took, cpu, rss, failover, victim_shards))
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        emulator.stop()
    return rows


def row(name, records, shards, distinct, first, seen, took, cpu, rss, failover, victim_shards):
    return {
        "consumer": name, "records": records, "shards": shards, "delivered": len(distinct), "missing": records - len(distinct),
        "first_record_s": first, "records_per_s": (len(seen) / took) if took else None,
        "cpu_s_per_100k": cpu / records * 100_000, "peak_rss_mib": rss,
        "failover_after_kill_9_s": failover, "shards_of_killed_worker": len(victim_shards),
    }


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bin_dir")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--big-records", type=int, default=2_000)
    p.add_argument("--consumer-records", type=int, default=20_000)
    p.add_argument("--codec-records", type=int, default=200_000)
    p.add_argument("--bound", type=float, default=240.0, help="seconds to wait for any one consumer phase")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--kpl-classpath", help="run the real KPL too, from this Java class path (run.sh builds it)")
    p.add_argument("--no-kcl", action="store_true", help="consumers: ours only (kcl-rs takes minutes)")
    p.add_argument("--skip-peer-failover", action="store_true", help="do not time kcl-rs's failover (it takes minutes)")
    a = p.parse_args()

    rows = []
    for limits in (False, True):
        rows += producers(a.bin_dir, a.records, 100, 4, limits, a.kpl_classpath)
    rows += producers(a.bin_dir, a.big_records, 10_000, 1, True, a.kpl_classpath)
    print("\nProducers (same emulator, same workload; throughput from first send to last acknowledgement)\n")
    print("| producer | limits | workload | records/s | MB/s per shard | throttled entries | CPU s / 100k | peak RSS MiB | "
          "Kinesis records | PUT payload units | lost |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['producer']} | {r['limits']} | {r['records']:,} × {r['size']:,} B, {r['shards']} shard(s) | {fmt(r['records_per_s'], 0)} | "
              f"{fmt(r['mb_per_s_per_shard'], 2)} | {r['throttled_entries']:,} | {fmt(r['cpu_s_per_100k'], 2)} | {fmt(r['peak_rss_mib'], 0)} | "
              f"{r['kinesis_records']:,} | {r['put_payload_units']:,} | {r['lost']:,} |")
    for r in rows:
        if "kpl_split" in r:
            print(f"{r['producer']}, limits {r['limits']}, {r['records']:,} × {r['size']:,} B: {r['kpl_split']}; "
                  f"our consumer read {r['read_by_our_consumer']:,} distinct records of its stream")

    ours = last_json(subprocess.run([os.path.join(a.bin_dir, "codec_rate"), "--records", str(a.codec_records * 5), "--size", "100"],
                                    capture_output=True, text=True, check=True).stdout)
    theirs = last_json(subprocess.run([*PEERS, "codec", str(a.codec_records), "100"], capture_output=True, text=True, check=True).stdout)
    print("\nAggregation codec (100 B records)\n")
    print("| codec | records/s |\n|---|---:|")
    print(f"| ours | {fmt(ours['records_per_s'], 0)} |\n| aws-kinesis-agg (Python) | {fmt(theirs['records_per_s'], 0)} |")
    print(f"\nours / aws-kinesis-agg: {ours['records_per_s'] / theirs['records_per_s']:.0f}×")

    names = ["ours"] if a.no_kcl else ["ours", "kcl-rs 0.1.4"]
    crows = consumers(a.bin_dir, a.consumer_records, 100, 4, a.bound, not a.skip_peer_failover, names)
    print("\nConsumers (polling; 4 shards; failover: two workers, one killed with SIGKILL)\n")
    print("| consumer | records | missing at stop | start → first record s | records/s | CPU s / 100k | peak RSS MiB | kill -9 → shards delivering again s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in crows:
        print(f"| {r['consumer']} | {r['records']:,} | {r['missing']:,} | {fmt(r['first_record_s'], 2)} | {fmt(r['records_per_s'], 0)} | "
              f"{fmt(r['cpu_s_per_100k'], 2)} | {fmt(r['peak_rss_mib'], 0)} | {fmt(r['failover_after_kill_9_s'], 1)} |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"producers": rows, "codec": {"ours": ours, "aws_kinesis_agg": theirs}, "consumers": crows}, f, indent=1)
    ours_lost = sum(r["lost"] for r in rows if r["producer"] == "ours") + sum(r["missing"] for r in crows if r["consumer"] == "ours")
    # Every record the KPL stored must come out of our consumer (deaggregation of the real KPL's
    # aggregates).
    unread = [r for r in rows if r["producer"] == KPL and r["read_by_our_consumer"] != r["records"] - r["lost"]]
    for r in unread:
        print(f"our consumer read {r['read_by_our_consumer']} of the {r['records'] - r['lost']} records the KPL stored", file=sys.stderr)
    sys.exit(1 if ours_lost or unread else 0)


if __name__ == "__main__":
    main()
