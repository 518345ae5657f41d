//! The canonical JSON encoding that every hash in a transcript is computed over.
//!
//! A hash is only checkable by someone else if both sides agree on the exact bytes, so this module
//! pins them down: RFC 8785 (JCS) for everything the transcript contains — object keys sorted by
//! their UTF-16 code units, no insignificant whitespace, JCS string escaping — with integers written
//! exactly as decimal digits. Non-integer numbers (which the executor's events never contain, but a
//! recorded response body might) are written as serde_json writes them: the shortest text that
//! reads back as the same `f64`. docs/transcript-format.md repeats this for independent verifiers.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::RequestView;

/// The canonical encoding of a JSON value (see the module documentation).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_json_value(value, &mut out);
    out
}

/// The canonical encoding of a JSON object given as its map (no copy into a `Value`).
pub fn canonical_object(map: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(map, &mut out);
    out
}

/// SHA-256 (lowercase hex) of the canonical JSON of a serialized [`RequestView`].
///
/// The executor records this in a `confirmation` event for the exact request it showed, and
/// `verify` recomputes it from the `request` event that followed, so an approval cannot silently
/// be attached to a different request.
pub fn request_digest(request: &RequestView) -> String {
    // Canonical bytes straight from the typed request (no JSON tree: a fan-out digests every
    // item before the first is sent). Serializing a struct of strings, pairs and a JSON value
    // cannot fail; if it ever did, `null` still yields a digest that will not match, which
    // verify reports.
    let bytes = super::canonical_ser::to_canonical(request).unwrap_or_else(|_| b"null".to_vec());
    sha256_hex(&bytes)
}

/// SHA-256 of some bytes as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

/// Writes `value` canonically at the end of `out`.
pub(crate) fn write_json_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // JCS orders keys by UTF-16 code units, which differs from byte order only for
    // characters outside the Basic Multilingual Plane.
    entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_json_value(item, out);
    }
    out.push(b'}');
}

/// JCS string escaping: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00xx`
/// (lowercase hex), everything else as literal UTF-8. Runs of bytes that need no escape are
/// copied whole (every byte of a multi-byte UTF-8 character is >= 0x80, so none is mistaken for
/// one that needs escaping): strings are most of a transcript's bytes.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // One table load per byte: every string of every record passes through here.
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS[(b >> 4) as usize]);
            out.push(HEX_DIGITS[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// For each byte, the letter of its escape (`u` for `\u00XX`), or 0 when it stands for itself.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[b'\t' as usize] = b't';
    table[b'\n' as usize] = b'n';
    table[0x0c] = b'f';
    table[b'\r' as usize] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` (the hex crate's `encode` builds its string a char at a time, and
/// every record's hash goes through this).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX_DIGITS[(b >> 4) as usize]);
        out.push(HEX_DIGITS[(b & 0xf) as usize]);
    }
    // Only ASCII digits and letters were pushed.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_digest_is_over_the_same_bytes_as_the_requests_json_tree_canonicalized() {
        // verify recomputes the digest from the parsed `request` record (a tree): the bytes
        // written straight from the typed request must be the same.
        let views = [
            RequestView {
                method: "DELETE".into(),
                url: "https://e/api-keys/k-1".into(),
                headers: vec![("Authorization".into(), "Bearer [secret]".into())],
                body: None,
            },
            RequestView {
                method: "POST".into(),
                url: "https://e/subscriptions?x=\u{e9}&y=\"q\"".into(),
                headers: vec![("X-B".into(), "2".into()), ("X-A".into(), "1".into())],
                body: Some(json!({"z": [1, 2.5, null, {"b": true, "a": "\n\u{1}"}], "a": -3})),
            },
        ];
        for v in views {
            let tree = serde_json::to_value(&v).unwrap();
            assert_eq!(request_digest(&v), sha256_hex(&canonical_json(&tree)));
        }
    }

    #[test]
    fn strings_are_escaped_as_json_requires_and_nothing_more() {
        // The same bytes as serde_json writes (control characters, quote and backslash
        // escaped; `\u00XX` in lowercase; everything else literal), for every character below
        // 0x80 alone and inside text, and for characters of two, three and four bytes.
        let mut samples: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        samples.extend((0u8..0x80).map(|b| format!("ab{}cd\u{e9}", char::from(b))));
        samples.extend(
            [
                "",
                "plain",
                "é€😀\u{7f}\u{80}",
                "\"quoted\" \\ back\u{1}\u{1f}",
            ]
            .map(String::from),
        );
        for s in samples {
            let mut out = Vec::new();
            write_string(&s, &mut out);
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    fn canon(v: Value) -> String {
        String::from_utf8(canonical_json(&v)).unwrap()
    }

    #[test]
    fn keys_are_sorted_and_whitespace_removed() {
        let v = json!({"b": 1, "a": {"z": [1, 2, {"y": null, "x": true}], "c": "d"}});
        assert_eq!(
            canon(v),
            r#"{"a":{"c":"d","z":[1,2,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+1F600 is D83D DE00 in UTF-16, which sorts before U+FFFD; in UTF-8 it sorts after.
        let v = json!({"\u{fffd}": 1, "\u{1f600}": 2});
        assert_eq!(canon(v), "{\"\u{1f600}\":2,\"\u{fffd}\":1}");
    }

    #[test]
    fn strings_use_jcs_escapes() {
        let v = json!("a\"b\\c\n\t\u{1}\u{7f}é/");
        assert_eq!(canon(v), "\"a\\\"b\\\\c\\n\\t\\u0001\u{7f}é/\"");
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(
            canon(json!([u64::MAX, -5, 0])),
            "[18446744073709551615,-5,0]"
        );
    }

    #[test]
    fn canonical_strings_agree_with_serde_json() {
        // The record line writes top-level strings with serde_json; both must agree.
        for s in ["plain", "q\"uote", "\u{0}\u{1f}\u{8}\u{c}", "ünï\u{2028}"] {
            assert_eq!(canon(json!(s)), serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn request_digest_is_over_the_canonical_view() {
        let view = RequestView {
            method: "DELETE".into(),
            url: "https://esus.example/keys/1".into(),
            headers: vec![("Authorization".into(), "[secret]".into())],
            body: None,
        };
        let expected = sha256_hex(
            br#"{"body":null,"headers":[["Authorization","[secret]"]],"method":"DELETE","url":"https://esus.example/keys/1"}"#,
        );
        assert_eq!(request_digest(&view), expected);
    }
}
