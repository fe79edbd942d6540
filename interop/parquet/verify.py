"""Reads the demo's Parquet objects with pyarrow: every id of the run once, the schema the
demo gives the sink, and the column codec asked for.

Usage: verify.py FOLDER EXPECTED CODEC
"""

import os
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created_ms", pa.int64(), nullable=False),
        pa.field("payload", pa.string()),
    ]
)


def objects(folder):
    for path, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "_manifests"]  # the sink's manifests
        for name in files:
            if not name.startswith("."):  # writes in progress
                yield os.path.join(path, name)


def main(folder, expected, codec):
    ids, rows, files = set(), 0, 0
    for path in objects(folder):
        assert path.endswith(".parquet"), f"not a Parquet object: {path}"
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.equals(SCHEMA), f"{path}: {parquet.schema_arrow}"
        for group in range(parquet.metadata.num_row_groups):
            for column in range(parquet.metadata.num_columns):
                chunk = parquet.metadata.row_group(group).column(column)
                assert chunk.compression == codec.upper(), f"{path}: {chunk.compression}"
        table = parquet.read()
        files += 1
        rows += table.num_rows
        for record in table.to_pylist():
            assert re.fullmatch(r"[0-9a-f]+-[0-9]+", record["id"]), record["id"]
            assert record["created_ms"] > 1_600_000_000_000, record
            assert set(record["payload"]) <= {"x"}, record
            ids.add(record["id"])
    runs = {i.rsplit("-", 1)[0] for i in ids}
    numbers = {int(i.rsplit("-", 1)[1]) for i in ids}
    print(
        f"parquet ({codec}) read by pyarrow {pa.__version__}: {files} files, {rows} rows, "
        f"{len(ids)} distinct records, expected {expected}"
    )
    ok = files > 0 and rows == expected and len(runs) == 1 and numbers == set(range(expected))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
