//! Parquet: JSON records converted to a user-given Arrow schema (Firehose's record format
//! conversion), one file per object, compressed inside (per column chunk).
//!
//! Each record is checked against the schema as it arrives (a record that is not one JSON
//! object of that shape goes to the error prefix); the buffer keeps the JSON, and the whole
//! object is converted when it is written.

use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::compression::Compression;
use crate::error::RecordError;

/// Options of [`Format::Parquet`](super::Format::Parquet).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parquet {
    /// The columns: each record's JSON fields by name (missing ones null when the field is
    /// nullable; fields not in the schema ignored).
    pub schema: SchemaRef,
    /// Compression of the column chunks (the object itself is not compressed again).
    /// Default snappy, as Firehose.
    pub compression: Compression,
}

impl Parquet {
    /// JSON records to `schema`, snappy-compressed.
    pub fn new(schema: SchemaRef) -> Parquet {
        Parquet {
            schema,
            compression: Compression::Snappy,
        }
    }

    /// With another column-chunk compression.
    pub fn with_compression(mut self, compression: Compression) -> Parquet {
        self.compression = compression;
        self
    }

    /// Checks that `data` is one JSON object that fits the schema.
    pub(super) fn check(&self, data: &[u8]) -> Result<(), RecordError> {
        let refuse = |reason: String| RecordError::Format { reason };
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .build_decoder()
            .map_err(|e| refuse(e.to_string()))?;
        let read = decoder.decode(data).map_err(|e| refuse(e.to_string()))?;
        if read < data.len() || decoder.has_partial_record() {
            return Err(refuse("not one whole JSON value".into()));
        }
        match decoder.flush().map_err(|e| refuse(e.to_string()))? {
            Some(batch) if batch.num_rows() == 1 => Ok(()),
            Some(batch) => Err(refuse(format!(
                "{} JSON values in one record",
                batch.num_rows()
            ))),
            None => Err(refuse("no JSON value".into())),
        }
    }

    /// The Parquet file of the checked JSON records in `json`.
    pub(crate) fn convert(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(8192)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let codec = match self.compression {
            Compression::None => parquet::basic::Compression::UNCOMPRESSED,
            Compression::Gzip => parquet::basic::Compression::GZIP(Default::default()),
            Compression::Zstd => parquet::basic::Compression::ZSTD(Default::default()),
            Compression::Snappy => parquet::basic::Compression::SNAPPY,
        };
        let props = WriterProperties::builder().set_compression(codec).build();
        let mut writer = ArrowWriter::try_new(
            Vec::with_capacity(json.len() / 4),
            self.schema.clone(),
            Some(props),
        )
        .map_err(|e| e.to_string())?;
        let mut rest = json;
        loop {
            let read = decoder.decode(rest).map_err(|e| e.to_string())?;
            rest = &rest[read..];
            match decoder.flush().map_err(|e| e.to_string())? {
                Some(batch) => writer.write(&batch).map_err(|e| e.to_string())?,
                None if rest.is_empty() => break,
                None => return Err("the JSON decoder made no progress".into()),
            }
        }
        writer.into_inner().map_err(|e| e.to_string())
    }
}

/// The Arrow schema type, for building a [`Parquet`] format.
pub type Schema = arrow_schema::Schema;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn format() -> Parquet {
        Parquet::new(Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ])))
    }

    #[test]
    fn records_that_do_not_fit_are_refused() {
        let p = format();
        p.check(br#"{"id": 1, "text": "two\nlines"}"#).unwrap();
        p.check(br#"{"id": 2}"#).unwrap();
        for bad in [
            &br#"{"id": "x"}"#[..],
            br#"{"text": "no id"}"#,
            b"not json",
            br#"{"id": 1} {"id": 2}"#,
            br#"{"id": 1"#,
            b"",
        ] {
            assert!(p.check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn objects_read_back_with_the_parquet_crate() {
        let p = format();
        let mut json = Vec::new();
        for i in 0..20_000i64 {
            let line = serde_json::json!({"id": i, "text": format!("row\n{i}")});
            json.extend_from_slice(line.to_string().as_bytes());
            json.push(b'\n');
        }
        for compression in [
            Compression::Snappy,
            Compression::Zstd,
            Compression::Gzip,
            Compression::None,
        ] {
            let file = p
                .clone()
                .with_compression(compression)
                .convert(&json)
                .unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
                .unwrap()
                .build()
                .unwrap();
            let mut n = 0i64;
            for batch in reader {
                let batch = batch.unwrap();
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let texts = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                for row in 0..batch.num_rows() {
                    assert_eq!(ids.value(row), n);
                    assert_eq!(texts.value(row), format!("row\n{n}"));
                    n += 1;
                }
                assert_eq!(texts.null_count(), 0);
            }
            assert_eq!(n, 20_000, "{compression:?}");
        }
    }
}
