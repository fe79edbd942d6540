//! Records that could not be delivered as asked, as Firehose writes them under the error
//! prefix: one JSON object per line with the reason and the original data in base64.

use base64::Engine as _;
use kinesis_consumer::Record;
use serde_json::{Value, json};

use crate::error::RecordError;

/// Appends the error line of `record`, refused for `error`, to `out`.
pub(crate) fn encode(error: &RecordError, record: &Record, out: &mut Vec<u8>) {
    let arrival = record
        .approximate_arrival_timestamp
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    let line = json!({
        "errorCode": error.output_type(),
        "errorMessage": error.to_string(),
        "rawData": base64::engine::general_purpose::STANDARD.encode(&record.data),
        "partitionKey": record.partition_key,
        "sequenceNumber": record.sequence_number,
        "subSequenceNumber": record.sub_sequence_number,
        "approximateArrivalTimestamp": arrival.map_or(Value::Null, Value::from),
    });
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;

    #[test]
    fn the_original_data_and_the_reason_are_kept() {
        let mut out = vec![];
        let e = RecordError::Transform {
            reason: "not JSON".into(),
        };
        encode(&e, &record(b"\x00bad\n"), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["errorCode"], "processing-failed");
        assert_eq!(v["errorMessage"], "transformation failed: not JSON");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v["rawData"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, b"\x00bad\n");
        assert_eq!(v["sequenceNumber"], "4960");
    }
}
