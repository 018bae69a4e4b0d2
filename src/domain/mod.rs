//! The pure core: the condition language, the detector, the incident model and the
//! service desk's policies (categories, priority matrix, escalation, SLA). Nothing in here does I/O or reads a clock; every function that
//! needs the time takes `now` as an argument. Decisions come back as values (effects)
//! for the engine to persist and act on.

pub mod alert;
pub mod calendar;
pub mod condition;
pub mod correlate;
pub mod detector;
pub mod duration;
pub mod fingerprint;
pub mod incident;
pub mod maintenance;
pub mod observation;
pub mod policy;
pub mod priority;
pub mod signal;
pub mod similar;
pub mod sla;
pub mod suppression;
pub mod timer;
pub mod uptime;

pub use observation::Observation;

/// The most a regular expression from a rule or a silence may take once compiled: a tenth of
/// the `regex` crate's default. A short pattern can compile to megabytes (`[\p{L}\p{N}]{200}`
/// takes 0.8 s to compile and 0.3 s to search 64 KiB with the default limit); within this one
/// any pattern compiles in tens of milliseconds.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `pattern` compiled within [`REGEX_SIZE_LIMIT`]; the error is one line, without the
/// pattern (the caller shows where it is).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => "too large once compiled (over 1 MiB); repeat \
                less, or use ASCII classes such as (?-u:\\w) instead of \\w"
                .to_owned(),
            // A syntax error spans lines (the pattern, a caret, the reason): only the reason.
            error => {
                let text = error.to_string();
                let reason = text.lines().last().unwrap_or_default().trim();
                reason.strip_prefix("error: ").unwrap_or(reason).to_owned()
            }
        })
}
