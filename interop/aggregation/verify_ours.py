"""Checks aggregates written by our Rust aggregator with the official Python library.

Input: the JSON written by `cargo run -p kinesis-agg --example write_aggregates`, with the
same cases as the golden vectors. Each of our aggregates must deaggregate, with
aws_kinesis_agg's own deaggregator, into exactly the user records that went in, and be
byte-identical to the aggregate the library itself builds from the same records.
"""

import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records


def main(path):
    with open(path, encoding="utf-8") as f:
        ours = json.load(f)["vectors"]
    failures = 0
    checked = 0
    for vector in ours:
        name = vector["name"]
        records = [
            (r["partition_key"], r["explicit_hash_key"], base64.b64decode(r["data"])) for r in vector["records"]
        ]
        agg = vector["aggregate"]
        data = base64.b64decode(agg["data"])
        boto3_style = {
            "SequenceNumber": "1",
            "PartitionKey": agg["partition_key"],
            "ApproximateArrivalTimestamp": 0,
            "Data": data,
        }
        got = list(iter_deaggregate_records([boto3_style], data_format="Boto3"))
        if len(records) == 1:
            # A one-record aggregate goes out as the plain record.
            ok = len(got) == 1 and got[0]["kinesis"]["data"] == records[0][2]
        else:
            ok = len(got) == len(records)
            for (pk, ehk, d), user in zip(records, got):
                k = user["kinesis"]
                ok &= k["partitionKey"] == pk
                ok &= base64.b64decode(k["data"]) == d
                if ehk is not None:
                    ok &= k["explicitHashKey"] == ehk
            aggregator = RecordAggregator()
            for pk, ehk, d in records:
                aggregator.add_user_record(pk, d, ehk)
            _, _, theirs = aggregator.clear_and_get().get_contents()
            if theirs != data:
                print(f"FAIL {name}: our bytes differ from aws-kinesis-agg's")
                ok = False
        checked += 1
        if not ok:
            failures += 1
            print(f"FAIL {name}")
        else:
            print(f"ok   {name}: {len(records)} user records")
    print(f"aggregation interop: {checked - failures} passed, {failures} failed")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
