//! Output formats: how one record becomes bytes of an object.

pub(crate) mod error_record;
mod json;
mod parquet;

pub use self::parquet::{Parquet, Schema};
pub use json::JsonLines;

use crate::compression::Compression;

use kinesis_consumer::Record;

use crate::error::RecordError;

/// How records are written into an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Each record's data as it is, followed by `delimiter` (Firehose's default is no
    /// delimiter; a newline is the usual choice). A record that contains a non-empty
    /// delimiter would be split in two when read back, so it goes to the error prefix
    /// instead. Objects have no extension beyond the compression's.
    Raw {
        /// Bytes written after each record.
        delimiter: Vec<u8>,
    },
    /// One JSON object per line (`.jsonl`): the data as text when it is UTF-8, in base64
    /// otherwise, and the record's metadata as chosen.
    JsonLines(JsonLines),
    /// Parquet (`.parquet`): each record's data is one JSON object, converted to the schema's
    /// columns; a record that does not fit goes to the error prefix. Compressed inside, per
    /// column chunk (snappy by default, as Firehose), so the sink's `compression` stays none.
    Parquet(Parquet),
}

impl Default for Format {
    /// JSON lines with the data only.
    fn default() -> Self {
        Format::JsonLines(JsonLines::default())
    }
}

impl Format {
    /// Raw data, each record followed by a newline.
    pub fn newline_delimited() -> Format {
        Format::Raw {
            delimiter: b"\n".to_vec(),
        }
    }

    /// The file extension of an object, before the compression's.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Raw { .. } => "",
            Format::JsonLines(_) => ".jsonl",
            Format::Parquet(_) => ".parquet",
        }
    }

    /// Appends `data` (the record's or a transformation's output) of `record` to `out`.
    /// On error nothing is appended.
    pub(crate) fn encode(
        &self,
        data: &[u8],
        record: &Record,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        match self {
            Format::Raw { delimiter } => {
                if !delimiter.is_empty()
                    && data
                        .windows(delimiter.len())
                        .any(|w| w == delimiter.as_slice())
                {
                    return Err(RecordError::Format {
                        reason: format!(
                            "the data contains the delimiter {:?}",
                            String::from_utf8_lossy(delimiter)
                        ),
                    });
                }
                out.extend_from_slice(data);
                out.extend_from_slice(delimiter);
                Ok(())
            }
            Format::JsonLines(options) => {
                options.encode(data, record, out);
                Ok(())
            }
            Format::Parquet(parquet) => {
                parquet.check(data)?;
                out.extend_from_slice(data);
                out.push(b'\n');
                Ok(())
            }
        }
    }

    /// The object of a buffer's bytes: Parquet converted, the others compressed as asked.
    pub(crate) fn finish(
        &self,
        raw: Vec<u8>,
        compression: Compression,
    ) -> std::io::Result<Vec<u8>> {
        match self {
            Format::Parquet(parquet) => parquet.convert(&raw).map_err(std::io::Error::other),
            _ => compression.compress(raw),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(data: &[u8]) -> Record {
        Record {
            partition_key: "pk".into(),
            explicit_hash_key: None,
            data: bytes::Bytes::copy_from_slice(data),
            sequence_number: "4960".into(),
            sub_sequence_number: 2,
            aggregated: true,
            approximate_arrival_timestamp: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_900_000_123),
            ),
        }
    }

    #[test]
    fn raw_refuses_data_containing_its_delimiter_and_appends_nothing() {
        let format = Format::newline_delimited();
        let mut out = b"kept\n".to_vec();
        let e = format
            .encode(b"two\nlines", &record(b""), &mut out)
            .unwrap_err();
        assert!(matches!(e, RecordError::Format { .. }), "{e}");
        assert_eq!(out, b"kept\n");
        format
            .encode(b"\x00\xffbinary", &record(b""), &mut out)
            .unwrap();
        assert_eq!(out, b"kept\n\x00\xffbinary\n");
    }

    #[test]
    fn raw_without_a_delimiter_takes_anything() {
        let format = Format::Raw { delimiter: vec![] };
        let mut out = vec![];
        format.encode(b"a\nb", &record(b""), &mut out).unwrap();
        assert_eq!(out, b"a\nb");
        assert_eq!(format.extension(), "");
    }
}
