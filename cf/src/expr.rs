//! CloudFormation values: literals and the intrinsic functions the template uses.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A value in a template: a literal, a list, an object or an intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A string.
    Str(String),
    /// A number.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<Expr>),
    /// An object with these keys.
    Object(BTreeMap<String, Expr>),
    /// `{"Ref": name}`: a parameter's value or a resource's id.
    Ref(String),
    /// `{"Fn::GetAtt": [resource, attribute]}`.
    GetAtt(String, String),
    /// `{"Fn::Sub": text}` with `${Name}` references.
    Sub(String),
    /// `{"Fn::Sub": [text, variables]}`.
    SubWith(String, BTreeMap<String, Expr>),
    /// `{"Fn::Base64": value}`.
    Base64(Box<Expr>),
    /// `{"Fn::If": [condition, then, else]}`.
    If(String, Box<Expr>, Box<Expr>),
    /// `{"Fn::Equals": [a, b]}` (conditions only).
    Equals(Box<Expr>, Box<Expr>),
    /// `{"Fn::Not": [condition]}` (conditions only).
    Not(Box<Expr>),
    /// `{"Fn::And": [conditions]}` (conditions only).
    And(Vec<Expr>),
    /// `{"Condition": name}` inside a condition.
    Condition(String),
}

impl Expr {
    /// A string literal.
    pub fn s(v: impl Into<String>) -> Expr {
        Expr::Str(v.into())
    }

    /// `Ref`.
    pub fn r(name: &str) -> Expr {
        Expr::Ref(name.to_string())
    }

    /// `Fn::GetAtt`.
    pub fn att(resource: &str, attribute: &str) -> Expr {
        Expr::GetAtt(resource.to_string(), attribute.to_string())
    }

    /// `Fn::Sub`.
    pub fn sub(text: impl Into<String>) -> Expr {
        Expr::Sub(text.into())
    }

    /// `Fn::If`.
    pub fn when(condition: &str, then: Expr, otherwise: Expr) -> Expr {
        Expr::If(condition.to_string(), Box::new(then), Box::new(otherwise))
    }

    /// `AWS::NoValue`: the property is left out.
    pub fn no_value() -> Expr {
        Expr::r("AWS::NoValue")
    }

    /// An object from pairs.
    pub fn obj<const N: usize>(pairs: [(&str, Expr); N]) -> Expr {
        Expr::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

impl From<&str> for Expr {
    fn from(v: &str) -> Expr {
        Expr::s(v)
    }
}

fn one<S: Serializer, V: Serialize + ?Sized>(
    s: S,
    key: &str,
    value: &V,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry(key, value)?;
    m.end()
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expr::Str(v) => s.serialize_str(v),
            Expr::Int(v) => s.serialize_i64(*v),
            Expr::Bool(v) => s.serialize_bool(*v),
            Expr::List(v) => v.serialize(s),
            Expr::Object(v) => v.serialize(s),
            Expr::Ref(name) => one(s, "Ref", name),
            Expr::GetAtt(r, a) => one(s, "Fn::GetAtt", &[r, a]),
            Expr::Sub(text) => one(s, "Fn::Sub", text),
            Expr::SubWith(text, vars) => one(s, "Fn::Sub", &(text, vars)),
            Expr::Base64(v) => one(s, "Fn::Base64", v),
            Expr::If(c, a, b) => one(s, "Fn::If", &(c, a.as_ref(), b.as_ref())),
            Expr::Equals(a, b) => one(s, "Fn::Equals", &(a.as_ref(), b.as_ref())),
            Expr::Not(c) => one(s, "Fn::Not", &[c.as_ref()]),
            Expr::And(v) => one(s, "Fn::And", v),
            Expr::Condition(name) => one(s, "Condition", name),
        }
    }
}
