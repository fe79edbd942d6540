"""The inputs of the golden vectors: lists of (partition key, explicit hash key, data)."""


def cases():
    big = bytes((i * 7) % 256 for i in range(20_000))
    return [
        ("three_distinct_keys", [("alpha", None, b"one"), ("beta", None, b"two"), ("gamma", None, b"three")]),
        ("repeated_partition_keys", [("k", None, b"a"), ("j", None, b"b"), ("k", None, b"c"), ("j", None, b"d")]),
        (
            "explicit_hash_keys",
            [
                ("p1", "340282366920938463463374607431768211455", b"max"),
                ("p2", None, b"none"),
                ("p3", "0", b"zero"),
                ("p4", "340282366920938463463374607431768211455", b"max again"),
            ],
        ),
        ("unicode_partition_key", [("clé-ünïcödé-🔑", None, "données".encode()), ("日本語", None, b"x")]),
        ("empty_data", [("e1", None, b""), ("e2", None, b"")]),
        ("binary_data", [("bin", None, bytes(range(256)) * 4), ("bin2", None, b"\x00\xff\x00")]),
        ("many_small_records", [(f"pk-{i}", None, f"record {i}".encode()) for i in range(300)]),
        ("large_record", [("large", None, big), ("small", None, b"s")]),
        ("single_record", [("only", None, b"alone")]),
    ]
