"""Our records through other libraries, and theirs through ours, with boto3 on the wire.

  read-ours STREAM CONSUMER_OUT RAW_OUT N
      Reads STREAM (written by our producer) with plain boto3 GetRecords, deaggregates every
      Kinesis record with the official Python aws-kinesis-agg, and checks that the N user
      records equal what our consumer printed (CONSUMER_OUT: "shard key data" lines). Writes
      the raw Kinesis records to RAW_OUT for the Node.js library to deaggregate.
  compare-node RAW_DEAGGREGATED CONSUMER_OUT
      Checks the Node.js library's deaggregation equals our consumer's.
  write-theirs STREAM NODE_AGGREGATES N EXPECTED_OUT
      Aggregates N user records with the Python library (and puts the Node library's
      aggregates from NODE_AGGREGATES) into STREAM with boto3; writes the user records our
      consumer must deliver to EXPECTED_OUT.
  kcl-write TABLE RAW EXPECTED_OUT
      Writes a lease table as KCL does, checkpointed mid-shard (inside an aggregate), and the
      records a worker resuming from it must deliver.
  kcl-verify TABLE
      Checks every lease item uses only KCL's attribute names and types.
  compare CONSUMER_OUT EXPECTED
      Checks our consumer delivered exactly the expected user records.
"""

import base64
import collections
import json
import os
import sys
import time

import boto3
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def kinesis():
    return boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])


def consumer_lines(path):
    """Our consumer's --print output: one "shard key data" line per user record."""
    out = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3:
                out[tuple(parts)] += 1
    return out


def read_raw(client, stream):
    """Every Kinesis record of every shard, oldest first, as plain GetRecords returns them."""
    shards = client.list_shards(StreamName=stream)["Shards"]
    raw = []
    for shard in shards:
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = client.get_records(ShardIterator=it, Limit=10000)
            for r in page["Records"]:
                raw.append(
                    {
                        "shard_id": shard["ShardId"],
                        "partition_key": r["PartitionKey"],
                        "explicit_hash_key": None,
                        "sequence_number": r["SequenceNumber"],
                        "data_b64": base64.b64encode(r["Data"]).decode(),
                        "raw": r,
                    }
                )
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return raw


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def user_data(k):
    """A deaggregated record's data as text. The library hands back the user records of an
    aggregate base64-encoded, but a plain (unaggregated) Boto3 record unchanged, as raw bytes."""
    return (base64.b64decode(k["data"]) if k.get("aggregated") else k["data"]).decode()


def read_ours(stream, consumer_out, raw_out, n):
    raw = read_raw(kinesis(), stream)
    aggregated = sum(1 for r in raw if r["raw"]["Data"].startswith(MAGIC))
    users = collections.Counter()
    for r in raw:
        for u in iter_deaggregate_records([dict(r["raw"])], data_format="Boto3"):
            k = u["kinesis"]
            users[(r["shard_id"], k["partitionKey"], user_data(k))] += 1
    print(
        f"boto3 GetRecords: {len(raw)} Kinesis records ({aggregated} aggregated); "
        f"python aws-kinesis-agg: {sum(users.values())} user records"
    )
    if sum(users.values()) != n or len(users) != n:
        fail(f"python deaggregated {sum(users.values())} records ({len(users)} distinct), wanted {n}")
    if aggregated == 0:
        fail("our producer aggregated nothing")
    if aggregated == len(raw):
        fail("no plain record: the lone record should have gone out unaggregated")
    ours = consumer_lines(consumer_out)
    if ours != users:
        fail(f"our consumer and the python library disagree: {len(ours - users)} / {len(users - ours)} differ")
    print("ok   python aws-kinesis-agg and our consumer read the same user records on the same shards")
    with open(raw_out, "w", encoding="utf-8") as f:
        json.dump([{k: v for k, v in r.items() if k != "raw"} for r in raw], f)


def compare_node(node_out, consumer_out):
    with open(node_out, encoding="utf-8") as f:
        node = collections.Counter((u["shard_id"], u["partition_key"], u["data"]) for u in json.load(f))
    if node != consumer_lines(consumer_out):
        fail("node aws-kinesis-agg and our consumer disagree")
    print(f"ok   node aws-kinesis-agg and our consumer read the same {sum(node.values())} user records")


def write_theirs(stream, node_aggregates, n, expected_out):
    client = kinesis()
    client.create_stream(StreamName=stream, ShardCount=2)
    for _ in range(300):
        if client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.1)
    expected = []
    entries = []
    # Python: one aggregator per partition key; every tenth record carries an explicit hash key.
    for k in range(8):
        aggregator = RecordAggregator()
        for i in range(k, n, 8):
            key, data = f"py-key-{k}", f"py-{i:07d}".encode()
            ehk = str(2**127 + k) if k == 7 else None
            expected.append((key, data.decode()))
            full = aggregator.add_user_record(key, data, ehk)
            if full is not None:
                entries.append(full.get_contents())
        if aggregator.get_num_user_records():
            entries.append(aggregator.clear_and_get().get_contents())
    puts = [{"PartitionKey": pk, "ExplicitHashKey": ehk, "Data": data} for pk, ehk, data in entries]
    # Node: its aggregates as it encoded them.
    with open(node_aggregates, encoding="utf-8") as f:
        node = json.load(f)
    for a in node:
        put = {"PartitionKey": a["partition_key"], "Data": base64.b64decode(a["data_b64"])}
        if a["explicit_hash_key"]:
            put["ExplicitHashKey"] = a["explicit_hash_key"]
        puts.append(put)
    expected += [(f"node-key-{i % 8}", f"node-{i:07d}") for i in range(n)]
    for put in puts:
        if put.get("ExplicitHashKey") is None:
            put.pop("ExplicitHashKey", None)
    for start in range(0, len(puts), 100):
        out = client.put_records(StreamName=stream, Records=puts[start : start + 100])
        if out["FailedRecordCount"]:
            fail(f"{out['FailedRecordCount']} puts failed")
    print(f"boto3 PutRecords: {len(puts)} aggregates ({len(entries)} python, {len(node)} node) of {len(expected)} user records")
    with open(expected_out, "w", encoding="utf-8") as f:
        json.dump(expected, f)


def compare(consumer_out, expected_path):
    with open(expected_path, encoding="utf-8") as f:
        expected = collections.Counter(tuple(e) for e in json.load(f))
    got = collections.Counter((key, data) for (_, key, data) in consumer_lines(consumer_out).elements())
    if got != expected:
        fail(f"our consumer delivered {sum(got.values())} records, {len(expected - got)} missing, {len(got - expected)} unexpected")
    print(f"ok   our consumer delivered exactly the {sum(expected.values())} expected user records")


# KCL's lease attributes and their DynamoDB types (KCL 2.x/3.x lease table, one item per shard;
# KCL 3.5 tags each item with its kind, "LEASE" for a lease, and reads an untagged one as a lease).
KCL_ATTRIBUTES = {
    "entityType": "S",
    "leaseKey": "S",
    "leaseOwner": "S",
    "leaseCounter": "N",
    "ownerSwitchesSinceCheckpoint": "N",
    "checkpoint": "S",
    "checkpointSubSequenceNumber": "N",
    "pendingCheckpoint": "S",
    "pendingCheckpointSubSequenceNumber": "N",
    "pendingCheckpointState": "B",
    "parentShardId": "SS",
    "childShardIds": "SS",
    "startingHashKey": "S",
    "endingHashKey": "S",
    # KCL 3.x: the read rate its owners write with each renewal, and the previous owner
    # during a graceful handoff.
    "throughputKBps": "N",
    "checkpointOwner": "S",
    # KCL's multi-stream leases.
    "streamName": "S",
    "shardId": "S",
}


def dynamodb():
    return boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])


def kcl_write(table, raw_path, expected_out):
    """Writes a lease table the way KCL does, each shard checkpointed inside an aggregate, and
    the user records a KCL worker resuming from it must deliver (those after the checkpoint)."""
    with open(raw_path, encoding="utf-8") as f:
        raw = json.load(f)
    by_shard = collections.defaultdict(list)
    for r in raw:
        by_shard[r["shard_id"]].append(r)
    db = dynamodb()
    db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    expected = []
    for index, (shard, records) in enumerate(sorted(by_shard.items())):
        # Checkpoint: the middle Kinesis record, at the middle of its user records.
        middle = len(records) // 2
        users = [
            list(iter_deaggregate_records([{"SequenceNumber": r["sequence_number"], "PartitionKey": r["partition_key"],
                                            "ApproximateArrivalTimestamp": 0, "Data": base64.b64decode(r["data_b64"])}],
                                          data_format="Boto3"))
            for r in records
        ]
        sub = len(users[middle]) // 2
        for i, batch in enumerate(users):
            for j, u in enumerate(batch):
                if i > middle or (i == middle and j > sub):
                    k = u["kinesis"]
                    expected.append((k["partitionKey"], user_data(k)))
        item = {
            "leaseKey": {"S": shard},
            "leaseCounter": {"N": "42"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
            "checkpoint": {"S": records[middle]["sequence_number"]},
            "checkpointSubSequenceNumber": {"N": str(sub)},
        }
        # Half the leases were released by a KCL worker that shut down; the other half are
        # still held by one that died, and must be taken once they expire.
        if index % 2:
            item["leaseOwner"] = {"S": "a-kcl-worker-that-died"}
        db.put_item(TableName=table, Item=item)
    print(f"KCL-format table {table}: {len(by_shard)} leases checkpointed mid-shard, {len(expected)} records after them")
    with open(expected_out, "w", encoding="utf-8") as f:
        json.dump(expected, f)


def kcl_verify(table):
    """Every item our worker wrote uses only KCL's attribute names, with KCL's types."""
    items = dynamodb().scan(TableName=table)["Items"]
    if not items:
        fail(f"{table} is empty")
    for item in items:
        for name, value in item.items():
            (kind,) = value.keys()
            if KCL_ATTRIBUTES.get(name) != kind:
                fail(f"{item['leaseKey']['S']}: attribute {name} of type {kind} is not KCL's")
        if "checkpoint" not in item or "leaseCounter" not in item:
            fail(f"{item['leaseKey']['S']}: no checkpoint or leaseCounter")
    print(f"ok   {len(items)} leases in {table} use only KCL attribute names and types")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "read-ours":
        read_ours(args[0], args[1], args[2], int(args[3]))
    elif cmd == "compare-node":
        compare_node(*args)
    elif cmd == "write-theirs":
        write_theirs(args[0], args[1], int(args[2]), args[3])
    elif cmd == "kcl-write":
        kcl_write(*args)
    elif cmd == "kcl-verify":
        kcl_verify(*args)
    elif cmd == "compare":
        compare(*args)
    else:
        sys.exit(__doc__)
