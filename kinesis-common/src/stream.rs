//! Naming a stream by name or by ARN.

use std::fmt;

/// A stream, named by its name or its ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
///
/// Kinesis accepts either in most calls; an ARN also names the account and region, which
/// cross-account consumers need.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamRef {
    /// The stream's name.
    Name(String),
    /// The stream's ARN.
    Arn(String),
}

impl StreamRef {
    /// Reads a string as an ARN if it starts with `arn:`, otherwise as a name.
    pub fn parse(value: impl Into<String>) -> Self {
        let value = value.into();
        if value.starts_with("arn:") {
            StreamRef::Arn(value)
        } else {
            StreamRef::Name(value)
        }
    }

    /// The stream's name (the last path segment of an ARN).
    pub fn name(&self) -> &str {
        match self {
            StreamRef::Name(name) => name,
            StreamRef::Arn(arn) => arn.rsplit('/').next().unwrap_or(arn),
        }
    }

    /// Sets `StreamName` or `StreamARN` on a ListShards request.
    pub fn apply_list_shards(
        &self,
        request: aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder {
        match self {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        }
    }

    /// Sets `StreamName` or `StreamARN` on a PutRecords request.
    pub fn apply_put_records(
        &self,
        request: aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder {
        match self {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        }
    }
}

impl StreamRef {
    /// Sets `StreamName` or `StreamARN` on a GetShardIterator request.
    pub fn apply_get_shard_iterator(
        &self,
        request: aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder,
    ) -> aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder
    {
        match self {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        }
    }
}

impl From<&str> for StreamRef {
    fn from(value: &str) -> Self {
        StreamRef::parse(value)
    }
}

impl From<String> for StreamRef {
    fn from(value: String) -> Self {
        StreamRef::parse(value)
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRef::Name(v) | StreamRef::Arn(v) => f.write_str(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_are_told_apart() {
        assert_eq!(StreamRef::parse("orders"), StreamRef::Name("orders".into()));
        let arn = StreamRef::parse("arn:aws:kinesis:us-east-1:123456789012:stream/orders");
        assert!(matches!(arn, StreamRef::Arn(_)));
        assert_eq!(arn.name(), "orders");
    }
}
