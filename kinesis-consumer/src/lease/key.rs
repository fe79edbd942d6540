//! Lease keys. A single-stream application keys a lease by its shard id, as KCL does; a
//! multi-stream one by `account:stream:creationEpoch:shardId` (KCL's `MultiStreamLease`),
//! with the stream's part also in `streamName` and the shard's in `shardId`.

use std::fmt;
use std::str::FromStr;

use super::{Checkpoint, Lease};

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

/// The keys of one stream's leases: shard ids in a single-stream table, prefixed with the
/// stream in a multi-stream one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeySpace {
    stream: Option<StreamIdentifier>,
    /// `stream` serialized, as in `streamName`.
    name: Option<String>,
}

impl KeySpace {
    /// A single-stream table's.
    pub(crate) fn single() -> Self {
        KeySpace::default()
    }

    /// One stream's in a multi-stream table.
    pub(crate) fn of(stream: StreamIdentifier) -> Self {
        KeySpace {
            name: Some(stream.to_string()),
            stream: Some(stream),
        }
    }

    /// The key space a lease belongs to.
    pub(crate) fn of_lease(lease: &Lease) -> Self {
        match lease.stream_identifier.as_deref().map(str::parse) {
            Some(Ok(stream)) => KeySpace::of(stream),
            _ => KeySpace::single(),
        }
    }

    /// The lease key of a shard.
    pub(crate) fn key(&self, shard_id: &str) -> String {
        match &self.stream {
            Some(stream) => multi_stream_key(stream, shard_id),
            None => shard_id.to_owned(),
        }
    }

    /// Whether a lease is one of this stream's.
    pub(crate) fn holds(&self, lease: &Lease) -> bool {
        lease.stream_identifier == self.name
    }

    /// A new lease for a shard of this stream.
    pub(crate) fn new_lease(&self, shard_id: &str, checkpoint: Checkpoint) -> Lease {
        let mut lease = Lease::new(self.key(shard_id), checkpoint);
        lease.stream_identifier = self.name.clone();
        lease
    }

    /// The stream, in a multi-stream table.
    pub(crate) fn stream(&self) -> Option<&StreamIdentifier> {
        self.stream.as_ref()
    }
}

/// The key of a lease's parent (parents are named by shard id, as KCL does in both kinds of
/// table).
pub(crate) fn parent_key(lease: &Lease, parent: &str) -> String {
    match &lease.stream_identifier {
        Some(stream) => format!("{stream}:{parent}"),
        None => parent.to_owned(),
    }
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
        assert_eq!(stream.to_string().parse(), Ok(stream));
    }

    #[test]
    fn key_spaces_make_and_recognise_their_leases() {
        let stream: StreamIdentifier = "123456789012:orders:1700000000".parse().unwrap();
        let space = KeySpace::of(stream);
        let lease = space.new_lease("shardId-000000000001", Checkpoint::TrimHorizon);
        assert_eq!(
            lease.shard_id,
            "123456789012:orders:1700000000:shardId-000000000001"
        );
        assert_eq!(lease.kinesis_shard_id(), "shardId-000000000001");
        assert!(space.holds(&lease) && !KeySpace::single().holds(&lease));
        assert_eq!(KeySpace::of_lease(&lease), space);
        assert_eq!(
            parent_key(&lease, "shardId-000000000000"),
            "123456789012:orders:1700000000:shardId-000000000000"
        );
        let single = KeySpace::single().new_lease("shardId-000000000001", Checkpoint::TrimHorizon);
        assert_eq!(single.shard_id, "shardId-000000000001");
        assert_eq!(
            parent_key(&single, "shardId-000000000000"),
            "shardId-000000000000"
        );
    }

    #[test]
    fn other_strings_are_not_stream_identifiers() {
        for id in [
            "orders",
            "orders:1700000000",
            "acct:orders:1700000000",
            "123:orders:x",
            "123::1700000000",
            "123:orders:1700000000:shardId-1",
        ] {
            assert_eq!(
                id.parse::<StreamIdentifier>(),
                Err(NotAStreamIdentifier),
                "{id}"
            );
        }
    }
}
