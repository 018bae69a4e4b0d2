//! The `when` language: parse and type-check any text; a condition that compiles is
//! evaluated against a fixed history. Input: the condition, then optionally a NUL byte and
//! the newest result's body (so that `[BODY].json…` paths meet arbitrary documents).
#![no_main]

use incidentd::domain::condition::Condition;
use incidentd::domain::observation::History;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, body) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let condition = match Condition::parse(text) {
        Ok(condition) => condition,
        Err(error) => {
            // The loader turns the offset into a column of the rule file's line.
            assert!(
                error.offset <= text.chars().count(),
                "offset {} past the end of {text:?}",
                error.offset
            );
            assert!(!error.message.is_empty());
            return;
        }
    };
    assert_eq!(condition.source(), text);
    assert!(
        !condition.eval(&History::new()),
        "an empty history is never a symptom"
    );
    let history = incidentd_fuzz::history(body);
    let verdict = condition.eval(&history);
    assert_eq!(
        condition.eval(&history),
        verdict,
        "evaluation is deterministic"
    );
    let _ = condition.window();
});
