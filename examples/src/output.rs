//! What the demo's sink writes (raw JSON lines, or Parquet as Firehose's format conversion)
//! and reading it back from a local folder.

use std::sync::Arc;

use kinesis_sink::arrow_schema::{DataType, Field};
use kinesis_sink::{Compression, Format, Parquet, Schema};

/// The demo's format: its JSON lines as they are (compressed whole with `gzip`), or Parquet
/// columns `id`, `created_ms`, `payload` (column chunks gzip with `gzip`, else snappy).
pub fn demo_format(parquet: bool, gzip: bool) -> (Format, Compression) {
    let compression = if gzip {
        Compression::Gzip
    } else {
        Compression::None
    };
    if !parquet {
        return (Format::newline_delimited(), compression);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("created_ms", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let columns = if gzip {
        Compression::Gzip
    } else {
        Compression::Snappy
    };
    (
        Format::Parquet(Parquet::new(schema).with_compression(columns)),
        Compression::None,
    )
}

/// Every record line in the objects under a local output (decompressed by their extension;
/// Parquet rows as JSON lines of their columns), for checks and the headless summary.
/// Temporary files of writes in progress and the sink's manifests (`_manifests/`) are skipped.
pub fn read_local_lines(root: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "_manifests" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let body = if name.ends_with(".parquet") {
                parquet_as_json_lines(std::fs::read(&path)?)?
            } else {
                Compression::of_key(&name).decompress(&std::fs::read(&path)?)?
            };
            lines.extend(
                body.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    Ok(lines)
}

/// A Parquet object's rows as JSON lines, columns in schema order.
fn parquet_as_json_lines(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .and_then(|builder| builder.build())
    .map_err(|e| invalid(&e))?;
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    for batch in reader {
        let batch = batch.map_err(|e| invalid(&e))?;
        writer.write(&batch).map_err(|e| invalid(&e))?;
    }
    writer.finish().map_err(|e| invalid(&e))?;
    Ok(writer.into_inner())
}
