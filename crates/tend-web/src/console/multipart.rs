//! `multipart/form-data` (RFC 7578) as a browser posts a file form, parsed from a body
//! already read whole under the route's limit. Only what a form sends is understood:
//! each part's `Content-Disposition: form-data` with its `name` and `filename`, and its
//! `Content-Type`; a streaming parser (multer) would add a crate and its text-encoding
//! tables for bodies that are bounded and read at once anyway.

use axum::body::Bytes;
use memchr::memmem;

/// The most parts one form may have: the import form sends two.
const MAX_PARTS: usize = 16;
/// The most header bytes one part may have.
const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// One field of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The field's `name`.
    pub name: String,
    /// The file name the browser sent, for a file field.
    pub file_name: Option<String>,
    /// The part's `Content-Type`, when it has one.
    pub content_type: Option<String>,
    /// The content, sharing the body's buffer.
    pub data: Bytes,
}

/// Why a body is not a form this parser can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The request's content type is not `multipart/form-data` with a boundary.
    #[error("the upload must be multipart/form-data with a boundary")]
    NotMultipart,
    /// The body does not follow the format; says where it stops making sense.
    #[error("the upload is not a well-formed multipart form: {0}")]
    Malformed(&'static str),
    /// More than [`MAX_PARTS`] fields.
    #[error("the upload has more than {MAX_PARTS} fields")]
    TooManyParts,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        // RFC 2046: 1 to 70 characters.
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// The parts of `body`, a form sent with `content_type`.
pub fn parse(content_type: &str, body: &Bytes) -> Result<Vec<Part>, MultipartError> {
    let boundary = boundary(content_type).ok_or(MultipartError::NotMultipart)?;
    let dash_boundary = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let find_delimiter = memmem::Finder::new(delimiter.as_bytes());
    // The first boundary may open the body or follow a preamble ending in CRLF.
    let mut at = if body.starts_with(dash_boundary.as_bytes()) {
        dash_boundary.len()
    } else {
        find_delimiter
            .find(body)
            .ok_or(MultipartError::Malformed("no boundary found"))?
            + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (spaces, tabs) may follow a boundary before its CRLF.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(MultipartError::Malformed(
                "a boundary is not followed by a line end",
            ));
        }
        at += padding + 2;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        let head_len = memmem::find(&body[at..], b"\r\n\r\n")
            .filter(|n| *n <= MAX_PART_HEADER_BYTES)
            .ok_or(MultipartError::Malformed("a part's headers do not end"))?;
        let head = std::str::from_utf8(&body[at..at + head_len])
            .map_err(|_| MultipartError::Malformed("a part's headers are not UTF-8"))?;
        let data_start = at + head_len + 4;
        let data_len =
            find_delimiter
                .find(&body[data_start..])
                .ok_or(MultipartError::Malformed(
                    "the last part is not closed by a boundary",
                ))?;
        parts.push(part(head, body.slice(data_start..data_start + data_len))?);
        at = data_start + data_len + delimiter.len();
    }
}

fn part(head: &str, data: Bytes) -> Result<Part, MultipartError> {
    let mut name = None;
    let mut file_name = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let Some((header, value)) = line.split_once(':') else {
            return Err(MultipartError::Malformed("a part header has no colon"));
        };
        let header = header.trim();
        if header.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = value.split_once(';').unwrap_or((value, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::Malformed("a part is not form-data"));
            }
            for (key, value) in params_of(params) {
                if key.eq_ignore_ascii_case("name") {
                    name = Some(value);
                } else if key.eq_ignore_ascii_case("filename") {
                    file_name = Some(value);
                }
            }
        } else if header.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    Ok(Part {
        name: name.ok_or(MultipartError::Malformed("a part has no name"))?,
        file_name,
        content_type,
        data,
    })
}

/// `; key=value; key="quoted \"value\""` as pairs, in order.
fn params_of(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ';')).collect();
        if key.trim().is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ';')).collect();
                value = value.trim().to_owned();
            }
        }
        params.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=----WebKitFormBoundaryx7";

    fn body(text: &str) -> Bytes {
        Bytes::from(text.replace('\n', "\r\n"))
    }

    #[test]
    fn a_browser_form_gives_its_fields_and_file() {
        let sent = body(concat!(
            "------WebKitFormBoundaryx7\n",
            "Content-Disposition: form-data; name=\"csrf\"\n",
            "\n",
            "abc\n",
            "------WebKitFormBoundaryx7\n",
            "Content-Disposition: form-data; name=\"file\"; filename=\"my \\\"list\\\"; 2.csv\"\n",
            "Content-Type: text/csv\n",
            "\n",
            "email,name\na@example.com,Ann\n\n",
            "------WebKitFormBoundaryx7--\n",
        ));
        let parts = parse(TYPE, &sent).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].file_name.as_deref(), Some("my \"list\"; 2.csv"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/csv"));
        // The file's own line ends are kept; the CRLF before the boundary is framing.
        assert_eq!(&parts[1].data[..], b"email,name\r\na@example.com,Ann\r\n");
    }

    #[test]
    fn a_quoted_boundary_and_a_preamble_are_understood() {
        let sent = body("preamble\n--b\nContent-Disposition: form-data; name=x\n\n1\n--b--");
        let parts = parse("multipart/form-data; boundary=\"b\"", &sent).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            (parts[0].name.as_str(), &parts[0].data[..]),
            ("x", &b"1"[..])
        );
    }

    #[test]
    fn broken_forms_are_refused_with_what_is_wrong() {
        let cases = [
            ("text/csv", "--b--", MultipartError::NotMultipart),
            (
                "multipart/form-data; boundary=b",
                "no boundary here",
                MultipartError::Malformed("no boundary found"),
            ),
            (
                "multipart/form-data; boundary=b",
                "--b\nContent-Disposition: form-data; name=x\n\nunclosed",
                MultipartError::Malformed("the last part is not closed by a boundary"),
            ),
            (
                "multipart/form-data; boundary=b",
                "--b\nContent-Disposition: form-data\n\n1\n--b--",
                MultipartError::Malformed("a part has no name"),
            ),
        ];
        for (content_type, text, expected) in cases {
            assert_eq!(parse(content_type, &body(text)), Err(expected), "{text}");
        }
        let many: String = (0..=MAX_PARTS)
            .map(|i| format!("--b\nContent-Disposition: form-data; name=f{i}\n\nv\n"))
            .collect::<String>()
            + "--b--";
        assert_eq!(
            parse("multipart/form-data; boundary=b", &body(&many)),
            Err(MultipartError::TooManyParts)
        );
    }
}
