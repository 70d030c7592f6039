//! Field syntax (RFC 9110 §5.6): tokens, comma lists and safe values, read and written. Every
//! header the crate reads or writes goes through these helpers.

/// RFC 7230 §3.2.6 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 7230 §3.2.6 `token = 1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Strips RFC 7230 §3.2.3 OWS (spaces and tabs) from both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(&[])
}

/// Items of an RFC 7230 §7 comma-separated list, trimmed, empty items skipped.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// Values of every header named `name` (field names are case-insensitive, RFC 7230 §3.2).
pub(crate) fn header_values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether any `name` header holds `token` (case-insensitive) in its comma list.
pub(crate) fn list_has_token(
    headers: &[httparse::Header<'_>],
    name: &'static str,
    token: &str,
) -> bool {
    header_values(headers, name)
        .flat_map(list_items)
        .any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The one value of a header that must appear exactly once: `Ok(None)` if absent,
/// `Err(())` if repeated.
pub(crate) fn single_value<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> Result<Option<&'a [u8]>, ()> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// Whether `value` may go on the wire as a field-value: no CTL but HTAB (RFC 7230 §3.2), so
/// no CR or LF can start a new header line.
pub(crate) fn is_safe_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `name: value\r\n` if both are safe; returns whether it was written.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) -> bool {
    if !is_token(name.as_bytes()) || !is_safe_value(value) {
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    true
}

/// Appends the application's extra headers, skipping unsafe ones and the ones in `reserved`
/// (which this module writes itself, and which a duplicate would make ambiguous).
pub(crate) fn push_extra(out: &mut Vec<u8>, extra: &[(String, String)], reserved: &[&str]) {
    for (name, value) in extra {
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            continue;
        }
        push_header(out, name, value.as_bytes());
    }
}
