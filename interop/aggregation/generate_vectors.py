"""Writes golden aggregation vectors made by the official aws-kinesis-agg library.

Run through ./regenerate.sh, which installs the library into a virtualenv first. The output,
kinesis-agg/tests/fixtures/agg_vectors.json, is checked in; the Rust tests decode each
aggregate with our deaggregator and re-encode the inputs with our aggregator byte for byte.
"""

import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator

from cases import cases


def b64(data):
    return base64.b64encode(data).decode("ascii")


def main(out_path):
    vectors = []
    for name, records in cases():
        aggregator = RecordAggregator()
        for pk, ehk, data in records:
            full = aggregator.add_user_record(pk, data, ehk)
            assert full is None, f"{name} does not fit one aggregate"
        pk, ehk, data = aggregator.clear_and_get().get_contents()
        vectors.append(
            {
                "name": name,
                "records": [
                    {"partition_key": p, "explicit_hash_key": e, "data": b64(d)} for p, e, d in records
                ],
                "aggregate": {"partition_key": pk, "explicit_hash_key": ehk or None, "data": b64(data)},
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"generator": "aws-kinesis-agg==1.2.3 (Python)", "vectors": vectors}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
