//! The key encoding, and the contract every backend keeps ([`contract`]), run here on redb;
//! the PostgreSQL backend's tests run the same.

use super::key::{Key, KeyArg};
use super::{Backend, Bytes, Def, RawRead, RawWrite, Readable};
use crate::store::StoreError;

fn bytes<K, A: KeyArg<K>>(key: A) -> Vec<u8> {
    key.to_bytes()
}

#[test]
fn integers_sort_as_their_bytes() {
    let numbers = [i64::MIN, -1_000, -1, 0, 1, 7, 1_000, i64::MAX];
    for pair in numbers.windows(2) {
        assert!(
            bytes::<i64, _>(pair[0]) < bytes::<i64, _>(pair[1]),
            "{pair:?}"
        );
    }
    let numbers = [i32::MIN, -5, 0, 24_312, i32::MAX];
    for pair in numbers.windows(2) {
        assert!(
            bytes::<i32, _>(pair[0]) < bytes::<i32, _>(pair[1]),
            "{pair:?}"
        );
    }
    for n in [0, 1, 255, 256, u64::MAX] {
        assert_eq!(u64::from_bytes(&bytes::<u64, _>(n)), Some(n));
    }
    for n in numbers {
        assert_eq!(i32::from_bytes(&bytes::<i32, _>(n)), Some(n));
    }
    assert_eq!(i64::from_bytes(&bytes::<i64, _>(-3_i64)), Some(-3));
}

#[test]
fn strings_in_tuples_sort_as_the_tuples_do() {
    // A prefix sorts first, a zero byte inside a string too, and the second part only
    // counts when the first parts are equal.
    let keys: Vec<(&str, u64)> = vec![
        ("", u64::MAX),
        ("a", 0),
        ("a", 5),
        ("a\0", 0),
        ("a\0b", 0),
        ("ab", 0),
        ("b", 0),
        ("é", 0),
    ];
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for pair in keys.windows(2) {
        assert!(
            bytes::<(String, u64), _>(pair[0]) < bytes::<(String, u64), _>(pair[1]),
            "{pair:?}"
        );
    }
    for (text, n) in keys {
        let decoded = <(String, u64)>::from_bytes(&bytes::<(String, u64), _>((text, n)));
        assert_eq!(decoded, Some((text.to_owned(), n)));
    }
    let three = bytes::<(i64, u64, String), _>((-5_i64, 9_u64, "escalation"));
    assert_eq!(
        <(i64, u64, String)>::from_bytes(&three),
        Some((-5, 9, "escalation".to_owned()))
    );
}

#[test]
fn bytes_that_are_not_a_key_do_not_decode() {
    assert_eq!(u64::from_bytes(&[1, 2, 3]), None);
    assert_eq!(String::from_bytes(b"abc"), None, "no terminator");
    assert_eq!(String::from_bytes(&[b'a', 0, 7]), None, "a bad escape");
    assert_eq!(String::from_bytes(&[0xC3, 0, 1]), None, "not UTF-8");
    assert_eq!(u64::from_bytes(&[0; 9]), None, "bytes left over");
}

const NUMBERS: Def<u64, Bytes> = Def::new("contract_numbers");
const PAIRS: Def<(String, u64), ()> = Def::new("contract_pairs");

fn write(backend: &dyn Backend, body: impl FnOnce(&dyn RawWrite) -> Result<(), StoreError>) {
    let txn = backend.write().expect("a write transaction");
    body(&*txn).expect("writes");
    txn.commit().expect("commit");
}

fn numbers(txn: &dyn RawRead) -> Vec<u64> {
    let table = txn.open(NUMBERS).unwrap();
    table.iter().unwrap().map(|row| row.unwrap().0).collect()
}

/// What every backend must do: reads see the last commit and nothing uncommitted, a write
/// transaction dropped without commit leaves nothing, ranges and their bounds, chunked
/// walks in both directions, deletes by key and by range.
pub fn contract(backend: &dyn Backend) {
    // Empty tables read as empty, also when never written.
    let txn = backend.read().unwrap();
    assert_eq!(numbers(&*txn), Vec::<u64>::new());
    assert_eq!(txn.open(NUMBERS).unwrap().len().unwrap(), 0);
    drop(txn);

    write(backend, |txn| {
        let mut table = txn.open(NUMBERS)?;
        for n in 0..100_u64 {
            table.put(n, format!("v{n}").as_bytes())?;
        }
        // Reads in the transaction see its own writes.
        assert_eq!(table.get(7_u64)?, Some(b"v7".to_vec()));
        assert_eq!(
            table.insert(7_u64, b"seven".as_slice())?,
            Some(b"v7".to_vec())
        );
        assert_eq!(table.insert(100_u64, b"new".as_slice())?, None);
        assert_eq!(table.remove(100_u64)?, Some(b"new".to_vec()));
        assert_eq!(table.remove(100_u64)?, None);
        table.delete(99_u64)?;
        assert_eq!(table.len()?, 99);
        Ok(())
    });

    // A snapshot taken now does not see what commits later.
    let before = backend.read().unwrap();
    let txn = backend.write().unwrap();
    {
        let mut table = txn.open(NUMBERS).unwrap();
        table.put(1_000_u64, b"uncommitted".as_slice()).unwrap();
    }
    drop(txn); // never committed
    write(backend, |txn| txn.open(NUMBERS)?.delete_range(10_u64..20));

    let after = backend.read().unwrap();
    let now = numbers(&*after);
    assert_eq!(now.len(), 89, "{now:?}");
    assert!(!now.contains(&1_000), "a dropped transaction wrote nothing");
    assert!(now.iter().all(|n| !(10..20).contains(n)));
    assert_eq!(
        numbers(&*before).len(),
        99,
        "the older snapshot still sees 99"
    );
    drop(before);

    let table = after.open(NUMBERS).unwrap();
    assert_eq!(table.get(7_u64).unwrap(), Some(b"seven".to_vec()));
    let collect = |iter: super::Iter<'_, u64, Bytes>| -> Vec<u64> {
        iter.map(|row| row.unwrap().0).collect()
    };
    assert_eq!(
        collect(table.range(5_u64..12).unwrap()),
        vec![5, 6, 7, 8, 9]
    );
    assert_eq!(
        collect(table.range(5_u64..=20).unwrap()),
        vec![5, 6, 7, 8, 9, 20]
    );
    assert_eq!(collect(table.range(..3_u64).unwrap()), vec![0, 1, 2]);
    assert_eq!(collect(table.range(97_u64..).unwrap()), vec![97, 98]);
    #[allow(clippy::reversed_empty_ranges)] // on purpose: a range that holds nothing
    let backwards = 8_u64..3;
    assert_eq!(collect(table.range(backwards).unwrap()), Vec::<u64>::new());
    assert_eq!(collect(table.range(3_u64..3).unwrap()), Vec::<u64>::new());
    assert_eq!(
        collect(table.range(5_u64..12).unwrap().rev()),
        vec![9, 8, 7, 6, 5]
    );
    assert_eq!(
        table
            .iter()
            .unwrap()
            .rev()
            .take(3)
            .map(|r| r.unwrap().0)
            .collect::<Vec<_>>(),
        vec![98, 97, 96]
    );
    // A walk longer than a chunk goes on where the last chunk ended, both ways.
    let all = collect(table.iter().unwrap());
    assert_eq!(all.len(), 89);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    let mut reversed = collect(table.iter().unwrap().rev());
    reversed.reverse();
    assert_eq!(reversed, all);
    drop(table);
    drop(after);

    // Tuple keys: one part's range is a prefix range.
    write(backend, |txn| {
        let mut pairs = txn.open(PAIRS)?;
        for (name, n) in [("a", 1), ("a", 2), ("ab", 1), ("b", 0), ("a", 3)] {
            pairs.put((name, n), ())?;
        }
        Ok(())
    });
    let txn = backend.read().unwrap();
    let pairs = txn.open(PAIRS).unwrap();
    let of_a: Vec<(String, u64)> = pairs
        .range(("a", 0_u64)..=("a", u64::MAX))
        .unwrap()
        .map(|row| row.unwrap().0)
        .collect();
    assert_eq!(
        of_a,
        vec![
            ("a".to_owned(), 1),
            ("a".to_owned(), 2),
            ("a".to_owned(), 3)
        ]
    );
    drop(pairs);
    drop(txn);

    write(backend, |txn| {
        let mut pairs = txn.open(PAIRS)?;
        pairs.delete_range(("a", 2_u64)..("a", u64::MAX))?;
        pairs.delete((String::from("b"), 0_u64))?;
        Ok(())
    });
    let txn = backend.read().unwrap();
    let left: Vec<(String, u64)> = txn
        .open(PAIRS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|row| row.unwrap().0)
        .collect();
    assert_eq!(left, vec![("a".to_owned(), 1), ("ab".to_owned(), 1)]);

    // Whole-table deletes.
    write(backend, |txn| txn.open(NUMBERS)?.clear());
    let txn = backend.read().unwrap();
    assert_eq!(txn.open(NUMBERS).unwrap().len().unwrap(), 0);
}

#[test]
fn redb_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = ::redb::Database::create(dir.path().join("contract.redb")).unwrap();
    contract(&db);
}
