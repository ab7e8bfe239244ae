//! Every bound of the server in one place (TIGER_STYLE: a limit on
//! everything). Bounds an operator may tune live in the config
//! (`[limits]`, `[wal]`); these are the fixed ones, and the defaults.

/// Largest log record payload. Movements are ~200 bytes; an application
/// with long names is the largest record, far below this.
pub const RECORD_BYTES_MAX: usize = 64 * 1024;

/// Items in one `POST /v1/transfers/batch` (API.md).
pub const BATCH_ITEMS_MAX: usize = 8190;

/// `memo` length in Unicode characters (API.md).
pub const MEMO_CHARS_MAX: usize = 256;

/// Lengths of free-text fields of applications and notifications, in
/// characters: names, credential numbers, bank account numbers.
pub const TEXT_CHARS_MAX: usize = 256;

/// Accounts the directory can hold: 64 Mi (the directory reserves one
/// pointer per 4096 accounts up front, 128 KiB).
pub const ACCOUNTS_MAX: u64 = 64 * 1024 * 1024;

/// Messages waiting in one account actor's mailbox before senders are
/// refused with 503 OVERLOADED.
pub const ACCOUNT_MAILBOX_MAX: usize = 1024;

/// Unwritten log bytes the WAL accepts before new writes get 503
/// OVERLOADED (each batch of 8190 items is ~2 MiB).
pub const WAL_PENDING_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Requests the gateway serves at once; past it, 503 OVERLOADED.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

/// Default and maximum `limit` of list endpoints (API.md, Pagination).
pub const PAGE_ITEMS_DEFAULT: usize = 100;
pub const PAGE_ITEMS_MAX: usize = 1000;

/// Deposited money the ledger holds in all, in fen: keeps every balance
/// and every sum of balances inside `i64`.
pub const CUSTODY_FEN_MAX: i64 = 4_000_000_000_000_000_000;

/// Header bytes the HTTP server reads before refusing a request.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT_S: u64 = 10;

/// Seconds a client is told to wait after a 503 or 429.
pub const RETRY_AFTER_S: u64 = 1;
