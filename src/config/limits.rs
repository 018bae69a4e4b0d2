//! What a configuration file may cost before any YAML parser sees it, and how much of it an
//! error may quote. A config or rule file is text an operator points incidentd at, but a
//! wrong path (`/dev/zero`, a FIFO, `/etc/shadow`) or a hostile file must give one short
//! diagnostic, never hang, exhaust memory or echo the file back:
//!
//! * only a regular file is read, at most [`MAX_FILE_BYTES`] ([`read_text`]);
//! * nesting deeper than [`MAX_NESTING`] levels is refused by a linear pre-scan
//!   ([`scan`]), because libyaml's scanner is quadratic in the depth of flow collections;
//! * aliases may expand a document to at most [`EXPANSION_FACTOR`] times its size (or
//!   [`EXPANSION_FLOOR`]) ([`expansion`]): each alias copies its anchor's value, so a small
//!   file can otherwise become gigabytes of nodes ("billion laughs");
//! * a diagnostic quotes at most [`EXCERPT_CHARS`] characters of any value ([`excerpt`]).

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::locate::{Position, YamlError};

/// The largest config or rule file read (a rule file of 100,000 probes is about 28 MB).
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The deepest nesting of collections (block and flow together) a file may have; the
/// shipped files stay under 10.
pub(crate) const MAX_NESTING: usize = 64;
/// How many times its own size a document may grow to when its aliases are expanded.
pub(crate) const EXPANSION_FACTOR: u64 = 10;
/// The expanded size a document may always reach, however small its text.
pub(crate) const EXPANSION_FLOOR: u64 = 1024 * 1024;
/// What one value costs in the expanded size besides its text: a node in memory costs more
/// than its characters, and `[1,1,1]` must not grow past the limit without any alias.
const NODE_BYTES: u64 = 8;
/// The most characters of one value (a key, a string, a name) a diagnostic quotes.
pub(crate) const EXCERPT_CHARS: usize = 64;
/// The longest diagnostic message, whatever it is made of.
const MAX_MESSAGE_CHARS: usize = 1000;

/// The text of the regular file at `path`, or why it cannot be read. The file is opened
/// without blocking (a FIFO swapped in after the first look must not hang `check`) and
/// looked at again through the handle.
pub(crate) fn read_text(path: &Path) -> Result<String, String> {
    regular(&std::fs::metadata(path).map_err(|err| err.to_string())?)?;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| err.to_string())?;
    let metadata = file.metadata().map_err(|err| err.to_string())?;
    regular(&metadata)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    // The size can change after it was looked at: never read past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| "stream did not contain valid UTF-8".to_owned())
}

fn regular(metadata: &std::fs::Metadata) -> Result<(), String> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(format!("not a regular file ({what})"))
}

fn too_large(bytes: u64) -> String {
    format!(
        "{}, larger than the {} limit",
        mebibytes(bytes),
        mebibytes(MAX_FILE_BYTES)
    )
}

/// `64 MiB`, `1.5 MiB`.
fn mebibytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A document refused before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) at: Position,
    pub(crate) message: String,
}

/// What the pre-scan of a text found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Where the nesting first goes deeper than [`MAX_NESTING`].
    pub(crate) too_deep: Option<Refusal>,
    /// Whether the text may hold an alias (`*name` where a node can start): only then is
    /// [`expansion`] worth its parse.
    pub(crate) may_alias: bool,
}

/// One linear pass over `text` that counts how deep collections nest — flow `[` and `{`,
/// block levels by indentation, and `- `, `? ` on one line (`- - - x`) — without
/// parsing it. Brackets inside quoted scalars, block scalars and comments are not counted.
/// Where the text is not valid YAML the count may be off, which the parser then reports;
/// it never undercounts a valid document's depth by more than one level per line.
pub(crate) fn scan(text: &str) -> Scan {
    let mut scanner = Scanner::default();
    for (index, line) in lines(text).enumerate() {
        if let Some(column) = scanner.line(line) {
            return Scan {
                too_deep: Some(Refusal {
                    at: Position {
                        line: index + 1,
                        column,
                    },
                    message: format!("nesting deeper than {MAX_NESTING} levels"),
                }),
                may_alias: scanner.may_alias,
            };
        }
    }
    Scan {
        too_deep: None,
        may_alias: scanner.may_alias,
    }
}

/// The lines of `text` at every line break YAML knows: `\n`, `\r\n`, `\r`, NEL, LS, PS.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
            Some(at) => {
                let width = match text[at..].chars().next() {
                    Some('\r') if text[at + 1..].starts_with('\n') => 2,
                    Some(c) => c.len_utf8(),
                    None => 1,
                };
                rest = Some(&text[at + width..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[derive(Default)]
struct Scanner {
    /// The indentation of each open block level.
    indents: Vec<usize>,
    /// How many flow collections are open.
    flow: usize,
    /// Inside a quoted scalar that goes on past a line: its quote.
    quote: Option<char>,
    /// Inside a block scalar (`|`, `>`): the indentation its lines are deeper than.
    block_scalar: Option<usize>,
    may_alias: bool,
}

impl Scanner {
    /// Scans one line; the column (1-based, in characters) where the nesting goes too deep.
    fn line(&mut self, line: &str) -> Option<usize> {
        let chars: Vec<char> = line.chars().collect();
        let indent = chars
            .iter()
            .take_while(|c| matches!(c, ' ' | '\u{feff}'))
            .count();
        let blank = chars[indent..].iter().all(|c| matches!(c, ' ' | '\t'));
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return None;
            }
            self.block_scalar = None;
        }
        let block = self.flow == 0 && self.quote.is_none();
        if block {
            if blank || chars[indent] == '#' {
                return None;
            }
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
            if self.indents.last().is_none_or(|&top| top < indent) {
                self.indents.push(indent);
            }
        }
        let deep = |scanner: &Scanner, on_line: usize| {
            scanner.indents.len() + on_line + scanner.flow > MAX_NESTING
        };
        if deep(self, 0) {
            return Some(indent + 1);
        }
        // Levels opened on this line by `- ` and `? ` (`- - x`, `- a: b`).
        let mut on_line = 0;
        // Where a node (or, in a flow collection, a token) may start.
        let mut node_start = true;
        let mut i = if block { indent } else { 0 };
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let spaced = next.is_none_or(|n| n == ' ' || n == '\t');
            i += 1;
            match self.quote {
                Some('\'') => {
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 1;
                        } else {
                            self.quote = None;
                            node_start = false;
                        }
                    }
                    continue;
                }
                Some(_) => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        self.quote = None;
                        node_start = false;
                    }
                    continue;
                }
                None => {}
            }
            let after_space = i == 1 || matches!(chars[i - 2], ' ' | '\t');
            if c == '#' && after_space {
                break;
            }
            if self.flow > 0 {
                match c {
                    '[' | '{' => {
                        self.flow += 1;
                        if deep(self, on_line) {
                            return Some(i);
                        }
                        node_start = true;
                    }
                    ']' | '}' => {
                        self.flow -= 1;
                        node_start = false;
                    }
                    ',' | ':' | ' ' | '\t' | '?' | '-' => node_start = true,
                    '\'' | '"' if node_start => self.quote = Some(c),
                    '*' if node_start => self.may_alias = true,
                    _ => node_start = false,
                }
                continue;
            }
            match c {
                ' ' | '\t' => {}
                '[' | '{' if node_start => {
                    self.flow = 1;
                    if deep(self, on_line) {
                        return Some(i);
                    }
                }
                '\'' | '"' if node_start => self.quote = Some(c),
                ':' if spaced => node_start = true,
                '-' | '?' if spaced && node_start => {
                    on_line += 1;
                    if deep(self, on_line) {
                        return Some(i);
                    }
                    node_start = true;
                }
                '|' | '>' if node_start => {
                    self.block_scalar = Some(indent);
                    break;
                }
                '&' | '!' if node_start => {
                    // An anchor or a tag: the node comes after it.
                    while i < chars.len() && !matches!(chars[i], ' ' | '\t') {
                        i += 1;
                    }
                }
                '*' if node_start => {
                    self.may_alias = true;
                    node_start = false;
                }
                _ => node_start = false,
            }
        }
        None
    }
}

/// Refuses a document whose aliases expand it past `max(EXPANSION_FACTOR × its size,
/// EXPANSION_FLOOR)`: every value is walked as serde_yaml would deliver it, aliases
/// followed, each costing its text plus [`NODE_BYTES`], and the walk stops as soon as the
/// budget is spent, so it costs at most the budget. Problems other than the budget are left
/// to the parse that follows.
pub(crate) fn expansion(text: &str) -> Option<Refusal> {
    let limit = (text.len() as u64)
        .saturating_mul(EXPANSION_FACTOR)
        .max(EXPANSION_FLOOR);
    let spent = Cell::new(0);
    let walk = Walk {
        spent: &spent,
        limit,
    };
    let err = walk
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    let err = YamlError::from(&err);
    err.message.contains(OVER_BUDGET).then(|| Refusal {
        at: Position::START,
        message: format!(
            "aliases expand this document past {} ({EXPANSION_FACTOR} times its size, at \
             least {}), the limit",
            mebibytes(limit),
            mebibytes(EXPANSION_FLOOR)
        ),
    })
}

/// The message of the walk's own error. It cannot come from a YAML document: it holds a NUL.
const OVER_BUDGET: &str = "\u{0}incidentd-expansion-budget";

/// Walks a value, charging what it would cost expanded to a shared budget.
#[derive(Clone, Copy)]
struct Walk<'b> {
    spent: &'b Cell<u64>,
    limit: u64,
}

impl Walk<'_> {
    fn charge<E: de::Error>(self, text: usize) -> Result<(), E> {
        let spent = self.spent.get() + NODE_BYTES + text as u64;
        self.spent.set(spent);
        if spent > self.limit {
            return Err(E::custom(OVER_BUDGET));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.charge(value.len())
    }
    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<(), E> {
        self.charge(value.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): the tag, then the value.
        let ((), variant) = data.variant_seed(self)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// `message` with every quoted value (between backticks or double quotes) cut to
/// [`EXCERPT_CHARS`] characters, and the whole to [`MAX_MESSAGE_CHARS`]: a diagnostic points
/// at the offending token, it does not copy it (or the file it came from) out.
pub(crate) fn excerpt(message: String) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS * 4));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        i += 1;
        if c != '`' && c != '"' {
            continue;
        }
        // The quoted value: up to the closing quote (a `"` may be escaped inside).
        let start = i;
        while i < chars.len() && chars[i] != c {
            i += if c == '"' && chars[i] == '\\' { 2 } else { 1 };
        }
        let end = i.min(chars.len());
        if end - start > EXCERPT_CHARS {
            out.extend(&chars[start..start + EXCERPT_CHARS]);
            out.push('…');
        } else {
            out.extend(&chars[start..end]);
        }
        if i < chars.len() {
            out.push(c);
            i += 1;
        }
    }
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_depth(text: &str, expected: Option<(usize, usize)>) {
        let found = scan(text)
            .too_deep
            .map(|refusal| (refusal.at.line, refusal.at.column));
        assert_eq!(found, expected, "{text:?}");
    }

    #[test]
    fn nesting_is_counted_in_flow_and_block_collections() {
        check_depth(&"[".repeat(MAX_NESTING - 1), None);
        // The line's block level counts too: at most one level too many.
        check_depth(&"[".repeat(100_000), Some((1, MAX_NESTING)));
        check_depth(
            &format!("a: {}", "{".repeat(100_000)),
            Some((1, 3 + MAX_NESTING)),
        );
        check_depth(&"- ".repeat(100_000), Some((1, 2 * MAX_NESTING - 1)));
        // Block levels by indentation.
        let block: String = (0..100)
            .map(|level| format!("{}k{level}:\n", "  ".repeat(level)))
            .collect();
        check_depth(&block, Some((MAX_NESTING + 1, 2 * MAX_NESTING + 1)));
        // Over several lines, and after a lone CR line break.
        check_depth(&"[\n".repeat(100), Some((MAX_NESTING, 1)));
        check_depth(&format!("# c\r{}", "[".repeat(100)), Some((2, MAX_NESTING)));
    }

    #[test]
    fn brackets_in_quotes_block_scalars_and_comments_are_not_nesting() {
        let many = "[".repeat(1000);
        for text in [
            format!("a: '{many}'\n"),
            format!("a: \"{many}\\\"{many}\"\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"multi\n  {many}\n  line\"\nb: [1]\n"),
            format!("a: |\n  {many}\n    {many}\nb: 1\n"),
            format!("- >-\n  {many}\n- x\n"),
            format!("a: 1 # {many}\n# {many}\n"),
            format!("a: x{many}\n"),
            format!("a: [b, 'c{many}', \"{many}\"]\n"),
            format!("when: '[STATUS] != 200 && {many}'\n"),
        ] {
            check_depth(&text, None);
        }
    }

    #[test]
    fn the_shipped_files_are_far_from_the_limit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["incidentd.yaml", "rules/self.yaml"] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let scan = scan(&text);
            assert_eq!(scan.too_deep, None, "{file}");
            let mut scanner = Scanner::default();
            let deepest = lines(&text)
                .map(|line| {
                    scanner.line(line);
                    scanner.indents.len() + scanner.flow
                })
                .max();
            assert!(deepest < Some(10), "{file}: {deepest:?}");
        }
    }

    #[test]
    fn aliases_are_noticed_where_a_node_can_start() {
        assert!(scan("a: &x 1\nb: *x\n").may_alias);
        assert!(scan("a: [*x]\n").may_alias);
        assert!(scan("- *x\n").may_alias);
        assert!(!scan("a: '*x'\nb: x*y\nc: 2 * 3 # *x\n").may_alias);
    }

    #[test]
    fn aliases_may_expand_a_document_up_to_the_limit() {
        let repeated = |value: usize, times: usize| {
            let mut text = format!("a: &big '{}'\nb:\n", "x".repeat(value));
            text.push_str(&"  - *big\n".repeat(times));
            text
        };
        // Ten copies of 50 KB: under the 1 MiB floor.
        assert_eq!(expansion(&repeated(50_000, 10)), None);
        // A thousand copies of 100 KB: 100 MB from 100 KB.
        let refused = expansion(&repeated(100_000, 1000)).expect("refused");
        assert_eq!(refused.at, Position::START);
        assert_eq!(
            refused.message,
            "aliases expand this document past 1.0 MiB (10 times its size, at least 1 MiB), \
             the limit"
        );
        // Nested aliases (billion laughs): refused after walking about the budget.
        let mut laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned();
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip("abcdefgh".chars())
        {
            laughs.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{previous}"); 10].join(", ")
            ));
        }
        assert!(expansion(&laughs).is_some());
        // Other problems are the parser's to report.
        assert_eq!(expansion("a: *unknown\n"), None);
        assert_eq!(expansion("a: [\n"), None);
    }

    #[test]
    fn quoted_values_are_cut_to_an_excerpt() {
        let long = "y".repeat(1000);
        let cut = format!("{}…", "y".repeat(EXCERPT_CHARS));
        assert_eq!(
            excerpt(format!(
                "unknown field `{long}`, expected `probes` or `rules`"
            )),
            format!("unknown field `{cut}`, expected `probes` or `rules`")
        );
        assert_eq!(
            excerpt(format!(
                "invalid type: string \"a\\\"{long}\", expected u32"
            )),
            format!(
                "invalid type: string \"a\\\"{}…\", expected u32",
                "y".repeat(EXCERPT_CHARS - 3)
            )
        );
        assert_eq!(
            excerpt(format!("unclosed `{long}")),
            format!("unclosed `{cut}")
        );
        let short = "unknown field `methd`, expected one of `url`, `method`".to_owned();
        assert_eq!(excerpt(short.clone()), short);
        let words = "word ".repeat(1000);
        assert_eq!(excerpt(words).chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        assert_eq!(
            read_text(Path::new("/dev/zero")),
            Err("not a regular file (a character device)".to_owned())
        );
        assert_eq!(
            read_text(Path::new("/")),
            Err("not a regular file (a directory)".to_owned())
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(70 * 1024 * 1024).unwrap();
        assert_eq!(
            read_text(&big),
            Err("70 MiB, larger than the 64 MiB limit".to_owned())
        );
        let fine = dir.path().join("fine.yaml");
        std::fs::write(&fine, "a: 1\n").unwrap();
        assert_eq!(read_text(&fine), Ok("a: 1\n".to_owned()));
    }
}
