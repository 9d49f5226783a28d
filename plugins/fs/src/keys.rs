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
//! - **A segment longer than a file name** (255 bytes on most Linux file
//!   systems) is split into pieces of at most 253 encoded bytes; every
//!   piece but the last is a directory ending in `%+` ("the segment goes
//!   on"), so a 1,024-byte key of one segment is four nested names. Each
//!   piece is encoded on its own (a `.` starting a piece is `%2E`).
//!
//! Keys the store cannot keep verbatim are refused with `invalid_input`,
//! never normalised: empty keys, keys over 1,024 bytes, a leading or
//! trailing `/`, empty (`a//b`), `.` or `..` segments, and control
//! characters.

use std::path::{Path, PathBuf};

use strata_plugin::PluginError;

/// Longest key, in bytes (the blob contract's limit, S3's too).
pub(crate) const MAX_KEY_BYTES: usize = 1024;
/// Longest file name most Linux file systems take (`NAME_MAX`).
const MAX_NAME_BYTES: usize = 255;
/// Encoded bytes of one piece of a segment: with its mark (`%+` or `%`)
/// a name stays within [`MAX_NAME_BYTES`].
const PIECE_BYTES: usize = MAX_NAME_BYTES - 2;

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

/// One character of a piece, encoded (see the module docs): `at_start`
/// says whether it starts the piece.
fn encode_char(c: char, at_start: bool, out: &mut String) {
    match c {
        '%' => out.push_str("%25"),
        '.' if at_start => out.push_str("%2E"),
        c => out.push(c),
    }
}

/// Pushes the names of segment `seg` onto `path`: its pieces (see the
/// module docs), the last one marked as a directory (`%`) unless `last`.
fn push_segment(path: &mut PathBuf, seg: &str, last: bool) {
    let mut name = String::new();
    let mut one = String::with_capacity(4);
    for c in seg.chars() {
        one.clear();
        encode_char(c, name.is_empty(), &mut one);
        if name.len() + one.len() > PIECE_BYTES {
            name.push_str("%+");
            path.push(&name);
            name.clear();
            one.clear();
            encode_char(c, true, &mut one);
        }
        name.push_str(&one);
    }
    if !last {
        name.push('%');
    }
    path.push(name);
}

#[cfg(test)]
fn encode_segment(seg: &str, out: &mut String) {
    for (i, c) in seg.chars().enumerate() {
        encode_char(c, i == 0, out);
    }
}

/// The inverse of [`encode_char`] over one piece; `None` for a name no
/// key makes. `whole`: the piece is a whole segment, which cannot be `.`
/// or `..`.
fn decode_piece(name: &str, whole: bool) -> Option<String> {
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
    let foreign =
        name.starts_with('.') || out.is_empty() || (whole && matches!(out.as_str(), "." | ".."));
    (!foreign).then_some(out)
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
        push_segment(&mut path, seg, segments.peek().is_none());
    }
    Ok(path)
}

/// What a directory entry of the store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An object's file: the key's last piece.
    Object,
    /// The directory of a prefix: its segment is complete, `/` follows.
    Directory,
    /// A piece of a long segment that goes on below.
    Continued,
}

/// A directory entry as a key part: `Some((piece, kind))` for a name this
/// store wrote, `None` for anything else (ignored by listings). `whole`:
/// the entry starts a segment (its parent is not [`Entry::Continued`]).
pub(crate) fn entry_piece(name: &str, whole_segment: bool) -> Option<(String, Entry)> {
    // An encoded piece never ends in `%` (a literal `%` is `%25`) nor in
    // `%+`, so these endings are always marks.
    if let Some(piece) = name.strip_suffix("%+") {
        return decode_piece(piece, false).map(|s| (s, Entry::Continued));
    }
    match name.strip_suffix('%') {
        Some(dir) => decode_piece(dir, whole_segment).map(|s| (s, Entry::Directory)),
        None => decode_piece(name, whole_segment).map(|s| (s, Entry::Object)),
    }
}

/// The directory under `root` holding every key that starts with `prefix`
/// (the prefix's whole segments), and the key text that directory stands
/// for (`"a/b/"` for the directory of `a/b/`).
pub(crate) fn listing_start(root: &Path, prefix: &str) -> (PathBuf, String) {
    let mut dir = root.to_path_buf();
    let mut covered = String::new();
    if let Some(cut) = prefix.rfind('/') {
        for seg in prefix[..cut].split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                // No stored key has such a segment: an empty listing.
                return (root.join(".strata").join("none"), String::new());
            }
            push_segment(&mut dir, seg, false);
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
            "a", "100%", "%", "%25", ".x", "..y", "a.", "x%2", "%2E", "tail%", "+", "%+",
        ] {
            let mut file = String::new();
            encode_segment(seg, &mut file);
            assert_eq!(
                entry_piece(&file, true),
                Some((seg.to_string(), Entry::Object)),
                "{seg}"
            );
            let dir = format!("{file}%");
            assert_eq!(
                entry_piece(&dir, true),
                Some((seg.to_string(), Entry::Directory)),
                "{seg}"
            );
        }
        // Names no key makes are not keys: the store's own `.strata`,
        // broken escapes, a `.` escaped past the start, `.` itself.
        for foreign in [
            ".strata", "%zz", "%2Ex%2E", "", "%", "%2E", "%2E%2E%", "x%2", "%+",
        ] {
            assert_eq!(entry_piece(foreign, true), None, "{foreign:?}");
        }
    }

    #[test]
    fn a_segment_longer_than_a_name_is_split_into_pieces_that_list_back() {
        // 1,024 bytes, one segment, multi-byte characters, a `.` and a `%`
        // where pieces may start.
        let mut seg = String::from("long-");
        while seg.len() < 1000 {
            seg.push_str("é.%");
        }
        let key = format!("p/{seg}");
        let path = path_of(Path::new("/r"), &key).unwrap();
        let names: Vec<String> = path
            .strip_prefix("/r")
            .unwrap()
            .iter()
            .map(|n| n.to_str().unwrap().to_string())
            .collect();
        assert!(names.len() >= 5, "{names:?}");
        assert!(names.iter().all(|n| n.len() <= MAX_NAME_BYTES), "{names:?}");
        // Walk the names back the way a listing does.
        let (first, kind) = entry_piece(&names[0], true).unwrap();
        assert_eq!((first.as_str(), kind), ("p", Entry::Directory));
        let mut got = String::new();
        let mut whole = true;
        for n in &names[1..] {
            let (piece, kind) = entry_piece(n, whole).unwrap();
            got.push_str(&piece);
            whole = kind != Entry::Continued;
            assert_eq!(kind == Entry::Object, n == names.last().unwrap(), "{n}");
        }
        assert_eq!(got, seg);
        // The same segment as a prefix's directory: the listing starts there.
        let (dir, covered) = listing_start(Path::new("/r"), &format!("{key}/x"));
        assert_eq!(covered, format!("{key}/"));
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            format!("{}%", names.last().unwrap())
        );
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
