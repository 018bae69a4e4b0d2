//! A silence's matcher as amtool writes it (`service=~"web|api"`): parsed, then matched
//! against a fixed label set.
#![no_main]

use std::collections::BTreeMap;

use incidentd::domain::suppression::Matcher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(matcher) = Matcher::parse(text) else {
        return;
    };
    let labels = BTreeMap::from([
        ("alertname".to_owned(), "HighLatency".to_owned()),
        ("service".to_owned(), "web".to_owned()),
        ("empty".to_owned(), String::new()),
    ]);
    let verdict = matcher.matches(&labels);
    assert_eq!(matcher.matches(&labels), verdict);
    let _ = matcher.matches_value(matcher.value());
    // Shown in amtool's form, it reads back as the same matcher.
    let shown = matcher.to_string();
    assert_eq!(
        Matcher::parse(&shown).as_ref(),
        Ok(&matcher),
        "{text:?} shown as {shown:?}"
    );
});
