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

/// Requests the gateway serves at once (counted from before the body is
/// read); past it, 503 OVERLOADED with Retry-After, at once, never a queue.
/// `/healthz`, `/readyz` and `/metrics` are outside the bound so probes see
/// an overloaded server as alive.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

/// Default and maximum `limit` of list endpoints (API.md, Pagination).
pub const PAGE_ITEMS_DEFAULT: usize = 100;
pub const PAGE_ITEMS_MAX: usize = 1000;

/// Deposited money the ledger holds in all, in fen: keeps every balance
/// and every sum of balances inside `i64`.
pub const CUSTODY_FEN_MAX: i64 = 4_000_000_000_000_000_000;

/// Header bytes the HTTP server reads before refusing a request with 431
/// and closing the connection: a bearer token and a signature need well
/// under 1 KiB, so this only stops abuse.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;

/// Header fields in one request before 431 (hyper's default).
pub const HEADERS_COUNT_MAX: usize = 100;

/// How long a client may take to send a request's headers (slowloris: a
/// client that trickles a header byte at a time holds a connection and a
/// task, not an in-flight permit, so only time bounds it). The same timer
/// runs while a kept-alive connection waits for its next request, so this
/// is also the keep-alive idle timeout.
pub const HEADER_READ_TIMEOUT_S: u64 = 10;

/// How long a client may take to send a request's body once its headers
/// are in. The in-flight permit is taken before the body is read, so
/// without this a few thousand clients stalling their bodies would hold
/// every permit (a slowloris on bodies). 60 s lets a 16 MiB body through
/// at 280 KB/s.
pub const BODY_READ_TIMEOUT_S: u64 = 60;

/// Request body bytes all requests together may hold in memory while
/// they are read and handled (or `limits.max_body_bytes`, if larger).
/// Without it the bound would be `IN_FLIGHT_REQUESTS_MAX` times the body
/// limit, 64 GiB. Counted as bytes arrive, not from Content-Length, so a
/// client cannot reserve memory it never sends; past it, 503 OVERLOADED.
pub const BODY_BYTES_IN_FLIGHT_MAX: usize = 1024 * 1024 * 1024;

/// On SIGTERM, how long requests in flight get to finish before their
/// connections are dropped and the log is synced anyway.
pub const SHUTDOWN_DRAIN_S: u64 = 30;

/// Pause after a failed `accept` (out of file descriptors) before the next.
pub const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;

/// Seconds a client is told to wait after a 503 or 429.
pub const RETRY_AFTER_S: u64 = 1;

/// Largest checkpoint file start-up and the checkpointer read (it is read
/// whole into memory, then folded). A checkpoint holds every record so far
/// (about 150 bytes per transfer) while the history lives in memory, so
/// this caps the history a checkpoint can carry at roughly 50 million
/// transfers; a larger one is skipped as unusable (the previous one, or a
/// full replay, is used) and logged.
pub const CHECKPOINT_BYTES_MAX: u64 = 8 * 1024 * 1024 * 1024;

/// How often the checkpointer looks at the durable lsn and the clock.
pub const CHECKPOINT_POLL_MS: u64 = 200;
