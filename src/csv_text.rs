//! CSV output (`scores.csv`, `roc.csv`, `det.csv`, `predict --csv`): documents written with
//! the `csv` crate's quoting (a field is quoted when it holds a comma, a quote or a line
//! break, quotes doubled), and file paths written losslessly. A path's bytes that are not
//! UTF-8 are written `\xNN` (two lowercase hex digits per byte) and a backslash is doubled,
//! so [`unescape_path`] recovers the exact file name; a UTF-8 path without backslashes is
//! written as it is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `path` as CSV text, losslessly (see the module's doc).
pub fn escape_path(path: &Path) -> String {
    let bytes = path_bytes(path);
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                c => text.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// The path [`escape_path`] wrote as `text`; `None` for text it cannot have written (a
/// backslash before anything but a backslash or `xNN`).
pub fn unescape_path(text: &str) -> Option<PathBuf> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match rest {
            [b'\\', tail @ ..] => {
                bytes.push(b'\\');
                rest = tail;
            }
            [b'x', hi, lo, tail @ ..] => {
                let digit = |b: u8| char::from(b).to_digit(16);
                bytes.push((digit(*hi)? * 16 + digit(*lo)?) as u8);
                rest = tail;
            }
            _ => return None,
        }
    }
    path_from_bytes(bytes)
}

/// A CSV document of `rows` (the header first), each line ended by `\n`.
pub fn csv_document<I, R>(rows: I) -> Result<Vec<u8>, csv::Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    for row in rows {
        writer.write_record(row)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(path.as_os_str().as_bytes())
}

/// Elsewhere a path that is not Unicode is written lossily (only Unix names are bytes).
#[cfg(not(unix))]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Owned(path.to_string_lossy().into_owned().into_bytes())
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    String::from_utf8(bytes).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_and_backslashes_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let raw: &[u8] = b"/data/fake/caf\xe9 \\x41 \xff\xfe,\"q\".jpg";
        let path = Path::new(std::ffi::OsStr::from_bytes(raw));
        let text = escape_path(path);
        assert_eq!(text, "/data/fake/caf\\xe9 \\\\x41 \\xff\\xfe,\"q\".jpg");
        assert_eq!(unescape_path(&text).as_deref(), Some(path));
        assert_eq!(escape_path(Path::new("a/ü b.jpg")), "a/ü b.jpg");
        assert_eq!(unescape_path("bad\\q"), None);
        assert_eq!(unescape_path("bad\\xg1"), None);
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let rows = [
            vec!["path", "label"],
            vec!["a/b.jpg", "1"],
            vec!["a,b.jpg", "0"],
            vec!["say \"hi\".jpg", "1"],
            vec!["two\nlines", ""],
        ];
        let text = String::from_utf8(csv_document(rows).unwrap()).unwrap();
        assert_eq!(
            text,
            "path,label\na/b.jpg,1\n\"a,b.jpg\",0\n\"say \"\"hi\"\".jpg\",1\n\"two\nlines\",\n"
        );
    }
}
