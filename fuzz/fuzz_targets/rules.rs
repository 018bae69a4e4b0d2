//! A rule file on any text, as the loader reads `rules/*.yaml`: probes and rules, or
//! located diagnostics, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("rules/fuzz.yaml");
    match incidentd::config::load_rule_text(path, text.to_owned(), &incidentd_fuzz::icmp_allowed) {
        Ok((probes, rules)) => {
            for rule in &rules {
                assert!(
                    probes.iter().any(|probe| probe.name == rule.probe),
                    "rule {} names probe {}, which is not defined",
                    rule.name,
                    rule.probe
                );
            }
        }
        Err(errors) => incidentd_fuzz::check_errors(path, text, &errors),
    }
});
