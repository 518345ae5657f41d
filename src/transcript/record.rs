//! One transcript line: its fields, its hash, and its exact text.
//!
//! Writer, verifier, reader and report all go through these few functions, so the line format and
//! the hash input are defined in exactly one place (and in docs/transcript-format.md).

use serde_json::{Map, Value};

use super::canonical::{canonical_json, sha256_hex, write_string};

/// The `prev` of the first record: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event as recorded: `{"seq","ts","type","data","prev","hash"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Position in the transcript, from 0.
    pub seq: u64,
    /// When it was recorded: UTC, RFC 3339 with milliseconds (`2026-01-02T03:04:05.678Z`).
    pub ts: String,
    /// The event type, e.g. `run-started`.
    pub kind: String,
    /// The event's fields (an object).
    pub data: Map<String, Value>,
    /// The previous record's `hash` ([`GENESIS_PREV`] for the first).
    pub prev: String,
    /// SHA-256 (hex) of the canonical JSON of this record without `hash`.
    pub hash: String,
}

impl Record {
    /// Builds a record and computes its hash.
    pub fn new(seq: u64, ts: String, kind: String, data: Map<String, Value>, prev: String) -> Self {
        let mut record = Record {
            seq,
            ts,
            kind,
            data,
            prev,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    /// Builds a record and its line from `data` already in canonical form, without re-encoding:
    /// the writer canonicalizes outside its lock and only this (cheap) part runs inside it.
    /// Equal to [`Record::new`] followed by [`Record::to_line`].
    pub fn sealed(
        seq: u64,
        ts: String,
        kind: String,
        data: Map<String, Value>,
        data_canon: &str,
        prev: String,
    ) -> (Self, String) {
        let (ts_j, kind_j, prev_j) = (json_string(&ts), json_string(&kind), json_string(&prev));
        // Keys in canonical (sorted) order: data, prev, seq, ts, type.
        let hash = sha256_hex(format!("{{\"data\":{data_canon},\"prev\":{prev_j},\"seq\":{seq},\"ts\":{ts_j},\"type\":{kind_j}}}").as_bytes());
        let line = format!(
            "{{\"seq\":{seq},\"ts\":{ts_j},\"type\":{kind_j},\"data\":{data_canon},\"prev\":{prev_j},\"hash\":{}}}",
            json_string(&hash)
        );
        (
            Record {
                seq,
                ts,
                kind,
                data,
                prev,
                hash,
            },
            line,
        )
    }

    /// A record's hash and line (without its newline) from `data` already in canonical form,
    /// with no map and no `Record`. The same bytes as [`Record::sealed`].
    pub fn seal(
        seq: u64,
        ts: &str,
        kind: &str,
        data_canon: &[u8],
        prev: &str,
    ) -> (String, Vec<u8>) {
        let hash = Self::seal_hash(seq, ts, kind, data_canon, prev);
        let mut line = Vec::with_capacity(data_canon.len() + 256);
        Self::seal_line(&mut line, seq, ts, kind, data_canon, prev, &hash);
        (hash, line)
    }

    /// The hash [`Record::seal`] gives, computed without building the line: the writer needs
    /// it first (a checkpoint signs it) and then writes the line straight into its queue.
    pub fn seal_hash(seq: u64, ts: &str, kind: &str, data_canon: &[u8], prev: &str) -> String {
        use sha2::Digest;
        let mut tail = Vec::with_capacity(128);
        // Keys in canonical (sorted) order: data, prev, seq, ts, type.
        tail.extend_from_slice(b",\"prev\":");
        write_string(prev, &mut tail);
        tail.extend_from_slice(b",\"seq\":");
        tail.extend_from_slice(seq.to_string().as_bytes());
        tail.extend_from_slice(b",\"ts\":");
        write_string(ts, &mut tail);
        tail.extend_from_slice(b",\"type\":");
        write_string(kind, &mut tail);
        tail.push(b'}');
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"{\"data\":");
        hasher.update(data_canon);
        hasher.update(&tail);
        hex::encode(hasher.finalize())
    }

    /// Appends the line of [`Record::seal`] (without its newline) to `out`.
    pub fn seal_line(
        out: &mut Vec<u8>,
        seq: u64,
        ts: &str,
        kind: &str,
        data_canon: &[u8],
        prev: &str,
        hash: &str,
    ) {
        // The line: seq, ts, type, data, prev, hash.
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(b",\"ts\":");
        write_string(ts, out);
        out.extend_from_slice(b",\"type\":");
        write_string(kind, out);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data_canon);
        out.extend_from_slice(b",\"prev\":");
        write_string(prev, out);
        out.extend_from_slice(b",\"hash\":");
        write_string(hash, out);
        out.push(b'}');
    }

    /// SHA-256 over the canonical JSON of `{"data","prev","seq","ts","type"}`.
    pub fn compute_hash(&self) -> String {
        let mut body = Map::new();
        body.insert("seq".into(), Value::from(self.seq));
        body.insert("ts".into(), Value::from(self.ts.clone()));
        body.insert("type".into(), Value::from(self.kind.clone()));
        body.insert("data".into(), Value::Object(self.data.clone()));
        body.insert("prev".into(), Value::from(self.prev.clone()));
        sha256_hex(&canonical_json(&Value::Object(body)))
    }

    /// The record's line, without the newline: fields in the order seq, ts, type, data, prev,
    /// hash, and `data` in canonical form. A verifier rejects any line that differs from this.
    pub fn to_line(&self) -> String {
        let data = String::from_utf8(canonical_json(&Value::Object(self.data.clone())))
            .unwrap_or_default();
        format!(
            "{{\"seq\":{},\"ts\":{},\"type\":{},\"data\":{},\"prev\":{},\"hash\":{}}}",
            self.seq,
            json_string(&self.ts),
            json_string(&self.kind),
            data,
            json_string(&self.prev),
            json_string(&self.hash),
        )
    }

    /// Parses one line (without its newline). Does not check the hash or the canonical form.
    pub fn parse(line: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut obj) = value else {
            return Err("not a JSON object".into());
        };
        let mut take_str = |name: &str| match obj.remove(name) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(format!("field `{name}` missing or not a string")),
        };
        let ts = take_str("ts")?;
        let kind = take_str("type")?;
        let prev = take_str("prev")?;
        let hash = take_str("hash")?;
        let seq = obj
            .remove("seq")
            .and_then(|v| v.as_u64())
            .ok_or("field `seq` missing or not a non-negative integer")?;
        let data = match obj.remove("data") {
            Some(Value::Object(map)) => map,
            _ => return Err("field `data` missing or not an object".into()),
        };
        if let Some(extra) = obj.keys().next() {
            return Err(format!("unexpected field `{extra}`"));
        }
        Ok(Record {
            seq,
            ts,
            kind,
            data,
            prev,
            hash,
        })
    }

    /// A string field of `data`, if present.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(Value::as_str)
    }

    /// The `step` field of `data`, if present.
    pub fn step(&self) -> Option<&str> {
        self.str_field("step")
    }
}

fn json_string(s: &str) -> String {
    String::from_utf8(canonical_json(&Value::from(s))).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Record {
        let data = json!({"step": "revoke", "b": [1, "x"]});
        let Value::Object(data) = data else { panic!() };
        Record::new(
            3,
            "2026-01-02T03:04:05.678Z".into(),
            "step-started".into(),
            data,
            GENESIS_PREV.into(),
        )
    }

    #[test]
    fn line_round_trips() {
        let r = sample();
        let line = r.to_line();
        assert!(line.starts_with(r#"{"seq":3,"ts":"2026-01-02T03:04:05.678Z","type":"step-started","data":{"b":[1,"x"],"step":"revoke"},"prev":"000"#));
        let back = Record::parse(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.compute_hash(), r.hash);
    }

    #[test]
    fn sealed_equals_new_then_to_line() {
        let r = sample();
        let canon = String::from_utf8(canonical_json(&Value::Object(r.data.clone()))).unwrap();
        let (sealed, line) = Record::sealed(
            r.seq,
            r.ts.clone(),
            r.kind.clone(),
            r.data.clone(),
            &canon,
            r.prev.clone(),
        );
        assert_eq!(sealed, r);
        assert_eq!(line, r.to_line());
        let (hash, bytes) = Record::seal(r.seq, &r.ts, &r.kind, canon.as_bytes(), &r.prev);
        assert_eq!(hash, r.hash, "seal hashes as sealed does");
        assert_eq!(bytes, line.as_bytes(), "and writes the same line");
    }

    #[test]
    fn hash_is_over_sorted_record_without_hash() {
        let r = sample();
        let input = format!(
            r#"{{"data":{{"b":[1,"x"],"step":"revoke"}},"prev":"{GENESIS_PREV}","seq":3,"ts":"2026-01-02T03:04:05.678Z","type":"step-started"}}"#
        );
        assert_eq!(r.hash, sha256_hex(input.as_bytes()));
    }

    #[test]
    fn parse_rejects_extra_and_missing_fields() {
        let mut v: Value = serde_json::from_str(&sample().to_line()).unwrap();
        v["extra"] = json!(1);
        assert!(Record::parse(&v.to_string()).unwrap_err().contains("extra"));
        assert!(Record::parse(r#"{"seq":1}"#).is_err());
    }
}
