//! Random material: job ids and the module auth token, from the operating system's secure
//! random source (through rustls' ring provider, already in the tree).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::LocalError;

/// Fills `buf` from the OS secure random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), LocalError> {
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| LocalError::Random)
}

/// A fresh module auth token: 32 random bytes, hex-encoded.
pub(crate) fn new_token() -> Result<String, LocalError> {
    let mut buf = [0u8; 32];
    random_bytes(&mut buf)?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Generates job ids shaped like version-4 UUIDs: 74 random bits fixed per runtime, then a
/// 48-bit counter, so ids are unique within a runtime (up to 2^48 jobs), unlikely to collide
/// across runtimes, and cost no system call.
#[derive(Debug)]
pub(crate) struct IdGen {
    prefix: [u8; 10],
    /// The first 24 characters every id of this generator starts with.
    prefix_text: String,
    counter: AtomicU64,
}

impl IdGen {
    /// A generator with a random prefix (a fixed prefix if the OS random source fails; ids stay
    /// unique within the runtime either way).
    pub(crate) fn new() -> Self {
        let mut prefix = [0u8; 10];
        if random_bytes(&mut prefix).is_err() {
            tracing::warn!("OS random source unavailable; job ids use a fixed prefix");
        }
        prefix[6] = (prefix[6] & 0x0f) | 0x40; // version 4
        prefix[8] = (prefix[8] & 0x3f) | 0x80; // RFC 4122 variant
        let h = hex(&prefix);
        let prefix_text = format!("{}-{}-{}-{}-", &h[0..8], &h[8..12], &h[12..16], &h[16..20]);
        Self {
            prefix,
            prefix_text,
            counter: AtomicU64::new(1),
        }
    }

    /// The counter inside an id this generator made, or `None` for any other string.
    pub(crate) fn counter_of(&self, id: &str) -> Option<u64> {
        let tail = id.strip_prefix(&self.prefix_text)?;
        if tail.len() != 12 || !tail.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u64::from_str_radix(tail, 16).ok()
    }

    /// The next job id.
    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff_ffff;
        let mut bytes = [0u8; 16];
        bytes[..10].copy_from_slice(&self.prefix);
        bytes[10..].copy_from_slice(&n.to_be_bytes()[2..]);
        let h = hex(&bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_distinct() {
        let ids = IdGen::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert_ne!(IdGen::new().next(), IdGen::new().next());
        assert_eq!(ids.counter_of(&b), Some(2));
        assert_eq!(ids.counter_of(&IdGen::new().next()), None);
        assert_eq!(ids.counter_of("not-an-id"), None);
    }

    #[test]
    fn tokens_are_random_hex() {
        let t = new_token().unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, new_token().unwrap());
    }
}
