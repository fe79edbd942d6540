// The official Node.js aggregation library (npm aws-kinesis-agg) on both sides of our format.
//   node agg.cjs deaggregate RAW.json OUT.json   raw Kinesis records -> user records
//   node agg.cjs aggregate N OUT.json            N user records -> aggregated Kinesis records
const fs = require("fs");
const agg = require("aws-kinesis-agg");

function deaggregate(rawPath, outPath) {
  const raw = JSON.parse(fs.readFileSync(rawPath, "utf8"));
  const users = [];
  for (const r of raw) {
    const record = {
      partitionKey: r.partition_key,
      explicitPartitionKey: r.explicit_hash_key,
      sequenceNumber: r.sequence_number,
      data: r.data_b64,
    };
    agg.deaggregateSync(record, true, (err, records) => {
      if (err) throw err;
      for (const u of records) {
        users.push({
          shard_id: r.shard_id,
          partition_key: u.partitionKey,
          data: Buffer.from(u.data, "base64").toString("utf8"),
        });
      }
    });
  }
  fs.writeFileSync(outPath, JSON.stringify(users));
  console.log(`node aws-kinesis-agg: ${raw.length} Kinesis records -> ${users.length} user records`);
}

function aggregate(n, outPath) {
  // Eight keys, one aggregate stream per key, so every aggregate's user records belong to
  // the shard its own partition key maps to (as KPL does).
  const encoded = [];
  const done = [];
  for (let k = 0; k < 8; k++) {
    const records = [];
    for (let i = k; i < n; i += 8) {
      records.push({ partitionKey: `node-key-${k}`, data: Buffer.from(`node-${String(i).padStart(7, "0")}`) });
    }
    done.push(new Promise((resolve, reject) => {
      agg.aggregate(
        records,
        (rec, callback) => {
          encoded.push({ partition_key: rec.partitionKey, explicit_hash_key: rec.explicitHashKey || null, data_b64: rec.data.toString("base64") });
          callback();
        },
        resolve,
        (err) => reject(err),
      );
    }));
  }
  Promise.all(done).then(() => {
    fs.writeFileSync(outPath, JSON.stringify(encoded));
    console.log(`node aws-kinesis-agg: ${n} user records -> ${encoded.length} aggregated records`);
  });
}

const [cmd, a, b] = process.argv.slice(2);
if (cmd === "deaggregate") deaggregate(a, b);
else if (cmd === "aggregate") aggregate(Number(a), b);
else { console.error("usage: agg.cjs deaggregate RAW OUT | aggregate N OUT"); process.exit(2); }
