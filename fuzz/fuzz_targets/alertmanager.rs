//! `POST /api/v1/alertmanager`: any body → JSON → Alertmanager webhook (version 4) →
//! alerts, then what the engine derives from each before deciding (identity, signal).
#![no_main]

use incidentd::domain::alert::AlertSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match incidentd::ingest::alertmanager(&body) {
        Ok(alerts) => {
            for alert in &alerts {
                assert_eq!(alert.source, AlertSource::Alertmanager);
                assert!(alert.labels.len() <= incidentd::ingest::LABELS);
            }
            incidentd_fuzz::signals(&alerts);
        }
        Err(invalid) => assert!(!invalid.to_string().is_empty()),
    }
});
