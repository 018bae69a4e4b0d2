//! One YAML file and the problems found in it: [`Document`] (a file's path and text, and
//! where its nodes are) and [`Check`] (problems pushed as [`Diagnostic`]s while a file's
//! values are converted to strict types, each at its node's `FILE:LINE:COL`).
//!
//! The loaders of every file kind (`incidentd.yaml`, rule files, the `sla` section, rule
//! unit-test files) build on this module; it imports none of them.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::limits;
use super::locate::{Position, Segment, Segment::Key, Source, YamlError};
use super::{ConfigErrors, Diagnostic};
use crate::domain::duration::parse_duration;

/// One YAML file: its path as diagnostics show it, and its text.
pub(super) struct Document {
    pub(super) file: PathBuf,
    pub(super) source: Source,
}

impl Document {
    pub(super) fn diagnostic(&self, at: Position, message: String) -> Diagnostic {
        // libyaml puts the end of a text without a final line break on a line after it:
        // a problem there is shown at the end of the last line.
        let end = end_of(self.source.text());
        let at = if at.line > end.line { end } else { at };
        // libyaml counts a byte-order mark as a column; editors do not show one.
        let bom = at.line == 1 && at.column > 1 && self.source.text().starts_with('\u{feff}');
        Diagnostic {
            file: self.file.clone(),
            line: at.line,
            column: at.column - usize::from(bom),
            message: limits::excerpt(message),
        }
    }

    /// Where the node at `path` starts, or its nearest ancestor that exists.
    pub(super) fn node(&self, path: &[Segment<'_>]) -> Position {
        (0..=path.len())
            .rev()
            .find_map(|len| self.source.node_position(&path[..len]))
            .unwrap_or(Position::START)
    }

    /// `FILE:LINE:COL` of the node at `path`, for "first defined at".
    pub(super) fn place(&self, path: &[Segment<'_>]) -> String {
        let at = self.node(path);
        format!("{}:{}:{}", self.file.display(), at.line, at.column)
    }

    pub(super) fn yaml_error(&self, err: YamlError, fallback: &[Segment<'_>]) -> Diagnostic {
        let at = err.position.unwrap_or_else(|| self.node(fallback));
        self.diagnostic(at, err.message)
    }
}

/// Where `text` ends: its last line, as libyaml counts lines (after `\n`, `\r`, `\r\n`,
/// NEL, LS and PS), and the column after its last character.
fn end_of(text: &str) -> Position {
    let mut end = Position::START;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let line_break = match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                true
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => true,
            _ => false,
        };
        end = if line_break {
            Position {
                line: end.line + 1,
                column: 1,
            }
        } else {
            Position {
                line: end.line,
                column: end.column + 1,
            }
        };
    }
    end
}

/// Reads a file; a file that cannot be read, or that is too deeply nested or expands too
/// much to be parsed ([`limits`]), is one diagnostic and no document.
pub(super) fn read(file: PathBuf, diagnostics: &mut Vec<Diagnostic>) -> Option<Document> {
    let text = match limits::read_text(&file) {
        Ok(text) => text,
        Err(err) => {
            diagnostics.push(Diagnostic {
                file,
                line: 1,
                column: 1,
                message: limits::excerpt(format!("cannot read file: {err}")),
            });
            return None;
        }
    };
    document(file, text, diagnostics)
}

/// [`read`] of a text already in memory (shown as `file`): refused, as one diagnostic, when
/// it is too deeply nested or expands too much to be parsed.
pub(super) fn document(
    file: PathBuf,
    text: String,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let scan = limits::scan(&text);
    let refusal = scan
        .too_deep
        .or_else(|| scan.may_alias.then(|| limits::expansion(&text)).flatten());
    let doc = Document {
        file,
        source: Source::new(text),
    };
    match refusal {
        Some(refusal) => {
            diagnostics.push(doc.diagnostic(refusal.at, refusal.message));
            None
        }
        None => Some(doc),
    }
}

/// Problems found in one document.
pub(super) struct Check<'a> {
    pub(super) doc: &'a Document,
    pub(super) out: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    /// A problem with the value at `path`.
    pub(super) fn at(&mut self, path: &[Segment<'_>], message: String) {
        let at = self.doc.node(path);
        self.out.push(self.doc.diagnostic(at, message));
    }

    /// A problem with the key that ends `path`.
    pub(super) fn at_key(&mut self, path: &[Segment<'_>], message: String) {
        let at = self
            .doc
            .source
            .key_position(path)
            .unwrap_or_else(|| self.doc.node(path));
        self.out.push(self.doc.diagnostic(at, message));
    }

    pub(super) fn count(&self) -> usize {
        self.out.len()
    }

    /// The outline of the whole file; an empty file is an empty outline.
    pub(super) fn outline<T: DeserializeOwned + Default>(&mut self) -> Option<T> {
        self.outline_of(self.doc.source.text())
    }

    /// [`Check::outline`] of `text`, a text at the same lines and columns as the file's (such as
    /// a [`Split`](super::locate::Split)'s skeleton).
    pub(super) fn outline_of<T: DeserializeOwned + Default>(&mut self, text: &str) -> Option<T> {
        match serde_yaml::from_str(text) {
            Ok(outline) => Some(outline),
            Err(_) if serde_yaml::Deserializer::from_str(text).next().is_none() => {
                Some(T::default())
            }
            Err(err) => {
                self.out
                    .push(self.doc.yaml_error(YamlError::from(&err), &[]));
                None
            }
        }
    }

    /// `value` (the node at `path`) as the strict type `T`. Fast path: from the value. Only
    /// when that fails, the node is deserialized again from the text, which either gives the
    /// error its position or succeeds (the text is more lenient: `30` reads as a string).
    pub(super) fn strict<T: DeserializeOwned>(
        &mut self,
        value: Value,
        path: &[Segment<'_>],
    ) -> Option<T> {
        let fast = match serde_yaml::from_value(value) {
            Ok(item) => return Some(item),
            Err(err) => YamlError::from(&err),
        };
        match self.doc.source.deserialize_at(path) {
            Ok(Some(item)) => Some(item),
            Ok(None) => {
                self.at(path, fast.message);
                None
            }
            Err(err) => {
                self.out.push(self.doc.yaml_error(err, path));
                None
            }
        }
    }

    /// The value of `key` in the mapping at `at` (its `value` in the outline), as the strict
    /// type `T`. `None` when it is absent, or wrong: then with a diagnostic.
    pub(super) fn field<T: DeserializeOwned>(
        &mut self,
        at: &[Segment<'_>],
        key: &str,
        value: Option<Value>,
    ) -> Option<T> {
        let path = [at, &[Key(key)]].concat();
        self.strict(value?, &path)
    }

    /// [`Check::field`] for a key that must be there (with serde's message when it is not).
    pub(super) fn required<T: DeserializeOwned>(
        &mut self,
        at: &[Segment<'_>],
        key: &str,
        value: Option<Value>,
    ) -> Option<T> {
        if value.is_none() {
            self.at(at, format!("missing field `{key}`"));
        }
        self.field(at, key, value)
    }

    /// A duration field; `None` (with a diagnostic) when it does not parse.
    pub(super) fn duration(
        &mut self,
        path: &[Segment<'_>],
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        parse_duration(text)
            .map_err(|message| self.at(path, message))
            .ok()
    }
}

/// Every problem, in file, line and column order.
pub(super) fn sorted(mut diagnostics: Vec<Diagnostic>) -> ConfigErrors {
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    ConfigErrors(diagnostics)
}

/// Where the secrets `incidentd.yaml` names come from.
#[derive(Clone, Copy)]
pub(super) enum Secrets<'a> {
    /// Each environment variable is read, and must be set (`serve`, `check`).
    From(&'a dyn Fn(&str) -> Option<String>),
    /// None is read: tokens and webhooks are checked but left out (`incidentd test`).
    Unread,
}

/// Prometheus label names, without the reserved `__` prefix.
pub(super) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: &str) {
        let mut out = Vec::new();
        let doc = document(PathBuf::from("f.yaml"), text.to_owned(), &mut out).expect("parsed");
        Check {
            doc: &doc,
            out: &mut out,
        }
        .outline::<Value>();
        let got: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(got, [expected], "{text:?}");
    }

    /// Found by fuzzing: an unclosed flow collection in a text without a final line break
    /// was reported on the line after the last one (`f.yaml:2:1` for a one-line file).
    #[test]
    fn a_problem_at_the_end_of_the_text_is_on_its_last_line() {
        let unclosed =
            "did not find expected ',' or '}', while parsing a flow mapping at line 1 column 10";
        check("storage: {a", &format!("f.yaml:1:12: {unclosed}"));
        check("storage: {a\r", &format!("f.yaml:2:1: {unclosed}"));
        check("storage: {a\n", &format!("f.yaml:2:1: {unclosed}"));
        // libyaml's own message counts the byte-order mark as a column.
        check(
            "\u{feff}storage: {a",
            &format!(
                "f.yaml:1:12: {}",
                unclosed.replace("column 10", "column 11")
            ),
        );
    }
}
