//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! and on the server, the bearer token it stands for, its roles, its CSRF
//! token and a one-time message for the next page.
//!
//! Owns the session map (bounded by [`limits::CONSOLE_SESSIONS_MAX`], idle
//! and absolute expiry) and the cookie text. Must not log or show a token
//! or a session id, and must not decide what a role may do: the API does.
//!
//! The token never leaves the server: the cookie holds only the session id,
//! and the map is keyed by the id's SHA-256, so a lookup's timing says
//! nothing about the ids it holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Role;
use crate::limits;

pub const SESSION_COOKIE: &str = "fundledger_console";
/// Before sign-in: the double-submit token of the sign-in form.
pub const LOGIN_COOKIE: &str = "fundledger_console_login";

/// A page's one-time message: the outcome of the action it follows.
#[derive(Clone, Debug)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

struct Stored {
    token: Box<str>,
    operator: Box<str>,
    roles: Vec<Role>,
    csrf: Box<str>,
    signed_in: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// What a request sees of its session.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: Box<str>,
    pub operator: Box<str>,
    pub roles: Vec<Role>,
    pub csrf: Box<str>,
    pub flash: Option<Flash>,
    key: [u8; 32],
}

impl Session {
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|held| *held == role || *held == Role::Admin)
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Stored>>,
}

/// 32 random bytes as 64 hex digits.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn expired(stored: &Stored, now: Instant) -> bool {
    now.duration_since(stored.last_seen) > Duration::from_secs(limits::CONSOLE_SESSION_IDLE_S)
        || now.duration_since(stored.signed_in) > Duration::from_secs(limits::CONSOLE_SESSION_LIFETIME_S)
}

impl Sessions {
    /// Starts a session for a checked token; returns its id (the cookie's
    /// value).
    pub fn create(&self, token: &str, operator: &str, roles: Vec<Role>) -> String {
        let id = random_hex();
        let now = Instant::now();
        let stored = Stored {
            token: token.into(),
            operator: operator.into(),
            roles,
            csrf: random_hex().into(),
            signed_in: now,
            last_seen: now,
            flash: None,
        };
        let mut map = self.map.lock();
        if map.len() >= limits::CONSOLE_SESSIONS_MAX {
            map.retain(|_, stored| !expired(stored, now));
        }
        if map.len() >= limits::CONSOLE_SESSIONS_MAX {
            let idlest = map.iter().min_by_key(|(_, stored)| stored.last_seen).map(|(key, _)| *key);
            if let Some(key) = idlest {
                map.remove(&key);
            }
        }
        map.insert(key_of(&id), stored);
        id
    }

    /// The session of a request's cookie, if it is live; takes its flash.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let key = key_of(id);
        let now = Instant::now();
        let mut map = self.map.lock();
        let stored = map.get_mut(&key)?;
        if expired(stored, now) {
            map.remove(&key);
            return None;
        }
        stored.last_seen = now;
        Some(Session {
            token: stored.token.clone(),
            operator: stored.operator.clone(),
            roles: stored.roles.clone(),
            csrf: stored.csrf.clone(),
            flash: stored.flash.take(),
            key,
        })
    }

    pub fn set_flash(&self, session: &Session, flash: Flash) {
        if let Some(stored) = self.map.lock().get_mut(&session.key) {
            stored.flash = Some(flash);
        }
    }

    pub fn remove(&self, session: &Session) {
        self.map.lock().remove(&session.key);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Whether the browser reached the console over https: the connection is
/// always plain HTTP here, so that is known only from a TLS-terminating
/// proxy's `X-Forwarded-Proto: https`. Trusting it from anyone is safe in
/// this direction: a client that forges it only makes its own cookie
/// `Secure`, which its browser then withholds over plain HTTP.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` text: HttpOnly, SameSite=Strict, Path=/console, `Secure`
/// over https. An empty `value` with `clear` expires the cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool, clear: bool) -> String {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if clear {
        text.push_str("; Max-Age=0");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(text).unwrap());
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_not_by_another() {
        let sessions = Sessions::default();
        let id = sessions.create("secret-token", "li.si", vec![Role::Finance]);
        let found = sessions.get(&with_cookie(&format!("other=1; {SESSION_COOKIE}={id}"))).unwrap();
        assert_eq!(&*found.token, "secret-token");
        assert!(found.has(Role::Finance) && !found.has(Role::Risk));
        assert!(sessions.get(&with_cookie(&format!("{SESSION_COOKIE}={}", random_hex()))).is_none());
        assert!(sessions.get(&HeaderMap::new()).is_none());
    }

    #[test]
    fn a_flash_is_shown_once() {
        let sessions = Sessions::default();
        let id = sessions.create("t", "o", vec![Role::Risk]);
        let headers = with_cookie(&format!("{SESSION_COOKIE}={id}"));
        let session = sessions.get(&headers).unwrap();
        sessions.set_flash(&session, Flash { ok: true, text: "done".into() });
        assert_eq!(sessions.get(&headers).unwrap().flash.unwrap().text, "done");
        assert!(sessions.get(&headers).unwrap().flash.is_none());
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let sessions = Sessions::default();
        let first = sessions.create("t", "o", vec![Role::Admin]);
        for _ in 0..limits::CONSOLE_SESSIONS_MAX + 10 {
            sessions.create("t", "o", vec![Role::Admin]);
        }
        assert_eq!(sessions.len(), limits::CONSOLE_SESSIONS_MAX);
        assert!(sessions.get(&with_cookie(&format!("{SESSION_COOKIE}={first}"))).is_none(), "the idlest went");
    }

    #[test]
    fn sessions_end_when_idle_and_after_their_lifetime() {
        let sessions = Sessions::default();
        let id = sessions.create("t", "o", vec![Role::Finance]);
        let headers = with_cookie(&format!("{SESSION_COOKIE}={id}"));
        let ago = |seconds: u64| Instant::now().checked_sub(Duration::from_secs(seconds)).unwrap();
        sessions.map.lock().values_mut().for_each(|stored| stored.last_seen = ago(limits::CONSOLE_SESSION_IDLE_S + 1));
        assert!(sessions.get(&headers).is_none(), "idle too long");
        assert!(sessions.is_empty(), "an expired session is dropped when met");

        let id = sessions.create("t", "o", vec![Role::Finance]);
        let headers = with_cookie(&format!("{SESSION_COOKIE}={id}"));
        sessions
            .map
            .lock()
            .values_mut()
            .for_each(|stored| stored.signed_in = ago(limits::CONSOLE_SESSION_LIFETIME_S + 1));
        assert!(sessions.get(&headers).is_none(), "past its lifetime, however busy");
    }

    #[test]
    fn cookies_are_strict_and_secure_only_over_https() {
        assert_eq!(set_cookie("a", "b", false, false), "a=b; Path=/console; HttpOnly; SameSite=Strict");
        assert!(set_cookie("a", "b", true, false).ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&headers));
        assert!(!is_https(&HeaderMap::new()));
    }
}
