//! `incidentd.yaml` on any text, as `incidentd check` loads it: either a configuration or
//! located diagnostics, never a panic. The file's directory holds the shipped rule files
//! (`rules/*.yaml`), so their join with the settings (categories) is reached too.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A directory with `rules/self.yaml`, made once per process.
fn config_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("incidentd-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rules")).expect("a temporary directory");
        std::fs::write(
            dir.join("rules/self.yaml"),
            include_str!("../../rules/self.yaml"),
        )
        .expect("a rule file");
        dir.join("incidentd.yaml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `rule_files` globs the host's file system: only globs inside the directory are tried
    // (walking `/` is not parsing, and would read arbitrary files).
    if !incidentd_fuzz::globs_stay_inside(text) {
        return;
    }
    let path = config_path();
    let loaded = incidentd::config::load_text(
        path,
        text.to_owned(),
        &incidentd_fuzz::env,
        &incidentd_fuzz::icmp_allowed,
    );
    if let Err(errors) = loaded {
        incidentd_fuzz::check_errors(path, text, &errors);
    }
});
