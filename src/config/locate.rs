//! Positions in the original YAML text, with serde_yaml as the only parser.
//!
//! serde_yaml 0.9 attaches a [`serde_yaml::Location`] to an error raised while a node is being
//! deserialized, including a custom error raised by a `Visitor` at that node. [`Source`] uses
//! that to answer questions about a path (`probes[3].http`) in a document:
//!
//! * "what does the node there deserialize to as `T`?" ([`Source::deserialize_at`]): the
//!   strict types' errors then carry positions in the original file;
//! * "where is the node (or its key)?" ([`Source::node_position`], [`Source::key_position`]):
//!   a visitor at the node answers every `visit_*` with a marker error, whose location is the
//!   node's.
//!
//! Each question parses text again, so callers ask only about nodes known to be wrong. To keep
//! that cheap in a large file, a question about an item of a block list (`- ...` lines) is
//! asked of that item's lines alone, once they are known to hold exactly that item.
//!
//! serde_yaml parses a document whole: every event of it, then every node of a [`Value`], is in
//! memory at once (about 30 times the text). [`Source::split_lists`] cuts the top-level block
//! lists of a large file into their items by looking at the text's lines, so that each item is
//! parsed on its own, and what is left of the document (its *skeleton*) too.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, Visitor};
use serde_yaml::Value;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// The value under this key of a mapping.
    Key(&'a str),
    /// This element (0-based) of a sequence.
    Index(usize),
}

/// A place in a file: 1-based line and 1-based column, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The start of the file, for problems that have no better place.
    pub const START: Position = Position { line: 1, column: 1 };

    fn below(self, lines: usize) -> Position {
        Position {
            line: self.line + lines,
            column: self.column,
        }
    }
}

/// A problem serde_yaml found, positioned in the whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub position: Option<Position>,
    /// Without the position or the path serde_yaml puts in its own message.
    pub message: String,
}

impl From<&serde_yaml::Error> for YamlError {
    fn from(err: &serde_yaml::Error) -> YamlError {
        YamlError {
            position: error_position(err),
            message: error_message(err),
        }
    }
}

/// A YAML document's text, and what has been learnt about where its list items are.
pub(crate) struct Source {
    text: String,
    /// Byte offset of the start of each line.
    line_starts: OnceCell<Vec<usize>>,
    /// The whole document, parsed once when an item's lines need checking.
    value: OnceCell<Option<Value>>,
    /// Per list (its keys joined), the lines of each block item; `None`: not a block list.
    items: RefCell<HashMap<String, Option<Vec<ItemLines>>>>,
    /// Per top-level list [`Source::split_lists`] cut, the lines of each item, known to hold
    /// exactly that item once the caller has parsed each of them.
    split: RefCell<HashMap<&'static str, Vec<ItemLines>>>,
}

/// A document cut at the items of some of its top-level block lists, without parsing it.
pub(crate) struct Split {
    /// The text with the lines of those lists' items emptied, their line breaks kept: the rest
    /// of the document at the same lines and columns. Each of those lists is an empty
    /// (null) value in it.
    pub(crate) skeleton: String,
    /// Per list, in the order asked: its key and the lines of each of its items.
    pub(crate) lists: Vec<(&'static str, Vec<Range<usize>>)>,
}

/// The message of the marker error. It cannot come from a YAML document: it holds a NUL.
const MARKER: &str = "\u{0}incidentd-locate-marker";

/// The lines holding one item of a block list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ItemLines {
    /// How many lines come before them.
    first_line: usize,
    bytes: Range<usize>,
}

/// Where a question is asked: in the item's lines (and how far down they are), or in the
/// whole text.
struct Scope<'s, 'p> {
    text: &'s str,
    path: Vec<Segment<'p>>,
    lines_before: usize,
}

impl Source {
    pub(crate) fn new(text: String) -> Source {
        Source {
            text,
            line_starts: OnceCell::new(),
            value: OnceCell::new(),
            items: RefCell::new(HashMap::new()),
            split: RefCell::new(HashMap::new()),
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the node at `path` as `T`. `Ok(None)` when there is no such node.
    pub(crate) fn deserialize_at<T: DeserializeOwned>(
        &self,
        path: &[Segment<'_>],
    ) -> Result<Option<T>, YamlError> {
        let scope = self.scope(path);
        deserialize_in(scope.text, &scope.path).map_err(|err| {
            let mut err = YamlError::from(&err);
            err.position = err.position.map(|at| at.below(scope.lines_before));
            err
        })
    }

    /// Where the node at `path` starts: the first character of a scalar (its opening quote
    /// when quoted, its `|` or `>` when a block scalar), `-` of a block sequence, the first key
    /// of a block mapping, `[` or `{` of a flow collection. `None` when there is no such node.
    pub(crate) fn node_position(&self, path: &[Segment<'_>]) -> Option<Position> {
        let scope = self.scope(path);
        node_position_in(scope.text, &scope.path).map(|at| at.below(scope.lines_before))
    }

    /// Where the key of the entry at `path` starts; the last segment must be a
    /// [`Segment::Key`].
    pub(crate) fn key_position(&self, path: &[Segment<'_>]) -> Option<Position> {
        let scope = self.scope(path);
        key_position_in(scope.text, &scope.path).map(|at| at.below(scope.lines_before))
    }

    /// The item's lines when `path` goes through an item of a block list, else the whole text.
    fn scope<'p>(&self, path: &[Segment<'p>]) -> Scope<'_, 'p> {
        self.item_scope(path).unwrap_or_else(|| Scope {
            text: &self.text,
            path: path.to_vec(),
            lines_before: 0,
        })
    }

    fn item_scope<'p>(&self, path: &[Segment<'p>]) -> Option<Scope<'_, 'p>> {
        let split = path.iter().position(|s| matches!(s, Segment::Index(_)))?;
        let (list, rest) = path.split_at(split);
        let (Segment::Index(index), rest) = rest.split_first()? else {
            return None;
        };
        let mut inner = vec![Segment::Index(0)];
        inner.extend_from_slice(rest);
        if let [Segment::Key(key)] = list
            && let Some(item) = self
                .split
                .borrow()
                .get(key)
                .and_then(|items| items.get(*index))
        {
            return Some(Scope {
                text: self.text.get(item.bytes.clone())?,
                path: inner,
                lines_before: item.first_line,
            });
        }
        let item = self.item_lines(list)?.get(*index)?.clone();
        let text = self.text.get(item.bytes)?;
        // The lines must hold exactly this item (a quoted scalar's continuation line can look
        // like the start of an item, an alias can point outside): else, the whole text.
        let expected = self.item_value(list, *index)?;
        match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Sequence(items)) if items.len() == 1 && items[0] == *expected => {}
            _ => return None,
        }
        Some(Scope {
            text,
            path: inner,
            lines_before: item.first_line,
        })
    }

    /// The lines of each item of the block list at `list` (keys only), found once.
    fn item_lines(&self, list: &[Segment<'_>]) -> Option<Vec<ItemLines>> {
        let key = list
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => *key,
                Segment::Index(_) => "",
            })
            .collect::<Vec<_>>()
            .join("\u{0}");
        if let Some(known) = self.items.borrow().get(&key) {
            return known.clone();
        }
        let found = match node_position_in(&self.text, list) {
            Some(start) if !self.other_line_breaks() => block_items(&self.text, start),
            _ => None,
        };
        // As many items as the list has, or a line was taken for an item start that is not one
        // (e.g. a quoted scalar's continuation) and the numbering is off.
        let found = found.filter(|items| Some(items.len()) == self.list_len(list));
        self.items.borrow_mut().insert(key, found.clone());
        found
    }

    /// Lines are counted at `\n` only here, so other line breaks YAML knows (a lone `\r`, NEL,
    /// LS, PS) would shift every line after them: no item lines then.
    fn other_line_breaks(&self) -> bool {
        let text = &self.text;
        text.contains(['\u{85}', '\u{2028}', '\u{2029}'])
            || text
                .match_indices('\r')
                .any(|(at, _)| text.as_bytes().get(at + 1) != Some(&b'\n'))
    }

    /// Cuts the top-level block lists under `keys` into their items, looking at lines only: a
    /// list is cut when its key starts a line (`probes:`, nothing after it but a comment), the
    /// key is there once, and its items are block items (`- ...`) on the lines below.
    ///
    /// A cut can be wrong only where a line that looks like an item starts inside a quoted
    /// scalar or a flow collection (a block scalar ends at a line that is not indented more
    /// than its item); then that construct is unterminated in the item's lines or in the
    /// skeleton, and that part does not parse. An alias to an anchor in another item does not
    /// parse either. So the cut holds exactly when the
    /// skeleton parses with a null under each key (checked here) and each item's lines parse
    /// as one item ([`Source::split_item`], which the caller asks of each item). Until the
    /// caller has done that, or when it gives up ([`Source::forget_split`]), the items' lines
    /// answer questions about their items.
    ///
    /// `None`: no list to cut, or the cut does not hold.
    pub(crate) fn split_lists(&self, keys: &[&'static str]) -> Option<Split> {
        if self.other_line_breaks() {
            return None;
        }
        let text = &self.text;
        let mut lists = Vec::new();
        for &key in keys {
            let mut found = text
                .split_inclusive('\n')
                .enumerate()
                .filter(|(index, line)| is_key_line(line, key, *index == 0));
            let Some((key_line, _)) = found.next() else {
                continue;
            };
            if found.next().is_some() {
                return None;
            }
            let Some(start) = first_item(text, key_line) else {
                continue;
            };
            lists.push((key, block_items(text, start)?));
        }
        if lists.is_empty() {
            return None;
        }
        // Every item is whole lines: each becomes as many empty lines.
        let mut cuts: Vec<&Range<usize>> = lists
            .iter()
            .flat_map(|(_, items)| items.iter().map(|item| &item.bytes))
            .collect();
        cuts.sort_by_key(|cut| cut.start);
        let mut skeleton = String::new();
        let mut kept = 0;
        for cut in cuts {
            skeleton.push_str(text.get(kept..cut.start)?);
            let breaks = text.get(cut.clone())?.matches('\n').count();
            skeleton.extend(std::iter::repeat_n('\n', breaks));
            kept = cut.end;
        }
        skeleton.push_str(text.get(kept..)?);
        let outline: Value = serde_yaml::from_str(&skeleton).ok()?;
        if !lists
            .iter()
            .all(|(key, _)| matches!(outline.get(*key), Some(Value::Null)))
        {
            return None;
        }
        drop(outline);
        let mut split = self.split.borrow_mut();
        split.clear();
        for (key, items) in &lists {
            split.insert(key, items.clone());
        }
        Some(Split {
            skeleton,
            lists: lists
                .into_iter()
                .map(|(key, items)| (key, items.into_iter().map(|item| item.bytes).collect()))
                .collect(),
        })
    }

    /// The one item an item's lines from [`Split::lists`] hold, parsed. `None` when they do
    /// not parse as exactly one item: the cut does not hold.
    pub(crate) fn split_item(&self, lines: &Range<usize>) -> Option<Value> {
        let text = self.text.get(lines.clone())?;
        match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Sequence(mut items)) if items.len() == 1 => items.pop(),
            _ => None,
        }
    }

    /// Forgets the items' lines of [`Source::split_lists`]: questions go to the whole text, as
    /// before the cut.
    pub(crate) fn forget_split(&self) {
        self.split.borrow_mut().clear();
    }

    /// The list at `list` (keys only) in the whole document, parsed once.
    fn list_value(&self, list: &[Segment<'_>]) -> Option<&Vec<Value>> {
        let mut value = self
            .value
            .get_or_init(|| serde_yaml::from_str(&self.text).ok())
            .as_ref()?;
        for segment in list {
            if let Segment::Key(key) = segment {
                value = value.get(*key)?;
            }
        }
        value.as_sequence()
    }

    fn list_len(&self, list: &[Segment<'_>]) -> Option<usize> {
        self.list_value(list).map(Vec::len)
    }

    fn item_value(&self, list: &[Segment<'_>], index: usize) -> Option<&Value> {
        self.list_value(list)?.get(index)
    }

    /// The text from the start of line `line` (1-based) on.
    fn text_from_line(&self, line: usize) -> Option<&str> {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(at, _)| at + 1))
                .collect()
        });
        self.text.get(*starts.get(line.checked_sub(1)?)?..)
    }

    /// The position of the character at `offset` (0-based, in characters) of a scalar's
    /// value, given where the scalar starts. On one line that is the start column plus
    /// `offset`, plus one for an opening quote (and more for escapes before it). For a block
    /// scalar (`|`, `>`) and a value that spans lines, the value is walked over the source
    /// lines; when the two cannot be matched, the one-line rule is the answer.
    pub(crate) fn position_in_scalar(
        &self,
        start: Position,
        value: &str,
        offset: usize,
    ) -> Position {
        let Some(rest) = self.text_from_line(start.line) else {
            return start;
        };
        let first_line = rest.lines().next().unwrap_or_default();
        let style = match first_line.chars().nth(start.column.saturating_sub(1)) {
            Some('\'') => Style::SingleQuoted,
            Some('"') => Style::DoubleQuoted,
            Some('|' | '>') => Style::Block,
            _ => Style::Plain,
        };
        let content_column = match style {
            Style::SingleQuoted | Style::DoubleQuoted => start.column + 1,
            Style::Plain | Style::Block => start.column,
        };
        let found = match style {
            Style::Block => walk(style, block_lines(rest, start.line), value, offset),
            _ => walk(
                style,
                flow_lines(rest, start.line, content_column),
                value,
                offset,
            ),
        };
        found.unwrap_or(Position {
            line: start.line,
            column: content_column + offset,
        })
    }
}

/// Whether `line` is `KEY:` at the start of a line with nothing after it but whitespace and a
/// comment: a top-level key whose value is on the lines below. The first line may start with
/// a byte-order mark.
fn is_key_line(line: &str, key: &str, first: bool) -> bool {
    let line = if first {
        line.strip_prefix('\u{feff}').unwrap_or(line)
    } else {
        line
    };
    let Some(rest) = line
        .strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return false;
    };
    let rest = rest.trim_end_matches(['\n', '\r']);
    rest.is_empty()
        || (rest.starts_with([' ', '\t']) && {
            let rest = rest.trim_start_matches([' ', '\t']);
            rest.is_empty() || rest.starts_with('#')
        })
}

/// Where the first item of the block list under the key on line `key_line` (0-based) is: the
/// first line below it that is neither blank nor a comment, when it is a block item.
fn first_item(text: &str, key_line: usize) -> Option<Position> {
    let (index, line) = text
        .split_inclusive('\n')
        .enumerate()
        .skip(key_line + 1)
        .find(|(_, line)| {
            let trimmed = line.trim_start_matches(' ').trim_end_matches(['\n', '\r']);
            !(trimmed.is_empty() || trimmed.starts_with('#'))
        })?;
    let content = line.trim_end_matches(['\n', '\r']);
    let trimmed = content.trim_start_matches(' ');
    (trimmed == "-" || trimmed.starts_with("- ")).then_some(Position {
        line: index + 1,
        column: content.len() - trimmed.len() + 1,
    })
}

/// The lines of each item of a block list whose first `-` is at `start`; `None` when the list
/// is not a block list starting its line.
fn block_items(text: &str, start: Position) -> Option<Vec<ItemLines>> {
    let indent = start.column.checked_sub(1)?;
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut end = text.len();
    let mut line_start = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let this = line_start;
        line_start += line.len();
        let number = index + 1;
        if number < start.line {
            continue;
        }
        let content = line.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim_start_matches(' ');
        let lead = content.len() - trimmed.len();
        let item_start = lead == indent && (trimmed == "-" || trimmed.starts_with("- "));
        if number == start.line && !item_start {
            return None;
        }
        if item_start {
            starts.push((index, this));
        } else if !(trimmed.is_empty() || trimmed.starts_with('#') || lead > indent) {
            end = this;
            break;
        }
    }
    let ends = starts.iter().skip(1).map(|&(_, at)| at).chain([end]);
    Some(
        starts
            .iter()
            .zip(ends)
            .map(|(&(first_line, from), to)| ItemLines {
                first_line,
                bytes: from..to,
            })
            .collect(),
    )
}

/// Deserializes the node at `path` in `text` as `T`.
fn deserialize_in<T: DeserializeOwned>(
    text: &str,
    path: &[Segment<'_>],
) -> Result<Option<T>, serde_yaml::Error> {
    Navigate {
        path,
        target: PhantomData::<T>,
        at_key: false,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text))
}

fn node_position_in(text: &str, path: &[Segment<'_>]) -> Option<Position> {
    marked(
        Navigate {
            path,
            target: Marker,
            at_key: false,
        }
        .deserialize(serde_yaml::Deserializer::from_str(text)),
    )
}

fn key_position_in(text: &str, path: &[Segment<'_>]) -> Option<Position> {
    if !matches!(path.last(), Some(Segment::Key(_))) {
        return None;
    }
    marked(
        Navigate {
            path,
            target: Marker,
            at_key: true,
        }
        .deserialize(serde_yaml::Deserializer::from_str(text)),
    )
}

/// The position of a serde_yaml error, if it has one.
fn error_position(err: &serde_yaml::Error) -> Option<Position> {
    err.location().map(|location| Position {
        line: location.line(),
        column: location.column(),
    })
}

/// The message of a serde_yaml error without what the position already says: the
/// ` at line L column C` suffix and the `probes[0].http: ` path prefix.
fn error_message(err: &serde_yaml::Error) -> String {
    let mut message = err.to_string();
    if let Some(location) = err.location() {
        let suffixes = [
            format!(" at line {} column {}", location.line(), location.column()),
            format!(" at position {}", location.index()),
        ];
        for suffix in suffixes {
            if let Some(at) = message.find(&suffix) {
                message.replace_range(at..at + suffix.len(), "");
                break;
            }
        }
    }
    strip_path_prefix(&message).to_owned()
}

/// serde_yaml writes `PATH: ` before the message of an error below the root. A path has no
/// whitespace in it (for this schema's keys) while every serde message has a space before its
/// first `: `, so a prefix without whitespace is the path.
fn strip_path_prefix(message: &str) -> &str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.is_empty() && !prefix.contains(char::is_whitespace) && !rest.is_empty() =>
        {
            rest
        }
        _ => message,
    }
}

/// How a scalar is written, as far as mapping its value back to the source goes.
#[derive(Clone, Copy)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Block,
}

impl Style {
    /// How many source characters at `chars[i]` make one character of the value.
    fn width(self, chars: &[char], i: usize) -> usize {
        match (self, chars.get(i), chars.get(i + 1)) {
            (Style::SingleQuoted, Some('\''), Some('\'')) => 2,
            (Style::DoubleQuoted, Some('\\'), Some('x')) => 4,
            (Style::DoubleQuoted, Some('\\'), Some('u')) => 6,
            (Style::DoubleQuoted, Some('\\'), Some('U')) => 10,
            (Style::DoubleQuoted, Some('\\'), _) => 2,
            _ => 1,
        }
    }
}

/// A source line that holds part of a scalar's value: its 1-based number, the column of its
/// first character there, and its characters from that column on.
struct SourceLine {
    line: usize,
    column: usize,
    chars: Vec<char>,
}

/// The content lines of a block scalar whose indicator ends the first line of `rest`, line
/// number `indicator_line`.
fn block_lines(rest: &str, indicator_line: usize) -> impl Iterator<Item = SourceLine> + '_ {
    let leading = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let lines = rest.lines().skip(1);
    let indent = lines
        .clone()
        .find(|line| !line.trim().is_empty())
        .map_or(0, leading);
    lines
        .take_while(move |line| line.trim().is_empty() || leading(line) >= indent)
        .enumerate()
        .map(move |(index, source)| {
            let skip = indent.min(leading(source));
            SourceLine {
                line: indicator_line + 1 + index,
                column: skip + 1,
                chars: source.chars().skip(skip).collect(),
            }
        })
}

/// The lines of a plain or quoted scalar starting at `line`/`column` of the first line of
/// `rest`: the rest of that line, then the following lines without their leading whitespace.
/// Where the scalar ends is not known here; the walk stops at the offset.
fn flow_lines(rest: &str, line: usize, column: usize) -> impl Iterator<Item = SourceLine> + '_ {
    rest.lines().enumerate().map(move |(index, source)| {
        let skip = if index == 0 {
            column.saturating_sub(1)
        } else {
            source.chars().take_while(|c| c.is_whitespace()).count()
        };
        SourceLine {
            line: line + index,
            column: skip + 1,
            chars: source.chars().skip(skip).collect(),
        }
    })
}

/// Matches `value` against the source `lines` and answers the position of `value[offset]`
/// (or of the end of the value, for `offset == value.len()`). YAML turns a line break inside
/// a scalar into a space or a newline in the value, or into nothing before an empty line.
fn walk(
    style: Style,
    lines: impl Iterator<Item = SourceLine>,
    value: &str,
    offset: usize,
) -> Option<Position> {
    let value: Vec<char> = value.chars().collect();
    let mut at = 0;
    for source in lines {
        let here = |i: usize| Position {
            line: source.line,
            column: source.column + i,
        };
        let mut i = 0;
        while at < value.len() && i < source.chars.len() {
            let width = style.width(&source.chars, i);
            if width == 1 && source.chars[i] != value[at] {
                break;
            }
            if at == offset {
                return Some(here(i));
            }
            at += 1;
            i += width;
        }
        if at == offset {
            return Some(here(i));
        }
        let blank = source.chars.iter().all(|c| c.is_whitespace());
        if matches!(value.get(at), Some(' ' | '\n')) {
            at += 1;
        } else if at >= value.len() || (i == 0 && !blank) {
            // Past the value, or a line that is not part of it: stop before the rest of the file.
            break;
        }
    }
    None
}

/// The answer of a marker navigation: the marker error's position.
fn marked<T>(result: Result<T, serde_yaml::Error>) -> Option<Position> {
    match result {
        Err(err) if err.to_string().contains(MARKER) => error_position(&err),
        _ => None,
    }
}

/// Follows `path` through the document, ignoring every other node, and hands the node at its
/// end to `target` (or, with `at_key`, marks the key of the last segment).
struct Navigate<'p, S> {
    path: &'p [Segment<'p>],
    target: S,
    at_key: bool,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Navigate<'_, S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.path.is_empty() {
            self.target.deserialize(deserializer).map(Some)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Navigate<'_, S> {
    type Value = Option<S::Value>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mark_key = self.at_key && rest.is_empty();
        let mut target = Some(self.target);
        let mut found = None;
        while let Some(matched) = map.next_key_seed(KeyMatch {
            wanted,
            mark: mark_key,
        })? {
            match target.take() {
                Some(target) if matched => {
                    found = map.next_value_seed(Navigate {
                        path: rest,
                        target,
                        at_key: self.at_key,
                    })?;
                }
                unmatched => {
                    target = unmatched;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        if let Some(value) = seq.next_element_seed(Navigate {
            path: rest,
            target: self.target,
            at_key: self.at_key,
        })? {
            found = value;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(found)
    }

    // A scalar where the path goes on: the node is not there.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // A tagged node (`!tag value`), which serde ignores: the path goes on in its value.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// Reads one mapping key and says whether it is `wanted`; with `mark`, a matching key is
/// answered with the marker error instead, raised while serde_yaml deserializes the key, so
/// the error carries the key's position.
struct KeyMatch<'a> {
    wanted: &'a str,
    mark: bool,
}

impl<'de> DeserializeSeed<'de> for KeyMatch<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // `deserialize_str` hands over the key's text as written, whatever it would resolve to.
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyMatch<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a scalar key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.mark) {
            (true, true) => Err(E::custom(MARKER)),
            (matched, _) => Ok(matched),
        }
    }
}

/// At the target node, calls a deserializer method (so serde_yaml fills in the node's mark)
/// with a visitor that refuses everything. Every default `visit_*` answers
/// `invalid_type(.., &self)`, whose message embeds `expecting`, that is the marker.
///
/// Returning an error without calling the deserializer would not do: that error would get
/// the mark of the enclosing collection instead.
struct Marker;

impl<'de> DeserializeSeed<'de> for Marker {
    type Value = IgnoredAny;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<IgnoredAny, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for Marker {
    type Value = IgnoredAny;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(MARKER)
    }
}

#[cfg(test)]
mod tests {
    use super::Segment::{Index, Key};
    use super::*;

    /// The node's position, asked of the whole text and of a [`Source`] (which may ask the
    /// item's lines only): the two must agree.
    fn node_position(text: &str, path: &[Segment<'_>]) -> Option<Position> {
        let full = node_position_in(text, path);
        assert_eq!(
            Source::new(text.to_owned()).node_position(path),
            full,
            "{path:?}"
        );
        full
    }

    fn key_position(text: &str, path: &[Segment<'_>]) -> Option<Position> {
        let full = key_position_in(text, path);
        assert_eq!(
            Source::new(text.to_owned()).key_position(path),
            full,
            "{path:?}"
        );
        full
    }

    #[track_caller]
    fn check_node(text: &str, path: &[Segment<'_>], line: usize, column: usize) {
        assert_eq!(
            node_position(text, path),
            Some(Position { line, column }),
            "{path:?} in\n{text}"
        );
    }

    const DOC: &str = "\
top: plain value
quoted: 'single'
double: \"double\"
nested:
  list:
    - first
    - {a: 1, b: [x, y]}
    -   key: v
        other: w
  flow: [1, 2]
block: |
  line one
";

    #[test]
    fn positions_of_scalars() {
        check_node(DOC, &[Key("top")], 1, 6);
        check_node(DOC, &[Key("nested"), Key("list"), Index(0)], 6, 7);
        check_node(
            DOC,
            &[Key("nested"), Key("list"), Index(1), Key("a")],
            7,
            11,
        );
        check_node(
            DOC,
            &[Key("nested"), Key("list"), Index(1), Key("b"), Index(1)],
            7,
            21,
        );
        check_node(DOC, &[Key("nested"), Key("flow"), Index(1)], 10, 13);
    }

    #[test]
    fn positions_of_quoted_and_block_scalars_are_their_indicators() {
        check_node(DOC, &[Key("quoted")], 2, 9);
        check_node(DOC, &[Key("double")], 3, 9);
        check_node(DOC, &[Key("block")], 11, 8);
    }

    #[test]
    fn positions_of_mappings() {
        // A block mapping starts at its first key, a flow mapping at `{`.
        check_node(DOC, &[Key("nested")], 5, 3);
        check_node(DOC, &[Key("nested"), Key("list"), Index(2)], 8, 9);
        check_node(DOC, &[Key("nested"), Key("list"), Index(1)], 7, 7);
        check_node(DOC, &[], 1, 1);
    }

    #[test]
    fn positions_of_sequences() {
        // A block sequence starts at its first `-`, a flow sequence at `[`.
        check_node(DOC, &[Key("nested"), Key("list")], 6, 5);
        check_node(DOC, &[Key("nested"), Key("flow")], 10, 9);
        check_node(
            DOC,
            &[Key("nested"), Key("list"), Index(1), Key("b")],
            7,
            17,
        );
    }

    #[test]
    fn positions_of_keys() {
        let at = |path: &[Segment<'_>]| key_position(DOC, path);
        assert_eq!(at(&[Key("top")]), Some(Position { line: 1, column: 1 }));
        assert_eq!(
            at(&[Key("nested"), Key("list"), Index(2), Key("other")]),
            Some(Position { line: 9, column: 9 })
        );
        assert_eq!(
            at(&[Key("nested"), Key("list"), Index(1), Key("b")]),
            Some(Position {
                line: 7,
                column: 14
            })
        );
        assert_eq!(at(&[Key("nested"), Key("missing")]), None);
        assert_eq!(at(&[Key("nested"), Key("list"), Index(0)]), None);
    }

    #[test]
    fn missing_nodes_have_no_position() {
        assert_eq!(node_position(DOC, &[Key("absent")]), None);
        assert_eq!(
            node_position(DOC, &[Key("nested"), Key("list"), Index(3)]),
            None
        );
        assert_eq!(
            node_position(DOC, &[Key("top"), Key("below_a_scalar")]),
            None
        );
        assert_eq!(node_position(DOC, &[Key("nested"), Index(0)]), None);
        assert_eq!(node_position("", &[Key("a")]), None);
        assert_eq!(node_position("a: [unclosed", &[Key("b")]), None);
    }

    #[test]
    fn paths_go_through_tags() {
        let text = "items:\n  - !thing {name: a, more: !x [1, 2]}\n";
        check_node(
            text,
            &[Key("items"), Index(0), Key("more"), Index(1)],
            2,
            35,
        );
        assert_eq!(
            key_position(text, &[Key("items"), Index(0), Key("more")]),
            Some(Position {
                line: 2,
                column: 22
            })
        );
    }

    const LIST: &str = "\
a: 1
list:
  - name: x
    v: 1

  # a comment between items
  - &anchor {name: z}
  - *anchor
  -
    name: w
  - {name: v}
top:
- {name: t}
- name: u
tricky:
  - name: y
    v: 'two
  - three'
  - name: y2
flow: [{name: f}]
";

    #[test]
    fn questions_about_list_items_are_asked_of_the_items_lines_when_safe() {
        let source = Source::new(LIST.to_owned());
        let scoped = |path: &[Segment<'_>]| source.item_scope(path).map(|s| s.lines_before);
        assert_eq!(scoped(&[Key("list"), Index(0), Key("v")]), Some(2));
        assert_eq!(scoped(&[Key("list"), Index(1), Key("name")]), Some(6));
        // An alias to an anchor outside the item's lines.
        assert_eq!(scoped(&[Key("list"), Index(2)]), None);
        assert_eq!(scoped(&[Key("list"), Index(3), Key("name")]), Some(8));
        assert_eq!(scoped(&[Key("list"), Index(4)]), Some(10));
        assert_eq!(scoped(&[Key("top"), Index(1), Key("name")]), Some(13));
        // A quoted scalar's continuation line looks like an item: the list is never scoped.
        assert_eq!(scoped(&[Key("tricky"), Index(0)]), None);
        assert_eq!(scoped(&[Key("tricky"), Index(1)]), None);
        assert_eq!(scoped(&[Key("flow"), Index(0)]), None);
        assert_eq!(scoped(&[Key("a")]), None);
        assert_eq!(scoped(&[Key("list"), Index(9)]), None);

        // Whatever the scope, the answers are those of the whole text.
        check_node(LIST, &[Key("list"), Index(0), Key("v")], 4, 8);
        check_node(LIST, &[Key("list"), Index(1), Key("name")], 7, 20);
        check_node(LIST, &[Key("list"), Index(2), Key("name")], 7, 20);
        check_node(LIST, &[Key("list"), Index(3), Key("name")], 10, 11);
        check_node(LIST, &[Key("list"), Index(4), Key("name")], 11, 12);
        check_node(LIST, &[Key("list"), Index(4)], 11, 5);
        check_node(LIST, &[Key("top"), Index(1), Key("name")], 14, 9);
        check_node(LIST, &[Key("top"), Index(0)], 13, 3);
        check_node(LIST, &[Key("tricky"), Index(1), Key("name")], 19, 11);
        assert_eq!(
            key_position(LIST, &[Key("top"), Index(1), Key("name")]),
            Some(Position {
                line: 14,
                column: 3
            })
        );
        let err = source
            .deserialize_at::<u32>(&[Key("list"), Index(3), Key("name")])
            .unwrap_err();
        assert_eq!(
            err.position,
            Some(Position {
                line: 10,
                column: 11
            })
        );
    }

    /// Property: on any text (here, random edits of [`LIST`]), asking the item's lines gives
    /// the answers of the whole text.
    #[test]
    fn scoped_answers_equal_whole_text_answers_on_mutated_input() {
        const EDITS: [&str; 12] = [
            "- ", "\n", " ", "'", "\"", "#", ":", "{", "}", "&a ", "*a", "|",
        ];
        let mut random = xorshift(0x2545_F491_4F6C_DD1D);
        let keys = ["list", "top", "tricky"];
        let fields = ["name", "v"];
        for _ in 0..150 {
            let text = mutated(LIST, &EDITS, &mut random);
            let source = Source::new(text.clone());
            for key in keys {
                for index in 0..6 {
                    let item = [Key(key), Index(index)];
                    assert_eq!(source.node_position(&item), node_position_in(&text, &item));
                    for field in fields {
                        let path = [Key(key), Index(index), Key(field)];
                        let context = format!("{path:?} in\n{text}");
                        let node = node_position_in(&text, &path);
                        assert_eq!(source.node_position(&path), node, "{context}");
                        let key = key_position_in(&text, &path);
                        assert_eq!(source.key_position(&path), key, "{context}");
                        let full =
                            deserialize_in::<u8>(&text, &path).map_err(|e| YamlError::from(&e));
                        assert_eq!(source.deserialize_at::<u8>(&path), full, "{context}");
                    }
                }
            }
        }
    }

    const RULE_FILE: &str = "\
# generated
probes:
  - name: a
    http: {url: 'http://x/'}

  # between items
  - name: b
    labels: {team: t}
    http:
      url: \"http://y/\"
rules:
- {name: r, probe: a, when: '[STATUS] != 200'}
- name: s
  probe: b
  when: |
    [STATUS] != 200
    && [CONNECTED]
";

    /// The document `split` describes, put together again as a value: the skeleton's, with
    /// each cut list's items parsed from their own lines. `None` when an item's lines do not
    /// hold exactly one item.
    fn reassembled(source: &Source, split: &Split) -> Option<Value> {
        let mut value: Value = serde_yaml::from_str(&split.skeleton).expect("checked");
        for (key, items) in &split.lists {
            let items: Option<Vec<Value>> =
                items.iter().map(|lines| source.split_item(lines)).collect();
            value[*key] = Value::Sequence(items?);
        }
        Some(value)
    }

    #[test]
    fn block_lists_are_cut_into_items_and_the_rest_keeps_its_lines() {
        let source = Source::new(RULE_FILE.to_owned());
        let split = source.split_lists(&["probes", "rules"]).expect("a cut");
        let items: Vec<(&str, Vec<&str>)> = split
            .lists
            .iter()
            .map(|(key, items)| (*key, items.iter().map(|r| &RULE_FILE[r.clone()]).collect()))
            .collect();
        assert_eq!(
            items,
            [
                (
                    "probes",
                    vec![
                        "  - name: a\n    http: {url: 'http://x/'}\n\n  # between items\n",
                        "  - name: b\n    labels: {team: t}\n    http:\n      url: \"http://y/\"\n",
                    ]
                ),
                (
                    "rules",
                    vec![
                        "- {name: r, probe: a, when: '[STATUS] != 200'}\n",
                        "- name: s\n  probe: b\n  when: |\n    [STATUS] != 200\n    && [CONNECTED]\n",
                    ]
                ),
            ]
        );
        assert_eq!(
            split.skeleton,
            "# generated\nprobes:\n\n\n\n\n\n\n\n\nrules:\n\n\n\n\n\n\n"
        );
        let whole: Value = serde_yaml::from_str(RULE_FILE).expect("valid");
        assert_eq!(reassembled(&source, &split), Some(whole));
        // Questions about items are answered from their lines, as the whole text answers.
        for path in [
            &[Key("probes"), Index(1), Key("http"), Key("url")][..],
            &[Key("rules"), Index(1), Key("when")],
            &[Key("rules"), Index(0), Key("probe")],
        ] {
            assert!(source.item_scope(path).is_some(), "{path:?}");
            assert_eq!(
                source.node_position(path),
                node_position_in(RULE_FILE, path),
                "{path:?}"
            );
            assert_eq!(
                source.key_position(path),
                key_position_in(RULE_FILE, path),
                "{path:?}"
            );
        }
        source.forget_split();
        assert!(source.split.borrow().is_empty());
    }

    #[test]
    fn lists_that_cannot_be_cut_safely_are_left_whole() {
        let cut = |text: &str| {
            Source::new(text.to_owned())
                .split_lists(&["probes", "rules"])
                .map(|split| {
                    split
                        .lists
                        .iter()
                        .map(|(key, items)| format!("{key}:{}", items.len()))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        };
        assert_eq!(cut(RULE_FILE).as_deref(), Some("probes:2 rules:2"));
        assert_eq!(
            cut("\u{feff}probes:   # a comment\n  - a\n").as_deref(),
            Some("probes:1")
        );
        // A flow list stays in the skeleton; the other one is cut.
        assert_eq!(
            cut("probes: [a, b]\nrules:\n  - r\n").as_deref(),
            Some("rules:1")
        );
        for text in [
            "probes: [a, b]\n",
            "probes:\n  a: 1\n",
            "probes: &list\n  - a\n",
            "probes:\n  - a\nprobes:\n  - b\n",
            // A line after the list, less indented than its items: the list is not alone.
            "probes:\n  - a\n b: 1\n",
            // Line breaks other than \n.
            "probes:\r  - a\r",
            "probes:\n  - a\u{2028}\n",
            // The key inside a quoted scalar that spans lines.
            "x: \"a\nprobes:\n  - b\nz\"\n",
            "x: 1\n",
            "",
        ] {
            assert_eq!(cut(text), None, "{text:?}");
        }
        // A quoted scalar whose continuation line looks like an item: the cut is made, and the
        // item's lines do not parse, so the caller reads the file whole.
        let text = "probes:\n  - name: 'a\n  - b'\n";
        let source = Source::new(text.to_owned());
        let split = source.split_lists(&["probes"]).expect("a cut");
        assert_eq!(source.split_item(&split.lists[0].1[0]), None);
        assert_eq!(reassembled(&source, &split), None);
    }

    /// Property: on any text (random edits of [`RULE_FILE`]), a cut whose items all parse
    /// reads as the whole text does, and answers questions about positions as it does.
    #[test]
    fn a_cut_whose_items_parse_is_the_whole_document_on_mutated_input() {
        const EDITS: [&str; 15] = [
            "- ",
            "\n",
            " ",
            "'",
            "\"",
            "#",
            ":",
            "{",
            "}",
            "[",
            "&a ",
            "*a",
            "|",
            "\n- ",
            "\nrules:\n",
        ];
        let mut random = xorshift(0x9E37_79B9_7F4A_7C15);
        let mut cut = 0;
        for _ in 0..400 {
            let text = mutated(RULE_FILE, &EDITS, &mut random);
            let source = Source::new(text.clone());
            let Some(split) = source.split_lists(&["probes", "rules"]) else {
                continue;
            };
            let Some(value) = reassembled(&source, &split) else {
                continue;
            };
            cut += 1;
            let whole = serde_yaml::from_str::<Value>(&text);
            assert_eq!(whole.ok(), Some(value), "{text}");
            for (key, items) in &split.lists {
                for index in 0..items.len() {
                    for field in ["name", "when", "http"] {
                        let path = [Key(key), Index(index), Key(field)];
                        let context = format!("{path:?} in\n{text}");
                        let node = node_position_in(&text, &path);
                        assert_eq!(source.node_position(&path), node, "{context}");
                        let key = key_position_in(&text, &path);
                        assert_eq!(source.key_position(&path), key, "{context}");
                        let full =
                            deserialize_in::<u8>(&text, &path).map_err(|e| YamlError::from(&e));
                        assert_eq!(source.deserialize_at::<u8>(&path), full, "{context}");
                    }
                }
            }
        }
        assert!(cut > 100, "only {cut} of 400 edits were cut");
    }

    #[test]
    fn item_lines_are_not_used_with_line_breaks_other_than_newline() {
        let crlf = LIST.replace('\n', "\r\n");
        let source = Source::new(crlf.clone());
        assert!(source.item_scope(&[Key("list"), Index(0)]).is_some());
        check_node(&crlf, &[Key("top"), Index(1), Key("name")], 14, 9);
        let lone_cr = "list:\r  - {a: 1}\n  - {a: 2}\n";
        let source = Source::new(lone_cr.to_owned());
        assert!(source.item_scope(&[Key("list"), Index(1)]).is_none());
        check_node(lone_cr, &[Key("list"), Index(1), Key("a")], 3, 9);
    }

    #[test]
    fn later_nodes_are_found_after_skipping_earlier_ones() {
        let text = "items:\n  - {skip: [1, {deep: 2}]}\n  - name: two\n    more: x\n";
        check_node(text, &[Key("items"), Index(1), Key("more")], 4, 11);
    }

    /// The pitfall the marker avoids: an error returned without calling a deserializer
    /// method at the node gets the mark of the enclosing mapping.
    #[test]
    fn marker_must_call_the_deserializer_to_get_the_nodes_mark() {
        struct Lazy;
        impl<'de> DeserializeSeed<'de> for Lazy {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
                Err(de::Error::custom(MARKER))
            }
        }
        let text = "outer:\n  first: 1\n  inner: value\n";
        let path = [Key("outer"), Key("inner")];
        let lazy = Navigate {
            path: &path,
            target: Lazy,
            at_key: false,
        }
        .deserialize(serde_yaml::Deserializer::from_str(text));
        assert_eq!(marked(lazy), Some(Position { line: 2, column: 3 }));
        check_node(text, &path, 3, 10);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read through Debug only
    struct Strict {
        name: String,
        count: u32,
    }

    #[test]
    fn deserialize_at_reports_positions_in_the_original_text() {
        let text = "things:\n  - {name: a, count: 1}\n  - name: b\n    cuont: 2\n";
        let source = Source::new(text.to_owned());
        let ok = source.deserialize_at::<Strict>(&[Key("things"), Index(0)]);
        assert!(matches!(ok, Ok(Some(Strict { count: 1, .. }))), "{ok:?}");
        assert_eq!(
            source
                .deserialize_at::<Strict>(&[Key("things"), Index(1)])
                .unwrap_err(),
            YamlError {
                position: Some(Position { line: 4, column: 5 }),
                message: "unknown field `cuont`, expected `name` or `count`".to_owned(),
            }
        );
        assert!(matches!(
            source.deserialize_at::<Strict>(&[Key("things"), Index(2)]),
            Ok(None)
        ));
    }

    #[test]
    fn error_message_drops_path_and_position_but_keeps_the_rest() {
        let err = serde_yaml::from_str::<Strict>("name: a\ncount: -1\n").unwrap_err();
        assert_eq!(error_position(&err), Some(Position { line: 2, column: 8 }));
        assert_eq!(
            error_message(&err),
            "invalid type: integer `-1`, expected u32"
        );
        let err = serde_yaml::from_str::<Strict>("name: [unclosed\n").unwrap_err();
        assert!(!error_message(&err).contains(" at line 2"), "{err}");
        assert_eq!(
            strip_path_prefix("a.b[0]: missing field `x`"),
            "missing field `x`"
        );
        assert_eq!(strip_path_prefix("invalid type: map"), "invalid type: map");
    }

    #[track_caller]
    fn check_offset(text: &str, path: &[Segment<'_>], needle: &str, line: usize, column: usize) {
        let source = Source::new(text.to_owned());
        let value: String = source.deserialize_at::<String>(path).unwrap().unwrap();
        let byte = value.find(needle).unwrap();
        let offset = value[..byte].chars().count();
        let start = node_position(text, path).unwrap();
        assert_eq!(
            source.position_in_scalar(start, &value, offset),
            Position { line, column },
            "{needle} in {value:?}"
        );
    }

    #[test]
    fn offsets_inside_scalars() {
        let text = "\
a: x == [STAUS]
b: 'x == [STAUS]'
c: \"é ü [STAUS]\"
d: 'it''s [STAUS]'
e: |
  first
    [STAUS] second
f: >-
  p95(x) > 1 ||
  [STAUS] == 2
g: plain
  continued [STAUS]
h: \"esc\\taped [STAUS]\"
";
        check_offset(text, &[Key("a")], "[STAUS]", 1, 9);
        check_offset(text, &[Key("b")], "[STAUS]", 2, 10);
        check_offset(text, &[Key("c")], "[STAUS]", 3, 9);
        check_offset(text, &[Key("d")], "[STAUS]", 4, 11);
        check_offset(text, &[Key("e")], "[STAUS]", 7, 5);
        check_offset(text, &[Key("f")], "[STAUS]", 10, 3);
        check_offset(text, &[Key("g")], "[STAUS]", 12, 13);
        check_offset(text, &[Key("h")], "[STAUS]", 13, 15);
    }

    #[test]
    fn offsets_never_panic_on_odd_input() {
        let source = Source::new("a: b\nc: d\n".to_owned());
        let start = Position {
            line: 9,
            column: 40,
        };
        assert_eq!(source.position_in_scalar(start, "b", 3), start);
        let start = Position { line: 1, column: 4 };
        let far = source.position_in_scalar(start, "b", 10);
        assert_eq!(
            far,
            Position {
                line: 1,
                column: 14
            }
        );
        let start = Position { line: 0, column: 0 };
        assert_eq!(source.position_in_scalar(start, "", 0), start);
    }

    /// A deterministic xorshift generator: `random(n)` is in `0..n`.
    fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % below as u64).unwrap_or(0)
        }
    }

    /// `base` with one to three random edits: a character removed, or one of `edits`
    /// inserted.
    fn mutated(base: &str, edits: &[&str], random: &mut impl FnMut(usize) -> usize) -> String {
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..1 + random(3) {
            let at = random(text.len());
            if random(2) == 0 {
                text.remove(at);
            } else {
                text.splice(at..at, edits[random(edits.len())].chars());
            }
        }
        text.into_iter().collect()
    }
}
