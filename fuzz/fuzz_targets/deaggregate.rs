//! Fuzzes the deaggregator: any bytes, with or without the KPL magic and with or without a
//! valid checksum, must come back as either valid user records or exactly one pass-through
//! record, never a panic.

#![no_main]

use bytes::Bytes;
use kinesis_agg::aggregation::{MAGIC, deaggregate};
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

fuzz_target!(|input: &[u8]| {
    // The first byte picks the framing, so the fuzzer reaches every path: plain bytes; the
    // magic with whatever follows (almost always a checksum mismatch); the magic, the bytes
    // and their correct MD5 (the protobuf decoder then sees arbitrary bytes).
    let (mode, body) = input.split_first().map_or((0, input), |(m, b)| (*m, b));
    let data = match mode % 3 {
        0 => body.to_vec(),
        1 => [MAGIC.as_slice(), body].concat(),
        _ => [MAGIC.as_slice(), body, Md5::digest(body).as_slice()].concat(),
    };
    let out = deaggregate("pk", None, Bytes::from(data.clone()));
    if out.aggregated {
        assert!(!out.records.is_empty());
    } else {
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].data, data);
    }
});
