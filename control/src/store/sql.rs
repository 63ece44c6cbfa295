//! The seam between the store's SQL and its two engines: values, rows and one statement call
//! that SQLite (rusqlite) and PostgreSQL (tokio-postgres) both answer.
//!
//! The store's statements are written once, in the SQL both engines speak, with SQLite's
//! numbered parameters (`?1`); [`crate::store::postgres`] rewrites them for PostgreSQL once per
//! statement. Values cross as [`Val`]: an integer, a real, a text or NULL, as in SQLite, and the
//! PostgreSQL side converts them to and from the column's declared type (`BOOLEAN`, `BIGINT`,
//! `TEXT`), so the same Rust reads and binds the same columns on both.

use std::fmt;

use bytes::BytesMut;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::error::{ControlError, Result};

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// A value that binds as a statement parameter.
pub(crate) trait Arg {
    fn val(&self) -> Val<'_>;
}

impl Arg for str {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}

impl Arg for String {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn val(&self) -> Val<'_> {
        (**self).val()
    }
}

impl<T: Arg> Arg for Option<T> {
    fn val(&self) -> Val<'_> {
        self.as_ref().map_or(Val::Null, Arg::val)
    }
}

impl Arg for bool {
    fn val(&self) -> Val<'_> {
        Val::Int(i64::from(*self))
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn val(&self) -> Val<'_> {
                // Every integer the store keeps fits (ids, counts, VLANs, rates below i64::MAX).
                Val::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_arg!(u8, u16, u32, u64, i32, i64, usize);

/// The parameters of one statement, in order: `args![a, b]`.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        [$($crate::store::sql::Arg::val(&$e)),*]
    };
}
pub(crate) use args;

/// What a column holds, read back into Rust.
pub(crate) trait FromVal: Sized {
    fn from_val(v: Val<'_>) -> std::result::Result<Self, String>;
}

impl FromVal for String {
    fn from_val(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s.to_owned()),
            Val::Int(n) => Ok(n.to_string()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromVal for bool {
    fn from_val(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Int(n) => Ok(n != 0),
            other => Err(format!("expected a boolean, found {other:?}")),
        }
    }
}

impl FromVal for f64 {
    fn from_val(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Real(x) => Ok(x),
            Val::Int(n) => Ok(n as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

macro_rules! int_from_val {
    ($($t:ty),*) => {$(
        impl FromVal for $t {
            fn from_val(v: Val<'_>) -> std::result::Result<Self, String> {
                match v {
                    Val::Int(n) => <$t>::try_from(n).map_err(|_| format!("{n} out of range")),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_val!(u8, u16, u32, u64, i32, i64, usize);

/// A column by position or by name.
pub(crate) trait Col:
    rusqlite::RowIndex + tokio_postgres::row::RowIndex + fmt::Display + Copy
{
}
impl Col for usize {}
impl Col for &str {}

/// One row of a result, from either engine.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Pg(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// The value of column `idx`.
    pub(crate) fn get<I: Col, T: FromVal>(&self, idx: I) -> Result<T> {
        let v = match self {
            Row::Sqlite(r) => match r.get_ref(idx).map_err(sqlite_err)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(n) => Val::Int(n),
                ValueRef::Real(x) => Val::Real(x),
                ValueRef::Text(t) => Val::Text(std::str::from_utf8(t).map_err(|e| column(idx, e))?),
                ValueRef::Blob(_) => return Err(column(idx, "a blob")),
            },
            Row::Pg(r) => r.try_get::<I, Val<'_>>(idx).map_err(pg_err)?,
        };
        T::from_val(v).map_err(|e| column(idx, e))
    }

    /// How many columns the row has.
    pub(crate) fn len(&self) -> usize {
        match self {
            Row::Sqlite(r) => r.as_ref().column_count(),
            Row::Pg(r) => r.len(),
        }
    }
}

fn column(idx: impl fmt::Display, e: impl fmt::Display) -> ControlError {
    ControlError::Store {
        detail: format!("column {idx}: {e}"),
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Val::Null => ValueRef::Null,
            Val::Int(n) => ValueRef::Integer(n),
            Val::Real(x) => ValueRef::Real(x),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// Binds a value as the parameter's type PostgreSQL inferred (as SQLite's type affinity
/// would): an integer into `BOOLEAN` as 0/1, a text into `BIGINT` or `BOOLEAN` by parsing it.
impl ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let bad = || format!("{self:?} cannot bind as {ty}");
        match (*self, ty) {
            (Val::Null, _) => Ok(IsNull::Yes),
            (Val::Int(n), &Type::BOOL) => (n != 0).to_sql(ty, out),
            (Val::Int(n), &Type::INT8) => n.to_sql(ty, out),
            (Val::Int(n), &Type::INT4) => i32::try_from(n).map_err(|_| bad())?.to_sql(ty, out),
            (Val::Int(n), &Type::INT2) => i16::try_from(n).map_err(|_| bad())?.to_sql(ty, out),
            (Val::Int(n), &Type::FLOAT8) => (n as f64).to_sql(ty, out),
            (Val::Int(n), _) => n.to_string().as_str().to_sql(ty, out),
            (Val::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (Val::Real(_), _) => Err(bad().into()),
            (Val::Text(s), &Type::BOOL) => match s {
                "1" | "true" | "True" => true.to_sql(ty, out),
                "0" | "false" | "False" => false.to_sql(ty, out),
                _ => Err(bad().into()),
            },
            (Val::Text(s), &Type::INT8 | &Type::INT4 | &Type::INT2) => {
                let n: i64 = s.parse().map_err(|_| bad())?;
                Val::Int(n).to_sql(ty, out)
            }
            // PostgreSQL's text holds no NUL; the store never keeps one (names and
            // descriptions are checked above it), so a value with one matches nothing.
            (Val::Text(s), _) if s.contains('\0') => {
                s.replace('\0', "\u{FFFD}").as_str().to_sql(ty, out)
            }
            (Val::Text(s), _) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Val<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::BOOL => Val::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => Val::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Val::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f64::from(f32::from_sql(ty, raw)?)),
            _ => Val::Text(<&str>::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Val::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A constraint the schema enforces (unique VLAN, MAC per network, one port per attachment, ...)
/// is a conflict (409), not a failure of the store: the rules check first, so only a concurrent
/// writer on a shared database gets here.
pub(crate) fn sqlite_err(e: rusqlite::Error) -> ControlError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => conflict(e),
        _ => ControlError::Store {
            detail: e.to_string(),
        },
    }
}

/// As [`sqlite_err`]: a violated constraint (class 23) is a conflict. A server that cannot be
/// reached or has gone (the connection failed or closed, an I/O error; class 08 connection
/// exception, 57 operator intervention, 53 insufficient resources, or a lock wait that timed
/// out) makes the store unavailable: a 503, not a 500, and the connection is replaced at the
/// next transaction. Anything else (a statement or a value this store got wrong) is a failure
/// of the store.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> ControlError {
    // The server's own message (tokio-postgres says only "db error" for all of them).
    let detail = match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    };
    let code = e.code().map(|c| c.code().to_owned());
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let gone = e.is_closed()
        || io
        || detail.starts_with("error connecting")
        || detail.starts_with("timeout");
    match code.as_deref() {
        Some(c) if c.starts_with("23") => conflict(detail),
        Some(c) if ["08", "57", "53"].contains(&&c[..2]) || c == "55P03" => unavailable(detail),
        None if gone => unavailable(detail),
        _ => ControlError::Store { detail },
    }
}

pub(crate) fn unavailable(e: impl fmt::Display) -> ControlError {
    ControlError::Unavailable {
        detail: e.to_string(),
    }
}

fn conflict(e: impl fmt::Display) -> ControlError {
    tracing::info!(error = %e, "write refused by a store constraint");
    ControlError::Conflict {
        detail: e.to_string(),
    }
}
