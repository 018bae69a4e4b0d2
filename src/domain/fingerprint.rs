//! Alertmanager's fingerprint of a label set: how an alert, a rule's series and a ticket are
//! told apart, with the same function as Alertmanager so that our fingerprints compare with
//! theirs.

/// Alertmanager's fingerprint: FNV-1a 64 over the sorted label pairs, each name and value
/// followed by 0xFF, printed as 16 hex digits. Using the same function as Alertmanager
/// keeps our fingerprints comparable with theirs.
pub fn fingerprint(labels: &[(&str, &str)]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    let mut hash = OFFSET;
    for (name, value) in sorted {
        for byte in name
            .bytes()
            .chain([0xFF])
            .chain(value.bytes())
            .chain([0xFF])
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Independent of label order, sensitive to values; the empty set hashes to the
        // FNV-1a offset basis, as in prometheus/common.
        assert_eq!(
            fingerprint(&[("b", "2"), ("a", "1")]),
            fingerprint(&[("a", "1"), ("b", "2")])
        );
        assert_ne!(fingerprint(&[("a", "1")]), fingerprint(&[("a", "2")]));
        assert_eq!(fingerprint(&[]), "cbf29ce484222325");
    }
}
