//! Writes our aggregates of the golden vectors' inputs, for the Python interop check
//! (`interop/aggregation/check.sh`): `write_aggregates FIXTURE OUT`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_agg::UserRecord;
use kinesis_agg::aggregation::Aggregator;
use kinesis_agg::record::DEFAULT_MAX_RECORD_BYTES;
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(fixture), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: write_aggregates FIXTURE OUT".into());
    };
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(fixture)?)?;
    let mut vectors = Vec::new();
    for v in doc["vectors"].as_array().ok_or("no vectors")? {
        let mut agg = Aggregator::new(DEFAULT_MAX_RECORD_BYTES)?;
        for r in v["records"].as_array().ok_or("no records")? {
            let data = STANDARD.decode(r["data"].as_str().ok_or("no data")?)?;
            let mut record = UserRecord::new(r["partition_key"].as_str().ok_or("no key")?, data);
            if let Some(ehk) = r["explicit_hash_key"].as_str() {
                record = record.with_explicit_hash_key(ehk);
            }
            let hash = record.validate(DEFAULT_MAX_RECORD_BYTES)?;
            agg.try_add(&record, hash)?;
        }
        let out = agg.finish().ok_or("empty vector")?;
        vectors.push(json!({
            "name": v["name"],
            "records": v["records"],
            "aggregate": {
                "partition_key": out.partition_key,
                "explicit_hash_key": out.explicit_hash_key,
                "data": STANDARD.encode(&out.data),
            }
        }));
    }
    std::fs::write(
        out,
        serde_json::to_vec_pretty(&json!({ "vectors": vectors }))?,
    )?;
    Ok(())
}
