//! Lease keys. A single-stream application keys a lease by its shard id, as KCL does; a
//! multi-stream one by `account:stream:creationEpoch:shardId` (KCL's `MultiStreamLease`),
//! with the stream's part also in `streamName` and the shard's in `shardId`.

use std::fmt;
use std::str::FromStr;

/// A stream as a multi-stream lease table names it: account, name and creation time
/// (seconds since the epoch), serialized `account:stream:creationEpoch` as KCL's
/// `StreamIdentifier`, so a stream deleted and created again under the same name gets new
/// leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StreamIdentifier {
    pub account_id: String,
    pub stream_name: String,
    pub creation_epoch: u64,
}

impl fmt::Display for StreamIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.account_id, self.stream_name, self.creation_epoch
        )
    }
}

/// Not `account:stream:creationEpoch` with a numeric account and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotAStreamIdentifier;

impl FromStr for StreamIdentifier {
    type Err = NotAStreamIdentifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let (Some(account), Some(name), Some(epoch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NotAStreamIdentifier);
        };
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !numeric(account) || name.is_empty() || !numeric(epoch) {
            return Err(NotAStreamIdentifier);
        }
        Ok(StreamIdentifier {
            account_id: account.to_owned(),
            stream_name: name.to_owned(),
            creation_epoch: epoch.parse().map_err(|_| NotAStreamIdentifier)?,
        })
    }
}

/// The lease key of a shard of a stream in a multi-stream table.
pub(crate) fn multi_stream_key(stream: &StreamIdentifier, shard_id: &str) -> String {
    format!("{stream}:{shard_id}")
}

/// Splits a multi-stream lease key into its stream and shard id; `None` for a key of a
/// single-stream table (a shard id has no `:`).
pub(crate) fn split_multi_stream_key(key: &str) -> Option<(StreamIdentifier, &str)> {
    let (stream, shard) = key.rsplit_once(':')?;
    Some((stream.parse().ok()?, shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kcls() {
        let stream = StreamIdentifier {
            account_id: "123456789012".into(),
            stream_name: "orders".into(),
            creation_epoch: 1_700_000_000,
        };
        let key = multi_stream_key(&stream, "shardId-000000000007");
        assert_eq!(key, "123456789012:orders:1700000000:shardId-000000000007");
        assert_eq!(
            split_multi_stream_key(&key),
            Some((stream.clone(), "shardId-000000000007"))
        );
        assert_eq!(stream.to_string().parse(), Ok(stream));
    }

    #[test]
    fn other_strings_are_not_multi_stream_keys() {
        for key in [
            "shardId-000000000007",
            "orders:1700000000:shardId-000000000007",
            "acct:orders:1700000000:shardId-1",
            "123:orders:x:shardId-1",
            "123::1700000000:shardId-1",
        ] {
            assert_eq!(split_multi_stream_key(key), None, "{key}");
        }
    }
}
