//! Canonical JSON written straight from a typed value (a serde `Serializer`), with no
//! `serde_json::Value` tree in between.
//!
//! The writer records three events per fan-out item; building a `Value` tree for each (a map,
//! its keys and strings, all allocated and freed again) was a fifth of the CPU of a fan-out
//! (issue 21). The bytes are exactly those of [`super::canonical::canonical_json`] over
//! `serde_json::to_value` of the same value — objects' keys sorted by UTF-16 code units,
//! integers as digits, other numbers as serde_json writes them — which a test holds it to.

use std::fmt::Display;

use serde::ser::{self, Serialize};

use super::canonical::{write_json_value, write_string};

/// Why a value could not be written canonically (a map key that is not a string or number).
#[derive(Debug)]
pub struct CanonError(String);

impl Display for CanonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CanonError {}

impl ser::Error for CanonError {
    fn custom<T: Display>(msg: T) -> Self {
        CanonError(msg.to_string())
    }
}

/// The canonical encoding of `value`.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    let mut out = Vec::with_capacity(256);
    value.serialize(Canon { out: &mut out })?;
    Ok(out)
}

/// An internally tagged value (an event): its tag's string and the canonical encoding of the
/// object without the tag — a record's `type` and `data`.
pub fn tagged_canonical<T: Serialize + ?Sized>(
    value: &T,
    tag: &str,
) -> Result<(String, Vec<u8>), CanonError> {
    tagged_canonical_with(value, tag, &[])
}

/// [`tagged_canonical`] with `extra` fields added to the object (the writer's own, such as the
/// run's signer); an extra field replaces one of the value's of the same name.
pub fn tagged_canonical_with<T: Serialize + ?Sized>(
    value: &T,
    tag: &str,
    extra: &[(&str, &serde_json::Value)],
) -> Result<(String, Vec<u8>), CanonError> {
    let mut obj = Object::default();
    value.serialize(TopLevel { obj: &mut obj })?;
    for (key, v) in extra {
        obj.put((*key).to_string(), *v)?;
    }
    let at = obj
        .entries
        .iter()
        .position(|(k, _, _)| k == tag)
        .ok_or_else(|| CanonError(format!("no `{tag}` tag")))?;
    let (_, start, end) = obj.entries.remove(at);
    let kind: String = serde_json::from_slice(&obj.buf[start..end])
        .map_err(|_| CanonError(format!("the `{tag}` tag is not a string")))?;
    // A record's data that is mostly one large value (a batch approval's covers) is made in its
    // own buffer; any other is copied into one of exactly its size (two small buffers, not the
    // in-place layout's several, on every record of a fan-out).
    let largest = obj.entries.iter().map(|(_, s, e)| e - s).max().unwrap_or(0);
    if largest >= IN_PLACE_FROM {
        return Ok((kind, obj.finish_in_place()));
    }
    let keys: usize = obj.entries.iter().map(|(k, _, _)| k.len() + 4).sum();
    let mut out = Vec::with_capacity(obj.buf.len() + keys + 2);
    obj.finish(&mut out);
    Ok((kind, out))
}

/// From how large a value on a record's data is made in place ([`Object::finish_in_place`]).
const IN_PLACE_FROM: usize = 64 << 10;

/// Writes one value into `out`.
struct Canon<'a> {
    out: &'a mut Vec<u8>,
}

/// An object being built: each value's bytes in `buf`, keyed, sorted when it ends.
#[derive(Default)]
struct Object {
    buf: Vec<u8>,
    entries: Vec<(String, usize, usize)>,
    /// The key given by `serialize_key`, waiting for its value.
    key: Option<String>,
}

impl Object {
    fn put<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), CanonError> {
        let start = self.buf.len();
        value.serialize(Canon { out: &mut self.buf })?;
        self.entries.push((key, start, self.buf.len()));
        Ok(())
    }

    /// The object's canonical bytes made in its own buffer: the largest value is moved to its
    /// place there, and only the others are copied. A batch approval's record is megabytes, nearly
    /// all of it one value (`covers`); copying the whole object into a new buffer held it twice
    /// (issue 21).
    fn finish_in_place(mut self) -> Vec<u8> {
        self.sort();
        let kept: Vec<(Vec<u8>, usize, usize)> = self
            .standing()
            .map(|(key, start, end)| {
                let mut k = Vec::with_capacity(key.len() + 3);
                write_string(key, &mut k);
                k.push(b':');
                (k, *start, *end)
            })
            .collect();
        let Some(big) = (0..kept.len()).max_by_key(|&i| kept[i].2 - kept[i].1) else {
            return b"{}".to_vec();
        };
        let commas = kept.len() - 1;
        let total = 2 + commas + kept.iter().map(|(k, s, e)| k.len() + e - s).sum::<usize>();
        // Where the largest value goes: after `{`, the entries before it and its key.
        let at = 1
            + kept[..big]
                .iter()
                .map(|(k, s, e)| k.len() + e - s + 1)
                .sum::<usize>()
            + kept[big].0.len();
        let (bs, be) = (kept[big].1, kept[big].2);
        let mut before = vec![b'{'];
        for (k, s, e) in &kept[..big] {
            before.extend_from_slice(k);
            before.extend_from_slice(&self.buf[*s..*e]);
            before.push(b',');
        }
        before.extend_from_slice(&kept[big].0);
        let mut after = Vec::new();
        for (k, s, e) in &kept[big + 1..] {
            after.push(b',');
            after.extend_from_slice(k);
            after.extend_from_slice(&self.buf[*s..*e]);
        }
        after.push(b'}');
        let mut buf = self.buf;
        if buf.len() < total {
            buf.resize(total, 0);
        }
        buf.copy_within(bs..be, at);
        buf[..at].copy_from_slice(&before);
        buf[at + (be - bs)..total].copy_from_slice(&after);
        buf.truncate(total);
        buf
    }

    /// JCS orders keys by UTF-16 code units (see canonical.rs). The sort is stable, so of two
    /// values under one key the later is last, and it wins, as in a `serde_json::Map`.
    fn sort(&mut self) {
        self.entries
            .sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    }

    /// The entries that stand, in key order once sorted: of two under one key, the later.
    fn standing(&self) -> impl Iterator<Item = &(String, usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, e)| self.entries.get(i + 1).is_none_or(|next| next.0 != e.0))
            .map(|(_, e)| e)
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        self.sort();
        out.push(b'{');
        let mut first = true;
        for (key, start, end) in self.standing() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(key, out);
            out.push(b':');
            out.extend_from_slice(&self.buf[*start..*end]);
        }
        out.push(b'}');
    }
}

/// An array being written.
struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// How many elements the array said it has, if it said.
    len: Option<usize>,
}

/// From how many elements on an array makes room for all of them once its first is written.
const RESERVE_FROM: usize = 1024;

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        if !self.first {
            self.out.push(b',');
        }
        let first = std::mem::replace(&mut self.first, false);
        let start = self.out.len();
        value.serialize(Canon { out: self.out })?;
        // A batch approval lists 100,000 covers of about 100 bytes each, all alike: room for
        // them all at once (an eighth more than the first one's size, for longer item numbers)
        // instead of growing by doubling, which copied the list several times and held two
        // copies at the end (issue 21). Room not written to costs no memory.
        if first && let Some(len) = self.len.filter(|n| *n >= RESERVE_FROM) {
            let each = self.out.len() - start + 1;
            let room = each.saturating_mul(len - 1).saturating_mul(9) / 8;
            self.out.reserve(room.min(256 << 20));
        }
        Ok(())
    }
}

/// An object (struct or map) written into its parent, optionally wrapped as
/// `{"variant": {...}}` for a struct variant.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    obj: Object,
    variant: Option<&'static str>,
}

impl ObjectWriter<'_> {
    fn end(self) {
        if let Some(v) = self.variant {
            self.out.push(b'{');
            write_string(v, self.out);
            self.out.push(b':');
        }
        self.obj.finish(self.out);
        if self.variant.is_some() {
            self.out.push(b'}');
        }
    }
}

/// A tuple variant: `{"variant": [...]}`.
struct VariantArray<'a> {
    arr: Array<'a>,
}

/// A number as `serde_json::to_value` would make it, written as canonical.rs writes numbers.
fn number(out: &mut Vec<u8>, v: serde_json::Value) {
    write_json_value(&v, out);
}

impl<'a> ser::Serializer for Canon<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = VariantArray<'a>;
    type SerializeMap = ObjectWriter<'a>;
    type SerializeStruct = ObjectWriter<'a>;
    type SerializeStructVariant = ObjectWriter<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), CanonError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), CanonError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), CanonError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), CanonError> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), CanonError> {
        number(
            self.out,
            serde_json::to_value(v).map_err(ser::Error::custom)?,
        );
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), CanonError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), CanonError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), CanonError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), CanonError> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), CanonError> {
        number(
            self.out,
            serde_json::to_value(v).map_err(ser::Error::custom)?,
        );
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), CanonError> {
        number(self.out, serde_json::Value::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonError> {
        number(self.out, serde_json::Value::from(v));
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), CanonError> {
        write_string(v.encode_utf8(&mut [0u8; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonError> {
        write_string(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonError> {
        let mut arr = self.serialize_seq(Some(v.len()))?;
        for b in v {
            arr.element(b)?;
        }
        ser::SerializeSeq::end(arr)
    }
    fn serialize_none(self) -> Result<(), CanonError> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), CanonError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.push(b':');
        value.serialize(Canon { out: self.out })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Array<'a>, CanonError> {
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            first: true,
            len,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, CanonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Array<'a>, CanonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantArray<'a>, CanonError> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.extend_from_slice(b":[");
        Ok(VariantArray {
            arr: Array {
                out: self.out,
                first: true,
                len: Some(len),
            },
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<ObjectWriter<'a>, CanonError> {
        Ok(ObjectWriter {
            out: self.out,
            obj: Object::default(),
            variant: None,
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<ObjectWriter<'a>, CanonError> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<ObjectWriter<'a>, CanonError> {
        Ok(ObjectWriter {
            out: self.out,
            obj: Object::default(),
            variant: Some(variant),
        })
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for VariantArray<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.arr.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.arr.out.extend_from_slice(b"]}");
        Ok(())
    }
}

impl ser::SerializeMap for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        self.obj.key = Some(key.serialize(KeyName)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        let key = self
            .obj
            .key
            .take()
            .ok_or_else(|| CanonError("a map value without its key".into()))?;
        self.obj.put(key, value)
    }
    fn end(self) -> Result<(), CanonError> {
        ObjectWriter::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.obj.put(key.to_string(), value)
    }
    fn end(self) -> Result<(), CanonError> {
        ObjectWriter::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.obj.put(key.to_string(), value)
    }
    fn end(self) -> Result<(), CanonError> {
        ObjectWriter::end(self);
        Ok(())
    }
}

/// The top level of a tagged value: only an object is accepted, and it is kept open (as an
/// [`Object`]) so the tag can be taken out before it is written.
struct TopLevel<'a> {
    obj: &'a mut Object,
}

/// The top-level object's fields, kept in the caller's [`Object`].
struct TopFields<'a> {
    obj: &'a mut Object,
}

fn not_an_object() -> CanonError {
    CanonError("a tagged value must serialize as an object".into())
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), CanonError> { Err(not_an_object()) })*
    };
}

impl<'a> ser::Serializer for TopLevel<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = ser::Impossible<(), CanonError>;
    type SerializeTuple = ser::Impossible<(), CanonError>;
    type SerializeTupleStruct = ser::Impossible<(), CanonError>;
    type SerializeTupleVariant = ser::Impossible<(), CanonError>;
    type SerializeMap = TopFields<'a>;
    type SerializeStruct = TopFields<'a>;
    type SerializeStructVariant = ser::Impossible<(), CanonError>;

    refuse! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), CanonError> {
        Err(not_an_object())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CanonError> {
        Err(not_an_object())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CanonError> {
        Err(not_an_object())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, CanonError> {
        Err(not_an_object())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CanonError> {
        Err(not_an_object())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<TopFields<'a>, CanonError> {
        Ok(TopFields { obj: self.obj })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<TopFields<'a>, CanonError> {
        Ok(TopFields { obj: self.obj })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CanonError> {
        Err(not_an_object())
    }
}

impl ser::SerializeMap for TopFields<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        self.obj.key = Some(key.serialize(KeyName)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        let key = self
            .obj
            .key
            .take()
            .ok_or_else(|| CanonError("a map value without its key".into()))?;
        self.obj.put(key, value)
    }
    fn end(self) -> Result<(), CanonError> {
        Ok(())
    }
}

impl ser::SerializeStruct for TopFields<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.obj.put(key.to_string(), value)
    }
    fn end(self) -> Result<(), CanonError> {
        Ok(())
    }
}

/// A map key: a string, or a number or bool written as a string (as `serde_json::to_value`
/// accepts them).
struct KeyName;

fn bad_key() -> CanonError {
    CanonError("a map key must be a string".into())
}

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = CanonError;
    type SerializeSeq = ser::Impossible<String, CanonError>;
    type SerializeTuple = ser::Impossible<String, CanonError>;
    type SerializeTupleStruct = ser::Impossible<String, CanonError>;
    type SerializeTupleVariant = ser::Impossible<String, CanonError>;
    type SerializeMap = ser::Impossible<String, CanonError>;
    type SerializeStruct = ser::Impossible<String, CanonError>;
    type SerializeStructVariant = ser::Impossible<String, CanonError>;

    fn serialize_str(self, v: &str) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_bool(self, v: bool) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _: f32) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_f64(self, _: f64) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_none(self) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_unit(self) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, CanonError> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, CanonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, CanonError> {
        Err(bad_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CanonError> {
        Err(bad_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CanonError> {
        Err(bad_key())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, CanonError> {
        Err(bad_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CanonError> {
        Err(bad_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CanonError> {
        Err(bad_key())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, CanonError> {
        Err(bad_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CanonError> {
        Err(bad_key())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Covered, Event, RequestView, RunOutcome, StepStatus};
    use crate::transcript::canonical::{canonical_json, canonical_object};
    use serde_json::{Map, Value, json};

    fn old_path(event: &Event) -> (String, Vec<u8>) {
        let Value::Object(mut map) = serde_json::to_value(event).unwrap() else {
            panic!("not an object")
        };
        let Some(Value::String(kind)) = map.remove("type") else {
            panic!("no type")
        };
        (kind, canonical_object(&map))
    }

    fn events() -> Vec<Event> {
        let body = json!({"z": 1, "a": [1.5, -2, 1e300, null, true, "\u{1f600}\u{fffd}\n\"\\"],
            "\u{fffd}": {}, "\u{1f600}": {"y": 0.1, "x": u64::MAX}, "é": "ünï\u{2028}"});
        let Value::Object(outputs) = json!({"b": "k-2", "a": [{"q": 1}]}) else {
            panic!()
        };
        vec![
            Event::Request {
                step: "delete".into(),
                item: Some(7),
                approvals: vec![1, 2],
                probe: false,
                attempt: 1,
                request_id: "r-1".into(),
                request: RequestView {
                    method: "DELETE".into(),
                    url: "http://127.0.0.1:1/api-keys/gen-key-00008".into(),
                    headers: vec![("Authorization".into(), "Bearer [secret]".into())],
                    body: Some(body.clone()),
                },
            },
            Event::Response {
                step: "s".into(),
                request_id: "r-1".into(),
                status: Some(204),
                duration_ms: 3,
                body_sha256: None,
                body: Some(body),
                evidence: None,
                error: Some("\u{1}ctl".into()),
            },
            Event::ItemFinished {
                step: "s".into(),
                item: 0,
                status: StepStatus::Ok,
                reason: None,
                outputs,
                secret_files: vec!["f".into()],
            },
            Event::Confirmation {
                step: "s".into(),
                approval: 3,
                prompt: "Run?".into(),
                request_sha256: "ab".into(),
                approved: true,
                how: crate::event::ApprovalSource::AssumeYes,
                covers: vec![
                    Covered {
                        item: Some(0),
                        request_sha256: "cd".into(),
                    },
                    Covered {
                        item: None,
                        request_sha256: "ef".into(),
                    },
                ],
            },
            Event::RunFinished {
                outcome: RunOutcome::CompletedWithFailures,
                exit_code: 1,
            },
        ]
    }

    #[test]
    fn typed_events_give_the_bytes_of_their_value_trees() {
        for e in events() {
            let (kind, data) = tagged_canonical(&e, "type").unwrap();
            assert_eq!((kind, data.clone()), old_path(&e), "{e:?}");
            assert_eq!(
                to_canonical(&e).unwrap(),
                canonical_json(&serde_json::to_value(&e).unwrap())
            );
        }
    }

    #[test]
    fn extra_fields_are_added_as_a_map_insert_would() {
        let e = Event::RunFinished {
            outcome: RunOutcome::Success,
            exit_code: 0,
        };
        let (kind, mut map) = {
            let Value::Object(mut m) = serde_json::to_value(&e).unwrap() else {
                panic!()
            };
            let Some(Value::String(k)) = m.remove("type") else {
                panic!()
            };
            (k, m)
        };
        let (a, b) = (json!("v1"), json!(7));
        map.insert("tool_version".into(), a.clone());
        map.insert("exit_code".into(), b.clone());
        let (k2, bytes) =
            tagged_canonical_with(&e, "type", &[("tool_version", &a), ("exit_code", &b)]).unwrap();
        assert_eq!((k2, bytes), (kind, canonical_object(&map)));
    }

    /// The object is made in its own buffer around its largest value (`finish_in_place`):
    /// wherever that value sorts, whatever the keys, the bytes are canonical JSON's.
    #[test]
    fn an_object_made_in_place_is_canonical_wherever_its_largest_value_sorts() {
        let big: Vec<Value> = (0..3000)
            .map(|i| json!({"item": i, "request_sha256": "ab".repeat(i % 7 + 1)}))
            .collect();
        let keys = ["", "a", "m\"q", "é", "z", "\u{1F600}"];
        for at in keys {
            let mut m = Map::new();
            for k in keys {
                m.insert(k.to_string(), json!(k.len()));
            }
            m.insert(at.to_string(), Value::Array(big.clone()));
            let mut tagged = m.clone();
            tagged.insert("type".into(), json!("t"));
            let (kind, bytes) = tagged_canonical(&Value::Object(tagged), "type").unwrap();
            assert_eq!(kind, "t");
            assert_eq!(bytes, canonical_object(&m), "largest under {at:?}");
        }
        let (_, only) = tagged_canonical(&json!({"type": "t", "x": big}), "type").unwrap();
        assert_eq!(
            only,
            canonical_object(&Map::from_iter([("x".to_string(), json!(big))]))
        );
        let (_, empty) = tagged_canonical(&json!({"type": "t"}), "type").unwrap();
        assert_eq!(empty, b"{}");
        // A small value after the largest one in the buffer, moved left past it.
        let (_, left) =
            tagged_canonical(&json!({"type": "t", "z": big, "a": 1, "b": "two"}), "type").unwrap();
        assert_eq!(
            left,
            canonical_json(&json!({"z": big, "a": 1, "b": "two"})),
            "keys sorted"
        );
    }

    #[test]
    fn values_give_the_bytes_of_canonical_json() {
        let v = json!({"b": [1, {"d": 2, "c": [0.5, "x"]}], "a": null, "": -0.0});
        assert_eq!(to_canonical(&v).unwrap(), canonical_json(&v));
        assert!(tagged_canonical(&v, "type").is_err(), "no tag");
        assert!(
            tagged_canonical(&json!([1]), "type").is_err(),
            "not an object"
        );
    }
}
