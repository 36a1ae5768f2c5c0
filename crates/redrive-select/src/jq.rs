//! jq expressions over a message: the JSON body (or the raw text, as a jq string, when the
//! body is not JSON) as `.`, with `$meta` bound to its metadata. Used for `--group-by` keys,
//! selection filters, per-key rate keys and body transforms.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
pub use jaq_json::Val;

/// A `--group-by` expression that failed to parse or compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid jq expression `{expr}`: {reason}")]
pub struct JqError {
    pub expr: String,
    pub reason: String,
}

/// A filter compiled once and run on every message.
pub struct GroupBy {
    pub expr: String,
    filter: jaq_core::Filter<data::JustLut<Val>>,
}

impl GroupBy {
    pub fn compile(expr: &str) -> Result<GroupBy, JqError> {
        let err = |reason: String| JqError {
            expr: expr.to_string(),
            reason,
        };
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let program = File {
            code: expr,
            path: (),
        };
        let modules = loader
            .load(&arena, program)
            .map_err(|errs| err(describe_load(&errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(["$meta"])
            .compile(modules)
            .map_err(|errs| err(describe_compile(&errs)))?;
        Ok(GroupBy {
            expr: expr.to_string(),
            filter,
        })
    }

    /// The group key of one message: the filter's first output as text (strings unquoted),
    /// `(none)` when it yields nothing, `(error)` when it fails.
    pub fn key(&self, body: &Val, meta: &Val) -> String {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([meta.clone()]));
        let mut out = self.filter.id.run((ctx, body.clone()));
        match out.next().map(jaq_core::unwrap_valr) {
            None => "(none)".to_string(),
            Some(Err(_)) => "(error)".to_string(),
            Some(Ok(v)) => val_text(&v),
        }
    }
}

/// What running an expression on one message gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The first output.
    Value(Val),
    /// No output (`empty`).
    Nothing,
    /// The expression failed on this message (text of the jq error).
    Error(String),
}

impl GroupBy {
    /// The first output of the expression on one message.
    pub fn first(&self, body: &Val, meta: &Val) -> Output {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([meta.clone()]));
        let mut out = self.filter.id.run((ctx, body.clone()));
        match out.next().map(jaq_core::unwrap_valr) {
            None => Output::Nothing,
            Some(Err(e)) => Output::Error(one_line(&e.to_string())),
            Some(Ok(v)) => Output::Value(v),
        }
    }
}

/// jq truthiness: everything but `false` and `null`.
pub fn truthy(v: &Val) -> bool {
    !matches!(v, Val::Null | Val::Bool(false))
}

/// The jq input of a body: its JSON value, or the text itself as a string when it is not JSON.
pub fn body_value(body: &str) -> Val {
    parse(body).unwrap_or_else(|| Val::from(body.to_string()))
}

/// A `serde_json` value as a jq value.
pub fn from_json(v: &serde_json::Value) -> Val {
    parse(&v.to_string()).unwrap_or(Val::Null)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Strings without quotes, everything else as compact JSON.
pub fn val_text(v: &Val) -> String {
    match v {
        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.to_string(),
    }
}

/// Parses a JSON text into a jaq value.
pub fn parse(text: &str) -> Option<Val> {
    jaq_json::read::parse_single(text.as_bytes()).ok()
}

fn at(rest: &str) -> String {
    if rest.trim().is_empty() {
        "at the end".to_string()
    } else {
        format!("at `{}`", rest.chars().take(20).collect::<String>())
    }
}

fn describe_load<F>(errs: &[(F, jaq_core::load::Error<&str>)]) -> String {
    use jaq_core::load::Error;
    let mut parts = vec![];
    for (_, e) in errs {
        match e {
            Error::Io(v) => parts.extend(v.iter().map(|(p, m)| format!("{p}: {m}"))),
            Error::Lex(v) => parts.extend(
                v.iter()
                    .map(|(exp, rest)| format!("expected {} {}", exp.as_str(), at(rest))),
            ),
            Error::Parse(v) => parts.extend(
                v.iter()
                    .map(|(exp, rest)| format!("expected {} {}", exp.as_str(), at(rest))),
            ),
        }
    }
    parts.join("; ")
}

fn describe_compile<F>(errs: &[(F, Vec<(&str, jaq_core::compile::Undefined)>)]) -> String {
    errs.iter()
        .flat_map(|(_, v)| v.iter())
        .map(|(name, u)| format!("undefined {} `{name}`", u.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_body_and_meta() {
        let body = parse(r#"{"mall_id":"drlabnosh","n":3,"params":{"x":[1]}}"#).unwrap();
        let meta = parse(r#"{"receiveCount":2}"#).unwrap();
        assert_eq!(
            GroupBy::compile(".mall_id").unwrap().key(&body, &meta),
            "drlabnosh"
        );
        assert_eq!(GroupBy::compile(".n").unwrap().key(&body, &meta), "3");
        assert_eq!(
            GroupBy::compile(".params").unwrap().key(&body, &meta),
            r#"{"x":[1]}"#
        );
        assert_eq!(
            GroupBy::compile("$meta.receiveCount")
                .unwrap()
                .key(&body, &meta),
            "2"
        );
        assert_eq!(
            GroupBy::compile("empty").unwrap().key(&body, &meta),
            "(none)"
        );
        assert_eq!(
            GroupBy::compile("error(\"x\")").unwrap().key(&body, &meta),
            "(error)"
        );
        assert_eq!(
            GroupBy::compile("keys | join(\",\")")
                .unwrap()
                .key(&body, &meta),
            "mall_id,n,params"
        );
    }

    #[test]
    fn invalid_expressions_are_reported() {
        let e = GroupBy::compile(".mall_id |").err().unwrap();
        assert!(
            e.to_string()
                .starts_with("invalid jq expression `.mall_id |`"),
            "{e}"
        );
        let e = GroupBy::compile("nosuchfn(1)").err().unwrap();
        assert!(e.to_string().contains("undefined filter `nosuchfn`"), "{e}");
        assert!(GroupBy::compile("$nosuchvar").is_err());
    }
}
