//! Cross-site request forgery checks of every console POST.
//!
//! Owns two checks, both required: the form's hidden `csrf` field must
//! equal the session's token (compared in constant time), and an `Origin`
//! (or, without it, a `Referer`) header, when the browser sends one, must
//! name this same host. SameSite=Strict cookies already keep other sites'
//! forms from carrying the session; these checks hold even where a browser
//! ignores SameSite. Must not read or change the session map.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, without a timing hint of how much of
/// it matched.
pub fn tokens_match(given: &str, expected: &str) -> bool {
    !expected.is_empty() && given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The authority (`host[:port]`) of an absolute URL, if it has one.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether the request's `Origin` (or `Referer`) names the host it was
/// sent to. Neither header present: true (the token check still applies);
/// `Origin: null` (a sandboxed or opaque origin): false.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    match source.map(|value| value.to_str()) {
        None => true,
        Some(Ok(text)) => authority(text).is_some_and(|authority| authority.eq_ignore_ascii_case(host)),
        Some(Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn origin_must_be_this_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "a.example"), ("origin", "https://a.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
        assert!(same_origin(&headers(&[("host", "h:1"), ("referer", "http://h:1/console/suspense?x=1")])));
        assert!(!same_origin(&headers(&[("host", "h:1"), ("referer", "http://h:12/console/")])));
    }
}
