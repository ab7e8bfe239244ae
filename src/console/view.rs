//! What templates read: API answers wrapped for lookups by name, and the
//! frame every page shares (who is signed in, what the role may see, the
//! CSRF token, the one-time message).
//!
//! Owns presentation helpers only; every value shown passes through the
//! templates' HTML escaping (askama escapes `.html` templates by default,
//! and no template marks API data `|safe`).

use serde_json::Value;

use super::session::{Flash, Session};
use crate::config::Role;

/// A JSON value from the API, read by field name in templates:
/// `{{ entry.s("amount") }}`.
#[derive(Clone, Debug, Default)]
pub struct J(pub Value);

impl J {
    /// A field as text: strings as they are, numbers and booleans written
    /// out, null or absent as an empty string.
    pub fn s(&self, key: &str) -> String {
        text(&self.0[key])
    }

    /// A nested object.
    pub fn at(&self, key: &str) -> J {
        J(self.0[key].clone())
    }

    /// An array field's items (none when it is not an array).
    pub fn list(&self, key: &str) -> Vec<J> {
        self.0[key].as_array().map(|items| items.iter().cloned().map(J).collect()).unwrap_or_default()
    }

    pub fn is(&self, key: &str, value: &str) -> bool {
        self.0[key].as_str() == Some(value)
    }

    pub fn has(&self, key: &str) -> bool {
        !self.0[key].is_null()
    }

    pub fn truthy(&self, key: &str) -> bool {
        self.0[key].as_bool() == Some(true)
    }

    /// Every field as (name, text), for records shown whole.
    pub fn fields(&self) -> Vec<(String, String)> {
        match &self.0 {
            Value::Object(map) => map.iter().map(|(key, value)| (key.clone(), text(value))).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether a signed amount text is negative (journal deltas).
    pub fn negative(&self, key: &str) -> bool {
        self.0[key].as_str().is_some_and(|text| text.starts_with('-'))
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Object(_) | Value::Array(_) => value.to_string(),
        other => other.to_string(),
    }
}

/// The frame of every signed-in page.
pub struct Frame {
    pub operator: String,
    pub roles: String,
    pub csrf: String,
    pub finance: bool,
    pub risk: bool,
    pub flash: Option<Flash>,
    /// The nav entry to mark as current.
    pub current: &'static str,
}

impl Frame {
    pub fn new(session: &Session, current: &'static str) -> Self {
        let roles: Vec<&str> = session.roles.iter().map(|role| role.as_str()).collect();
        Self {
            operator: session.operator.to_string(),
            roles: roles.join(", "),
            csrf: session.csrf.to_string(),
            finance: session.has(Role::Finance),
            risk: session.has(Role::Risk),
            flash: session.flash.clone(),
            current,
        }
    }

    pub fn is(&self, page: &str) -> bool {
        self.current == page
    }
}
