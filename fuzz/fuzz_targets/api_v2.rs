//! `POST /api/v2/alerts`: any body → JSON → Alertmanager's v2 push → alerts, then what the
//! engine derives from each before deciding (identity, signal).
#![no_main]

use incidentd::domain::alert::{AlertSource, AlertStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let now = incidentd_fuzz::now();
    match incidentd::ingest::api_v2(&body, now) {
        Ok(alerts) => {
            for alert in &alerts {
                assert_eq!(alert.source, AlertSource::ApiV2);
                assert!(
                    alert
                        .labels
                        .get("alertname")
                        .is_some_and(|name| !name.is_empty())
                );
                if let Some(ends_at) = alert.ends_at {
                    assert_eq!(alert.status, AlertStatus::Firing);
                    assert!(ends_at > now);
                }
            }
            incidentd_fuzz::signals(&alerts);
        }
        Err(invalid) => assert!(!invalid.to_string().is_empty()),
    }
});
