//! The `when` condition language of rules, e.g. `[STATUS] != 200 || [RESPONSE_TIME] > 800ms`;
//! true means the symptom is present.
//!
//! This module owns the whole path from the text in a rule file to a yes/no answer about one
//! [`Observation`]: tokenizer → parser (untyped tree) → type checker, which compiles to a
//! small typed tree → evaluator. Every mistake is found by [`Condition::parse`] and reported
//! with the character offset of the offending token, so the config loader can point at it.
//! Evaluation cannot fail, does not allocate and short-circuits `&&` and `||`: it runs once
//! per rule per probe result, so it has to stay cheap.
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
//! ```
//!
//! `NUMBER` is `200` or `0.5`; `DURATION` is a number immediately followed by a unit, read
//! by [`parse_duration`] (`800ms`, `1h30m`); `STRING` is quoted with `'` or `"` and knows the
//! escapes `\"`, `\'` and `\\`; `PLACEHOLDER` is `[NAME]`, optionally followed by a field
//! path (`[BODY].json.status`, `[HEADER].Content-Type`) for the placeholders that will
//! take one.
//!
//! Types are bool, number, duration and string. `==` and `!=` need the same type on both
//! sides, ordering needs numbers or durations, `&&` `||` `!` need bools, and the whole
//! condition must be a bool. For Gatus compatibility a number written out and compared with a
//! duration counts as milliseconds (`[RESPONSE_TIME] > 500` is `> 500ms`).
//!
//! Extending the language is local to this file: a placeholder is one row in `PLACEHOLDERS`
//! (plus, for a new kind of value such as strings read from the observation, one `Access`
//! variant and one typed-tree variant); a function is one row in `FUNCTIONS` with its
//! signature and how to compile a call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::duration::parse_duration;
use crate::domain::observation::{History, Observation};

// ---------------------------------------------------------------------------------------------
// Public API

/// A parsed, type-checked condition. Cheap to clone; evaluation never allocates.
#[derive(Debug, Clone)]
pub struct Condition {
    source: Arc<str>,
    expr: Arc<BoolExpr>,
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
            expr: Arc::new(expr),
        })
    }

    /// Whether the symptom is present in the newest result of `history` (the last
    /// element); window functions read the older ones. False for an empty history.
    pub fn eval(&self, history: &History) -> bool {
        history.back().is_some_and(|obs| self.expr.eval(obs))
    }

    /// The longest window the condition reads, if it reads any: how much history the
    /// caller must keep for it.
    pub fn window(&self) -> Option<std::time::Duration> {
        None
    }

    /// The text the condition was parsed from, as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

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
/// without any conversion at evaluation time.
#[derive(Clone, Copy)]
enum Access {
    Bool(fn(&Observation) -> bool),
    Number(fn(&Observation) -> f64),
    Duration(fn(&Observation) -> f64),
    /// Reserved: known to the language (so it is not "unknown" nor suggested away) but not
    /// measured by the probes yet.
    NotYet,
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
        access: Access::NotYet,
    },
    Placeholder {
        name: "HEADER",
        access: Access::NotYet,
    },
    Placeholder {
        name: "CERTIFICATE_EXPIRATION",
        access: Access::NotYet,
    },
    Placeholder {
        name: "DNS_RCODE",
        access: Access::NotYet,
    },
    Placeholder {
        name: "VALUE",
        access: Access::NotYet,
    },
];

/// A function of the language: its signature, checked before `compile` is called, and how
/// a call compiles into the typed tree.
struct Function {
    name: &'static str,
    params: &'static [Type],
    result: Type,
    /// Receives the arguments already checked against `params`; returns a value of type
    /// `result`.
    compile: fn(Vec<Typed>) -> Typed,
}

/// Empty in this iteration, so every call is "unknown function `name`"; the parser already
/// accepts calls so that rules written for the next iteration fail with that message.
const FUNCTIONS: &[Function] = &[];

/// Milliseconds as f64, exact for whole milliseconds (both terms are exact and so is
/// their sum), so `[RESPONSE_TIME] == 800ms` holds for exactly 800ms.
fn millis(duration: Duration) -> f64 {
    duration.as_secs() as f64 * 1000.0 + f64::from(duration.subsec_nanos()) / 1_000_000.0
}

// ---------------------------------------------------------------------------------------------
// Types and the compiled (typed) tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Bool,
    Number,
    Duration,
    Str,
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

    fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CmpOp::Eq => lhs == rhs,
            CmpOp::Ne => lhs != rhs,
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
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
}

#[derive(Debug, Clone)]
enum NumExpr {
    Const(f64),
    Read(Reader<f64>),
}

#[derive(Debug, Clone)]
enum StrExpr {
    Const(Box<str>),
}

impl BoolExpr {
    fn eval(&self, obs: &Observation) -> bool {
        match self {
            BoolExpr::Const(value) => *value,
            BoolExpr::Read(reader) => (reader.read)(obs),
            BoolExpr::Not(operand) => !operand.eval(obs),
            BoolExpr::All(operands) => operands.iter().all(|e| e.eval(obs)),
            BoolExpr::Any(operands) => operands.iter().any(|e| e.eval(obs)),
            BoolExpr::Num { op, lhs, rhs } => op.holds(lhs.eval(obs), rhs.eval(obs)),
            BoolExpr::BoolEq { equal, lhs, rhs } => (lhs.eval(obs) == rhs.eval(obs)) == *equal,
            BoolExpr::StrEq { equal, lhs, rhs } => (lhs.eval() == rhs.eval()) == *equal,
        }
    }
}

impl NumExpr {
    fn eval(&self, obs: &Observation) -> f64 {
        match self {
            NumExpr::Const(value) => *value,
            NumExpr::Read(reader) => (reader.read)(obs),
        }
    }
}

impl StrExpr {
    fn eval(&self) -> &str {
        match self {
            StrExpr::Const(value) => value,
        }
    }
}

/// A checked sub-expression: its compiled form, tagged with its type.
enum Typed {
    Bool(BoolExpr),
    Number(NumExpr),
    /// In milliseconds.
    Duration(NumExpr),
    Str(StrExpr),
}

impl Typed {
    fn ty(&self) -> Type {
        match self {
            Typed::Bool(_) => Type::Bool,
            Typed::Number(_) => Type::Number,
            Typed::Duration(_) => Type::Duration,
            Typed::Str(_) => Type::Str,
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

fn placeholder(
    at: usize,
    name: &str,
    path: Option<(usize, String)>,
) -> Result<Typed, ConditionError> {
    let Some(placeholder) = PLACEHOLDERS.iter().find(|p| p.name == name) else {
        return Err(ConditionError::new(at, unknown_placeholder_message(name)));
    };
    let name = placeholder.name;
    let typed = match placeholder.access {
        Access::Bool(read) => Typed::Bool(BoolExpr::Read(Reader { name, read })),
        Access::Number(read) => Typed::Number(NumExpr::Read(Reader { name, read })),
        Access::Duration(read) => Typed::Duration(NumExpr::Read(Reader { name, read })),
        Access::NotYet => {
            return Err(ConditionError::new(
                at,
                format!("placeholder [{name}] is not supported yet"),
            ));
        }
    };
    if let Some((dot, field)) = path {
        return Err(ConditionError::new(
            dot,
            format!("placeholder [{name}] has no fields, so `.{field}` cannot follow it"),
        ));
    }
    Ok(typed)
}

fn call(at: usize, name: &str, args: Vec<Node>) -> Result<Typed, ConditionError> {
    let Some(function) = FUNCTIONS.iter().find(|f| f.name == name) else {
        return Err(ConditionError::new(
            at,
            format!("unknown function `{name}`"),
        ));
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
    let mut typed_args = Vec::with_capacity(args.len());
    for (index, (arg, &param)) in args.into_iter().zip(function.params).enumerate() {
        let arg_at = arg.at;
        let typed = check(arg)?;
        if typed.ty() != param {
            return Err(ConditionError::new(
                arg_at,
                format!(
                    "argument {} of `{name}` must be {}, but this is {}",
                    index + 1,
                    param.with_article(),
                    typed.ty().with_article()
                ),
            ));
        }
        typed_args.push(typed);
    }
    let result = (function.compile)(typed_args);
    debug_assert_eq!(
        result.ty(),
        function.result,
        "`{name}` compiled to the wrong type"
    );
    Ok(result)
}

fn known_placeholders() -> String {
    PLACEHOLDERS
        .iter()
        .filter(|p| !matches!(p.access, Access::NotYet))
        .map(|p| format!("[{}]", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_placeholder_message(name: &str) -> String {
    // Case-insensitive distance so `[status]` suggests `[STATUS]`; reserved placeholders are
    // candidates too, so `[BODDY]` leads to `[BODY]` and its "not supported yet".
    let typed: Vec<char> = name.to_lowercase().chars().collect();
    let closest = PLACEHOLDERS
        .iter()
        .map(|p| {
            let candidate: Vec<char> = p.name.to_lowercase().chars().collect();
            (edit_distance(&typed, &candidate), p.name)
        })
        .filter(|&(distance, candidate)| distance <= if candidate.len() >= 5 { 2 } else { 1 })
        .min_by_key(|&(distance, _)| distance);
    match closest {
        Some((_, suggestion)) => {
            format!("unknown placeholder [{name}]; did you mean [{suggestion}]?")
        }
        None => format!(
            "unknown placeholder [{name}]; known placeholders: {}",
            known_placeholders()
        ),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
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
            "^ unknown placeholder [FOO]; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED]",
        );
        // Short names need a closer match: two edits from [BODY] is not a typo of it.
        check_error(
            "[CODE] == 1",
            "^ unknown placeholder [CODE]; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED]",
        );
        check_error(
            "[BODDY] == 'x'",
            "^ unknown placeholder [BODDY]; did you mean [BODY]?",
        );
        check_error(
            "[] == 1",
            "^ empty placeholder `[]`; known placeholders: [STATUS], [RESPONSE_TIME], [CONNECTED]",
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
    fn reserved_placeholders_are_not_supported_yet() {
        check_error(
            "[BODY] == 'ok'",
            "^ placeholder [BODY] is not supported yet",
        );
        check_error(
            "[BODY].data[0].status == 'UP'",
            "^ placeholder [BODY] is not supported yet",
        );
        check_error(
            "[HEADER].Content-Type == 'text/html'",
            "^ placeholder [HEADER] is not supported yet",
        );
        check_error(
            "[CERTIFICATE_EXPIRATION] < 48h",
            "^ placeholder [CERTIFICATE_EXPIRATION] is not supported yet",
        );
        check_error(
            "[DNS_RCODE] != 'NOERROR'",
            "^ placeholder [DNS_RCODE] is not supported yet",
        );
        check_error(
            "true && [VALUE] > 1",
            "        ^ placeholder [VALUE] is not supported yet",
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
    fn functions_parse_but_none_exists_yet() {
        check_error("len([BODY]) > 0", "^ unknown function `len`");
        check_error(
            "[CONNECTED] && contains('abc', \"b\")",
            "               ^ unknown function `contains`",
        );
        check_error("p95([RESPONSE_TIME]) > 1s", "^ unknown function `p95`");
        check_error(
            "failure_ratio() > 0.5",
            "^ unknown function `failure_ratio`",
        );
        check_error("foo (1, 2 == 2, (3))", "^ unknown function `foo`");
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
    }
}
