//! The `when` condition language of rules, e.g. `[STATUS] != 200 || [RESPONSE_TIME] > 800ms`;
//! true means the symptom is present.
//!
//! This module owns the whole path from the text in a rule file to a yes/no answer about a
//! probe's [`History`]: tokenizer → parser (untyped tree) → type checker, which compiles to a
//! small typed tree → evaluator. Every mistake is found by [`Condition::parse`] and reported
//! with the character offset of the offending token, so the config loader can point at it.
//! Evaluation cannot fail and short-circuits `&&` and `||`; it runs once per rule per probe
//! result, so it has to stay cheap: it does not allocate, except to parse the body once when
//! the condition reads `[BODY].json…` (and only when that operand is reached), and to sort
//! more than 256 values for a percentile.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! condition  = or END
//! or         = and { "||" and }
//! and        = comparison { "&&" comparison }
//! comparison = unary [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) unary ]   (no chaining)
//! unary      = "!" unary | primary
//! primary    = NUMBER | DURATION | STRING | "true" | "false" | PLACEHOLDER
//!            | NAME "(" [ or { "," or } ] ")" | "(" or ")"
//! PLACEHOLDER = "[STATUS]" | "[RESPONSE_TIME]" | "[CONNECTED]" | "[CERTIFICATE_EXPIRATION]"
//!            | "[DNS_RCODE]" | "[VALUE]" | "[BODY]" [ "." JSONPATH ] | "[HEADER]." NAME
//! JSONPATH   = [ "json" ] step { step }      (the first step needs no ".")
//! step       = "." KEY | "[" DIGITS "]"
//! ```
//!
//! `NUMBER` is `200` or `0.5`; `DURATION` is a number immediately followed by a unit, read
//! by [`parse_duration`] (`800ms`, `1h30m`); `STRING` is quoted with `'` or `"` and knows the
//! escapes `\"`, `\'` and `\\`.
//!
//! Placeholders read the newest result: `[STATUS]` (number; 0 without a response),
//! `[RESPONSE_TIME]` (duration), `[CONNECTED]` (bool), `[BODY]` (string; "" without a body),
//! `[HEADER].Name` (string; the first header of that name, matched case-insensitively; ""
//! when absent), `[DNS_RCODE]` (string such as `NOERROR`; "" without a DNS answer),
//! `[CERTIFICATE_EXPIRATION]` (duration from the result's `at` to the certificate's
//! `notAfter`, negative once expired) and `[VALUE]` (number, a Prometheus probe's sample).
//!
//! `[BODY].json.items[0].name` reads the body as JSON; Gatus' `[BODY].items[0].name` means
//! the same (so a top-level key named `json` is reached as `[BODY].json.json`), and
//! `[BODY].json` alone is the whole document. Its type, "JSON value", is only known per
//! result: it compares with numbers, strings, bools and other JSON values, and a comparison
//! whose sides do not hold the same kind of value at run time is false.
//!
//! Functions: `contains(text, text)` and `matches(text, 'regex')` (the pattern is a string
//! literal, compiled by the `regex` crate when the rule is loaded; unanchored, so
//! `matches([BODY], 'err')` finds `err` anywhere) are bools; `len(text)` is the number of
//! characters of a string, or the elements of a JSON array, characters of a JSON string or
//! members of a JSON object. `text` is a string or a JSON value; a JSON value that is not a
//! string has no text, which makes `contains` and `matches` false.
//!
//! Window functions read every result whose `at` lies within `window` before the newest
//! result's `at`, both ends included (the history is in time order): `avg(x, window)`,
//! `max(x, window)`, `p95(x, window)`, `p99(x, window)` and `forecast(x, window, horizon)`,
//! where `x` is one of `[STATUS]`, `[RESPONSE_TIME]`, `[CERTIFICATE_EXPIRATION]`, `[VALUE]`
//! and the result has its type; and `failure_ratio(window)`, the share (0 to 1) of those
//! results that are not [`Observation::success`]. `window` and `horizon` are durations
//! written out. Percentiles interpolate linearly between the two nearest ranks, as PromQL's
//! `quantile_over_time` does (rank φ·(n−1) over the sorted values). `forecast` is PromQL's
//! `predict_linear`: a least-squares line through (seconds relative to the newest result,
//! value), with its intercept at the newest result, evaluated `horizon` later; all values
//! equal give that value.
//!
//! Missing values: `[CERTIFICATE_EXPIRATION]` without a certificate, `[VALUE]` without a
//! sample (or a NaN sample), a JSON path that leads nowhere, `len` of a JSON value that is
//! not an array, string or object, a window function with no value in its window, and a
//! `forecast` from fewer than two values have no value, and every comparison involving no
//! value is false: `!=` and `<` alike. `!(…)` turns that into true, when that is what is
//! meant.
//!
//! Types are bool, number, duration, string and JSON value. `==` and `!=` need the same type
//! on both sides (or a JSON value on one), ordering needs numbers or durations (or a JSON
//! value and a number), `&&` `||` `!` need bools, and the whole condition must be a bool. For
//! Gatus compatibility a number written out and compared with a duration counts as
//! milliseconds (`[RESPONSE_TIME] > 500` is `> 500ms`).
//!
//! Extending the language is local to this file: a placeholder is one row in `PLACEHOLDERS`
//! (plus, for a new kind of value, one `Access` variant and one typed-tree variant); a
//! function is one row in `FUNCTIONS` with its signature and how to compile a call.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;
use serde_json::Value;

use crate::domain::duration::parse_duration;
use crate::domain::observation::{History, Observation};

// ---------------------------------------------------------------------------------------------
// Public API

/// A parsed, type-checked condition. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Condition {
    source: Arc<str>,
    expr: Arc<BoolExpr>,
    /// The longest window of a window function in `expr`, worked out once.
    window: Option<Duration>,
}

impl Condition {
    /// Parses and type-checks `source`. The error carries the character offset of the
    /// offending token.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        // Offsets are in characters because that is what an editor column shows; working on
        // a char slice makes every index a character offset for free.
        let chars: Vec<char> = source.chars().collect();
        let mut parser = Parser::new(&chars)?;
        let tree = parser.condition()?;
        let at = tree.at;
        let expr = match check(tree)? {
            Typed::Bool(expr) => expr,
            other => {
                return Err(ConditionError::new(
                    at,
                    format!(
                        "condition must be true or false, but this is {}",
                        other.ty().with_article()
                    ),
                ));
            }
        };
        Ok(Condition {
            source: Arc::from(source),
            window: expr.window().map(Duration::from_millis),
            expr: Arc::new(expr),
        })
    }

    /// Whether the symptom is present in the newest result of `history` (the last
    /// element); window functions read the older ones. False for an empty history.
    pub fn eval(&self, history: &History) -> bool {
        history
            .back()
            .is_some_and(|newest| self.expr.eval(&Context::new(history, newest)))
    }

    /// The longest window the condition reads, if it reads any: how much history the
    /// caller must keep for it (results this much older than the newest one, inclusive).
    pub fn window(&self) -> Option<std::time::Duration> {
        self.window
    }

    /// The text the condition was parsed from, as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Two conditions are equal when they were parsed from the same text: parsing is
/// deterministic, so the same text always compiles to the same evaluator. Texts that differ
/// only in spacing are different conditions (a reload treats such a rule as changed, which
/// costs its state but is never wrong).
impl PartialEq for Condition {
    fn eq(&self, other: &Condition) -> bool {
        self.source == other.source
    }
}

impl Eq for Condition {}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// 0-based offset in CHARACTERS (not bytes) into the source where the problem starts.
    pub offset: usize,
    pub message: String,
}

impl ConditionError {
    fn new(offset: usize, message: impl Into<String>) -> ConditionError {
        ConditionError {
            offset,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Placeholders and functions: the tables to extend

/// How a placeholder reads its value from an observation. Durations are read in
/// milliseconds so they compare with duration literals and with numbers-as-milliseconds
/// without any conversion at evaluation time. Numbers and durations read [`NO_VALUE`] when
/// the result has none.
#[derive(Clone, Copy)]
enum Access {
    Bool(fn(&Observation) -> bool),
    Number(fn(&Observation) -> f64),
    Duration(fn(&Observation) -> f64),
    Str(fn(&Observation) -> &str),
    /// `[BODY]`: the body as a string, or with a path a JSON value in it.
    Body,
    /// `[HEADER].Name`: the value of a response header.
    Header,
}

struct Placeholder {
    /// Without brackets; matched case-sensitively.
    name: &'static str,
    access: Access,
}

const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder {
        name: "STATUS",
        // No response has no status; 0 keeps `[STATUS] != 200` true for a dead target.
        access: Access::Number(|obs| f64::from(obs.status.unwrap_or(0))),
    },
    Placeholder {
        name: "RESPONSE_TIME",
        access: Access::Duration(|obs| millis(obs.response_time)),
    },
    Placeholder {
        name: "CONNECTED",
        access: Access::Bool(|obs| obs.connected),
    },
    Placeholder {
        name: "BODY",
        access: Access::Body,
    },
    Placeholder {
        name: "HEADER",
        access: Access::Header,
    },
    Placeholder {
        name: "CERTIFICATE_EXPIRATION",
        // No certificate is no value rather than 0: a plain-http result must not read as an
        // expired certificate.
        access: Access::Duration(|obs| {
            obs.certificate_expiry
                .map_or(NO_VALUE, |expiry| delta_millis(expiry - obs.at))
        }),
    },
    Placeholder {
        name: "DNS_RCODE",
        // No answer reads as "", so `[DNS_RCODE] != 'NOERROR'` holds when the server is mute.
        access: Access::Str(|obs| obs.dns_rcode.as_deref().unwrap_or("")),
    },
    Placeholder {
        name: "VALUE",
        access: Access::Number(|obs| obs.value.unwrap_or(NO_VALUE)),
    },
];

/// `[BODY]` as a string: "" without a body.
fn body_text(obs: &Observation) -> &str {
    obs.body.as_deref().unwrap_or("")
}

/// What a parameter of a function accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    /// A string or a JSON value.
    Text,
    /// A regular expression written as a string literal, so it is compiled once, at parse
    /// time, and a bad one is a parse error.
    Pattern,
    /// A number or duration placeholder, read from every result in the window.
    Series,
    /// A duration written out (not 0): how far back a window function reads.
    Window,
    /// A duration written out: how far past the newest result `forecast` looks.
    Horizon,
}

/// The type a function call has.
#[derive(Debug, Clone, Copy)]
enum Returns {
    Type(Type),
    /// The type of its `Series` argument: `p95([RESPONSE_TIME], 5m)` is a duration.
    Series,
}

/// A function of the language: its signature, checked before `compile` is called, and how
/// a call compiles into the typed tree.
struct Function {
    name: &'static str,
    params: &'static [Param],
    result: Returns,
    /// Receives the arguments already checked against `params`; returns a value of type
    /// `result`.
    compile: fn(Args) -> Typed,
}

const FUNCTIONS: &[Function] = &[
    Function {
        name: "contains",
        params: &[Param::Text, Param::Text],
        result: Returns::Type(Type::Bool),
        compile: |mut args| {
            Typed::Bool(BoolExpr::Contains {
                haystack: args.text(),
                needle: args.text(),
            })
        },
    },
    Function {
        name: "matches",
        params: &[Param::Text, Param::Pattern],
        result: Returns::Type(Type::Bool),
        compile: |mut args| {
            Typed::Bool(BoolExpr::Matches {
                text: args.text(),
                pattern: args.pattern(),
            })
        },
    },
    Function {
        name: "len",
        params: &[Param::Text],
        result: Returns::Type(Type::Number),
        compile: |mut args| Typed::Number(NumExpr::Len(args.text())),
    },
    Function {
        name: "avg",
        params: &[Param::Series, Param::Window],
        result: Returns::Series,
        compile: |args| window_function(args, WindowFunction::Avg),
    },
    Function {
        name: "max",
        params: &[Param::Series, Param::Window],
        result: Returns::Series,
        compile: |args| window_function(args, WindowFunction::Max),
    },
    Function {
        name: "p95",
        params: &[Param::Series, Param::Window],
        result: Returns::Series,
        compile: |args| window_function(args, |series| WindowFunction::Quantile(0.95, series)),
    },
    Function {
        name: "p99",
        params: &[Param::Series, Param::Window],
        result: Returns::Series,
        compile: |args| window_function(args, |series| WindowFunction::Quantile(0.99, series)),
    },
    Function {
        name: "failure_ratio",
        params: &[Param::Window],
        result: Returns::Type(Type::Number),
        compile: |mut args| {
            Typed::Number(NumExpr::Window(Box::new(WindowExpr {
                window: args.window(),
                function: WindowFunction::FailureRatio,
            })))
        },
    },
    Function {
        name: "forecast",
        params: &[Param::Series, Param::Window, Param::Horizon],
        result: Returns::Series,
        compile: |mut args| {
            let (series, duration) = args.series();
            let window = args.window();
            let horizon_seconds = args.duration() as f64 / 1000.0;
            let expr = NumExpr::Window(Box::new(WindowExpr {
                window,
                function: WindowFunction::Forecast {
                    series,
                    horizon_seconds,
                },
            }));
            if duration {
                Typed::Duration(expr)
            } else {
                Typed::Number(expr)
            }
        },
    },
];

/// `avg`, `max`, `p95` and `p99`: `(series, window)`, of the type of the series.
fn window_function(mut args: Args, function: fn(Reader<f64>) -> WindowFunction) -> Typed {
    let (series, duration) = args.series();
    let expr = NumExpr::Window(Box::new(WindowExpr {
        window: args.window(),
        function: function(series),
    }));
    if duration {
        Typed::Duration(expr)
    } else {
        Typed::Number(expr)
    }
}

/// PromQL and other tools name some functions differently; these get a pointed suggestion.
const FUNCTION_ALIASES: &[(&str, &str)] = &[
    ("predict_linear", "forecast"),
    ("avg_over_time", "avg"),
    ("max_over_time", "max"),
    ("pat", "matches"),
];

/// "No value" for numbers and durations: a missing certificate, sample, JSON number, or a
/// window function with nothing to work on. Every comparison with it is false (see
/// [`CmpOp::holds`]), which is what NaN does for all operators but `!=`.
const NO_VALUE: f64 = f64::NAN;

/// Milliseconds as f64, exact for whole milliseconds (both terms are exact and so is
/// their sum), so `[RESPONSE_TIME] == 800ms` holds for exactly 800ms.
fn millis(duration: Duration) -> f64 {
    duration.as_secs() as f64 * 1000.0 + f64::from(duration.subsec_nanos()) / 1_000_000.0
}

/// A signed time difference in milliseconds, to the microsecond.
fn delta_millis(delta: TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(delta.num_milliseconds() as f64, |micros| {
            micros as f64 / 1000.0
        })
}

// ---------------------------------------------------------------------------------------------
// Types and the compiled (typed) tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Bool,
    Number,
    Duration,
    Str,
    /// A value read from a JSON body: its kind is only known per result.
    Json,
}

impl Type {
    fn with_article(self) -> String {
        format!("a {self}")
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Number => "number",
            Type::Duration => "duration",
            Type::Str => "string",
            Type::Json => "JSON value",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::Ne)
    }

    /// False whenever a side is [`NO_VALUE`].
    fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CmpOp::Eq => lhs == rhs,
            // Not `lhs != rhs`, which holds for NaN.
            CmpOp::Ne => lhs.partial_cmp(&rhs).is_some_and(|order| order.is_ne()),
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
        }
    }

    /// For values that have no order (strings, bools): only `==` and `!=` can hold.
    fn holds_unordered<T: PartialEq + ?Sized>(self, lhs: &T, rhs: &T) -> bool {
        match self {
            CmpOp::Eq => lhs == rhs,
            CmpOp::Ne => lhs != rhs,
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => false,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

/// A placeholder read, compiled down to its accessor; the name is kept for `Debug` only.
#[derive(Clone, Copy)]
struct Reader<T> {
    name: &'static str,
    read: fn(&Observation) -> T,
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.name)
    }
}

/// A string placeholder read; a separate type because the string borrows from the
/// observation.
#[derive(Clone, Copy)]
struct StrReader {
    name: &'static str,
    read: fn(&Observation) -> &str,
}

impl fmt::Debug for StrReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.name)
    }
}

/// The compiled condition. Types were settled by the checker, so each variant knows exactly
/// what its children produce and evaluation has nothing left to decide or reject.
#[derive(Debug, Clone)]
enum BoolExpr {
    Const(bool),
    Read(Reader<bool>),
    Not(Box<BoolExpr>),
    /// `a && b && c`, flattened so a long chain neither nests deeply nor recurses deeply.
    All(Box<[BoolExpr]>),
    /// `a || b || c`, flattened likewise.
    Any(Box<[BoolExpr]>),
    /// Numbers and durations alike: durations are in milliseconds by then.
    Num {
        op: CmpOp,
        lhs: NumExpr,
        rhs: NumExpr,
    },
    BoolEq {
        equal: bool,
        lhs: Box<BoolExpr>,
        rhs: Box<BoolExpr>,
    },
    StrEq {
        equal: bool,
        lhs: StrExpr,
        rhs: StrExpr,
    },
    /// A comparison with a JSON value on at least one side: what it compares is only known
    /// at run time, so both sides become a [`Scalar`] first.
    Json {
        op: CmpOp,
        lhs: Operand,
        rhs: Operand,
    },
    Contains {
        haystack: TextExpr,
        needle: TextExpr,
    },
    Matches {
        text: TextExpr,
        pattern: Regex,
    },
}

#[derive(Debug, Clone)]
enum NumExpr {
    Const(f64),
    Read(Reader<f64>),
    Len(TextExpr),
    Window(Box<WindowExpr>),
}

#[derive(Debug, Clone)]
enum StrExpr {
    Const(Box<str>),
    Read(StrReader),
    /// `[HEADER].Name`, the name lower-cased.
    Header(Box<str>),
}

/// A string, or a JSON value read as one (`contains`, `matches`, `len`).
#[derive(Debug, Clone)]
enum TextExpr {
    Str(StrExpr),
    Json(JsonPath),
}

/// One side of a comparison with a JSON value.
#[derive(Debug, Clone)]
enum Operand {
    /// A number or a duration (in milliseconds).
    Num(NumExpr),
    Str(StrExpr),
    Bool(Box<BoolExpr>),
    Json(JsonPath),
}

/// A path into the JSON body: `[BODY].json.items[0].name` is `items`, `0`, `name`.
#[derive(Clone)]
struct JsonPath {
    /// As written after `[BODY].`, for `Debug`.
    text: Box<str>,
    steps: Box<[Step]>,
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[BODY].{}", self.text)
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(Box<str>),
    Index(usize),
}

#[derive(Debug, Clone)]
struct WindowExpr {
    window: Window,
    function: WindowFunction,
}

#[derive(Debug, Clone)]
enum WindowFunction {
    Avg(Reader<f64>),
    Max(Reader<f64>),
    /// φ in 0..=1 and the series.
    Quantile(f64, Reader<f64>),
    FailureRatio,
    Forecast {
        series: Reader<f64>,
        horizon_seconds: f64,
    },
}

/// How far back from the newest result a window function reads.
#[derive(Debug, Clone, Copy)]
struct Window {
    millis: u64,
    span: TimeDelta,
}

impl Window {
    fn new(millis: u64) -> Window {
        let span = i64::try_from(millis)
            .ok()
            .and_then(TimeDelta::try_milliseconds)
            .unwrap_or(TimeDelta::MAX);
        Window { millis, span }
    }
}

/// What one evaluation reads: the history, its newest result and, parsed on first use, the
/// newest body as JSON.
struct Context<'h> {
    history: &'h History,
    newest: &'h Observation,
    json: OnceCell<Option<Value>>,
}

impl<'h> Context<'h> {
    fn new(history: &'h History, newest: &'h Observation) -> Context<'h> {
        Context {
            history,
            newest,
            json: OnceCell::new(),
        }
    }

    /// The newest body as JSON; `None` without a body or when it is not JSON.
    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_str(self.newest.body.as_deref()?).ok())
            .as_ref()
    }

    /// The results within `window` of the newest one, oldest first: the history's tail back
    /// to the first result older than the window.
    fn window(&self, window: Window) -> std::collections::vec_deque::Iter<'h, Observation> {
        let len = match self.newest.at.checked_sub_signed(window.span) {
            Some(start) => self
                .history
                .iter()
                .rev()
                .take_while(|obs| obs.at >= start)
                .count(),
            None => self.history.len(),
        };
        self.history.range(self.history.len() - len..)
    }
}

/// A value compared at run time; `None` is no value, equal to nothing.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    None,
    Num(f64),
    Str(&'a str),
    Bool(bool),
}

impl Scalar<'_> {
    fn of(value: Option<&Value>) -> Scalar<'_> {
        match value {
            Some(Value::Number(number)) => number.as_f64().map_or(Scalar::None, Scalar::Num),
            Some(Value::String(string)) => Scalar::Str(string),
            Some(Value::Bool(bool)) => Scalar::Bool(*bool),
            Some(Value::Null | Value::Array(_) | Value::Object(_)) | None => Scalar::None,
        }
    }

    /// Values of different kinds, and no value, compare false.
    fn compare(op: CmpOp, lhs: Scalar<'_>, rhs: Scalar<'_>) -> bool {
        match (lhs, rhs) {
            (Scalar::Num(lhs), Scalar::Num(rhs)) => op.holds(lhs, rhs),
            (Scalar::Str(lhs), Scalar::Str(rhs)) => op.holds_unordered(lhs, rhs),
            (Scalar::Bool(lhs), Scalar::Bool(rhs)) => op.holds_unordered(&lhs, &rhs),
            _ => false,
        }
    }
}

impl BoolExpr {
    fn eval(&self, ctx: &Context<'_>) -> bool {
        match self {
            BoolExpr::Const(value) => *value,
            BoolExpr::Read(reader) => (reader.read)(ctx.newest),
            BoolExpr::Not(operand) => !operand.eval(ctx),
            BoolExpr::All(operands) => operands.iter().all(|e| e.eval(ctx)),
            BoolExpr::Any(operands) => operands.iter().any(|e| e.eval(ctx)),
            BoolExpr::Num { op, lhs, rhs } => op.holds(lhs.eval(ctx), rhs.eval(ctx)),
            BoolExpr::BoolEq { equal, lhs, rhs } => (lhs.eval(ctx) == rhs.eval(ctx)) == *equal,
            BoolExpr::StrEq { equal, lhs, rhs } => (lhs.eval(ctx) == rhs.eval(ctx)) == *equal,
            BoolExpr::Json { op, lhs, rhs } => Scalar::compare(*op, lhs.eval(ctx), rhs.eval(ctx)),
            BoolExpr::Contains { haystack, needle } => match (haystack.eval(ctx), needle.eval(ctx))
            {
                (Some(haystack), Some(needle)) => haystack.contains(needle),
                _ => false,
            },
            BoolExpr::Matches { text, pattern } => {
                text.eval(ctx).is_some_and(|text| pattern.is_match(text))
            }
        }
    }

    /// The longest window read anywhere in here, in milliseconds.
    fn window(&self) -> Option<u64> {
        match self {
            BoolExpr::Const(_)
            | BoolExpr::Read(_)
            | BoolExpr::StrEq { .. }
            | BoolExpr::Contains { .. }
            | BoolExpr::Matches { .. } => None,
            BoolExpr::Not(operand) => operand.window(),
            BoolExpr::All(operands) | BoolExpr::Any(operands) => {
                operands.iter().filter_map(BoolExpr::window).max()
            }
            BoolExpr::Num { lhs, rhs, .. } => lhs.window().max(rhs.window()),
            BoolExpr::BoolEq { lhs, rhs, .. } => lhs.window().max(rhs.window()),
            BoolExpr::Json { lhs, rhs, .. } => lhs.window().max(rhs.window()),
        }
    }
}

impl NumExpr {
    fn eval(&self, ctx: &Context<'_>) -> f64 {
        match self {
            NumExpr::Const(value) => *value,
            NumExpr::Read(reader) => (reader.read)(ctx.newest),
            NumExpr::Len(text) => text.len(ctx),
            NumExpr::Window(window) => window.eval(ctx),
        }
    }

    fn window(&self) -> Option<u64> {
        match self {
            NumExpr::Window(window) => Some(window.window.millis),
            NumExpr::Const(_) | NumExpr::Read(_) | NumExpr::Len(_) => None,
        }
    }
}

impl StrExpr {
    fn eval<'a>(&'a self, ctx: &Context<'a>) -> &'a str {
        match self {
            StrExpr::Const(value) => value,
            StrExpr::Read(reader) => (reader.read)(ctx.newest),
            StrExpr::Header(name) => ctx
                .newest
                .headers
                .iter()
                .find(|(header, _)| header.eq_ignore_ascii_case(name))
                .map_or("", |(_, value)| value),
        }
    }
}

impl TextExpr {
    /// The text, if there is one: a JSON value that is not a string has none.
    fn eval<'a>(&'a self, ctx: &'a Context<'a>) -> Option<&'a str> {
        match self {
            TextExpr::Str(expr) => Some(expr.eval(ctx)),
            TextExpr::Json(path) => path.eval(ctx)?.as_str(),
        }
    }

    /// `len()`: characters of a string; elements, characters or members of a JSON array,
    /// string or object.
    fn len(&self, ctx: &Context<'_>) -> f64 {
        let count = match self {
            TextExpr::Str(expr) => expr.eval(ctx).chars().count(),
            TextExpr::Json(path) => match path.eval(ctx) {
                Some(Value::Array(items)) => items.len(),
                Some(Value::String(string)) => string.chars().count(),
                Some(Value::Object(members)) => members.len(),
                Some(Value::Null | Value::Bool(_) | Value::Number(_)) | None => return NO_VALUE,
            },
        };
        count as f64
    }
}

impl JsonPath {
    fn eval<'a>(&self, ctx: &'a Context<'_>) -> Option<&'a Value> {
        self.steps
            .iter()
            .try_fold(ctx.json()?, |value, step| match step {
                Step::Key(key) => value.as_object()?.get(&**key),
                Step::Index(index) => value.as_array()?.get(*index),
            })
    }
}

impl Operand {
    fn eval<'a>(&'a self, ctx: &'a Context<'a>) -> Scalar<'a> {
        match self {
            Operand::Num(expr) => Scalar::Num(expr.eval(ctx)),
            Operand::Str(expr) => Scalar::Str(expr.eval(ctx)),
            Operand::Bool(expr) => Scalar::Bool(expr.eval(ctx)),
            Operand::Json(path) => Scalar::of(path.eval(ctx)),
        }
    }

    fn window(&self) -> Option<u64> {
        match self {
            Operand::Num(expr) => expr.window(),
            Operand::Bool(expr) => expr.window(),
            Operand::Str(_) | Operand::Json(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Window functions

impl WindowExpr {
    fn eval(&self, ctx: &Context<'_>) -> f64 {
        let results = ctx.window(self.window);
        match self.function {
            WindowFunction::Avg(series) => {
                let (sum, count) = values(results, series)
                    .fold((0.0, 0_usize), |(sum, count), value| {
                        (sum + value, count + 1)
                    });
                if count == 0 {
                    NO_VALUE
                } else {
                    sum / count as f64
                }
            }
            // f64::max keeps the other side when one is NaN, so NO_VALUE is the identity.
            WindowFunction::Max(series) => values(results, series).fold(NO_VALUE, f64::max),
            WindowFunction::Quantile(phi, series) => quantile(phi, values(results, series)),
            WindowFunction::FailureRatio => {
                let total = results.len();
                let failed = results.filter(|obs| !obs.success()).count();
                if total == 0 {
                    NO_VALUE
                } else {
                    failed as f64 / total as f64
                }
            }
            WindowFunction::Forecast {
                series,
                horizon_seconds,
            } => predict_linear(results, series, ctx.newest.at, horizon_seconds),
        }
    }
}

/// The series' values in `results`, without the missing ones.
fn values<'h>(
    results: impl Iterator<Item = &'h Observation> + Clone,
    series: Reader<f64>,
) -> impl Iterator<Item = f64> + Clone {
    results
        .map(move |obs| (series.read)(obs))
        .filter(|value| !value.is_nan())
}

/// Up to this many values are sorted on the stack; more need a buffer on the heap.
const QUANTILE_STACK: usize = 256;

/// The φ-quantile of `values` as PromQL's `quantile_over_time` computes it: sort, take rank
/// φ·(n−1) and interpolate linearly between the values on either side of it.
fn quantile(phi: f64, values: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = values.clone().count();
    if n == 0 {
        return NO_VALUE;
    }
    let mut stack = [0.0; QUANTILE_STACK];
    let mut heap = Vec::new();
    let buffer: &mut [f64] = if n <= QUANTILE_STACK {
        &mut stack[..n]
    } else {
        heap.resize(n, 0.0);
        &mut heap
    };
    for (slot, value) in buffer.iter_mut().zip(values) {
        *slot = value;
    }
    let rank = phi * (n - 1) as f64;
    let lower = (rank.floor() as usize).min(n - 1);
    let weight = rank - rank.floor();
    let (_, low, above) = buffer.select_nth_unstable_by(lower, f64::total_cmp);
    let low = *low;
    if weight == 0.0 || above.is_empty() {
        return low;
    }
    // Everything above the lower rank is no smaller, so its minimum is the next rank.
    let high = above.iter().copied().fold(f64::INFINITY, f64::min);
    low * (1.0 - weight) + high * weight
}

/// PromQL's `predict_linear`: a least-squares line through (seconds relative to `newest`,
/// value), with Neumaier-compensated sums as in PromQL's `linearRegression`, evaluated
/// `horizon_seconds` after `newest`. Fewer than two values have no forecast.
fn predict_linear<'h>(
    results: impl Iterator<Item = &'h Observation>,
    series: Reader<f64>,
    newest: DateTime<Utc>,
    horizon_seconds: f64,
) -> f64 {
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (
        0.0,
        CompensatedSum::default(),
        CompensatedSum::default(),
        CompensatedSum::default(),
        CompensatedSum::default(),
    );
    let mut first = NO_VALUE;
    let mut constant = true;
    for obs in results {
        let y = (series.read)(obs);
        if y.is_nan() {
            continue;
        }
        if n == 0.0 {
            first = y;
        } else if y != first {
            constant = false;
        }
        // Whole milliseconds, as Prometheus timestamps are.
        let x = (obs.at - newest).num_milliseconds() as f64 / 1e3;
        n += 1.0;
        sum_x.add(x);
        sum_y.add(y);
        sum_xy.add(x * y);
        sum_x2.add(x * x);
    }
    if n < 2.0 {
        return NO_VALUE;
    }
    if constant {
        return if first.is_infinite() { NO_VALUE } else { first };
    }
    let (sum_x, sum_y, sum_xy, sum_x2) =
        (sum_x.total(), sum_y.total(), sum_xy.total(), sum_x2.total());
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    slope * horizon_seconds + intercept
}

/// Kahan–Babuška–Neumaier summation, as PromQL's `kahanSumInc`.
#[derive(Default)]
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn add(&mut self, value: f64) {
        let total = self.sum + value;
        if total.is_infinite() {
            self.compensation = 0.0;
        } else if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - total) + value;
        } else {
            self.compensation += (value - total) + self.sum;
        }
        self.sum = total;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// A checked sub-expression: its compiled form, tagged with its type.
enum Typed {
    Bool(BoolExpr),
    Number(NumExpr),
    /// In milliseconds.
    Duration(NumExpr),
    Str(StrExpr),
    Json(JsonPath),
}

impl Typed {
    fn ty(&self) -> Type {
        match self {
            Typed::Bool(_) => Type::Bool,
            Typed::Number(_) => Type::Number,
            Typed::Duration(_) => Type::Duration,
            Typed::Str(_) => Type::Str,
            Typed::Json(_) => Type::Json,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone)]
enum TokenKind {
    Number(f64),
    /// In milliseconds.
    Duration(f64),
    Str(String),
    /// `path` is the field after `[NAME].`, with the offset of its dot.
    Placeholder {
        name: String,
        path: Option<(usize, String)>,
    },
    /// A bare word: only valid as a function name.
    Name(String),
    True,
    False,
    LParen,
    RParen,
    Comma,
    Not,
    And,
    Or,
    Cmp(CmpOp),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Character offsets, end exclusive.
    start: usize,
    end: usize,
}

/// Hands out one token at a time, so that the first mistake in reading order is the one
/// reported, whether the tokenizer or the parser finds it.
struct Lexer<'s> {
    chars: &'s [char],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.chars
            .get(start..end)
            .map(|chars| chars.iter().collect())
            .unwrap_or_default()
    }

    fn eat_while(&mut self, mut keep: impl FnMut(char) -> bool) {
        while self.peek(0).is_some_and(&mut keep) {
            self.pos += 1;
        }
    }

    /// The next non-blank character after the current token, without consuming anything:
    /// tells a function name from a bare word before the next token is tokenized.
    fn next_non_blank(&self) -> Option<char> {
        self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .copied()
            .find(|c| !c.is_whitespace())
    }

    fn next_token(&mut self) -> Result<Token, ConditionError> {
        self.eat_while(char::is_whitespace);
        let start = self.pos;
        let Some(first) = self.peek(0) else {
            return Ok(Token {
                kind: TokenKind::End,
                start,
                end: start,
            });
        };
        let error = |message: &str| Err(ConditionError::new(start, message));
        let (kind, len) = match (first, self.peek(1)) {
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('&', Some('&')) => (TokenKind::And, 2),
            ('&', _) => return error("unexpected `&`; did you mean `&&`?"),
            ('|', Some('|')) => (TokenKind::Or, 2),
            ('|', _) => return error("unexpected `|`; did you mean `||`?"),
            ('=', Some('=')) if self.peek(2) == Some('=') => {
                return error("unexpected `===`; did you mean `==`?");
            }
            ('=', Some('=')) => (TokenKind::Cmp(CmpOp::Eq), 2),
            ('=', Some('<')) => return error("unexpected `=<`; did you mean `<=`?"),
            ('=', Some('>')) => return error("unexpected `=>`; did you mean `>=`?"),
            ('=', _) => return error("unexpected `=`; did you mean `==`?"),
            ('!', Some('=')) if self.peek(2) == Some('=') => {
                return error("unexpected `!==`; did you mean `!=`?");
            }
            ('!', Some('=')) => (TokenKind::Cmp(CmpOp::Ne), 2),
            ('!', _) => (TokenKind::Not, 1),
            ('<', Some('=')) => (TokenKind::Cmp(CmpOp::Le), 2),
            ('<', _) => (TokenKind::Cmp(CmpOp::Lt), 1),
            ('>', Some('=')) => (TokenKind::Cmp(CmpOp::Ge), 2),
            ('>', _) => (TokenKind::Cmp(CmpOp::Gt), 1),
            ('"' | '\'', _) => return self.string(first),
            ('[', _) => return self.placeholder(),
            (c, _) if c.is_ascii_digit() => return self.number(),
            (c, _) if c.is_ascii_alphabetic() || c == '_' => return Ok(self.word()),
            (c, _) => return error(&format!("unexpected character `{}`", c.escape_debug())),
        };
        self.pos += len;
        Ok(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    fn string(&mut self, quote: char) -> Result<Token, ConditionError> {
        let start = self.pos;
        let unterminated = || {
            ConditionError::new(
                start,
                format!("unterminated string; expected a closing `{quote}`"),
            )
        };
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek(0) {
                None => return Err(unterminated()),
                Some(c) if c == quote => break,
                Some('\\') => match self.peek(1) {
                    Some(escaped @ ('"' | '\'' | '\\')) => {
                        value.push(escaped);
                        self.pos += 2;
                    }
                    None => return Err(unterminated()),
                    Some(other) => {
                        return Err(ConditionError::new(
                            self.pos,
                            format!(
                                "unknown escape `\\{}`; a string can only escape `\\\"`, `\\'` and `\\\\`",
                                other.escape_debug()
                            ),
                        ));
                    }
                },
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1; // the closing quote
        Ok(Token {
            kind: TokenKind::Str(value),
            start,
            end: self.pos,
        })
    }

    fn placeholder(&mut self) -> Result<Token, ConditionError> {
        let start = self.pos;
        self.pos += 1; // `[`
        // Anything up to `]` is taken as the name so that a typo is reported as an unknown
        // placeholder (with a suggestion) rather than as a stray character.
        self.eat_while(|c| c != ']' && c != '[' && !c.is_whitespace());
        if self.peek(0) != Some(']') {
            return Err(ConditionError::new(
                start,
                format!(
                    "unterminated placeholder `{}`; expected `]`",
                    self.text(start, self.pos)
                ),
            ));
        }
        let name = self.text(start + 1, self.pos);
        self.pos += 1; // `]`
        if name.is_empty() {
            return Err(ConditionError::new(
                start,
                format!(
                    "empty placeholder `[]`; known placeholders: {}",
                    known_placeholders()
                ),
            ));
        }
        let path = if self.peek(0) == Some('.') {
            let dot = self.pos;
            self.pos += 1;
            // JSON paths may index (`[BODY].items[0].id`) and header names hold `-`, so a
            // path runs until something that can only be an operator, a separator or blank.
            self.eat_while(|c| !c.is_whitespace() && !"()!=<>&|,'\"".contains(c));
            if self.pos == dot + 1 {
                return Err(ConditionError::new(
                    dot,
                    format!("expected a field name after `[{name}].`"),
                ));
            }
            Some((dot, self.text(dot + 1, self.pos)))
        } else {
            None
        };
        Ok(Token {
            kind: TokenKind::Placeholder { name, path },
            start,
            end: self.pos,
        })
    }

    fn number(&mut self) -> Result<Token, ConditionError> {
        let start = self.pos;
        self.eat_while(|c| c.is_ascii_digit());
        if self.peek(0) == Some('.') {
            if !self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                return Err(ConditionError::new(
                    start,
                    format!(
                        "expected a digit after the decimal point in `{}.`",
                        self.text(start, self.pos)
                    ),
                ));
            }
            self.pos += 1;
            self.eat_while(|c| c.is_ascii_digit());
        }
        // A letter right after the digits makes the whole word a duration (`1h30m`, `800ms`);
        // parse_duration then owns what counts as valid, so the config files and the
        // conditions accept exactly the same durations.
        let kind = if self.peek(0).is_some_and(char::is_alphabetic) {
            self.eat_while(char::is_alphanumeric);
            let text = self.text(start, self.pos);
            let duration =
                parse_duration(&text).map_err(|message| ConditionError::new(start, message))?;
            TokenKind::Duration(millis(duration))
        } else {
            let text = self.text(start, self.pos);
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => TokenKind::Number(value),
                _ => return Err(ConditionError::new(start, "number is too large")),
            }
        };
        Ok(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    fn word(&mut self) -> Token {
        let start = self.pos;
        self.eat_while(|c| c.is_ascii_alphanumeric() || c == '_');
        let kind = match self.text(start, self.pos) {
            text if text == "true" => TokenKind::True,
            text if text == "false" => TokenKind::False,
            text => TokenKind::Name(text),
        };
        Token {
            kind,
            start,
            end: self.pos,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: tokens → untyped tree

/// Nesting limit for `(`, `!` and calls. The parser and the checker recurse on nesting, so
/// this keeps a hostile or generated condition from overflowing the stack; no real rule gets
/// near it.
const MAX_DEPTH: usize = 64;

struct Node {
    /// Where this operand starts: what "this is a number" points at.
    at: usize,
    kind: NodeKind,
}

enum NodeKind {
    Number(f64),
    Duration(f64),
    Bool(bool),
    Str(String),
    Placeholder {
        name: String,
        path: Option<(usize, String)>,
    },
    Call {
        name: String,
        args: Vec<Node>,
    },
    Not(Box<Node>),
    Logic {
        op: Logic,
        operands: Vec<Node>,
    },
    Compare {
        op: CmpOp,
        op_at: usize,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
}

#[derive(Clone, Copy)]
enum Logic {
    And,
    Or,
}

impl fmt::Display for Logic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Logic::And => "&&",
            Logic::Or => "||",
        })
    }
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    /// The current, not yet consumed, token.
    token: Token,
    /// Span of the last consumed token, for "expected an operand after `&&`".
    previous: Option<(usize, usize)>,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn new(chars: &'s [char]) -> Result<Parser<'s>, ConditionError> {
        let mut lexer = Lexer { chars, pos: 0 };
        let token = lexer.next_token()?;
        Ok(Parser {
            lexer,
            token,
            previous: None,
            depth: 0,
        })
    }

    fn advance(&mut self) -> Result<(), ConditionError> {
        let next = self.lexer.next_token()?;
        let current = std::mem::replace(&mut self.token, next);
        self.previous = Some((current.start, current.end));
        Ok(())
    }

    fn error(&self, message: impl Into<String>) -> ConditionError {
        ConditionError::new(self.token.start, message)
    }

    /// An operand ended and `what` must follow, but the current token is not it. `and`/`or`
    /// here are most likely habits from other languages, so they get their own hint.
    fn expected(&self, what: &str) -> ConditionError {
        if let TokenKind::Name(word) = &self.token.kind
            && matches!(word.to_ascii_lowercase().as_str(), "and" | "or" | "not")
        {
            return self.error(bare_word_message(word));
        }
        self.error(format!("expected {what}, found {}", self.found()))
    }

    /// The current token as the user wrote it, for "found …".
    fn found(&self) -> String {
        match self.token.kind {
            TokenKind::End => "the end of the condition".to_owned(),
            _ => format!("`{}`", self.lexer.text(self.token.start, self.token.end)),
        }
    }

    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, ConditionError>,
    ) -> Result<T, ConditionError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "the condition nests too deeply (more than {MAX_DEPTH} levels)"
            )));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn condition(&mut self) -> Result<Node, ConditionError> {
        if matches!(self.token.kind, TokenKind::End) {
            return Err(self.error("the condition is empty"));
        }
        let node = self.or()?;
        match self.token.kind {
            TokenKind::End => Ok(node),
            TokenKind::RParen => Err(self.error("unmatched `)`")),
            _ => Err(self.expected("an operator or the end of the condition")),
        }
    }

    fn or(&mut self) -> Result<Node, ConditionError> {
        self.logic(Logic::Or, |kind| matches!(kind, TokenKind::Or), Self::and)
    }

    fn and(&mut self) -> Result<Node, ConditionError> {
        self.logic(
            Logic::And,
            |kind| matches!(kind, TokenKind::And),
            Self::comparison,
        )
    }

    /// One `&&` or `||` level, collected into a flat list rather than a left-deep tree.
    fn logic(
        &mut self,
        op: Logic,
        is_op: fn(&TokenKind) -> bool,
        operand: fn(&mut Self) -> Result<Node, ConditionError>,
    ) -> Result<Node, ConditionError> {
        let first = operand(self)?;
        if !is_op(&self.token.kind) {
            return Ok(first);
        }
        let at = first.at;
        let mut operands = vec![first];
        while is_op(&self.token.kind) {
            self.advance()?;
            operands.push(operand(self)?);
        }
        Ok(Node {
            at,
            kind: NodeKind::Logic { op, operands },
        })
    }

    fn comparison(&mut self) -> Result<Node, ConditionError> {
        let lhs = self.unary()?;
        let TokenKind::Cmp(op) = self.token.kind else {
            return Ok(lhs);
        };
        let op_at = self.token.start;
        self.advance()?;
        let rhs = self.unary()?;
        if let TokenKind::Cmp(_) = self.token.kind {
            // `1 < x < 3` means something else in every language that accepts it; refuse it.
            return Err(
                self.error("comparisons do not chain; join them with `&&`, as in `a < b && b < c`")
            );
        }
        Ok(Node {
            at: lhs.at,
            kind: NodeKind::Compare {
                op,
                op_at,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
        })
    }

    fn unary(&mut self) -> Result<Node, ConditionError> {
        if !matches!(self.token.kind, TokenKind::Not) {
            return self.primary();
        }
        let at = self.token.start;
        self.nested(|parser| {
            parser.advance()?;
            let operand = parser.unary()?;
            Ok(Node {
                at,
                kind: NodeKind::Not(Box::new(operand)),
            })
        })
    }

    fn primary(&mut self) -> Result<Node, ConditionError> {
        let at = self.token.start;
        let kind = match &self.token.kind {
            TokenKind::LParen => return self.group(),
            TokenKind::Name(name) => {
                let name = name.clone();
                return self.name(name);
            }
            TokenKind::Number(value) => NodeKind::Number(*value),
            TokenKind::Duration(millis) => NodeKind::Duration(*millis),
            TokenKind::True => NodeKind::Bool(true),
            TokenKind::False => NodeKind::Bool(false),
            TokenKind::Str(value) => NodeKind::Str(value.clone()),
            TokenKind::Placeholder { name, path } => NodeKind::Placeholder {
                name: name.clone(),
                path: path.clone(),
            },
            TokenKind::RParen
            | TokenKind::Comma
            | TokenKind::Not
            | TokenKind::And
            | TokenKind::Or
            | TokenKind::Cmp(_)
            | TokenKind::End => {
                let message = match self.previous {
                    Some((start, end)) => format!(
                        "expected an operand after `{}`, found {}",
                        self.lexer.text(start, end),
                        self.found()
                    ),
                    None => format!("expected an operand, found {}", self.found()),
                };
                return Err(self.error(message));
            }
        };
        self.advance()?;
        Ok(Node { at, kind })
    }

    fn group(&mut self) -> Result<Node, ConditionError> {
        let open = self.token.start;
        self.nested(|parser| {
            parser.advance()?;
            let inner = parser.or()?;
            parser.close(open, "an operator or `)`")?;
            // The group starts at its `(`, so "this is a number" underlines the whole group.
            Ok(Node {
                at: open,
                kind: inner.kind,
            })
        })
    }

    /// Consumes the `)` matching the `(` at `open`.
    fn close(&mut self, open: usize, expected: &str) -> Result<(), ConditionError> {
        match self.token.kind {
            TokenKind::RParen => self.advance(),
            TokenKind::End => Err(ConditionError::new(
                open,
                "unmatched `(`; the condition ends before its `)`",
            )),
            _ => Err(self.expected(expected)),
        }
    }

    /// A word: a function call when `(` follows, otherwise a mistake worth explaining.
    fn name(&mut self, name: String) -> Result<Node, ConditionError> {
        let at = self.token.start;
        // Decided on the raw text so that a tokenizer error after a bare word (`STATUS = 1`)
        // does not hide the more useful message about the word itself.
        if self.lexer.next_non_blank() != Some('(') {
            return Err(self.error(bare_word_message(&name)));
        }
        self.advance()?; // the name
        let open = self.token.start;
        self.nested(|parser| {
            parser.advance()?; // `(`
            let mut args = Vec::new();
            if !matches!(parser.token.kind, TokenKind::RParen) {
                args.push(parser.or()?);
                while matches!(parser.token.kind, TokenKind::Comma) {
                    parser.advance()?;
                    args.push(parser.or()?);
                }
            }
            parser.close(open, "an operator, `,` or `)`")?;
            Ok(Node {
                at,
                kind: NodeKind::Call { name, args },
            })
        })
    }
}

fn bare_word_message(word: &str) -> String {
    if let Some(placeholder) = PLACEHOLDERS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(word))
    {
        return format!(
            "unexpected `{word}`; placeholders are written in brackets: did you mean [{}]?",
            placeholder.name
        );
    }
    let lower = word.to_ascii_lowercase();
    match lower.as_str() {
        "and" => format!("unexpected `{word}`; did you mean `&&`?"),
        "or" => format!("unexpected `{word}`; did you mean `||`?"),
        "not" => format!("unexpected `{word}`; did you mean `!`?"),
        "true" | "false" => format!("unexpected `{word}`; did you mean `{lower}`?"),
        _ => format!(
            "unexpected `{word}`; expected a placeholder such as [STATUS], a number, a duration, \
             a string, true or false"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Type checker: untyped tree → typed tree

fn check(node: Node) -> Result<Typed, ConditionError> {
    let at = node.at;
    Ok(match node.kind {
        NodeKind::Number(value) => Typed::Number(NumExpr::Const(value)),
        NodeKind::Duration(millis) => Typed::Duration(NumExpr::Const(millis)),
        NodeKind::Bool(value) => Typed::Bool(BoolExpr::Const(value)),
        NodeKind::Str(value) => Typed::Str(StrExpr::Const(value.into_boxed_str())),
        NodeKind::Placeholder { name, path } => placeholder(at, &name, path)?,
        NodeKind::Call { name, args } => call(at, &name, args)?,
        NodeKind::Not(operand) => {
            let operand = expect_bool(*operand, |ty| {
                format!(
                    "`!` needs true or false, but this is {}; to negate a comparison, write `!(a == b)`",
                    ty.with_article()
                )
            })?;
            Typed::Bool(BoolExpr::Not(Box::new(operand)))
        }
        NodeKind::Logic { op, operands } => {
            let operands = operands
                .into_iter()
                .map(|operand| {
                    expect_bool(operand, |ty| {
                        format!(
                            "`{op}` needs true or false on each side, but this is {}",
                            ty.with_article()
                        )
                    })
                })
                .collect::<Result<Box<[_]>, _>>()?;
            Typed::Bool(match op {
                Logic::And => BoolExpr::All(operands),
                Logic::Or => BoolExpr::Any(operands),
            })
        }
        NodeKind::Compare {
            op,
            op_at,
            lhs,
            rhs,
        } => Typed::Bool(compare(op, op_at, *lhs, *rhs)?),
    })
}

fn expect_bool(
    node: Node,
    message: impl FnOnce(Type) -> String,
) -> Result<BoolExpr, ConditionError> {
    let at = node.at;
    match check(node)? {
        Typed::Bool(expr) => Ok(expr),
        other => Err(ConditionError::new(at, message(other.ty()))),
    }
}

fn compare(op: CmpOp, op_at: usize, lhs: Node, rhs: Node) -> Result<BoolExpr, ConditionError> {
    // Gatus reads `[RESPONSE_TIME] > 500` as 500ms. Only a number written out qualifies:
    // `[STATUS] > 5s` is a mistake, not a conversion.
    let lhs_literal = matches!(lhs.kind, NodeKind::Number(_));
    let rhs_literal = matches!(rhs.kind, NodeKind::Number(_));
    let lhs = check(lhs)?;
    let rhs = check(rhs)?;
    // Durations are already milliseconds, so a number-as-milliseconds needs no conversion.
    Ok(match (lhs, rhs) {
        (Typed::Number(lhs), Typed::Number(rhs)) | (Typed::Duration(lhs), Typed::Duration(rhs)) => {
            BoolExpr::Num { op, lhs, rhs }
        }
        (Typed::Number(lhs), Typed::Duration(rhs)) if lhs_literal => BoolExpr::Num { op, lhs, rhs },
        (Typed::Duration(lhs), Typed::Number(rhs)) if rhs_literal => BoolExpr::Num { op, lhs, rhs },
        (Typed::Bool(lhs), Typed::Bool(rhs)) if op.is_equality() => BoolExpr::BoolEq {
            equal: op == CmpOp::Eq,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        (Typed::Str(lhs), Typed::Str(rhs)) if op.is_equality() => BoolExpr::StrEq {
            equal: op == CmpOp::Eq,
            lhs,
            rhs,
        },
        (lhs, rhs) if lhs.ty() == Type::Json || rhs.ty() == Type::Json => {
            compare_json(op, op_at, lhs, rhs)?
        }
        (lhs, rhs) => {
            let (lhs, rhs) = (lhs.ty(), rhs.ty());
            let message = if lhs == rhs {
                format!("`{op}` needs numbers or durations, but both sides are {lhs}s")
            } else if matches!(
                (lhs, rhs),
                (Type::Number, Type::Duration) | (Type::Duration, Type::Number)
            ) {
                format!(
                    "cannot compare {lhs} with {rhs}; only a number written out, like 500, \
                     counts as milliseconds"
                )
            } else {
                format!("cannot compare {lhs} with {rhs}")
            };
            return Err(ConditionError::new(op_at, message));
        }
    })
}

/// A comparison with a JSON value on at least one side. What the JSON value holds is only
/// known at run time, so this accepts whatever could compare (numbers, strings and bools for
/// `==` and `!=`; numbers for ordering) and leaves a mismatch to be false then.
fn compare_json(
    op: CmpOp,
    op_at: usize,
    lhs: Typed,
    rhs: Typed,
) -> Result<BoolExpr, ConditionError> {
    let (lhs_ty, rhs_ty) = (lhs.ty(), rhs.ty());
    for (ty, side) in [(lhs_ty, "left"), (rhs_ty, "right")] {
        match ty {
            Type::Json | Type::Number => {}
            Type::Str | Type::Bool if op.is_equality() => {}
            Type::Str | Type::Bool => {
                return Err(ConditionError::new(
                    op_at,
                    format!(
                        "`{op}` needs numbers or durations, but the {side} side is {}",
                        ty.with_article()
                    ),
                ));
            }
            Type::Duration => {
                return Err(ConditionError::new(
                    op_at,
                    format!("cannot compare {lhs_ty} with {rhs_ty}; a JSON number has no unit"),
                ));
            }
        }
    }
    let operand = |typed: Typed| match typed {
        Typed::Bool(expr) => Operand::Bool(Box::new(expr)),
        Typed::Number(expr) | Typed::Duration(expr) => Operand::Num(expr),
        Typed::Str(expr) => Operand::Str(expr),
        Typed::Json(path) => Operand::Json(path),
    };
    Ok(BoolExpr::Json {
        op,
        lhs: operand(lhs),
        rhs: operand(rhs),
    })
}

fn placeholder(
    at: usize,
    name: &str,
    path: Option<(usize, String)>,
) -> Result<Typed, ConditionError> {
    let Some(placeholder) = PLACEHOLDERS.iter().find(|p| p.name == name) else {
        return Err(ConditionError::new(at, unknown_placeholder_message(name)));
    };
    let name = placeholder.name;
    let typed = match (placeholder.access, path) {
        (Access::Body, Some((dot, field))) => return Ok(Typed::Json(json_path(dot + 1, &field)?)),
        (Access::Body, None) => Typed::Str(StrExpr::Read(StrReader {
            name,
            read: body_text,
        })),
        (Access::Header, Some((dot, field))) => {
            return Ok(Typed::Str(StrExpr::Header(header_name(dot + 1, &field)?)));
        }
        (Access::Header, None) => {
            return Err(ConditionError::new(
                at,
                format!("placeholder [{name}] needs a header name, as in [{name}].Content-Type"),
            ));
        }
        (_, Some((dot, field))) => {
            return Err(ConditionError::new(
                dot,
                format!("placeholder [{name}] has no fields, so `.{field}` cannot follow it"),
            ));
        }
        (Access::Bool(read), None) => Typed::Bool(BoolExpr::Read(Reader { name, read })),
        (Access::Number(read), None) => Typed::Number(NumExpr::Read(Reader { name, read })),
        (Access::Duration(read), None) => Typed::Duration(NumExpr::Read(Reader { name, read })),
        (Access::Str(read), None) => Typed::Str(StrExpr::Read(StrReader { name, read })),
    };
    Ok(typed)
}

/// The path after `[BODY].`, which starts at character `start` of the condition:
/// `json.items[0].name`, or Gatus' `items[0].name` (no `json`), or `json` (the whole body).
fn json_path(start: usize, field: &str) -> Result<JsonPath, ConditionError> {
    let chars: Vec<char> = field.chars().collect();
    let error = |index: usize, message: String| ConditionError::new(start + index, message);
    let marker =
        chars.starts_with(&['j', 's', 'o', 'n']) && matches!(chars.get(4), None | Some('.' | '['));
    let mut i = if marker { 4 } else { 0 };
    // A key after a step (or after the `json` marker) follows a `.`; the first one of a
    // Gatus path has its `.` in `[BODY].` already.
    let mut after_step = marker;
    let mut steps = Vec::new();
    while i < chars.len() {
        if chars[i] == '[' {
            let open = i;
            let Some(close) = chars[open..].iter().position(|&c| c == ']') else {
                return Err(error(
                    open,
                    format!(
                        "unterminated index `{}`; expected `]`",
                        chars[open..].iter().collect::<String>()
                    ),
                ));
            };
            let close = open + close;
            let digits: String = chars[open + 1..close].iter().collect();
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(error(
                    open,
                    format!("expected an array index such as `[0]`, found `[{digits}]`"),
                ));
            }
            let index = digits
                .parse()
                .map_err(|_| error(open + 1, "array index is too large".to_owned()))?;
            steps.push(Step::Index(index));
            i = close + 1;
        } else {
            if after_step {
                if chars[i] != '.' {
                    return Err(error(
                        i,
                        format!("expected `.` or `[` after `]`, found `{}`", chars[i]),
                    ));
                }
                i += 1;
            }
            let key_start = i;
            while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                i += 1;
            }
            if i == key_start {
                return Err(error(
                    key_start,
                    "expected a field name after `.`".to_owned(),
                ));
            }
            steps.push(Step::Key(chars[key_start..i].iter().collect()));
        }
        after_step = true;
    }
    Ok(JsonPath {
        text: field.into(),
        steps: steps.into(),
    })
}

/// The name after `[HEADER].`, which starts at character `start`: an HTTP token (RFC 9110),
/// lower-cased.
fn header_name(start: usize, field: &str) -> Result<Box<str>, ConditionError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if let Some((index, c)) = field.chars().enumerate().find(|&(_, c)| !token(c)) {
        return Err(ConditionError::new(
            start + index,
            format!("unexpected `{c}` in a header name"),
        ));
    }
    Ok(field.to_ascii_lowercase().into_boxed_str())
}

/// A checked argument of a call, as its parameter asked for it.
enum Arg {
    Text(TextExpr),
    Pattern(Regex),
    /// The placeholder and whether it is a duration (else a number).
    Series(Reader<f64>, bool),
    /// A duration written out, in milliseconds.
    Duration(u64),
}

/// The checked arguments of a call, handed to `Function::compile` in order. Each getter
/// takes the next argument, which `call` has checked against the function's `params`.
struct Args(std::vec::IntoIter<Arg>);

impl Args {
    fn text(&mut self) -> TextExpr {
        match self.0.next() {
            Some(Arg::Text(text)) => text,
            _ => unreachable!("checked against the function's params"),
        }
    }

    fn pattern(&mut self) -> Regex {
        match self.0.next() {
            Some(Arg::Pattern(pattern)) => pattern,
            _ => unreachable!("checked against the function's params"),
        }
    }

    fn series(&mut self) -> (Reader<f64>, bool) {
        match self.0.next() {
            Some(Arg::Series(reader, duration)) => (reader, duration),
            _ => unreachable!("checked against the function's params"),
        }
    }

    fn duration(&mut self) -> u64 {
        match self.0.next() {
            Some(Arg::Duration(millis)) => millis,
            _ => unreachable!("checked against the function's params"),
        }
    }

    fn window(&mut self) -> Window {
        Window::new(self.duration())
    }
}

fn call(at: usize, name: &str, args: Vec<Node>) -> Result<Typed, ConditionError> {
    let Some(function) = FUNCTIONS.iter().find(|f| f.name == name) else {
        return Err(ConditionError::new(at, unknown_function_message(name)));
    };
    if args.len() != function.params.len() {
        let expected = function.params.len();
        return Err(ConditionError::new(
            at,
            format!(
                "`{name}` takes {expected} argument{}, but {} {} given",
                if expected == 1 { "" } else { "s" },
                args.len(),
                if args.len() == 1 { "was" } else { "were" },
            ),
        ));
    }
    let mut checked = Vec::with_capacity(args.len());
    let mut series = None;
    for (index, (arg, &param)) in args.into_iter().zip(function.params).enumerate() {
        let arg = argument(name, index + 1, param, arg)?;
        if let Arg::Series(_, duration) = arg {
            series = Some(if duration {
                Type::Duration
            } else {
                Type::Number
            });
        }
        checked.push(arg);
    }
    let result = (function.compile)(Args(checked.into_iter()));
    debug_assert_eq!(
        Some(result.ty()),
        match function.result {
            Returns::Type(ty) => Some(ty),
            Returns::Series => series,
        },
        "`{name}` compiled to the wrong type"
    );
    Ok(result)
}

/// Checks argument `position` (1-based) of a call to `function` against `param`.
fn argument(
    function: &str,
    position: usize,
    param: Param,
    arg: Node,
) -> Result<Arg, ConditionError> {
    let at = arg.at;
    let must_be = |what: String| {
        Err(ConditionError::new(
            at,
            format!("argument {position} of `{function}` must be {what}"),
        ))
    };
    match param {
        Param::Text => match check(arg)? {
            Typed::Str(expr) => Ok(Arg::Text(TextExpr::Str(expr))),
            Typed::Json(path) => Ok(Arg::Text(TextExpr::Json(path))),
            other => must_be(format!(
                "a string or a JSON value, but this is {}",
                other.ty().with_article()
            )),
        },
        Param::Pattern => match arg.kind {
            NodeKind::Str(pattern) => {
                super::compile_regex(&pattern)
                    .map(Arg::Pattern)
                    .map_err(|reason| {
                        ConditionError::new(at, format!("invalid regular expression: {reason}"))
                    })
            }
            _ => must_be(format!(
                "a regular expression written as a string, as in `{function}([BODY], 'err(or)?')`"
            )),
        },
        // Only a placeholder compiles to a bare `Read`.
        Param::Series => match check(arg)? {
            Typed::Number(NumExpr::Read(reader)) => Ok(Arg::Series(reader, false)),
            Typed::Duration(NumExpr::Read(reader)) => Ok(Arg::Series(reader, true)),
            _ => must_be(format!(
                "a placeholder read from each result in the window: {}",
                series_placeholders()
            )),
        },
        Param::Window | Param::Horizon => {
            let NodeKind::Duration(millis) = arg.kind else {
                return must_be(format!(
                    "a duration written out, such as {}",
                    if param == Param::Window { "5m" } else { "15m" }
                ));
            };
            // Whole milliseconds: parse_duration counts in them.
            let millis = millis as u64;
            if param == Param::Window && millis == 0 {
                return must_be("a window longer than 0s".to_owned());
            }
            Ok(Arg::Duration(millis))
        }
    }
}

/// `[STATUS], [RESPONSE_TIME], [CERTIFICATE_EXPIRATION] or [VALUE]`.
fn series_placeholders() -> String {
    let names: Vec<String> = PLACEHOLDERS
        .iter()
        .filter(|p| matches!(p.access, Access::Number(_) | Access::Duration(_)))
        .map(|p| format!("[{}]", p.name))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn known_placeholders() -> String {
    PLACEHOLDERS
        .iter()
        .map(|p| match p.access {
            Access::Header => format!("[{}].Name", p.name),
            _ => format!("[{}]", p.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_placeholder_message(name: &str) -> String {
    match closest(name, PLACEHOLDERS.iter().map(|p| p.name)) {
        Some(suggestion) => {
            format!("unknown placeholder [{name}]; did you mean [{suggestion}]?")
        }
        None => format!(
            "unknown placeholder [{name}]; known placeholders: {}",
            known_placeholders()
        ),
    }
}

fn unknown_function_message(name: &str) -> String {
    let alias = FUNCTION_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|&(_, function)| function);
    match alias.or_else(|| closest(name, FUNCTIONS.iter().map(|f| f.name))) {
        Some(suggestion) => format!("unknown function `{name}`; did you mean `{suggestion}`?"),
        None => format!(
            "unknown function `{name}`; known functions: {}",
            FUNCTIONS
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The candidate `typed` is most likely a typo of, if any. Case-insensitive, so `[status]`
/// suggests `[STATUS]`; short names need a closer match (`[CODE]` is not a typo of `[BODY]`,
/// nor `min` of `max`).
fn closest(typed: &str, candidates: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    let typed = typed.to_lowercase();
    candidates
        .map(|name| (strsim::levenshtein(&typed, &name.to_lowercase()), name))
        .filter(|&(distance, candidate)| distance <= if candidate.len() >= 5 { 2 } else { 1 })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn observation(connected: bool, status: Option<u16>, millis: u64) -> Observation {
        Observation {
            connected,
            status,
            response_time: Duration::from_millis(millis),
            error: (!connected).then(|| "connection refused".to_owned()),
            ..Observation::new(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
        }
    }

    /// Evaluated in this order by `check`: healthy, failing, down.
    fn observations() -> [Observation; 3] {
        [
            observation(true, Some(200), 120),
            observation(true, Some(500), 1500),
            observation(false, None, 10_000),
        ]
    }

    #[track_caller]
    fn parse(source: &str) -> Condition {
        Condition::parse(source).unwrap_or_else(|e| {
            panic!(
                "`{source}` should parse, got:\n{source}\n{}^ {}",
                " ".repeat(e.offset),
                e.message
            )
        })
    }

    /// `expected` is the result on [healthy 200/120ms, failing 500/1500ms, down (no status, 10s)].
    #[track_caller]
    fn check(source: &str, expected: [bool; 3]) {
        let condition = parse(source);
        let actual = observations().map(|obs| condition.eval(&History::from([obs])));
        assert_eq!(
            actual, expected,
            "`{source}` on [healthy 200/120ms, failing 500/1500ms, down]"
        );
    }

    /// `expected` is a caret under the source (spaces up to the error offset, in characters)
    /// followed by the message, so the expectation reads like the report a user sees.
    #[track_caller]
    fn check_error(source: &str, expected: &str) {
        let error = match Condition::parse(source) {
            Ok(condition) => panic!("`{source}` should not parse, got {condition:?}"),
            Err(error) => error,
        };
        let actual = format!("{}^ {}", " ".repeat(error.offset), error.message);
        assert_eq!(actual, expected, "\n{source}\n{actual}");
    }

    const T: bool = true;
    const F: bool = false;

    #[test]
    fn the_typical_rule() {
        check("[STATUS] != 200 || [RESPONSE_TIME] > 800ms", [F, T, T]);
        check("[STATUS]!=200||[RESPONSE_TIME]>800ms", [F, T, T]);
        check(
            "\t[STATUS] != 200\n  || [RESPONSE_TIME] > 800ms  ",
            [F, T, T],
        );
    }

    #[test]
    fn placeholders() {
        check("[CONNECTED]", [T, T, F]);
        check("![CONNECTED]", [F, F, T]);
        check("!![CONNECTED]", [T, T, F]);
        check("[STATUS] == 200", [T, F, F]);
        // No response reads as status 0.
        check("[STATUS] == 0", [F, F, T]);
        check("[RESPONSE_TIME] == 1500ms", [F, T, F]);
        check("[RESPONSE_TIME] >= 10s", [F, F, T]);
    }

    #[test]
    fn every_comparison_operator_on_numbers() {
        check("[STATUS] == 500", [F, T, F]);
        check("[STATUS] != 500", [T, F, T]);
        check("[STATUS] < 500", [T, F, T]);
        check("[STATUS] <= 500", [T, T, T]);
        check("[STATUS] > 200", [F, T, F]);
        check("[STATUS] >= 200", [T, T, F]);
        check("200 < [STATUS]", [F, T, F]);
        check("1.5 > 1", [T, T, T]);
        check("0.5 == 0.50", [T, T, T]);
        check("2 <= 1", [F, F, F]);
    }

    #[test]
    fn every_comparison_operator_on_durations() {
        check("[RESPONSE_TIME] == 120ms", [T, F, F]);
        check("[RESPONSE_TIME] != 120ms", [F, T, T]);
        check("[RESPONSE_TIME] < 1500ms", [T, F, F]);
        check("[RESPONSE_TIME] <= 1500ms", [T, T, F]);
        check("[RESPONSE_TIME] > 1500ms", [F, F, T]);
        check("[RESPONSE_TIME] >= 1500ms", [F, T, T]);
        check("90m == 5400s", [T, T, T]);
        check("1d > 23h", [T, T, T]);
        check("0s < 1ms", [T, T, T]);
    }

    #[test]
    fn numbers_compared_with_durations_are_milliseconds() {
        check("[RESPONSE_TIME] > 500", [F, T, T]);
        check("500 < [RESPONSE_TIME]", [F, T, T]);
        check("[RESPONSE_TIME] == 120", [T, F, F]);
        check("[RESPONSE_TIME] > 1500", [F, F, T]);
        check("[RESPONSE_TIME] > 119.5", [T, T, T]);
        check("1s == 1000", [T, T, T]);
        check("(1000) == 1s", [T, T, T]);
    }

    #[test]
    fn durations_mean_what_parse_duration_says() {
        // The whole word after the digits goes to parse_duration, so a condition accepts
        // exactly the durations the config files accept, and rejects the rest with the
        // same message, pointing at the duration.
        for text in [
            "800ms", "14d", "2w", "1h30m", "1m500ms", "30m1h", "1s1s", "5x", "1.5s",
        ] {
            let source = format!("[RESPONSE_TIME] == {text}");
            match parse_duration(text) {
                Ok(duration) => {
                    let condition = parse(&source);
                    let mut obs = observation(true, Some(200), 0);
                    obs.response_time = duration;
                    assert!(
                        condition.eval(&History::from([obs.clone()])),
                        "{source} at {duration:?}"
                    );
                    obs.response_time = duration + Duration::from_millis(1);
                    assert!(
                        !condition.eval(&History::from([obs.clone()])),
                        "{source} at {duration:?} + 1ms"
                    );
                }
                Err(message) => check_error(&source, &format!("{}^ {message}", " ".repeat(19))),
            }
        }
    }

    #[test]
    fn sub_millisecond_response_times_compare_exactly() {
        let condition = parse("[RESPONSE_TIME] > 800ms");
        let mut obs = observation(true, Some(200), 800);
        assert!(!condition.eval(&History::from([obs.clone()])));
        obs.response_time = Duration::from_micros(800_001);
        assert!(condition.eval(&History::from([obs.clone()])));
        assert!(parse("[RESPONSE_TIME] == 800.001").eval(&History::from([obs.clone()])));
    }

    #[test]
    fn bools() {
        check("true", [T, T, T]);
        check("false", [F, F, F]);
        check("!false", [T, T, T]);
        check("[CONNECTED] == true", [T, T, F]);
        check("[CONNECTED] != true", [F, F, T]);
        check("[CONNECTED] == false", [F, F, T]);
        check("true == ([STATUS] == 500)", [F, T, F]);
    }

    #[test]
    fn strings() {
        check("'abc' == \"abc\"", [T, T, T]);
        check("'abc' != 'abd'", [T, T, T]);
        check("'abc' == 'ABC'", [F, F, F]);
        check("'' == \"\"", [T, T, T]);
        check("'é' == \"é\"", [T, T, T]);
        check(r#"'it\'s' == "it's""#, [T, T, T]);
        check(r#""say \"hi\"" == 'say "hi"'"#, [T, T, T]);
        check(r"'a\\b' == 'a\\b'", [T, T, T]);
        check(r"'a\\' != 'a'", [T, T, T]);
        check("'a || b' == 'a || b'", [T, T, T]);
    }

    #[test]
    fn logic_operators() {
        check("[STATUS] == 200 && [RESPONSE_TIME] < 1s", [T, F, F]);
        check("[STATUS] == 200 || [STATUS] == 500", [T, T, F]);
        check(
            "[CONNECTED] && [STATUS] >= 500 && [RESPONSE_TIME] > 1s",
            [F, T, F],
        );
        check(
            "![CONNECTED] || [STATUS] == 500 || [RESPONSE_TIME] < 200ms",
            [T, T, T],
        );
        check("false && false", [F, F, F]);
        check("false || false", [F, F, F]);
    }

    #[test]
    fn precedence_and_parentheses() {
        // && binds tighter than ||.
        check("true || false && false", [T, T, T]);
        check("(true || false) && false", [F, F, F]);
        check("false && false || true", [T, T, T]);
        check("false && (false || true)", [F, F, F]);
        check(
            "[STATUS] == 500 || [STATUS] == 200 && [RESPONSE_TIME] > 1s",
            [F, T, F],
        );
        check(
            "([STATUS] == 500 || [STATUS] == 200) && [RESPONSE_TIME] > 100ms",
            [T, T, F],
        );
        // Comparison binds tighter than && and ||.
        check("[STATUS] == 0 || [RESPONSE_TIME] < 1s", [T, F, T]);
        // ! binds tighter than a comparison: `![STATUS] == 200` negates a number...
        check_error(
            "![STATUS] == 200",
            " ^ `!` needs true or false, but this is a number; to negate a comparison, write `!(a == b)`",
        );
        // ...and parentheses say what was meant. ! also binds tighter than && and ||.
        check("!([STATUS] == 200)", [F, T, T]);
        check("![CONNECTED] || [STATUS] >= 500", [F, T, T]);
        check("!([CONNECTED] || [STATUS] >= 500)", [F, F, T]);
        check("((([CONNECTED])))", [T, T, F]);
    }

    #[test]
    fn long_chains_do_not_nest() {
        let source = vec!["[STATUS] == 1"; 10_000].join(" || ") + " || [STATUS] == 500";
        check(&source, [F, T, F]);
        let source = vec!["[CONNECTED]"; 10_000].join(" && ");
        check(&source, [T, T, F]);
    }

    #[test]
    fn api() {
        let condition = parse("  [STATUS] != 200 ");
        assert_eq!(condition.source(), "  [STATUS] != 200 ");
        assert_eq!(condition.to_string(), "  [STATUS] != 200 ");
        let copy = condition.clone();
        assert_eq!(copy.source(), condition.source());
        assert_eq!(
            observations().map(|o| copy.eval(&History::from([o]))),
            [F, T, T]
        );

        let error = Condition::parse("[STATUS] = 200").unwrap_err();
        assert_eq!(error.to_string(), "unexpected `=`; did you mean `==`?");

        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Condition>();
        shareable::<ConditionError>();
    }

    #[test]
    fn offsets_are_in_characters() {
        let source = "'é' == 'x' && [STAUS] == 1";
        let error = Condition::parse(source).unwrap_err();
        assert_eq!(error.offset, 14);
        assert_eq!(
            source.find('[').unwrap(),
            15,
            "the byte offset would differ"
        );
        check_error(
            "'é' == 'x' && [STAUS] == 1",
            "              ^ unknown placeholder [STAUS]; did you mean [STATUS]?",
        );
        check_error("'éé' == 1", "     ^ cannot compare string with number");
        check_error(
            "'日本' == '日本' && [STATUS] # 1",
            "                         ^ unexpected character `#`",
        );
        check_error(
            "'ü' == 'ü' ||",
            "             ^ expected an operand after `||`, found the end of the condition",
        );
    }

    #[test]
    fn character_errors() {
        check_error("[STATUS] # 200", "         ^ unexpected character `#`");
        check_error("[STATUS] ≠ 200", "         ^ unexpected character `≠`");
        check_error("[STATUS] == -1", "            ^ unexpected character `-`");
        check_error(
            "[STATUS] = 200",
            "         ^ unexpected `=`; did you mean `==`?",
        );
        check_error(
            "[STATUS] === 200",
            "         ^ unexpected `===`; did you mean `==`?",
        );
        check_error(
            "[STATUS] !== 200",
            "         ^ unexpected `!==`; did you mean `!=`?",
        );
        check_error(
            "[STATUS] => 200",
            "         ^ unexpected `=>`; did you mean `>=`?",
        );
        check_error(
            "[STATUS] =< 200",
            "         ^ unexpected `=<`; did you mean `<=`?",
        );
        check_error("true & false", "     ^ unexpected `&`; did you mean `&&`?");
        check_error("true | false", "     ^ unexpected `|`; did you mean `||`?");
    }

    #[test]
    fn literal_errors() {
        check_error(
            "[STATUS] == 'abc",
            "            ^ unterminated string; expected a closing `'`",
        );
        check_error(
            r#"[STATUS] == "abc\""#,
            "            ^ unterminated string; expected a closing `\"`",
        );
        check_error(r"'abc\", "^ unterminated string; expected a closing `'`");
        check_error(
            r"'a\nb' == 'a'",
            r#"  ^ unknown escape `\n`; a string can only escape `\"`, `\'` and `\\`"#,
        );
        check_error(
            "[STATUS] == 200.",
            "            ^ expected a digit after the decimal point in `200.`",
        );
        check_error(
            "[RESPONSE_TIME] > 1.5s",
            "                  ^ invalid duration `1.5s`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
        );
        check_error(
            "[RESPONSE_TIME] > 5x",
            "                  ^ invalid duration `5x`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
        );
        let huge = format!("[STATUS] == 1{}", "0".repeat(400));
        check_error(&huge, "            ^ number is too large");
    }

    #[test]
    fn placeholder_errors() {
        check_error(
            "[STAUS] == 200",
            "^ unknown placeholder [STAUS]; did you mean [STATUS]?",
        );
        check_error(
            "[status] == 200",
            "^ unknown placeholder [status]; did you mean [STATUS]?",
        );
        check_error(
            "[RESPONSETIME] > 1s",
            "^ unknown placeholder [RESPONSETIME]; did you mean [RESPONSE_TIME]?",
        );
        check_error(
            "[CONECTED]",
            "^ unknown placeholder [CONECTED]; did you mean [CONNECTED]?",
        );
        check_error(
            "[FOO] == 1",
            "^ unknown placeholder [FOO]; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED], [BODY], [HEADER].Name, [CERTIFICATE_EXPIRATION], [DNS_RCODE], [VALUE]",
        );
        // Short names need a closer match: two edits from [BODY] is not a typo of it.
        check_error(
            "[CODE] == 1",
            "^ unknown placeholder [CODE]; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED], [BODY], [HEADER].Name, [CERTIFICATE_EXPIRATION], [DNS_RCODE], [VALUE]",
        );
        check_error(
            "[BODDY] == 'x'",
            "^ unknown placeholder [BODDY]; did you mean [BODY]?",
        );
        check_error(
            "[] == 1",
            "^ empty placeholder `[]`; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED], [BODY], [HEADER].Name, [CERTIFICATE_EXPIRATION], [DNS_RCODE], [VALUE]",
        );
        check_error(
            "[STATUS == 200",
            "^ unterminated placeholder `[STATUS`; expected `]`",
        );
        check_error(
            "[STATUS].code == 200",
            "        ^ placeholder [STATUS] has no fields, so `.code` cannot follow it",
        );
        check_error(
            "[BODY]. == 'x'",
            "      ^ expected a field name after `[BODY].`",
        );
    }

    #[test]
    fn bare_words() {
        check_error(
            "STATUS == 200",
            "^ unexpected `STATUS`; placeholders are written in brackets: did you mean [STATUS]?",
        );
        // The word is reported even though a tokenizer error follows it.
        check_error(
            "response_time = 1s",
            "^ unexpected `response_time`; placeholders are written in brackets: did you mean [RESPONSE_TIME]?",
        );
        check_error(
            "[CONNECTED] and true",
            "            ^ unexpected `and`; did you mean `&&`?",
        );
        check_error(
            "true or false",
            "     ^ unexpected `or`; did you mean `||`?",
        );
        check_error("not [CONNECTED]", "^ unexpected `not`; did you mean `!`?");
        check_error("TRUE", "^ unexpected `TRUE`; did you mean `true`?");
        check_error(
            "[STATUS] == ok",
            "            ^ unexpected `ok`; expected a placeholder such as [STATUS], a number, a duration, a string, true or false",
        );
    }

    #[test]
    fn syntax_errors() {
        check_error("", "^ the condition is empty");
        check_error("   ", "   ^ the condition is empty");
        check_error(
            "[STATUS] == 200 &&",
            "                  ^ expected an operand after `&&`, found the end of the condition",
        );
        check_error(
            "[STATUS] == 200 && || true",
            "                   ^ expected an operand after `&&`, found `||`",
        );
        check_error("== 200", "^ expected an operand, found `==`");
        check_error(
            "[STATUS] ==",
            "           ^ expected an operand after `==`, found the end of the condition",
        );
        check_error(
            "!",
            " ^ expected an operand after `!`, found the end of the condition",
        );
        check_error("()", " ^ expected an operand after `(`, found `)`");
        check_error(
            "[STATUS] 200",
            "         ^ expected an operator or the end of the condition, found `200`",
        );
        check_error(
            "1 < 2 < 3",
            "      ^ comparisons do not chain; join them with `&&`, as in `a < b && b < c`",
        );
        check_error(
            "[STATUS] == 200 == true",
            "                ^ comparisons do not chain; join them with `&&`, as in `a < b && b < c`",
        );
    }

    #[test]
    fn parenthesis_errors() {
        check_error(
            "([STATUS] == 200",
            "^ unmatched `(`; the condition ends before its `)`",
        );
        check_error(
            "true && ((false) || true",
            "        ^ unmatched `(`; the condition ends before its `)`",
        );
        check_error("[STATUS] == 200)", "               ^ unmatched `)`");
        check_error(
            "([STATUS] == 200 true)",
            "                 ^ expected an operator or `)`, found `true`",
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        check_error(
            &deep,
            &format!(
                "{}^ the condition nests too deeply (more than 64 levels)",
                " ".repeat(64)
            ),
        );
        let negations = format!("{}true", "!".repeat(1000));
        check_error(
            &negations,
            &format!(
                "{}^ the condition nests too deeply (more than 64 levels)",
                " ".repeat(64)
            ),
        );
        let fine = format!("{}true{}", "(".repeat(64), ")".repeat(64));
        check(&fine, [T, T, T]);
    }

    #[test]
    fn type_errors() {
        check_error(
            "[STATUS] == true",
            "         ^ cannot compare number with bool",
        );
        check_error(
            "[CONNECTED] != 1",
            "            ^ cannot compare bool with number",
        );
        check_error(
            "[STATUS] == '200'",
            "         ^ cannot compare number with string",
        );
        check_error("'1s' < 1s", "     ^ cannot compare string with duration");
        check_error(
            "[STATUS] > 5s",
            "         ^ cannot compare number with duration; only a number written out, like 500, counts as milliseconds",
        );
        check_error(
            "5s <= [STATUS]",
            "   ^ cannot compare duration with number; only a number written out, like 500, counts as milliseconds",
        );
        check_error(
            "[CONNECTED] < true",
            "            ^ `<` needs numbers or durations, but both sides are bools",
        );
        check_error(
            "'a' >= 'b'",
            "    ^ `>=` needs numbers or durations, but both sides are strings",
        );
        check_error(
            "[STATUS] && true",
            "^ `&&` needs true or false on each side, but this is a number",
        );
        check_error(
            "true || false || 5s",
            "                 ^ `||` needs true or false on each side, but this is a duration",
        );
        check_error(
            "!'x'",
            " ^ `!` needs true or false, but this is a string; to negate a comparison, write `!(a == b)`",
        );
    }

    #[test]
    fn the_condition_must_be_a_bool() {
        check_error(
            "[STATUS]",
            "^ condition must be true or false, but this is a number",
        );
        check_error(
            "[RESPONSE_TIME]",
            "^ condition must be true or false, but this is a duration",
        );
        check_error(
            "  (800ms)",
            "  ^ condition must be true or false, but this is a duration",
        );
        check_error(
            "'yes'",
            "^ condition must be true or false, but this is a string",
        );
    }

    #[test]
    fn function_call_syntax() {
        // Syntax inside a call is checked before the name is looked up.
        check_error(
            "len([STATUS] ==)",
            "               ^ expected an operand after `==`, found `)`",
        );
        check_error(
            "len(1,)",
            "      ^ expected an operand after `,`, found `)`",
        );
        check_error(
            "len(1 2)",
            "      ^ expected an operator, `,` or `)`, found `2`",
        );
        check_error(
            "len([STATUS]",
            "   ^ unmatched `(`; the condition ends before its `)`",
        );
        check("len ( 'abc' ) == 3", [T, T, T]);
        check("contains('abc','b')&&len('')==0", [T, T, T]);
    }

    // -----------------------------------------------------------------------------------------
    // Every placeholder

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
    }

    fn secs(seconds: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(seconds)
    }

    /// A result with every field measured.
    fn full() -> Observation {
        Observation {
            connected: true,
            status: Some(200),
            response_time: Duration::from_millis(250),
            body: Some("fatal error: disk full".to_owned()),
            headers: vec![
                (
                    "content-type".to_owned(),
                    "application/json; charset=utf-8".to_owned(),
                ),
                ("set-cookie".to_owned(), "a=1".to_owned()),
                ("set-cookie".to_owned(), "b=2".to_owned()),
            ],
            certificate_expiry: Some(t0() + TimeDelta::days(10)),
            dns_rcode: Some("NXDOMAIN".to_owned()),
            value: Some(0.93),
            ..Observation::new(t0())
        }
    }

    /// `(condition, expected)` rows, each evaluated on a history of just `obs`.
    #[track_caller]
    fn table(obs: &Observation, rows: &[(&str, bool)]) {
        table_on(&History::from([obs.clone()]), rows);
    }

    #[track_caller]
    fn table_on(history: &History, rows: &[(&str, bool)]) {
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(source, expected)| {
                let actual = parse(source).eval(history);
                (actual != expected).then(|| format!("`{source}` is {actual}, expected {expected}"))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn every_placeholder_reads_the_newest_result() {
        table(
            &full(),
            &[
                ("[STATUS] == 200", T),
                ("[RESPONSE_TIME] == 250ms", T),
                ("[CONNECTED]", T),
                ("[BODY] == 'fatal error: disk full'", T),
                ("[BODY] != ''", T),
                (
                    "[HEADER].Content-Type == 'application/json; charset=utf-8'",
                    T,
                ),
                // Header names match case-insensitively.
                (
                    "[HEADER].content-type == 'application/json; charset=utf-8'",
                    T,
                ),
                ("[HEADER].CONTENT-TYPE != ''", T),
                // A repeated header reads as its first value.
                ("[HEADER].Set-Cookie == 'a=1'", T),
                ("[HEADER].X-Request-Id == ''", T),
                ("[CERTIFICATE_EXPIRATION] == 10d", T),
                ("[CERTIFICATE_EXPIRATION] < 14d", T),
                ("[CERTIFICATE_EXPIRATION] > 9d", T),
                ("[CERTIFICATE_EXPIRATION] > 864000000", F),
                ("[DNS_RCODE] == 'NXDOMAIN'", T),
                ("[DNS_RCODE] != 'NOERROR'", T),
                ("[VALUE] == 0.93", T),
                ("[VALUE] > 0.9 && [VALUE] < 1", T),
            ],
        );
        let mut history = History::from([full()]);
        // An older result is not read by a placeholder.
        history.push_front(Observation {
            status: Some(500),
            ..full()
        });
        table_on(&history, &[("[STATUS] == 200", T)]);
    }

    #[test]
    fn placeholders_without_a_value() {
        // Nothing measured: no response, no body, no headers, no certificate, no sample.
        table(
            &Observation::new(t0()),
            &[
                ("[STATUS] == 0", T),
                ("[CONNECTED]", F),
                ("[BODY] == ''", T),
                ("len([BODY]) == 0", T),
                ("[HEADER].Content-Type == ''", T),
                ("[DNS_RCODE] == ''", T),
                ("[DNS_RCODE] != 'NOERROR'", T),
                // No value: every comparison is false, `!=` included.
                ("[CERTIFICATE_EXPIRATION] < 14d", F),
                ("[CERTIFICATE_EXPIRATION] >= 14d", F),
                ("[CERTIFICATE_EXPIRATION] == 0s", F),
                ("[CERTIFICATE_EXPIRATION] != 0s", F),
                ("!([CERTIFICATE_EXPIRATION] >= 14d)", T),
                ("[VALUE] > 0.9", F),
                ("[VALUE] <= 0.9", F),
                ("[VALUE] == 0", F),
                ("[VALUE] != 1", F),
                ("[VALUE] == [VALUE]", F),
                ("!([VALUE] > 0.9)", T),
            ],
        );
        // A NaN sample is no value too.
        table(
            &Observation {
                value: Some(f64::NAN),
                ..full()
            },
            &[("[VALUE] != 1", F), ("[VALUE] == [VALUE]", F)],
        );
        table(
            &Observation {
                value: Some(f64::INFINITY),
                ..full()
            },
            &[("[VALUE] > 1000000", T), ("[VALUE] != 1", T)],
        );
        // An expired certificate is a negative duration.
        table(
            &Observation {
                certificate_expiry: Some(t0() - TimeDelta::hours(1)),
                ..full()
            },
            &[
                ("[CERTIFICATE_EXPIRATION] < 0s", T),
                ("[CERTIFICATE_EXPIRATION] < 14d", T),
            ],
        );
    }

    // -----------------------------------------------------------------------------------------
    // [BODY].json

    const JSON_BODY: &str = r#"{
        "status": "ok",
        "healthy": true,
        "data": {"count": 3, "ratio": 0.5, "name": "Ünïcode"},
        "items": [{"name": "a"}, {"name": "b", "tags": ["x", "y", "z"]}],
        "message": "Error: disk full",
        "nothing": null,
        "json": {"x": 1}
    }"#;

    fn with_body(body: Option<&str>) -> Observation {
        Observation {
            body: body.map(str::to_owned),
            ..full()
        }
    }

    #[test]
    fn json_paths() {
        table(
            &with_body(Some(JSON_BODY)),
            &[
                ("[BODY].json.status == \"ok\"", T),
                ("[BODY].json.status != 'ok'", F),
                ("[BODY].json.status != 'down'", T),
                ("'ok' == [BODY].json.status", T),
                ("[BODY].json.healthy == true", T),
                ("[BODY].json.healthy == ([STATUS] == 200)", T),
                ("[BODY].json.data.count == 3", T),
                ("[BODY].json.data.count > 2", T),
                ("[BODY].json.data.count >= 3.5", F),
                ("[BODY].json.data.count < 3.5", T),
                ("[BODY].json.data.ratio == 0.5", T),
                ("[BODY].json.data.count < [STATUS]", T),
                ("[BODY].json.items[1].name == 'b'", T),
                ("[BODY].json.items[1].tags[2] == 'z'", T),
                // Gatus' form, without `json`.
                ("[BODY].status == 'ok'", T),
                ("[BODY].data.count == 3", T),
                ("[BODY].items[0].name == 'a'", T),
                // `json` first is the marker; a key named `json` comes after it.
                ("[BODY].json.json.x == 1", T),
                ("[BODY].json.x == 1", F),
                // JSON with JSON.
                ("[BODY].json.data.ratio < [BODY].json.data.count", T),
                ("[BODY].json.items[0].name == [BODY].items[0].name", T),
                ("[BODY].json.status == [BODY].json.data.count", F),
                // Strings have no order, even at run time.
                ("[BODY].json.status > [BODY].json.message", F),
                ("[BODY].json.status < [BODY].json.message", F),
            ],
        );
    }

    #[test]
    fn json_paths_without_a_value() {
        // A path that leads nowhere, or to a value of another kind: false, whatever the
        // operator.
        table(
            &with_body(Some(JSON_BODY)),
            &[
                ("[BODY].json.items[2].name == 'c'", F),
                ("[BODY].json.items[2].name != 'c'", F),
                ("[BODY].json.nope == 1", F),
                ("[BODY].json.nope != 1", F),
                ("[BODY].json.nothing == 0", F),
                ("[BODY].json.status.deeper == 'x'", F),
                ("[BODY].json.items.name == 'a'", F),
                ("[BODY].json.data[0] == 3", F),
                ("[BODY].json.status == 1", F),
                ("[BODY].json.status != 1", F),
                ("[BODY].json.data.count == '3'", F),
                ("[BODY].json.data.count != '3'", F),
                ("[BODY].json.healthy == 1", F),
                ("[BODY].json.healthy != 'true'", F),
                ("[BODY].json.data > 1", F),
                ("!([BODY].json.nope == 1)", T),
            ],
        );
        for body in [
            None,
            Some(""),
            Some("<html>ok</html>"),
            Some("{\"status\": "),
        ] {
            table(
                &with_body(body),
                &[
                    ("[BODY].json.status == 'ok'", F),
                    ("[BODY].json.status != 'ok'", F),
                    ("len([BODY].json) >= 0", F),
                    ("contains([BODY].json, '')", F),
                ],
            );
        }
        table(
            &with_body(Some("<html>ok</html>")),
            &[("contains([BODY], 'ok')", T)],
        );
    }

    #[test]
    fn json_root_arrays() {
        table(
            &with_body(Some(r#"[{"id": 7}, {"id": 8}]"#)),
            &[
                ("[BODY].json[1].id == 8", T),
                ("[BODY].[0].id == 7", T),
                ("len([BODY].json) == 2", T),
                ("[BODY].json[2].id != 9", F),
            ],
        );
        table(
            &with_body(Some("42")),
            &[("[BODY].json == 42", T), ("[BODY].json > 41.5", T)],
        );
    }

    // -----------------------------------------------------------------------------------------
    // contains, matches, len

    #[test]
    fn string_functions() {
        let obs = with_body(Some(JSON_BODY));
        table(
            &obs,
            &[
                ("contains('abc', 'b')", T),
                ("contains('abc', 'd')", F),
                ("contains('abc', '')", T),
                ("contains('', 'a')", F),
                ("contains([HEADER].Content-Type, 'json')", T),
                ("contains([BODY], '\"healthy\": true')", T),
                ("contains([BODY].json.message, 'disk')", T),
                (
                    "contains('Error: disk full, really', [BODY].json.message)",
                    T,
                ),
                // A JSON value that is not a string has no text.
                ("contains([BODY].json.data.count, '3')", F),
                ("contains([BODY].json.nope, '')", F),
                ("matches([BODY].json.message, '^Error: ')", T),
                ("matches([BODY].json.message, '^disk')", F),
                ("matches([BODY].json.data, '.*')", F),
                ("matches('ERROR', 'err')", F),
                ("matches('ERROR', '(?i)err')", T),
                (r"matches('v1.20.3', '^v\\d+\\.\\d+')", T),
                ("len('héllo') == 5", T),
                ("len('') == 0", T),
                ("len([HEADER].Set-Cookie) == 3", T),
                ("len([BODY].json.items) == 2", T),
                ("len([BODY].json.status) == 2", T),
                ("len([BODY].json.data) == 3", T),
                ("len([BODY].json.data.name) == 7", T),
                ("len([BODY].json) == 7", T),
                ("len([BODY].json.items[1].tags) > 2", T),
                ("len([BODY]) > 100", T),
                // Numbers, bools and null have no length; neither has a missing path.
                ("len([BODY].json.data.count) >= 0", F),
                ("len([BODY].json.healthy) >= 0", F),
                ("len([BODY].json.nothing) >= 0", F),
                ("len([BODY].json.nope) >= 0", F),
            ],
        );
        table(
            &full(),
            &[
                ("matches([BODY], \"err(or)?\")", T),
                ("matches([BODY], '^err')", F),
                ("matches([BODY], 'disk full$')", T),
                ("!matches([BODY], 'ok')", T),
            ],
        );
    }

    // -----------------------------------------------------------------------------------------
    // Window functions

    /// A numeric or duration expression evaluated on `history`; durations in milliseconds,
    /// NaN for no value.
    #[track_caller]
    fn value(source: &str, history: &History) -> f64 {
        let chars: Vec<char> = source.chars().collect();
        let tree = Parser::new(&chars).and_then(|mut p| p.condition()).unwrap();
        let (Ok(Typed::Number(expr)) | Ok(Typed::Duration(expr))) = super::check(tree) else {
            panic!("`{source}` is not a number or a duration");
        };
        expr.eval(&Context::new(history, history.back().unwrap()))
    }

    /// `(expression, expected value)` rows; `None` is no value.
    #[track_caller]
    fn values_on(history: &History, rows: &[(&str, Option<f64>)]) {
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(source, expected)| {
                let actual = value(source, history);
                let ok = match expected {
                    Some(expected) => (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                    None => actual.is_nan(),
                };
                (!ok).then(|| format!("`{source}` is {actual}, expected {expected:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    /// Results 10s apart at 0s…60s: response times 100…700ms; statuses with two errors;
    /// [VALUE]s 1, none, 3, 2, 5, 4, 6.
    fn ten_second_history() -> History {
        let statuses = [200, 500, 200, 200, 503, 200, 200];
        let values = [
            Some(1.0),
            None,
            Some(3.0),
            Some(2.0),
            Some(5.0),
            Some(4.0),
            Some(6.0),
        ];
        (0..7)
            .map(|i| Observation {
                connected: true,
                status: Some(statuses[i]),
                response_time: Duration::from_millis(100 * (i as u64 + 1)),
                value: values[i],
                ..Observation::new(secs(10 * i as i64))
            })
            .collect()
    }

    #[test]
    fn avg_and_max() {
        values_on(
            &ten_second_history(),
            &[
                ("avg([RESPONSE_TIME], 1m)", Some(400.0)),
                ("avg([RESPONSE_TIME], 5m)", Some(400.0)),
                // Both ends of the window are included: 30s back from 60s reaches the result
                // at 30s, 29.999s back does not.
                ("avg([RESPONSE_TIME], 30s)", Some(550.0)),
                ("avg([RESPONSE_TIME], 29s999ms)", Some(600.0)),
                ("avg([RESPONSE_TIME], 1ms)", Some(700.0)),
                ("avg([STATUS], 1m)", Some(2003.0 / 7.0)),
                // Results without a value are left out, not counted as 0.
                ("avg([VALUE], 1m)", Some(3.5)),
                ("avg([VALUE], 50s)", Some(20.0 / 5.0)),
                ("max([RESPONSE_TIME], 1m)", Some(700.0)),
                ("max([STATUS], 1m)", Some(503.0)),
                ("max([STATUS], 15s)", Some(200.0)),
                ("max([VALUE], 1m)", Some(6.0)),
                ("max([VALUE], 35s)", Some(6.0)),
                ("avg([CERTIFICATE_EXPIRATION], 1m)", None),
                ("max([CERTIFICATE_EXPIRATION], 1m)", None),
            ],
        );
        let mut history = ten_second_history();
        history.back_mut().unwrap().value = None;
        values_on(
            &history,
            &[
                ("avg([VALUE], 5s)", None),
                ("max([VALUE], 5s)", None),
                ("max([VALUE], 15s)", Some(4.0)),
            ],
        );
    }

    #[test]
    fn percentiles_interpolate_linearly_between_ranks() {
        // Rank φ·(n−1) over the sorted values, as PromQL's quantile_over_time.
        values_on(
            &ten_second_history(),
            &[
                // 100…700ms: rank 0.95·6 = 5.7 → 600 + 0.7·(700 − 600).
                ("p95([RESPONSE_TIME], 1m)", Some(670.0)),
                // rank 0.99·6 = 5.94.
                ("p99([RESPONSE_TIME], 1m)", Some(694.0)),
                // 400…700ms: rank 0.95·3 = 2.85 → 600 + 0.85·100.
                ("p95([RESPONSE_TIME], 30s)", Some(685.0)),
                // One value is every percentile of itself.
                ("p95([RESPONSE_TIME], 5s)", Some(700.0)),
                ("p99([RESPONSE_TIME], 5s)", Some(700.0)),
                // [VALUE]s unsorted 1, 3, 2, 5, 4, 6 (one missing): rank 0.95·5 = 4.75.
                ("p95([VALUE], 1m)", Some(5.75)),
                ("p99([VALUE], 1m)", Some(5.95)),
                // Statuses 200×5, 500, 503: rank 5.7 → 500 + 0.7·3.
                ("p95([STATUS], 1m)", Some(502.1)),
                ("p95([CERTIFICATE_EXPIRATION], 1m)", None),
            ],
        );
        // More values than fit on the stack: 1…1000, inserted largest first.
        let history: History = (0..1000)
            .map(|i| Observation {
                value: Some(f64::from(1000 - i)),
                ..Observation::new(secs(i.into()))
            })
            .collect();
        values_on(
            &history,
            &[
                ("p95([VALUE], 1h)", Some(950.05)),
                ("p99([VALUE], 1h)", Some(990.01)),
                ("max([VALUE], 1h)", Some(1000.0)),
                ("avg([VALUE], 1h)", Some(500.5)),
                // The newest 100 results hold 1…100.
                ("p95([VALUE], 99s)", Some(95.05)),
            ],
        );
    }

    #[test]
    fn failure_ratio_counts_unsuccessful_results() {
        values_on(
            &ten_second_history(),
            &[
                ("failure_ratio(1m)", Some(2.0 / 7.0)),
                ("failure_ratio(30s)", Some(0.25)),
                ("failure_ratio(5s)", Some(0.0)),
            ],
        );
        // Not connected, an error, or a DNS failure are failures too.
        let history: History = [
            Observation::new(secs(0)),
            Observation {
                connected: true,
                error: Some("bad JSON".to_owned()),
                ..Observation::new(secs(1))
            },
            Observation {
                connected: true,
                dns_rcode: Some("SERVFAIL".to_owned()),
                ..Observation::new(secs(2))
            },
            Observation {
                connected: true,
                ..Observation::new(secs(3))
            },
        ]
        .into();
        values_on(&history, &[("failure_ratio(1m)", Some(0.75))]);
        table_on(
            &history,
            &[
                ("failure_ratio(1m) > 0.5", T),
                ("failure_ratio(1s) > 0.5", F),
                ("failure_ratio(1s) == 0.5", T),
                ("failure_ratio(999ms) > 0", F),
            ],
        );
    }

    #[test]
    fn forecast_is_predict_linear() {
        // (−20s, 10), (−10s, 30), (0s, 20): mean x −10, mean y 20; slope = Σ(x−x̄)(y−ȳ) /
        // Σ(x−x̄)² = 100 / 200 = 0.5 per second; at the newest result 20 − 0.5·(−10) = 25.
        let history: History = [(40, 10.0), (50, 30.0), (60, 20.0)]
            .into_iter()
            .map(|(at, value)| Observation {
                value: Some(value),
                ..Observation::new(secs(at))
            })
            .collect();
        values_on(
            &history,
            &[
                ("forecast([VALUE], 1m, 0s)", Some(25.0)),
                ("forecast([VALUE], 1m, 10s)", Some(30.0)),
                ("forecast([VALUE], 1m, 1m)", Some(55.0)),
                // The window decides which points are fitted: the last two only.
                ("forecast([VALUE], 10s, 10s)", Some(10.0)),
            ],
        );
        // 100…700ms over a minute: 10ms per second, 700ms now.
        values_on(
            &ten_second_history(),
            &[
                ("forecast([RESPONSE_TIME], 1m, 0s)", Some(700.0)),
                ("forecast([RESPONSE_TIME], 1m, 90s)", Some(1600.0)),
                ("forecast([RESPONSE_TIME], 20s, 1m)", Some(1300.0)),
            ],
        );
    }

    #[test]
    fn forecast_crosses_a_threshold_before_the_values_do() {
        // Free space 100, 80, 60, 40 GB, ten minutes apart: 2 GB a minute, gone in 20 minutes.
        let history: History = [(0, 100.0), (10, 80.0), (20, 60.0), (30, 40.0)]
            .into_iter()
            .map(|(minute, free)| Observation {
                value: Some(free),
                ..Observation::new(secs(minute * 60))
            })
            .collect();
        values_on(
            &history,
            &[
                ("forecast([VALUE], 1h, 20m)", Some(0.0)),
                ("forecast([VALUE], 1h, 1h)", Some(-80.0)),
            ],
        );
        table_on(
            &history,
            &[
                ("[VALUE] < 0", F),
                ("max([VALUE], 1h) < 0", F),
                ("forecast([VALUE], 1h, 19m) < 0", F),
                ("forecast([VALUE], 1h, 21m) < 0", T),
                ("forecast([VALUE], 1h, 4h) < 0", T),
            ],
        );
        // Response times rising 10ms a second: over 1.5s in 90s, while every one is under it.
        table_on(
            &ten_second_history(),
            &[
                ("max([RESPONSE_TIME], 1m) > 1500ms", F),
                ("forecast([RESPONSE_TIME], 1m, 90s) > 1500ms", T),
                ("forecast([RESPONSE_TIME], 1m, 90s) > 2s", F),
                ("forecast([RESPONSE_TIME], 1m, 2m) > 1800", T),
            ],
        );
    }

    #[test]
    fn forecast_without_enough_values() {
        let one = History::from([Observation {
            value: Some(5.0),
            ..Observation::new(secs(0))
        }]);
        values_on(&one, &[("forecast([VALUE], 1m, 10s)", None)]);
        table_on(
            &one,
            &[
                ("forecast([VALUE], 1m, 10s) > 0", F),
                ("forecast([VALUE], 1m, 10s) <= 0", F),
                ("forecast([VALUE], 1m, 10s) != 0", F),
            ],
        );
        let mut history = ten_second_history();
        values_on(
            &history,
            &[
                // At 50s and 60s: 4 and 6, so 2 more each 10s.
                ("forecast([VALUE], 15s, 10s)", Some(8.0)),
                // The result without a value (at 10s) is left out, not read as 0: through
                // (−60s, 1), (−40s, 3), (−30s, 2), (−20s, 5), (−10s, 4), (0s, 6) the slope is
                // 180 / (7000/3) = 27/350 and the line is at 3.5 + 27/350 · 80/3 = 389/70 now.
                ("forecast([VALUE], 1m, 0s)", Some(389.0 / 70.0)),
                // All equal: that value, whatever the horizon.
                ("forecast([STATUS], 15s, 1h)", Some(200.0)),
                ("forecast([CERTIFICATE_EXPIRATION], 1m, 1m)", None),
            ],
        );
        history[5].value = None;
        values_on(&history, &[("forecast([VALUE], 15s, 10s)", None)]);
    }

    #[test]
    fn window_functions_in_conditions() {
        table_on(
            &ten_second_history(),
            &[
                ("p95([RESPONSE_TIME], 5m) > 800ms", F),
                ("p95([RESPONSE_TIME], 5m) > 669ms", T),
                ("p95([RESPONSE_TIME], 5m) > 669", T),
                ("avg([RESPONSE_TIME], 1m) == 400ms", T),
                ("avg([STATUS], 1m) > 200", T),
                ("max([STATUS], 1m) >= 500 && failure_ratio(1m) < 0.5", T),
                (
                    "p95([RESPONSE_TIME], 5m) > 800ms || forecast([RESPONSE_TIME], 10m, 15m) > 2s",
                    T,
                ),
                ("avg([RESPONSE_TIME], 1m) < max([RESPONSE_TIME], 1m)", T),
                ("[BODY].json.x == avg([VALUE], 1m)", F),
            ],
        );
        // An empty history is never a symptom.
        assert!(!parse("failure_ratio(5m) >= 0").eval(&History::new()));
        assert!(!parse("true").eval(&History::new()));
    }

    #[test]
    fn window_is_the_longest_window_read() {
        for (source, window) in [
            ("[STATUS] != 200", None),
            ("[BODY].json.status != 'ok' || matches([BODY], 'x')", None),
            ("p95([RESPONSE_TIME], 5m) > 800ms", Some(300)),
            (
                "p95([RESPONSE_TIME], 5m) > 800ms || forecast([RESPONSE_TIME], 10m, 15m) > 2s",
                Some(600),
            ),
            (
                "failure_ratio(1h) > 0.5 && !(avg([VALUE], 2h) > 1)",
                Some(7200),
            ),
            ("[BODY].json.x == max([VALUE], 3m)", Some(180)),
            ("(max([STATUS], 90s) == 500) == true", Some(90)),
            ("avg([RESPONSE_TIME], 1m30s) > 1s", Some(90)),
        ] {
            assert_eq!(
                parse(source).window(),
                window.map(Duration::from_secs),
                "{source}"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // New errors

    #[test]
    fn function_errors() {
        check_error(
            "lenn([BODY]) > 0",
            "^ unknown function `lenn`; did you mean `len`?",
        );
        check_error(
            "contain([BODY], 'x')",
            "^ unknown function `contain`; did you mean `contains`?",
        );
        check_error(
            "[CONNECTED] && Contains('abc', \"b\")",
            "               ^ unknown function `Contains`; did you mean `contains`?",
        );
        check_error(
            "failure_rate(5m) > 0.5",
            "^ unknown function `failure_rate`; did you mean `failure_ratio`?",
        );
        check_error(
            "predict_linear([VALUE], 1h, 4h) < 0",
            "^ unknown function `predict_linear`; did you mean `forecast`?",
        );
        check_error(
            "min([RESPONSE_TIME], 5m) > 1s",
            "^ unknown function `min`; known functions: contains, matches, len, avg, max, p95, p99, failure_ratio, forecast",
        );
        check_error(
            "foo (1, 2 == 2, (3))",
            "^ unknown function `foo`; known functions: contains, matches, len, avg, max, p95, p99, failure_ratio, forecast",
        );
        // Arity.
        check_error("len() > 0", "^ `len` takes 1 argument, but 0 were given");
        check_error(
            "contains([BODY])",
            "^ `contains` takes 2 arguments, but 1 was given",
        );
        check_error(
            "p95([RESPONSE_TIME]) > 1s",
            "^ `p95` takes 2 arguments, but 1 was given",
        );
        check_error(
            "failure_ratio() > 0.5",
            "^ `failure_ratio` takes 1 argument, but 0 were given",
        );
        check_error(
            "true && forecast([VALUE], 5m) > 1",
            "        ^ `forecast` takes 3 arguments, but 2 were given",
        );
        check_error(
            "avg([VALUE], 5m, 1m) > 1",
            "^ `avg` takes 2 arguments, but 3 were given",
        );
    }

    #[test]
    fn argument_errors() {
        check_error(
            "contains([STATUS], '5')",
            "         ^ argument 1 of `contains` must be a string or a JSON value, but this is a number",
        );
        check_error(
            "contains([BODY], 5)",
            "                 ^ argument 2 of `contains` must be a string or a JSON value, but this is a number",
        );
        check_error(
            "len([CONNECTED]) > 0",
            "    ^ argument 1 of `len` must be a string or a JSON value, but this is a bool",
        );
        check_error(
            "len(5m) > 0",
            "    ^ argument 1 of `len` must be a string or a JSON value, but this is a duration",
        );
        check_error(
            "contains([BODY], [STAUS])",
            "                 ^ unknown placeholder [STAUS]; did you mean [STATUS]?",
        );
        check_error(
            "matches([BODY], [HEADER].X)",
            "                ^ argument 2 of `matches` must be a regular expression written as a string, as in `matches([BODY], 'err(or)?')`",
        );
        check_error(
            "matches([BODY], 'err(or')",
            "                ^ invalid regular expression: unclosed group",
        );
        check_error(
            "matches([BODY], '[z-a]')",
            "                ^ invalid regular expression: invalid character class range, the start must be <= the end",
        );
        check_error(
            "matches('é', 'a{99999999}')",
            "             ^ invalid regular expression: too large once compiled (over 1 MiB); repeat less, or use ASCII classes such as (?-u:\\w) instead of \\w",
        );
        // Found by fuzzing: 17 characters that took 0.8 s to compile, and 0.3 s per 64 KiB
        // body searched, within the crate's default limit.
        check_error(
            "matches([BODY], '[\\\\p{L}\\\\p{N}]{200}')",
            "                ^ invalid regular expression: too large once compiled (over 1 MiB); repeat less, or use ASCII classes such as (?-u:\\w) instead of \\w",
        );
        let series = "[STATUS], [RESPONSE_TIME], [CERTIFICATE_EXPIRATION] or [VALUE]";
        check_error(
            "avg([BODY], 5m) > 1",
            &format!(
                "    ^ argument 1 of `avg` must be a placeholder read from each result in the window: {series}"
            ),
        );
        check_error(
            "max(len([BODY]), 5m) > 1",
            &format!(
                "    ^ argument 1 of `max` must be a placeholder read from each result in the window: {series}"
            ),
        );
        check_error(
            "p99(800ms, 5m) > 1s",
            &format!(
                "    ^ argument 1 of `p99` must be a placeholder read from each result in the window: {series}"
            ),
        );
        check_error(
            "forecast(avg([VALUE], 5m), 5m, 1h) > 1",
            &format!(
                "         ^ argument 1 of `forecast` must be a placeholder read from each result in the window: {series}"
            ),
        );
        check_error(
            "avg([STAUS], 5m) > 1",
            "    ^ unknown placeholder [STAUS]; did you mean [STATUS]?",
        );
        check_error(
            "avg([RESPONSE_TIME], 300) > 1s",
            "                     ^ argument 2 of `avg` must be a duration written out, such as 5m",
        );
        check_error(
            "p95([RESPONSE_TIME], [RESPONSE_TIME]) > 1s",
            "                     ^ argument 2 of `p95` must be a duration written out, such as 5m",
        );
        check_error(
            "failure_ratio([RESPONSE_TIME]) > 0.1",
            "              ^ argument 1 of `failure_ratio` must be a duration written out, such as 5m",
        );
        check_error(
            "avg([RESPONSE_TIME], 0s) > 1s",
            "                     ^ argument 2 of `avg` must be a window longer than 0s",
        );
        check_error(
            "forecast([VALUE], 1h, 4) < 0",
            "                      ^ argument 3 of `forecast` must be a duration written out, such as 15m",
        );
        check_error(
            "forecast([VALUE], 1h, 1.5h) < 0",
            "                      ^ invalid duration `1.5h`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
        );
    }

    #[test]
    fn function_result_types() {
        check_error(
            "p95([STATUS], 5m) > 800ms",
            "                  ^ cannot compare number with duration; only a number written out, like 500, counts as milliseconds",
        );
        check_error(
            "failure_ratio(5m) > 1s",
            "                  ^ cannot compare number with duration; only a number written out, like 500, counts as milliseconds",
        );
        check_error(
            "avg([RESPONSE_TIME], 5m) < [STATUS]",
            "                         ^ cannot compare duration with number; only a number written out, like 500, counts as milliseconds",
        );
        check_error(
            "p95([RESPONSE_TIME], 5m)",
            "^ condition must be true or false, but this is a duration",
        );
        check_error(
            "len([BODY])",
            "^ condition must be true or false, but this is a number",
        );
        check_error(
            "contains('a', 'b') == 1",
            "                   ^ cannot compare bool with number",
        );
        check_error(
            "len([BODY]) == '3'",
            "            ^ cannot compare number with string",
        );
        check_error(
            "!len([BODY])",
            " ^ `!` needs true or false, but this is a number; to negate a comparison, write `!(a == b)`",
        );
    }

    #[test]
    fn path_errors() {
        check_error(
            "[BODY].json.items[x] == 1",
            "                 ^ expected an array index such as `[0]`, found `[x]`",
        );
        check_error(
            "[BODY].json.items[] == 1",
            "                 ^ expected an array index such as `[0]`, found `[]`",
        );
        check_error(
            "[BODY].json.items[-1] == 1",
            "                 ^ expected an array index such as `[0]`, found `[-1]`",
        );
        check_error(
            "[BODY].json.items[0 == 1",
            "                 ^ unterminated index `[0`; expected `]`",
        );
        check_error(
            "[BODY].json.items[99999999999999999999999] == 1",
            "                  ^ array index is too large",
        );
        check_error(
            "[BODY].json.a..b == 1",
            "              ^ expected a field name after `.`",
        );
        check_error(
            "[BODY].json. == 1",
            "            ^ expected a field name after `.`",
        );
        check_error("[BODY]..a == 1", "       ^ expected a field name after `.`");
        check_error(
            "[BODY].json.items[0]name == 'a'",
            "                    ^ expected `.` or `[` after `]`, found `n`",
        );
        check_error(
            "[HEADER] == 'x'",
            "^ placeholder [HEADER] needs a header name, as in [HEADER].Content-Type",
        );
        check_error(
            "[HEADER].Content/Type == 'x'",
            "                ^ unexpected `/` in a header name",
        );
        check_error(
            "[HEADER].Ü == 'x'",
            "         ^ unexpected `Ü` in a header name",
        );
        check_error(
            "[VALUE].x > 1",
            "       ^ placeholder [VALUE] has no fields, so `.x` cannot follow it",
        );
        check_error(
            "[DNS_RCODE].name == 'x'",
            "           ^ placeholder [DNS_RCODE] has no fields, so `.name` cannot follow it",
        );
    }

    #[test]
    fn json_type_errors() {
        check_error(
            "[BODY].json.status > 'a'",
            "                   ^ `>` needs numbers or durations, but the right side is a string",
        );
        check_error(
            "true <= [BODY].json.ok",
            "     ^ `<=` needs numbers or durations, but the left side is a bool",
        );
        check_error(
            "[BODY].json.latency > 5s",
            "                    ^ cannot compare JSON value with duration; a JSON number has no unit",
        );
        check_error(
            "[RESPONSE_TIME] == [BODY].json.latency",
            "                ^ cannot compare duration with JSON value; a JSON number has no unit",
        );
        check_error(
            "[BODY].json.ok",
            "^ condition must be true or false, but this is a JSON value",
        );
        check_error(
            "[BODY].json.ok && true",
            "^ `&&` needs true or false on each side, but this is a JSON value",
        );
        check_error(
            "[BODY] > 'a'",
            "       ^ `>` needs numbers or durations, but both sides are strings",
        );
        check_error("[BODY] == 1", "       ^ cannot compare string with number");
    }

    #[test]
    fn more_placeholder_suggestions() {
        check_error(
            "[Value] > 1",
            "^ unknown placeholder [Value]; did you mean [VALUE]?",
        );
        check_error(
            "[DNS_CODE] == 'NOERROR'",
            "^ unknown placeholder [DNS_CODE]; did you mean [DNS_RCODE]?",
        );
        check_error(
            "[HEADERS].Server == 'x'",
            "^ unknown placeholder [HEADERS]; did you mean [HEADER]?",
        );
        check_error(
            "[CERTIFICATE_EXPIRATON] < 14d",
            "^ unknown placeholder [CERTIFICATE_EXPIRATON]; did you mean [CERTIFICATE_EXPIRATION]?",
        );
        check_error(
            "value > 1",
            "^ unexpected `value`; placeholders are written in brackets: did you mean [VALUE]?",
        );
    }
}
