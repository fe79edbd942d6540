"""Counts the demo's records in an S3 bucket: every id of the run must be there.

Usage: verify.py BUCKET PREFIX EXPECTED (endpoint and credentials from AWS_* variables).
"""

import gzip
import json
import os
import sys

import boto3


def main(bucket, prefix, expected):
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    ids, files = set(), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if "/_manifests/" in "/" + obj["Key"]:
                continue  # the sink's manifests, not records
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".gz"):
                body = gzip.decompress(body)
            files += 1
            for line in body.splitlines():
                if line:
                    ids.add(json.loads(line)["id"])
    print(f"s3 output: {files} files, {len(ids)} distinct records, expected {expected}")
    return 0 if len(ids) == expected and files > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
