//! The API's errors: one enum of codes, mapped to status and body here and
//! nowhere else (API.md, Conventions: `{"error":{"code","message"}}`).
//!
//! Every layer's error converts into [`ApiError`] in this file, so the
//! mapping from a refusal to its HTTP status is written once.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::actors::account::ItemError;
use crate::actors::finance::FinanceError;
use crate::actors::log::LogError;
use crate::actors::registry::RegistryError;
use crate::actors::suspense::SuspenseError;
use crate::domain::account::Refusal;
use crate::domain::suspense::SuspenseRefusal;
use crate::finance::reconciliation::DiscrepancyRefusal;
use crate::limits;

/// Declares [`ErrorCode`] and [`ErrorCode::ALL`] from one list, so that a
/// document listing every code (OpenAPI) cannot miss one.
macro_rules! error_codes {
    ($($code:ident),+ $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($code),+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),+];
        }
    };
}

error_codes! {
    Unauthenticated,
    Forbidden,
    InvalidJson,
    InvalidField,
    MissingField,
    UnexpectedField,
    InvalidAmount,
    InvalidId,
    InvalidType,
    InvalidBatch,
    NotFound,
    AccountNotFound,
    ApplicationNotFound,
    HoldNotFound,
    TransferNotFound,
    WithdrawalNotFound,
    SuspenseNotFound,
    UnknownBank,
    MethodNotAllowed,
    IdReused,
    DuplicateCustomer,
    InvalidState,
    BodyTooLarge,
    UnsupportedMediaType,
    NameMismatch,
    UnknownBankRule,
    AccountNotActive,
    SameAccount,
    InsufficientFunds,
    HoldClosed,
    HoldExceeded,
    BalanceOverflow,
    TooManyAccounts,
    SuspenseExceeded,
    SuspenseClosed,
    RateLimited,
    Overloaded,
    LogUnavailable,
    ReceiptNotFound,
    ReceiptNotAvailable,
    ReconciliationNotFound,
    DiscrepancyNotFound,
    AdjustmentNotFound,
    SameOperator,
    BankUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            InvalidJson | InvalidField | MissingField | UnexpectedField | InvalidAmount | InvalidId | InvalidType
            | InvalidBatch => StatusCode::BAD_REQUEST,
            NotFound | AccountNotFound | ApplicationNotFound | HoldNotFound | TransferNotFound | WithdrawalNotFound
            | SuspenseNotFound | UnknownBank => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IdReused | DuplicateCustomer | InvalidState => StatusCode::CONFLICT,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NameMismatch | UnknownBankRule | AccountNotActive | SameAccount | InsufficientFunds | HoldClosed
            | HoldExceeded | BalanceOverflow | TooManyAccounts | SuspenseExceeded | SuspenseClosed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Overloaded | LogUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ReceiptNotFound => StatusCode::NOT_FOUND,
            ReceiptNotAvailable => StatusCode::CONFLICT,
            ReconciliationNotFound | DiscrepancyNotFound | AdjustmentNotFound => StatusCode::NOT_FOUND,
            SameOperator => StatusCode::UNPROCESSABLE_ENTITY,
            BankUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => "UNAUTHENTICATED",
            Forbidden => "FORBIDDEN",
            InvalidJson => "INVALID_JSON",
            InvalidField => "INVALID_FIELD",
            MissingField => "MISSING_FIELD",
            UnexpectedField => "UNEXPECTED_FIELD",
            InvalidAmount => "INVALID_AMOUNT",
            InvalidId => "INVALID_ID",
            InvalidType => "INVALID_TYPE",
            InvalidBatch => "INVALID_BATCH",
            NotFound => "NOT_FOUND",
            AccountNotFound => "ACCOUNT_NOT_FOUND",
            ApplicationNotFound => "APPLICATION_NOT_FOUND",
            HoldNotFound => "HOLD_NOT_FOUND",
            TransferNotFound => "TRANSFER_NOT_FOUND",
            WithdrawalNotFound => "WITHDRAWAL_NOT_FOUND",
            SuspenseNotFound => "SUSPENSE_NOT_FOUND",
            UnknownBank | UnknownBankRule => "UNKNOWN_BANK",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            IdReused => "ID_REUSED",
            DuplicateCustomer => "DUPLICATE_CUSTOMER",
            InvalidState => "INVALID_STATE",
            BodyTooLarge => "BODY_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            NameMismatch => "NAME_MISMATCH",
            AccountNotActive => "ACCOUNT_NOT_ACTIVE",
            SameAccount => "SAME_ACCOUNT",
            InsufficientFunds => "INSUFFICIENT_FUNDS",
            HoldClosed => "HOLD_CLOSED",
            HoldExceeded => "HOLD_EXCEEDED",
            BalanceOverflow => "BALANCE_OVERFLOW",
            TooManyAccounts => "TOO_MANY_ACCOUNTS",
            SuspenseExceeded => "SUSPENSE_EXCEEDED",
            SuspenseClosed => "SUSPENSE_CLOSED",
            RateLimited => "RATE_LIMITED",
            Overloaded => "OVERLOADED",
            LogUnavailable => "LOG_UNAVAILABLE",
            ReceiptNotFound => "RECEIPT_NOT_FOUND",
            ReceiptNotAvailable => "RECEIPT_NOT_AVAILABLE",
            ReconciliationNotFound => "RECONCILIATION_NOT_FOUND",
            DiscrepancyNotFound => "DISCREPANCY_NOT_FOUND",
            AdjustmentNotFound => "ADJUSTMENT_NOT_FOUND",
            SameOperator => "SAME_OPERATOR",
            BankUnavailable => "BANK_UNAVAILABLE",
            Internal => "INTERNAL",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The error body, `{"error":{"code","message"}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code.as_str(), "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.code == ErrorCode::Internal {
            tracing::error!(message = %self.message, "internal error");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(limits::RETRY_AFTER_S));
        }
        response
    }
}

impl From<LogError> for ApiError {
    fn from(error: LogError) -> Self {
        match error {
            LogError::Unavailable => {
                ApiError::new(ErrorCode::LogUnavailable, "the log cannot be written; the server must be restarted")
            }
            LogError::DiskLow => {
                ApiError::new(ErrorCode::LogUnavailable, "free disk space is below wal.min_free_bytes")
            }
            LogError::Overloaded => ApiError::new(ErrorCode::Overloaded, "the log is behind; retry shortly"),
        }
    }
}

impl From<crate::finance::archive::ArchiveError> for ApiError {
    /// The history's own files or the log's segments could not be read:
    /// the server's disk, not the request (503: a retry may succeed).
    fn from(error: crate::finance::archive::ArchiveError) -> Self {
        tracing::error!(%error, "a history read failed");
        ApiError::new(ErrorCode::LogUnavailable, format!("the history cannot be read: {error}"))
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let (code, message) = match refusal {
            Refusal::AccountNotActive => (ErrorCode::AccountNotActive, "an account of this movement is not active"),
            Refusal::SameAccount => (ErrorCode::SameAccount, "payer and payee are the same account"),
            Refusal::InsufficientFunds => (ErrorCode::InsufficientFunds, "available balance is below the amount"),
            Refusal::HoldNotFound => (ErrorCode::HoldNotFound, "no such hold"),
            Refusal::HoldClosed => (ErrorCode::HoldClosed, "the hold is closed"),
            Refusal::HoldExceeded => (ErrorCode::HoldExceeded, "the amount is above the hold's remaining"),
            Refusal::BalanceOverflow => {
                (ErrorCode::BalanceOverflow, "the balance would exceed what the ledger can hold")
            }
        };
        ApiError::new(code, message)
    }
}

impl From<ItemError> for ApiError {
    fn from(error: ItemError) -> Self {
        match error {
            ItemError::Refused(refusal) => refusal.into(),
            ItemError::Log(error) => error.into(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound => ApiError::new(ErrorCode::ApplicationNotFound, "no such application"),
            RegistryError::InvalidState => {
                ApiError::new(ErrorCode::InvalidState, "the application is not pending review")
            }
            RegistryError::DuplicateCustomer => ApiError::new(
                ErrorCode::DuplicateCustomer,
                "this credential_no has an application pending or an account signing or active",
            ),
            RegistryError::NameMismatch => {
                ApiError::new(ErrorCode::NameMismatch, "settlement_account.account_name must equal name")
            }
            RegistryError::UnknownBank => ApiError::new(ErrorCode::UnknownBankRule, "bank is not configured"),
            RegistryError::TooManyAccounts => {
                ApiError::new(ErrorCode::TooManyAccounts, "the ledger holds its maximum of accounts")
            }
            RegistryError::Log(error) => error.into(),
        }
    }
}

impl From<SuspenseError> for ApiError {
    fn from(error: SuspenseError) -> Self {
        match error {
            SuspenseError::Refused(SuspenseRefusal::NotFound) => {
                ApiError::new(ErrorCode::SuspenseNotFound, "no such suspense entry")
            }
            SuspenseError::Refused(SuspenseRefusal::Exceeded) => {
                ApiError::new(ErrorCode::SuspenseExceeded, "the amount is above the suspense entry's remaining")
            }
            SuspenseError::Refused(SuspenseRefusal::Closed) => {
                ApiError::new(ErrorCode::SuspenseClosed, "the suspense entry is not open")
            }
            SuspenseError::AccountNotActive => ApiError::new(ErrorCode::AccountNotActive, "the account is not active"),
            SuspenseError::Log(error) => error.into(),
        }
    }
}

impl From<FinanceError> for ApiError {
    fn from(error: FinanceError) -> Self {
        match error {
            FinanceError::Refused(DiscrepancyRefusal::NotFound) => {
                ApiError::new(ErrorCode::DiscrepancyNotFound, "no such discrepancy")
            }
            FinanceError::Refused(DiscrepancyRefusal::InvalidState(status)) => ApiError::new(
                ErrorCode::InvalidState,
                format!("the discrepancy is {}: proposing needs open, approving needs proposed", status.as_str()),
            ),
            FinanceError::Refused(DiscrepancyRefusal::SameOperator) => ApiError::new(
                ErrorCode::SameOperator,
                "the operator who proposed a resolution cannot approve it; another finance operator must",
            ),
            FinanceError::Log(error) => error.into(),
        }
    }
}

/// An actor that is gone (only while shutting down).
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::new(ErrorCode::Overloaded, "the server is shutting down")
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn missing(field: &str) -> ApiError {
    ApiError::new(ErrorCode::MissingField, format!("field `{field}` is required"))
}

pub fn invalid_field(field: &str, why: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, format!("field `{field}` {why}"))
}
