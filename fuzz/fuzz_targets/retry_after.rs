//! A consumer's `Retry-After` header value: delay-seconds or an HTTP-date.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = incidentd::notify::retry::retry_after(text, incidentd_fuzz::now());
});
