//! JSON lines: one object per record, safe for any payload.

use base64::Engine as _;
use kinesis_consumer::Record;
use serde_json::{Map, Value};

/// Options of [`Format::JsonLines`](super::Format::JsonLines). Every line has `data` (the
/// data as UTF-8 text) or `data_base64` (when it is not UTF-8); the rest is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonLines {
    /// Add `partition_key`.
    pub partition_key: bool,
    /// Add `sequence_number` and `sub_sequence_number`.
    pub sequence_number: bool,
    /// Add `approximate_arrival_timestamp` (milliseconds since the epoch), when known.
    pub arrival_time: bool,
}

impl JsonLines {
    /// Data only.
    pub fn data_only() -> JsonLines {
        JsonLines::default()
    }

    /// Data and every piece of metadata.
    pub fn with_metadata() -> JsonLines {
        JsonLines {
            partition_key: true,
            sequence_number: true,
            arrival_time: true,
        }
    }

    pub(super) fn encode(&self, data: &[u8], record: &Record, out: &mut Vec<u8>) {
        let mut line = Map::new();
        match std::str::from_utf8(data) {
            Ok(text) => line.insert("data".into(), Value::from(text)),
            Err(_) => line.insert(
                "data_base64".into(),
                Value::from(base64::engine::general_purpose::STANDARD.encode(data)),
            ),
        };
        if self.partition_key {
            line.insert(
                "partition_key".into(),
                Value::from(record.partition_key.as_str()),
            );
        }
        if self.sequence_number {
            line.insert(
                "sequence_number".into(),
                Value::from(record.sequence_number.as_str()),
            );
            line.insert(
                "sub_sequence_number".into(),
                Value::from(record.sub_sequence_number),
            );
        }
        if self.arrival_time
            && let Some(millis) = record
                .approximate_arrival_timestamp
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
        {
            line.insert("approximate_arrival_timestamp".into(), Value::from(millis));
        }
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &Value::Object(line));
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, tests::record};
    use super::*;

    fn decode(line: &[u8]) -> Vec<u8> {
        let v: Value = serde_json::from_slice(line).unwrap();
        match (v.get("data"), v.get("data_base64")) {
            (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
            (None, Some(Value::String(b))) => {
                base64::engine::general_purpose::STANDARD.decode(b).unwrap()
            }
            other => panic!("unexpected line {other:?}"),
        }
    }

    #[test]
    fn any_payload_round_trips_one_line_each() {
        let format = Format::JsonLines(JsonLines::data_only());
        let payloads: [&[u8]; 5] = [
            b"plain",
            b"two\nlines\r\n",
            b"\x00\xff\xfe",
            b"",
            "é\"\\".as_bytes(),
        ];
        let mut out = vec![];
        for p in payloads {
            format.encode(p, &record(b""), &mut out).unwrap();
        }
        let lines: Vec<&[u8]> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), payloads.len());
        for (line, p) in lines.iter().zip(payloads) {
            assert_eq!(decode(line), p);
        }
    }

    #[test]
    fn metadata_as_chosen() {
        let mut out = vec![];
        JsonLines::with_metadata().encode(b"x", &record(b""), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["partition_key"], "pk");
        assert_eq!(v["sequence_number"], "4960");
        assert_eq!(v["sub_sequence_number"], 2);
        assert_eq!(v["approximate_arrival_timestamp"], 1_764_900_000_123u64);
        assert_eq!(
            Format::JsonLines(JsonLines::default()).extension(),
            ".jsonl"
        );
    }
}
