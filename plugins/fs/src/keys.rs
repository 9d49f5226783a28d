//! Object keys as paths under the store's root.
//!
//! A key is split at `/`; every segment but the last names a directory,
//! the last names the object's file. Two rules make every key map to one
//! path and every path back to one key:
//!
//! - **Directories end in `%`.** S3 keys `a` and `a/b` may both exist; on a
//!   file system `a` cannot be a file and a directory at once. So the
//!   object `a` is the file `a`, and the prefix `a/` is the directory `a%`.
//! - **Segments are percent-encoded where a file name could not hold
//!   them verbatim:** `%` itself (`%25`), so a trailing `%` only ever
//!   marks a directory, and a leading `.` (`%2E`), so no object or
//!   directory name starts with a dot: the store's own `.strata/` (uploads
//!   in progress, temporary files) can never collide with a key, and no
//!   key is hidden from `ls`. Everything else (spaces, `?`, `#`, `\`,
//!   emoji …) is stored as is, so a backup directory reads like its keys:
//!   `backups%/main%/20261207T030000.000Z.sqlite.zst`.
//!
//! Keys the store cannot keep verbatim are refused with `invalid_input`,
//! never normalised: empty keys, keys over 1,024 bytes, a leading or
//! trailing `/`, empty (`a//b`), `.` or `..` segments, and control
//! characters. A segment whose encoded name passes the file system's 255
//! bytes is refused too (a 1,024-byte key needs at least four segments).

use std::path::{Path, PathBuf};

use strata_plugin::PluginError;

/// Longest key, in bytes (the blob contract's limit, S3's too).
pub(crate) const MAX_KEY_BYTES: usize = 1024;
/// Longest file name most Linux file systems take (`NAME_MAX`).
const MAX_NAME_BYTES: usize = 255;

/// Why `key` is refused, as the `invalid_input` error the contract wants.
fn refused(key: &str, reason: &str) -> PluginError {
    let shown: String = if key.len() > 80 {
        let cut = (0..=60)
            .rev()
            .find(|i| key.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{:?}… ({} bytes)", &key[..cut], key.len())
    } else {
        format!("{key:?}")
    };
    PluginError::invalid_input(format!("fs: key {shown}: {reason}"))
}

/// One segment, encoded (see the module docs).
fn encode_segment(seg: &str, out: &mut String) {
    for (i, c) in seg.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
}

/// The inverse of [`encode_segment`]; `None` for a name no key makes.
fn decode_segment(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at + 1..at + 3) {
            Some("25") => out.push('%'),
            Some("2E") if out.is_empty() => out.push('.'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    let canonical = !name.starts_with('.') && !matches!(out.as_str(), "" | "." | "..");
    canonical.then_some(out)
}

/// The path of `key`'s file under `root`, or the refusal.
pub(crate) fn path_of(root: &Path, key: &str) -> Result<PathBuf, PluginError> {
    if key.is_empty() {
        return Err(refused(key, "keys must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(refused(key, "longer than 1,024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(refused(key, "control characters cannot be stored verbatim"));
    }
    let mut path = root.to_path_buf();
    let mut segments = key.split('/').peekable();
    let mut name = String::new();
    while let Some(seg) = segments.next() {
        match seg {
            "" => {
                return Err(refused(
                    key,
                    "empty segment (a leading or trailing `/`, or `//`)",
                ));
            }
            "." | ".." => return Err(refused(key, "`.` and `..` segments are not kept verbatim")),
            _ => {}
        }
        name.clear();
        encode_segment(seg, &mut name);
        let last = segments.peek().is_none();
        if !last {
            name.push('%');
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(refused(
                key,
                &format!(
                    "the segment starting {:?} is {} bytes as a file name, over the file system's {MAX_NAME_BYTES}",
                    seg.chars().take(16).collect::<String>(),
                    name.len()
                ),
            ));
        }
        path.push(&name);
    }
    Ok(path)
}

/// A directory entry as a key part: `Some((segment, is_directory))` for a
/// name this store wrote, `None` for anything else (ignored by listings).
pub(crate) fn entry_segment(name: &str) -> Option<(String, bool)> {
    // An encoded name never ends in `%` (a literal `%` is `%25`), so a
    // trailing one is always the directory mark.
    match name.strip_suffix('%') {
        Some(dir) => decode_segment(dir).map(|s| (s, true)),
        None => decode_segment(name).map(|s| (s, false)),
    }
}

/// The directory under `root` holding every key that starts with `prefix`
/// (the prefix's whole segments), and the key text that directory stands
/// for (`"a/b/"` for the directory of `a/b/`).
pub(crate) fn listing_start(root: &Path, prefix: &str) -> (PathBuf, String) {
    let mut dir = root.to_path_buf();
    let mut covered = String::new();
    if let Some(cut) = prefix.rfind('/') {
        let whole = &prefix[..cut];
        let mut name = String::new();
        for seg in whole.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                // No stored key has such a segment: an empty listing.
                return (root.join(".strata").join("none"), String::new());
            }
            name.clear();
            encode_segment(seg, &mut name);
            name.push('%');
            dir.push(&name);
        }
        covered = prefix[..=cut].to_string();
    }
    (dir, covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(key: &str) -> String {
        path_of(Path::new("/r"), key)
            .unwrap()
            .strip_prefix("/r")
            .unwrap()
            .display()
            .to_string()
    }

    #[test]
    fn paths_mark_directories_and_escape_what_a_name_cannot_hold() {
        assert_eq!(rel("a"), "a");
        assert_eq!(rel("a/b"), "a%/b");
        assert_eq!(rel("100% sure"), "100%25 sure");
        assert_eq!(rel(".hidden/.x"), "%2Ehidden%/%2Ex");
        assert_eq!(rel("a.b/c.d"), "a.b%/c.d");
        assert_eq!(rel("emoji 🦀/q?#\\"), "emoji 🦀%/q?#\\");
    }

    #[test]
    fn every_name_decodes_back_to_its_segment() {
        for seg in [
            "a", "100%", "%", "%25", ".x", "..y", "a.", "x%2", "%2E", "tail%",
        ] {
            let mut file = String::new();
            encode_segment(seg, &mut file);
            assert_eq!(
                entry_segment(&file),
                Some((seg.to_string(), false)),
                "{seg}"
            );
            let dir = format!("{file}%");
            assert_eq!(entry_segment(&dir), Some((seg.to_string(), true)), "{seg}");
        }
        // Names no key makes are not keys: the store's own `.strata`,
        // broken escapes, a `.` escaped past the start, `.` itself.
        for foreign in [
            ".strata", "%zz", "%2Ex%2E", "", "%", "%2E", "%2E%2E%", "x%2",
        ] {
            assert_eq!(entry_segment(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn keys_that_cannot_be_kept_verbatim_are_refused() {
        for bad in [
            "",
            "/lead",
            "trail/",
            "a//b",
            "a/./b",
            "a/../b",
            ".",
            "..",
            "tab\tkey",
            "nul\0",
            "del\u{7f}",
        ] {
            let e = path_of(Path::new("/r"), bad).unwrap_err();
            assert_eq!(e.kind(), strata_plugin::ErrorKind::InvalidInput, "{bad:?}");
        }
        let long = "x".repeat(256);
        let e = path_of(Path::new("/r"), &long).unwrap_err();
        assert!(e.message().contains("255"), "{}", e.message());
        let too_long = "abc/".repeat(256) + "x";
        let e = path_of(Path::new("/r"), &too_long).unwrap_err();
        assert!(e.message().contains("1,024"), "{}", e.message());
    }

    #[test]
    fn a_listing_starts_at_the_prefixs_last_whole_segment() {
        let (dir, covered) = listing_start(Path::new("/r"), "a/b/c");
        assert_eq!(
            (dir.display().to_string(), covered.as_str()),
            ("/r/a%/b%".into(), "a/b/")
        );
        let (dir, covered) = listing_start(Path::new("/r"), "abc");
        assert_eq!(
            (dir.display().to_string(), covered.as_str()),
            ("/r".into(), "")
        );
    }
}
