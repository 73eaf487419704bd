//! Detecting `cmod-runtime`'s embedded local runtime (its `local` feature, which links
//! `cmod-local`'s servers) in a binary. Production images leave it out: `build` refuses a binary
//! that contains it unless asked (`--allow-local-runtime`), and `check` warns about one.

/// Byte strings that only a binary linking `cmod-local` contains: the name of the CA its
/// runtime generates (a string literal, present even in a fully stripped binary) and the
/// length-prefixed crate name in mangled symbols (legacy `_ZN10cmod_local…` and v0 `…10cmod_local…`,
/// present while symbols are kept).
pub const MARKERS: [&str; 2] = ["cmod local runtime CA", "10cmod_local"];

/// The first marker found in `binary`, if any.
pub fn find_marker(binary: &[u8]) -> Option<&'static str> {
    MARKERS
        .into_iter()
        .find(|marker| contains(binary, marker.as_bytes()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == first)
        .any(|(i, _)| haystack.get(i + 1..i + needle.len()) == Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ca_name_and_mangled_symbols() {
        assert_eq!(
            find_marker(b"\0\0xx cmod local runtime CA\0"),
            Some("cmod local runtime CA")
        );
        assert_eq!(
            find_marker(b"_ZN10cmod_local7runtime5start17h0123E"),
            Some("10cmod_local")
        );
        assert_eq!(
            find_marker(b"_ZN12cmod_runtime3run17h0123E cmod local"),
            None
        );
        assert_eq!(find_marker(b""), None);
    }
}
