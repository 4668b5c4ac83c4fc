//! The one place where failures become HTTP responses:
//! status + `{"error":{"code","message","innererror"?}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer. `message` must never contain tokens, key material or secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub inner: Option<String>,
    /// Extra `WWW-Authenticate` header (401 challenge).
    pub www_authenticate: Option<String>,
    /// Render as an OAuth2 error (`{"error": code, "error_description": message}`), the shape
    /// token endpoints use.
    pub oauth: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            inner: None,
            www_authenticate: None,
            oauth: false,
        }
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    pub fn sealed() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "VaultSealed",
            "the vault is sealed: unseal it with the unseal key shares before using it",
        )
    }

    pub fn with_inner(mut self, inner: impl Into<String>) -> Self {
        self.inner = Some(inner.into());
        self
    }

    pub fn body(&self) -> serde_json::Value {
        if self.oauth {
            return json!({"error": self.code, "error_description": self.message});
        }
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(inner) = &self.inner
            && let Some(obj) = err.as_object_mut()
        {
            obj.insert("innererror".into(), json!({"code": inner}));
        }
        json!({ "error": err })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(ch) = &self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(ch)
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp.extensions_mut().insert(ErrorCode(self.code.clone()));
        resp
    }
}

/// Response extension carrying the error code, for metrics and audit.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

impl From<enclava_vault::VaultError> for ApiError {
    fn from(e: enclava_vault::VaultError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut err = ApiError::new(status, e.code(), e.to_string());
        if let Some(inner) = e.inner_code() {
            err.inner = Some(inner.to_string());
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_code_message_and_optional_inner() {
        let e = ApiError::bad_parameter("x").with_inner("KeyDisabled");
        assert_eq!(
            e.body(),
            json!({"error":{"code":"BadParameter","message":"x","innererror":{"code":"KeyDisabled"}}})
        );
        let e = ApiError::sealed();
        assert_eq!(e.body()["error"]["code"], "VaultSealed");
        assert!(e.body()["error"].get("innererror").is_none());
    }

    #[test]
    fn vault_errors_keep_status_and_code() {
        let e: ApiError = enclava_vault::VaultError::KeyNotFound {
            name: "k".into(),
            version: None,
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, "KeyNotFound");
    }
}
