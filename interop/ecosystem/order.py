"""Per-key order of our producer's records, read back with boto3 and the official Python
aws-kinesis-agg, as a KCL consumer would see them.

  split STREAM
      Splits STREAM's first open shard in the middle of its hash range.
  check STREAM N ordered|reordered
      Reads every shard (parents before children; each in sequence order), deaggregates,
      leaves out records outside their shard's range (KCL drops those), and checks the N
      user records (data "KEY:I", I counting the key's records) are all there. `ordered`:
      every key's records are in send order (a record sent twice may have a second copy
      anywhere after its first). `reordered`: some key is out of order, which shows the
      check can fail.
"""

import collections
import hashlib
import sys
import time

from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from ecosystem import fail, kinesis, read_raw, user_data


def split(stream):
    client = kinesis()
    for _ in range(100):  # the producer creates the stream
        try:
            summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                break
        except client.exceptions.ResourceNotFoundException:
            pass
        time.sleep(0.1)
    shard = next(
        s
        for s in client.list_shards(StreamName=stream)["Shards"]
        if "EndingSequenceNumber" not in s["SequenceNumberRange"]
    )
    low = int(shard["HashKeyRange"]["StartingHashKey"])
    high = int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high + 1) // 2)
    )
    print(f"split {shard['ShardId']}")


def in_send_order(numbers):
    seen, firsts = set(), []
    for n in numbers:
        if n not in seen:
            seen.add(n)
            firsts.append(n)
    return all(a < b for a, b in zip(firsts, firsts[1:]))


def check(stream, n, expect):
    client = kinesis()
    ranges = {
        s["ShardId"]: (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
        for s in client.list_shards(StreamName=stream)["Shards"]
    }
    raw = read_raw(client, stream)
    # Shard ids grow with creation: children sort after their parents; the sort is stable.
    raw.sort(key=lambda r: r["shard_id"])
    by_key = collections.defaultdict(list)
    for r in raw:
        low, high = ranges[r["shard_id"]]
        for u in iter_deaggregate_records([dict(r["raw"])], data_format="Boto3"):
            k = u["kinesis"]
            ehk = k.get("explicitHashKey")
            hash_key = int(ehk) if ehk else int(hashlib.md5(k["partitionKey"].encode()).hexdigest(), 16)
            if not low <= hash_key <= high:
                continue
            key, number = user_data(k).split(":")
            by_key[key].append(int(number))
    distinct = sum(len(set(numbers)) for numbers in by_key.values())
    reordered = sorted(k for k, numbers in by_key.items() if not in_send_order(numbers))
    print(
        f"boto3 + aws-kinesis-agg: {distinct} distinct user records on {len(ranges)} shards, "
        f"{len(reordered)} of {len(by_key)} keys out of send order"
    )
    if distinct != n:
        fail(f"read {distinct} distinct records, wanted {n}")
    if len(ranges) < 4:
        fail("the split did not happen")
    if expect == "ordered" and reordered:
        fail(f"out of send order: {reordered[:5]}")
    if expect == "reordered" and not reordered:
        fail("no key out of order without --ordered: the check would pass anything")
    print(f"ok   {expect}: as expected")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "split":
        split(args[0])
    elif cmd == "check":
        check(args[0], int(args[1]), args[2])
    else:
        sys.exit(__doc__)
