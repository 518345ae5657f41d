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
        super::canonical::hex_lower(&hasher.finalize())
    }

    /// Whether `raw` is exactly the line [`Record::seal_line`] makes of these parts — checked
    /// piece by piece, without copying `data_canon` (most of a line) into a new one: `verify`
    /// asks this of every record.
    #[allow(clippy::too_many_arguments)]
    pub fn is_line(
        raw: &[u8],
        seq: u64,
        ts: &str,
        kind: &str,
        data_canon: &[u8],
        prev: &str,
        hash: &str,
    ) -> bool {
        let mut head = Vec::with_capacity(96);
        line_head(&mut head, seq, ts, kind);
        let mut tail = Vec::with_capacity(160);
        line_tail(&mut tail, prev, hash);
        raw.len() == head.len() + data_canon.len() + tail.len()
            && raw.starts_with(&head)
            && raw.ends_with(&tail)
            && &raw[head.len()..raw.len() - tail.len()] == data_canon
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
        line_head(out, seq, ts, kind);
        out.extend_from_slice(data_canon);
        line_tail(out, prev, hash);
    }

    /// [`Record::seal_line`] made in `data_canon`'s own buffer, after `queued` (the lines
    /// queued before it): the data is moved along once to make room for what goes before it,
    /// instead of copied whole into another buffer — a batch approval's record is megabytes.
    pub fn seal_line_in(
        queued: &[u8],
        seq: u64,
        ts: &str,
        kind: &str,
        mut data_canon: Vec<u8>,
        prev: &str,
        hash: &str,
    ) -> Vec<u8> {
        let mut head = Vec::with_capacity(queued.len() + 96);
        head.extend_from_slice(queued);
        line_head(&mut head, seq, ts, kind);
        data_canon.splice(0..0, head);
        line_tail(&mut data_canon, prev, hash);
        data_canon
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
    ///
    /// The six fields are read straight into the record: a 100,000-item fan-out's transcript
    /// has 300,000 lines, and going through a map of the line first cost `verify` a third of
    /// its time (docs/performance.md).
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = serde::Deserializer::deserialize_any(&mut de, LineVisitor)
            .and_then(|r| de.end().map(|()| r));
        match parsed {
            Ok(Ok(record)) => Ok(record),
            Ok(Err(what)) => Err(what),
            Err(e) => Err(format!("not JSON: {e}")),
        }
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

/// A line up to its data: `{"seq":…,"ts":…,"type":…,"data":` — the fields in the order every
/// line has them (seq, ts, type, data, prev, hash).
fn line_head(out: &mut Vec<u8>, seq: u64, ts: &str, kind: &str) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    write_string(ts, out);
    out.extend_from_slice(b",\"type\":");
    write_string(kind, out);
    out.extend_from_slice(b",\"data\":");
}

/// A line after its data: `,"prev":…,"hash":…}`.
fn line_tail(out: &mut Vec<u8>, prev: &str, hash: &str) {
    out.extend_from_slice(b",\"prev\":");
    write_string(prev, out);
    out.extend_from_slice(b",\"hash\":");
    write_string(hash, out);
    out.push(b'}');
}

/// Reads a line's object into a [`Record`]; a line that is JSON but not a record gives
/// `Ok(Err(what))`, in the words `verify` reports.
struct LineVisitor;

impl<'de> serde::de::Visitor<'de> for LineVisitor {
    type Value = Result<Record, String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a transcript record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut seq, mut ts, mut kind, mut data, mut prev, mut hash) =
            (None, None, None, None, None, None);
        let mut unexpected: Option<String> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "seq" => seq = Some(map.next_value::<Value>()?),
                "ts" => ts = Some(map.next_value::<Value>()?),
                "type" => kind = Some(map.next_value::<Value>()?),
                "data" => data = Some(map.next_value::<Value>()?),
                "prev" => prev = Some(map.next_value::<Value>()?),
                "hash" => hash = Some(map.next_value::<Value>()?),
                other => {
                    unexpected.get_or_insert_with(|| other.to_string());
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(record_of(seq, ts, kind, data, prev, hash, unexpected))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Err("not a JSON object".into()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object".into()))
    }
}

#[allow(clippy::too_many_arguments)]
fn record_of(
    seq: Option<Value>,
    ts: Option<Value>,
    kind: Option<Value>,
    data: Option<Value>,
    prev: Option<Value>,
    hash: Option<Value>,
    unexpected: Option<String>,
) -> Result<Record, String> {
    let text = |v: Option<Value>, name: &str| match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(format!("field `{name}` missing or not a string")),
    };
    let ts = text(ts, "ts")?;
    let kind = text(kind, "type")?;
    let prev = text(prev, "prev")?;
    let hash = text(hash, "hash")?;
    let seq = seq
        .as_ref()
        .and_then(Value::as_u64)
        .ok_or("field `seq` missing or not a non-negative integer")?;
    let data = match data {
        Some(Value::Object(map)) => map,
        _ => return Err("field `data` missing or not an object".into()),
    };
    if let Some(extra) = unexpected {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_made_in_its_datas_buffer_is_the_line_seal_makes_after_the_queued_ones() {
        let data = format!("{{\"covers\":[{}]}}", "1,".repeat(700_000) + "2");
        let (hash, line) = Record::seal(7, "1.000", "confirmation", data.as_bytes(), "ab");
        for queued in [&b""[..], b"{\"seq\":6}\n"] {
            let made = Record::seal_line_in(
                queued,
                7,
                "1.000",
                "confirmation",
                data.clone().into_bytes(),
                "ab",
                &hash,
            );
            assert_eq!(made, [queued, &line[..]].concat());
        }
    }

    #[test]
    fn is_line_agrees_with_the_line_seal_makes_and_with_nothing_else() {
        let r = sample();
        let canon = canonical_json(&Value::Object(r.data.clone()));
        let (hash, line) = Record::seal(r.seq, &r.ts, &r.kind, &canon, &r.prev);
        let is = |raw: &[u8]| Record::is_line(raw, r.seq, &r.ts, &r.kind, &canon, &r.prev, &hash);
        assert!(is(&line));
        let text = String::from_utf8(line.clone()).unwrap();
        for altered in [
            text.replacen("\"seq\":3", "\"seq\":4", 1),
            text.replacen("\"step\":\"revoke\"", "\"step\":\"revokf\"", 1),
            text.replacen(",\"data\":", ", \"data\":", 1),
            text.replacen("\"prev\":\"0", "\"prev\":\"1", 1),
            format!("{text} "),
            text[..text.len() - 1].to_string(),
        ] {
            assert_ne!(altered, text);
            assert!(!is(altered.as_bytes()), "{altered}");
        }
    }

    #[test]
    fn parse_reads_a_line_back_and_names_what_is_wrong_with_one_that_is_not_a_record() {
        let r = sample();
        assert_eq!(Record::parse(&r.to_line()).unwrap(), r);
        let line = r.to_line();
        let cases: [(String, &str); 8] = [
            (
                line.replacen("{", "{\"extra\":1,", 1),
                "unexpected field `extra`",
            ),
            ("[1,2]".into(), "not a JSON object"),
            ("\"x\"".into(), "not a JSON object"),
            (format!("{line} {{}}"), "not JSON"),
            (
                line.replacen("\"seq\":3", "\"seq\":-3", 1),
                "field `seq` missing",
            ),
            (
                line.replacen("\"ts\":", "\"tz\":", 1),
                "field `ts` missing or not a string",
            ),
            (
                line.replacen("\"data\":{", "\"data\":[{", 1).replacen(
                    "},\"prev\"",
                    "}],\"prev\"",
                    1,
                ),
                "field `data` missing or not an object",
            ),
            (
                line.replacen(&format!("\"hash\":\"{}\"", r.hash), "\"hash\":7", 1),
                "field `hash` missing or not a string",
            ),
        ];
        for (text, want) in cases {
            let err = Record::parse(&text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

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
