//! Signing in to the console and using it over plain HTTP, as a browser
//! without JavaScript would: cookies by hand, forms urlencoded.

#![allow(dead_code)]

use crate::common::{Resp, Server};

pub const SESSION_COOKIE: &str = "fundledger_console";
pub const LOGIN_COOKIE: &str = "fundledger_console_login";

/// The value of cookie `name` set by `resp`, and its full `Set-Cookie` text.
pub fn set_cookie(resp: &Resp, name: &str) -> Option<(String, String)> {
    resp.headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.clone())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|text| {
            let value = text[name.len() + 1..].split(';').next().unwrap_or("").to_string();
            (value, text)
        })
}

/// The first hidden `csrf` field of a page.
pub fn csrf_field(html: &str) -> String {
    let re = regex_lite::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap();
    re.captures(html).map(|c| c[1].to_string()).unwrap_or_else(|| panic!("no csrf field in:\n{html}"))
}

pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// A signed-in console session over HTTP.
pub struct Browser<'a> {
    pub server: &'a Server,
    pub cookie: String,
    pub session_set_cookie: String,
}

/// The sign-in answer (303 with the session cookie, or the page again).
pub fn sign_in_raw(server: &Server, token: &str, extra: &[(&str, &str)]) -> Resp {
    let page = server.request("GET", "/console/login", extra, None);
    assert_eq!(page.status, 200, "GET /console/login: {}", page.text);
    let (login_cookie, _) = set_cookie(&page, LOGIN_COOKIE).expect("the sign-in page sets its form cookie");
    let csrf = csrf_field(&page.text);
    let body = form(&[("csrf", &csrf), ("token", token)]);
    let cookie = format!("{LOGIN_COOKIE}={login_cookie}");
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str())];
    headers.extend_from_slice(extra);
    server.request("POST", "/console/login", &headers, Some(body.as_bytes()))
}

impl<'a> Browser<'a> {
    pub fn sign_in(server: &'a Server, token: &str) -> Browser<'a> {
        let resp = sign_in_raw(server, token, &[]);
        assert_eq!(resp.status, 303, "sign-in with a good token: {}", resp.text);
        assert_eq!(resp.header("location"), Some("/console/"));
        let (value, text) = set_cookie(&resp, SESSION_COOKIE).expect("a session cookie");
        Browser { server, cookie: format!("{SESSION_COOKIE}={value}"), session_set_cookie: text }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.server.request("GET", path, &[("Cookie", &self.cookie)], None)
    }

    /// A page that must answer 200.
    pub fn page(&self, path: &str) -> String {
        let resp = self.get(path);
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.text);
        assert!(resp.header("content-type").unwrap_or("").starts_with("text/html"), "GET {path}: not HTML");
        resp.text
    }

    /// POSTs a form with extra headers; returns the answer unfollowed.
    pub fn post_with(&self, path: &str, fields: &[(&str, &str)], extra: &[(&str, &str)]) -> Resp {
        let body = form(fields);
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", self.cookie.as_str())];
        headers.extend_from_slice(extra);
        self.server.request("POST", path, &headers, Some(body.as_bytes()))
    }

    /// POSTs a form with this session's CSRF token (read from `from`) as a
    /// same-origin browser would, follows the redirect, returns that page.
    pub fn submit(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> String {
        let csrf = csrf_field(&self.page(from));
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = self.server.url("");
        let resp = self.post_with(path, &all, &[("Origin", &origin)]);
        assert_eq!(resp.status, 303, "POST {path}: {}", resp.text);
        let location = resp.header("location").expect("a redirect").to_string();
        self.page(&location)
    }
}

impl Browser<'_> {
    /// POSTs a multipart form (text fields, then one file) from the same
    /// origin; returns the answer unfollowed.
    pub fn post_multipart(&self, path: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Resp {
        let boundary = "----fundledger-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (name, filename, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                 Content-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let origin = self.server.url("");
        let headers =
            [("Content-Type", content_type.as_str()), ("Cookie", self.cookie.as_str()), ("Origin", origin.as_str())];
        self.server.request("POST", path, &headers, Some(&body))
    }
}
