//! Whole-object compression, applied when a buffer becomes an object.

use std::io::Write as _;

/// How an object's bytes are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// As written (Firehose's default).
    #[default]
    None,
    /// gzip (`.gz`), at flate2's default level.
    Gzip,
    /// Zstandard (`.zst`), at level 3.
    Zstd,
    /// Snappy in its framing format (`.snappy`), as Firehose writes it for S3.
    Snappy,
}

impl Compression {
    /// The extension added to the object's name.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Snappy => ".snappy",
        }
    }

    /// The compressed form of `bytes` (`bytes` itself when not compressing).
    pub fn compress(self, bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(bytes),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(bytes.len() / 4),
                    flate2::Compression::default(),
                );
                encoder.write_all(&bytes)?;
                encoder.finish()
            }
            Compression::Zstd => zstd::bulk::compress(&bytes, 3),
            Compression::Snappy => {
                let mut encoder =
                    snap::write::FrameEncoder::new(Vec::with_capacity(bytes.len() / 2));
                encoder.write_all(&bytes)?;
                encoder
                    .into_inner()
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
        }
    }

    /// The original bytes of an object compressed this way (for readers and tests).
    pub fn decompress(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Read as _;
        let mut out = Vec::new();
        match self {
            Compression::None => out.extend_from_slice(bytes),
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(bytes)?.read_to_end(&mut out)?;
            }
            Compression::Snappy => {
                snap::read::FrameDecoder::new(bytes).read_to_end(&mut out)?;
            }
        }
        Ok(out)
    }

    /// The compression of an object named `key`, by its extension.
    pub fn of_key(key: &str) -> Compression {
        [Compression::Gzip, Compression::Zstd, Compression::Snappy]
            .into_iter()
            .find(|c| key.ends_with(c.extension()))
            .unwrap_or(Compression::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_round_trips_binary_data() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let packed = c.compress(data.clone()).unwrap();
            if c != Compression::None {
                assert!(packed.len() < data.len() / 2, "{c:?}: {}", packed.len());
            }
            assert_eq!(c.decompress(&packed).unwrap(), data, "{c:?}");
            assert_eq!(Compression::of_key(&format!("a/b{}", c.extension())), c);
        }
    }
}
