//! Hash keys: the 128-bit position of a record in a stream's key space.
//!
//! Kinesis hashes a partition key with MD5 and reads the 16-byte digest as a big-endian
//! unsigned integer; an explicit hash key, given as a decimal string, replaces that value.
//! Every shard owns a contiguous range of these integers (`kinesis_common::shard_map` maps ranges to shards).

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

use crate::error::InputError;

/// Longest decimal form of a hash key: 2^128 − 1 has 39 digits.
const MAX_DECIMAL_DIGITS: usize = 39;

/// A position in the 128-bit key space of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HashKey(pub u128);

impl HashKey {
    /// The smallest hash key, 0.
    pub const MIN: HashKey = HashKey(0);
    /// The largest hash key, 2^128 − 1.
    pub const MAX: HashKey = HashKey(u128::MAX);

    /// The hash key Kinesis computes for a partition key: MD5 of its UTF-8 bytes, big-endian.
    pub fn from_partition_key(partition_key: &str) -> HashKey {
        let digest = Md5::digest(partition_key.as_bytes());
        HashKey(u128::from_be_bytes(digest.into()))
    }

    /// Parses an explicit hash key as Kinesis accepts it: a decimal integer in
    /// [0, 2^128 − 1], digits only, no sign, no leading zeros (AWS's pattern `0|([1-9]\d{0,38})`).
    pub fn parse_explicit(value: &str) -> Result<HashKey, InputError> {
        let invalid = |reason: &'static str| InputError::InvalidExplicitHashKey {
            value: value.chars().take(64).collect(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid("it is empty"));
        }
        if !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("it is not a decimal integer"));
        }
        if value.len() > 1 && value.starts_with('0') {
            return Err(invalid("it has a leading zero"));
        }
        if value.len() > MAX_DECIMAL_DIGITS {
            return Err(invalid("it is larger than 2^128 - 1"));
        }
        value
            .parse::<u128>()
            .map(HashKey)
            .map_err(|_| invalid("it is larger than 2^128 - 1"))
    }

    /// The key halfway between `self` and `other` (rounded down), as SplitShard takes it.
    pub fn midpoint(self, other: HashKey) -> HashKey {
        let (lo, hi) = if self <= other {
            (self.0, other.0)
        } else {
            (other.0, self.0)
        };
        HashKey(lo + (hi - lo) / 2)
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for HashKey {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashKey::parse_explicit(s)
    }
}

impl From<u128> for HashKey {
    fn from(value: u128) -> Self {
        HashKey(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Digests from RFC 1321's test suite and `md5sum`, read as big-endian integers.
    #[test]
    fn partition_key_hashes_match_known_md5_values() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ];
        for (key, hex) in cases {
            let expected = u128::from_str_radix(hex, 16).unwrap();
            assert_eq!(
                HashKey::from_partition_key(key),
                HashKey(expected),
                "key {key:?}"
            );
        }
        // Non-ASCII keys hash their UTF-8 bytes.
        assert_eq!(
            HashKey::from_partition_key("é"),
            HashKey(u128::from_be_bytes(Md5::digest("é".as_bytes()).into()))
        );
    }

    #[test]
    fn well_known_partition_key_lands_in_expected_half() {
        // MD5("abc") starts with 0x90, so it lies in the upper half of the key space.
        assert!(HashKey::from_partition_key("abc").0 > u128::MAX / 2);
    }

    #[test]
    fn explicit_hash_keys_parse_within_range() {
        assert_eq!(HashKey::parse_explicit("0").unwrap(), HashKey::MIN);
        assert_eq!(
            HashKey::parse_explicit("340282366920938463463374607431768211455").unwrap(),
            HashKey::MAX
        );
        assert_eq!(HashKey::parse_explicit("42").unwrap(), HashKey(42));
    }

    #[test]
    fn malformed_explicit_hash_keys_are_typed_errors() {
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "0x10",
            " 1",
            "01",
            "340282366920938463463374607431768211456",
            "1000000000000000000000000000000000000000",
            "abc",
        ] {
            let err = HashKey::parse_explicit(bad).unwrap_err();
            assert!(
                matches!(err, InputError::InvalidExplicitHashKey { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn midpoint_is_between() {
        assert_eq!(HashKey::MIN.midpoint(HashKey::MAX), HashKey(u128::MAX / 2));
        assert_eq!(HashKey(10).midpoint(HashKey(20)), HashKey(15));
    }
}
