//! Keys whose bytes sort as their values do, and the values of the tables.
//!
//! - `u64`: 8 bytes big-endian; `i64` and `i32`: big-endian with the sign bit flipped, so
//!   negative numbers sort first;
//! - strings and byte strings: their bytes with each zero byte written as `00 FF`, then the
//!   terminator `00 01` — a prefix sorts before what extends it, and a part of a tuple ends
//!   where its terminator is;
//! - tuples: their parts one after the other.

use std::borrow::Cow;

use super::Bytes;

/// A key type: how its stored bytes decode, one part at a time.
pub trait Key: Sized {
    /// Reads one key from the front of `input`, advancing it.
    fn read(input: &mut &[u8]) -> Option<Self>;

    /// The whole of `bytes` as one key.
    fn from_bytes(mut bytes: &[u8]) -> Option<Self> {
        let key = Self::read(&mut bytes)?;
        bytes.is_empty().then_some(key)
    }
}

/// What may be given where a key of type `K` is wanted (`&str` for a `String` key, say).
pub trait KeyArg<K> {
    fn write(&self, out: &mut Vec<u8>);

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.write(&mut out);
        out
    }
}

/// A value type: how its stored bytes decode.
pub trait Value: Sized {
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// What may be given where a value of type `V` is wanted.
pub trait ValueArg<V> {
    fn to_bytes(&self) -> Cow<'_, [u8]>;
}

// Integers.

fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>()?;
    *input = rest;
    Some(*head)
}

impl Key for u64 {
    fn read(input: &mut &[u8]) -> Option<Self> {
        take::<8>(input).map(u64::from_be_bytes)
    }
}

impl KeyArg<u64> for u64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl KeyArg<u64> for &u64 {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

const I64_SIGN: u64 = 1 << 63;

impl Key for i64 {
    fn read(input: &mut &[u8]) -> Option<Self> {
        take::<8>(input).map(|b| (u64::from_be_bytes(b) ^ I64_SIGN).cast_signed())
    }
}

impl KeyArg<i64> for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.cast_unsigned() ^ I64_SIGN).to_be_bytes());
    }
}

impl KeyArg<i64> for &i64 {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

const I32_SIGN: u32 = 1 << 31;

impl Key for i32 {
    fn read(input: &mut &[u8]) -> Option<Self> {
        take::<4>(input).map(|b| (u32::from_be_bytes(b) ^ I32_SIGN).cast_signed())
    }
}

impl KeyArg<i32> for i32 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.cast_unsigned() ^ I32_SIGN).to_be_bytes());
    }
}

impl KeyArg<i32> for &i32 {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

// Strings and byte strings.

const ESCAPE: u8 = 0xFF;
const END: u8 = 0x01;

fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &byte in bytes {
        out.push(byte);
        if byte == 0 {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&[0, END]);
}

fn read_escaped(input: &mut &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = *input;
    loop {
        let (&byte, after) = rest.split_first()?;
        rest = after;
        if byte != 0 {
            out.push(byte);
            continue;
        }
        let (&marker, after) = rest.split_first()?;
        rest = after;
        match marker {
            ESCAPE => out.push(0),
            END => break,
            _ => return None,
        }
    }
    *input = rest;
    Some(out)
}

impl Key for String {
    fn read(input: &mut &[u8]) -> Option<Self> {
        String::from_utf8(read_escaped(input)?).ok()
    }
}

impl KeyArg<String> for &str {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self.as_bytes(), out);
    }
}

impl KeyArg<String> for String {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self.as_bytes(), out);
    }
}

impl KeyArg<String> for &String {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self.as_bytes(), out);
    }
}

impl Key for Bytes {
    fn read(input: &mut &[u8]) -> Option<Self> {
        read_escaped(input)
    }
}

impl KeyArg<Bytes> for &[u8] {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self, out);
    }
}

impl<const N: usize> KeyArg<Bytes> for &[u8; N] {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self.as_slice(), out);
    }
}

impl KeyArg<Bytes> for Bytes {
    fn write(&self, out: &mut Vec<u8>) {
        write_escaped(self, out);
    }
}

// Tuples.

impl<A: Key, B: Key> Key for (A, B) {
    fn read(input: &mut &[u8]) -> Option<Self> {
        Some((A::read(input)?, B::read(input)?))
    }
}

impl<A, B, X: KeyArg<A>, Y: KeyArg<B>> KeyArg<(A, B)> for (X, Y) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }
}

impl<A: Key, B: Key, C: Key> Key for (A, B, C) {
    fn read(input: &mut &[u8]) -> Option<Self> {
        Some((A::read(input)?, B::read(input)?, C::read(input)?))
    }
}

impl<A, B, C, X: KeyArg<A>, Y: KeyArg<B>, Z: KeyArg<C>> KeyArg<(A, B, C)> for (X, Y, Z) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
        self.2.write(out);
    }
}

// Values.

impl Value for Bytes {
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

impl ValueArg<Bytes> for &[u8] {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl ValueArg<Bytes> for Bytes {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl ValueArg<Bytes> for &Bytes {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl Value for () {
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.is_empty().then_some(())
    }
}

impl ValueArg<()> for () {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&[])
    }
}

impl Value for u64 {
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

impl ValueArg<u64> for u64 {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl ValueArg<u64> for &u64 {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl Value for i64 {
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(i64::from_be_bytes(bytes.try_into().ok()?))
    }
}

impl ValueArg<i64> for i64 {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl Value for (u32, u32) {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (a, b) = bytes.split_first_chunk::<4>()?;
        Some((
            u32::from_be_bytes(*a),
            u32::from_be_bytes(b.try_into().ok()?),
        ))
    }
}

impl ValueArg<(u32, u32)> for (u32, u32) {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut out = self.0.to_be_bytes().to_vec();
        out.extend_from_slice(&self.1.to_be_bytes());
        Cow::Owned(out)
    }
}
