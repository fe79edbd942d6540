"""The peers a user would pick instead of this library, each as a small program the harness
(run.py) runs under /usr/bin/time. Endpoints come from AWS_ENDPOINT_URL_KINESIS /
AWS_ENDPOINT_URL_DYNAMODB; each prints one JSON line on stdout (the consumer prints one
"shard key data" line per record, then the JSON line).

  aiokpl   STREAM N SIZE   aiokpl 0.2.0, a pure-Python KPL (aggregation, rate limits, retries)
  boto3    STREAM N SIZE   plain boto3 PutRecords, batches of 500, failed entries retried
  codec    N SIZE          aws-kinesis-agg's RecordAggregator
  kcl      STREAM APP      kcl-rs 0.1.4 (Rust KCL port, Python bindings), polling
"""

import asyncio
import json
import os
import random
import sys
import time

REGION = os.environ.get("AWS_REGION", "us-east-1")


def payload(n, size):
    head = f"rec-{n:09d}-".encode()
    return head + b"x" * max(0, size - len(head))


def aiokpl_producer(stream, n, size):
    from aiokpl import Config, Producer

    async def main():
        config = Config(
            region=REGION,
            endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        acked = failed = throttled = 0
        start = time.monotonic()
        async with Producer(config) as producer:
            outcomes = []
            for i in range(n):
                outcomes.append(
                    await producer.put_record(stream=stream, partition_key=f"{random.getrandbits(64):016x}", data=payload(i, size))
                )
            await producer.flush()
            for outcome in outcomes:
                result = await outcome.wait()
                if result.success:
                    acked += 1
                else:
                    failed += 1
                throttled += sum(1 for a in result.attempts if not a.success and "Throughput" in (a.error_code or ""))
        seconds = time.monotonic() - start
        return {"acknowledged": acked, "failed": failed, "throttled_entries": throttled, "seconds": seconds}

    print(json.dumps(asyncio.run(main())))


def boto3_producer(stream, n, size):
    import boto3

    client = boto3.client("kinesis", region_name=REGION)
    acked = failed = throttled = 0
    start = time.monotonic()
    pending = [(i, {"Data": payload(i, size), "PartitionKey": f"{random.getrandbits(64):016x}"}) for i in range(n)]
    deadline = {}
    while pending:
        batch, pending = pending[:500], pending[500:]
        out = client.put_records(StreamName=stream, Records=[e for _, e in batch])
        retry = []
        for (i, entry), result in zip(batch, out["Records"]):
            if "ErrorCode" not in result:
                acked += 1
                continue
            throttled += result["ErrorCode"] == "ProvisionedThroughputExceededException"
            first = deadline.setdefault(i, time.monotonic())
            if time.monotonic() - first > 30:
                failed += 1
            else:
                retry.append((i, entry))
        if retry:
            # Failed entries go again after a short backoff, ahead of the rest.
            time.sleep(0.1 if len(retry) < len(batch) else 0.5)
            pending = retry + pending
    seconds = time.monotonic() - start
    print(json.dumps({"acknowledged": acked, "failed": failed, "throttled_entries": throttled, "seconds": seconds}))


def codec(n, size):
    from aws_kinesis_agg.aggregator import RecordAggregator

    records = [(f"key-{i % 1000}", b"x" * size) for i in range(n)]
    start = time.monotonic()
    aggregator = RecordAggregator()
    aggregates = 0
    for key, data in records:
        if aggregator.add_user_record(key, data) is not None:
            aggregates += 1
    aggregator.clear_and_get().get_contents()
    seconds = time.monotonic() - start
    print(json.dumps({"records": n, "seconds": seconds, "records_per_s": n / seconds, "aggregates": aggregates + 1}))


def kcl_consumer(stream, app):
    from kcl_rs import RecordProcessorBase, Scheduler

    class Printer(RecordProcessorBase):
        def initialize(self, i):
            self.shard = i.shard_id

        def process_records(self, p):
            lines = [f"{self.shard} {r.partition_key} {bytes(r.binary_data).decode(errors='replace')}" for r in p.records]
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
            p.checkpointer.checkpoint()

        def lease_lost(self, l):
            pass

        def shard_ended(self, s):
            s.checkpointer.checkpoint()

        def shutdown_requested(self, s):
            s.checkpointer.checkpoint()

    scheduler = Scheduler(
        stream_name=stream,
        application_name=app,
        record_processor_factory=Printer,
        region=REGION,
        # Endpoints from AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_DYNAMODB (endpoint_url
        # would send DynamoDB calls to the Kinesis endpoint too).
        access_key_id="local",
        secret_access_key="local",
        initial_position="TRIM_HORIZON",
        retrieval_mode="POLLING",
    )
    scheduler.run()


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "aiokpl":
        aiokpl_producer(args[0], int(args[1]), int(args[2]))
    elif cmd == "boto3":
        boto3_producer(args[0], int(args[1]), int(args[2]))
    elif cmd == "codec":
        codec(int(args[0]), int(args[1]))
    elif cmd == "kcl":
        kcl_consumer(args[0], args[1])
    else:
        sys.exit(__doc__)
