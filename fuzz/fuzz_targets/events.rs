//! `POST /api/v1/events` (`/v2/enqueue`): any body → JSON → a PagerDuty Events v2 event →
//! an alert, then what the engine derives from it before deciding (identity, signal).
#![no_main]

use incidentd::domain::alert::AlertSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match incidentd::ingest::event(&body, || "0123456789abcdef0123456789abcdef".to_owned()) {
        Ok(event) => {
            assert_eq!(event.alert.source, AlertSource::Events);
            assert!(!event.routing_key.is_empty());
            assert!(!event.dedup_key.is_empty());
            incidentd_fuzz::signals(std::slice::from_ref(&event.alert));
        }
        Err(errors) => assert!(!errors.is_empty(), "a refusal names its problems"),
    }
});
