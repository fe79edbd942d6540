//! Fuzzes the deaggregator: any bytes, with or without the KPL magic, must come back as
//! either valid user records or exactly one pass-through record, never a panic.

#![no_main]

use bytes::Bytes;
use kinesis_common::aggregation::{MAGIC, deaggregate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // Half the inputs get the magic, so the fuzzer reaches the checksum and protobuf paths.
    let mut data = input.to_vec();
    if input.first().is_some_and(|b| b & 1 == 1) {
        data.splice(0..0, MAGIC);
    }
    let out = deaggregate("pk", None, Bytes::from(data.clone()));
    if !out.aggregated {
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].data, data);
    }
});
