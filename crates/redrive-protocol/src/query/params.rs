//! Query parameters and the flattened list/map/struct conventions of the AWS Query protocol.

use std::collections::BTreeMap;
use std::ops::Bound;

use base64::Engine as _;
use redrive_core::{ErrorCode, SqsError};

/// Form parameters of one Query request, or the members of one flattened struct inside it.
///
/// Holds one value per name: a later occurrence of a name replaces an earlier one. Flattened
/// members use 1-based indices (`AttributeName.1`, `Attribute.2.Name`); the helpers order them by
/// numeric index and tolerate gaps and any order. Names whose index is not a decimal number are
/// ignored by the helpers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// Full name of this struct with its trailing dot (`SendMessageBatchRequestEntry.2.`), empty
    /// at the top level; used to name parameters in error messages.
    path: String,
    values: BTreeMap<String, String>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All parameters, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`, if present.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name` as an owned string, if present.
    pub fn opt_string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_owned)
    }

    /// The value of `name`, or the empty string when absent.
    pub fn string(&self, name: &str) -> String {
        self.str(name).unwrap_or_default().to_owned()
    }

    /// The value of `name` as an integer; `InvalidParameterValue` when it does not parse.
    pub fn int(&self, name: &str) -> Result<Option<i64>, SqsError> {
        self.str(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    SqsError::invalid_value(&self.full_name(name), v, "Must be an integer.")
                })
            })
            .transpose()
    }

    /// The value of `name` decoded from standard base64; `InvalidParameterValue` when it does not
    /// decode.
    pub fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, SqsError> {
        self.str(name)
            .map(|v| self.decode_base64(name, v))
            .transpose()
    }

    /// The values of `prefix.1`, `prefix.2`, … in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indexed(prefix)
            .filter(|(_, rest, _)| rest.is_empty())
            .map(|(_, _, v)| v.to_owned())
            .collect()
    }

    /// The values of `prefix.1`, `prefix.2`, … decoded from standard base64, in index order.
    pub fn blob_list(&self, prefix: &str) -> Result<Vec<Vec<u8>>, SqsError> {
        self.indexed(prefix)
            .filter(|(_, rest, _)| rest.is_empty())
            .map(|(i, _, v)| self.decode_base64(&format!("{prefix}.{i}"), v))
            .collect()
    }

    /// The members of `prefix.N.*` for each index N, in index order, each with the `prefix.N.`
    /// part removed from its names.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        let mut by_index: BTreeMap<u64, Params> = BTreeMap::new();
        for (index, rest, value) in self.indexed(prefix) {
            if let Some(member) = rest.strip_prefix('.') {
                by_index
                    .entry(index)
                    .or_insert_with(|| Params {
                        path: format!("{}{prefix}.{index}.", self.path),
                        values: BTreeMap::new(),
                    })
                    .insert(member, value);
            }
        }
        by_index.into_values().collect()
    }

    /// The members of `prefix.*` with the `prefix.` part removed from their names.
    pub fn sub(&self, prefix: &str) -> Params {
        let dotted = format!("{prefix}.");
        let values = self
            .with_prefix(&dotted)
            .map(|(rest, v)| (rest.to_owned(), v.to_owned()))
            .collect();
        Params {
            path: format!("{}{dotted}", self.path),
            values,
        }
    }

    /// The map flattened as `prefix.N.<key>` / `prefix.N.<value>`. Entries without a key are
    /// skipped; a missing value is the empty string. A repeated key keeps the highest index.
    pub fn map(&self, prefix: &str, key: &str, value: &str) -> BTreeMap<String, String> {
        self.structs(prefix)
            .into_iter()
            .filter_map(|entry| Some((entry.opt_string(key)?, entry.string(value))))
            .collect()
    }

    /// The full parameter name of `name`, e.g. `SendMessageBatchRequestEntry.2.DelaySeconds`.
    pub fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.path)
    }

    fn decode_base64(&self, name: &str, value: &str) -> Result<Vec<u8>, SqsError> {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| {
                SqsError::invalid_value(&self.full_name(name), value, "Invalid binary value.")
            })
    }

    /// `(name without prefix, value)` for every name starting with `prefix`.
    fn with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.values
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map_while(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }

    /// `(index, rest, value)` for every `prefix.<index><rest>` whose index is a decimal number;
    /// `rest` is empty or starts with a dot.
    fn indexed<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (u64, &'a str, &'a str)> {
        let dotted = format!("{prefix}.");
        let mut out: Vec<_> = self
            .with_prefix(&dotted)
            .filter_map(|(name, value)| {
                let (digits, rest) = name.split_at(name.find('.').unwrap_or(name.len()));
                let index = parse_index(digits)?;
                Some((index, rest, value))
            })
            .collect();
        out.sort_by_key(|&(index, _, _)| index);
        out.into_iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut params = Params::new();
        params.extend(iter);
        params
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Params {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// A flattened-list index: ASCII digits only (no sign), fitting in a `u64`.
fn parse_index(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses `application/x-www-form-urlencoded` parameters from a query string and a body. Both are
/// read; a name in the body replaces the same name in the query string.
///
/// Stricter than `form_urlencoded`: a `%` not followed by two hex digits, or a name or value
/// that is not UTF-8 once decoded, is `MalformedQueryString`.
pub fn parse_params(query_string: Option<&str>, body: &[u8]) -> Result<Params, SqsError> {
    let mut params = Params::new();
    for source in [query_string.unwrap_or_default().as_bytes(), body] {
        for pair in source.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            params.insert(decode_component(name)?, decode_component(value)?);
        }
    }
    Ok(params)
}

/// Decodes one form component: `+` is a space, `%XY` a byte; the result must be UTF-8.
fn decode_component(raw: &[u8]) -> Result<String, SqsError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let byte = match rest {
                    [hi, lo, ..] => hex_value(*hi)
                        .zip(hex_value(*lo))
                        .map(|(h, l)| (h << 4) | l),
                    _ => None,
                };
                let byte = byte.ok_or_else(|| malformed("Invalid percent-encoding."))?;
                bytes.push(byte);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| malformed("Parameters must be valid UTF-8."))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

fn malformed(message: &str) -> SqsError {
    SqsError::new(ErrorCode::MalformedQueryString, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().copied().collect()
    }

    #[test]
    fn parses_form_and_query_string() {
        let p = parse_params(
            Some("Action=ListQueues&QueueNamePrefix=a%20b&Version=2012-11-05"),
            b"QueueNamePrefix=c+d&Flag&&MaxResults=%31%30",
        )
        .unwrap();
        assert_eq!(p.str("Action"), Some("ListQueues"));
        assert_eq!(p.str("QueueNamePrefix"), Some("c d"));
        assert_eq!(p.str("Flag"), Some(""));
        assert_eq!(p.int("MaxResults").unwrap(), Some(10));
        assert_eq!(p.str("Missing"), None);
    }

    #[test]
    fn decodes_utf8_and_reserved_characters() {
        let p = parse_params(None, b"MessageBody=%C3%A9%26%3D%2B%0D%0A").unwrap();
        assert_eq!(p.str("MessageBody"), Some("é&=+\r\n"));
        let p = parse_params(Some("A=\u{e9}"), b"").unwrap();
        assert_eq!(p.str("A"), Some("é"));
    }

    #[test]
    fn rejects_malformed_forms() {
        for body in [
            &b"A=%"[..],
            b"A=%4",
            b"A=%zz",
            b"A=%C3",
            b"%FF=1",
            b"A=\xff",
        ] {
            let err = parse_params(None, body).unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedQueryString, "{body:?}");
        }
    }

    #[test]
    fn lists_sort_by_numeric_index() {
        let p = params(&[
            ("AttributeName.10", "j"),
            ("AttributeName.2", "b"),
            ("AttributeName.1", "a"),
            ("AttributeName.7", "g"),
            ("AttributeName.x", "ignored"),
            ("AttributeName.-1", "ignored"),
            ("AttributeName.3.Sub", "ignored"),
            ("AttributeNames.1", "other list"),
            ("AttributeName", "not a member"),
        ]);
        assert_eq!(p.list("AttributeName"), ["a", "b", "g", "j"]);
        assert!(p.list("Nothing").is_empty());
    }

    #[test]
    fn structs_group_by_index() {
        let p = params(&[
            ("Entry.3.Id", "c"),
            ("Entry.3.DelaySeconds", "x"),
            ("Entry.12.Id", "l"),
            ("Entry.1.Id", "a"),
            ("Entry.1.Attr.2.Name", "n2"),
            ("Entry.1.Attr.1.Name", "n1"),
        ]);
        let entries = p.structs("Entry");
        let ids: Vec<_> = entries.iter().map(|e| e.string("Id")).collect();
        assert_eq!(ids, ["a", "c", "l"]);
        let names: Vec<_> = entries[0]
            .structs("Attr")
            .iter()
            .map(|a| a.string("Name"))
            .collect();
        assert_eq!(names, ["n1", "n2"]);
        let err = entries[1].int("DelaySeconds").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert_eq!(
            err.message,
            "Value x for parameter Entry.3.DelaySeconds is invalid. Reason: Must be an integer."
        );
    }

    #[test]
    fn maps_pair_keys_and_values() {
        let p = params(&[
            ("Attribute.2.Name", "VisibilityTimeout"),
            ("Attribute.2.Value", "30"),
            ("Attribute.1.Name", "DelaySeconds"),
            ("Attribute.1.Value", "5"),
            ("Attribute.3.Value", "no key"),
            ("Attribute.4.Name", "Policy"),
        ]);
        let m = p.map("Attribute", "Name", "Value");
        assert_eq!(m.len(), 3);
        assert_eq!(m["DelaySeconds"], "5");
        assert_eq!(m["VisibilityTimeout"], "30");
        assert_eq!(m["Policy"], "");
    }

    #[test]
    fn sub_strips_prefix_and_blobs_decode() {
        let p = params(&[
            ("Value.BinaryValue", "AAE="),
            ("Value.BinaryListValue.2", "Ag=="),
            ("Value.BinaryListValue.1", "AQ=="),
            ("Value.StringValue", "%%%"),
        ]);
        let v = p.sub("Value");
        assert_eq!(v.blob("BinaryValue").unwrap(), Some(vec![0, 1]));
        assert_eq!(v.blob_list("BinaryListValue").unwrap(), [vec![1], vec![2]]);
        let err = v.blob("StringValue").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert!(
            err.message.contains("parameter Value.StringValue"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ints_reject_garbage() {
        let p = params(&[
            ("A", "12"),
            ("B", "-3"),
            ("C", "1.5"),
            ("D", ""),
            ("E", " 1"),
        ]);
        assert_eq!(p.int("A").unwrap(), Some(12));
        assert_eq!(p.int("B").unwrap(), Some(-3));
        assert_eq!(p.int("Z").unwrap(), None);
        for name in ["C", "D", "E"] {
            assert_eq!(
                p.int(name).unwrap_err().code,
                ErrorCode::InvalidParameterValue
            );
        }
    }
}
