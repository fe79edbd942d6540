//! The user's functions: a transformation (Firehose's Lambda, in-process) and a partitioning
//! function (Firehose's dynamic partitioning).

use bytes::Bytes;
use kinesis_consumer::Record;

/// Turns a record into zero, one or many output records, or refuses it.
///
/// A refused record goes to the error prefix with the reason, never dropped. Any
/// `Fn(&Record) -> Result<Vec<Bytes>, String>` is a `Transform`:
///
/// ```
/// use bytes::Bytes;
/// use kinesis_consumer::Record;
/// use kinesis_sink::Transform;
///
/// // Upper-case text records, drop empty ones, refuse binary ones.
/// let upper = |r: &Record| -> Result<Vec<Bytes>, String> {
///     let text = std::str::from_utf8(&r.data).map_err(|e| e.to_string())?;
///     Ok(if text.is_empty() { vec![] } else { vec![Bytes::from(text.to_uppercase())] })
/// };
/// fn takes(_: impl Transform) {}
/// takes(upper);
/// ```
pub trait Transform: Send + Sync + 'static {
    /// The outputs of `record`, or why it cannot be transformed.
    fn transform(&self, record: &Record) -> Result<Vec<Bytes>, String>;
}

impl<F> Transform for F
where
    F: Fn(&Record) -> Result<Vec<Bytes>, String> + Send + Sync + 'static,
{
    fn transform(&self, record: &Record) -> Result<Vec<Bytes>, String> {
        self(record)
    }
}

/// Gives an output record the partition keys its prefix uses
/// (`!{partitionKeyFromQuery:name}` or `!{partitionKeyFromLambda:name}`); records with the
/// same keys share objects. Any `Fn(&[u8], &Record) -> Result<Vec<(String, String)>, String>`
/// is a `Partitioner`:
///
/// ```
/// use kinesis_consumer::Record;
/// use kinesis_sink::Partitioner;
///
/// // The customer is the part of the partition key before the first `-`.
/// let by_customer = |_: &[u8], r: &Record| -> Result<Vec<(String, String)>, String> {
///     let customer = r.partition_key.split('-').next().unwrap_or_default();
///     Ok(vec![("customer".to_owned(), customer.to_owned())])
/// };
/// fn takes(_: impl Partitioner) {}
/// takes(by_customer);
/// ```
pub trait Partitioner: Send + Sync + 'static {
    /// The keys of one output record: `data` is what the transformation made of `record`
    /// (its own data without a transformation).
    fn partition(&self, data: &[u8], record: &Record) -> Result<Vec<(String, String)>, String>;
}

impl<F> Partitioner for F
where
    F: Fn(&[u8], &Record) -> Result<Vec<(String, String)>, String> + Send + Sync + 'static,
{
    fn partition(&self, data: &[u8], record: &Record) -> Result<Vec<(String, String)>, String> {
        self(data, record)
    }
}
