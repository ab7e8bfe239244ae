//! Every bound of the server in one place (TIGER_STYLE: a limit on
//! everything). Bounds an operator may tune live in the config
//! (`[limits]`, `[wal]`); these are the fixed ones, and the defaults.

/// Largest log record payload. Movements are ~200 bytes; an application
/// with long names is the largest record, far below this.
pub const RECORD_BYTES_MAX: usize = 64 * 1024;

/// How long memory the allocator got back stays mapped before it is
/// returned to the system (mimalloc's `purge_delay`; its default is 1 s).
/// Memory freed and allocated again within this time costs no page faults:
/// with the default, the batch path faulted 28,000 pages a second in again
/// (4.4% of the server's samples, more over a million accounts), at the
/// price of up to this long's worth of freed memory held
/// (docs/PERFORMANCE.md). `MIMALLOC_PURGE_DELAY` in the environment
/// overrides it (`src/allocator.rs`).
pub const ALLOCATOR_PURGE_DELAY_MS: i64 = 10_000;

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

/// How often a live account actor checks whether it is idle; one that
/// handled nothing during a whole period, with nothing on its way to it,
/// gives its book back to the directory and stops (passivation, see
/// `actors::directory`). So an idle account keeps its actor (about 1.3 KB
/// more than its idle slot) for one to two periods.
///
/// Short, because an actor is now the slow path: a transfer whose payer is
/// idle is applied in place by the sender (`Directory::send_transfers`),
/// with no actor start, no two thread hand-offs and no stop, so the sooner
/// a busy account goes idle again the more of its transfers skip the
/// mailbox (batch, 10,000 accounts: 92-95k transfers/s with 2 s, 136-140k
/// with 20 ms; docs/PERFORMANCE.md). Not shorter: deposits, withdrawals,
/// snapshots and a payer that is busy right now still take the actor, and
/// each activation costs a spawn; an idle check every few milliseconds
/// per live actor would cost more than it saves.
pub const ACCOUNT_IDLE_PASSIVATE_MS: u64 = 20;

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

/// Console sessions held at once (one per signed-in browser). Past it,
/// signing in first drops expired sessions, then the one idle longest:
/// the map never grows, whoever signs in.
pub const CONSOLE_SESSIONS_MAX: usize = 1024;

/// A console session ends after this long without a request...
pub const CONSOLE_SESSION_IDLE_S: u64 = 30 * 60;

/// ...and in any case this long after signing in (a working day).
pub const CONSOLE_SESSION_LIFETIME_S: u64 = 12 * 60 * 60;

/// A console form body (sign-in, approve, assign...), and the uploaded
/// statement file, the largest thing the console takes. Its JSON lines must
/// still fit `limits.max_body_bytes` (16 MiB by default) when the console
/// hands them to `POST /v1/reconciliations`: a CSV line grows by about 90
/// bytes of keys, so 8 MiB of CSV stays under it.
pub const CONSOLE_FORM_BYTES_MAX: usize = 64 * 1024;
pub const CONSOLE_UPLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Bytes of console request bodies held by all requests at once.
pub const CONSOLE_BODY_BYTES_IN_FLIGHT_MAX: usize = 64 * 1024 * 1024;

/// Lines of one uploaded statement CSV.
pub const CONSOLE_STATEMENT_LINES_MAX: usize = 50_000;

/// Bytes of one in-process API answer the console reads (a page of 1000
/// journal entries is about 300 KiB).
pub const CONSOLE_API_ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Accounts the console's search by name or sub-account number reads
/// (through `GET /v1/accounts`, 1000 a page) before it stops and says so.
pub const CONSOLE_SEARCH_ACCOUNTS_MAX: usize = 10_000;

/// Open holds an account page looks up (the freeze and pay-freeze entries
/// of its journal, newest first).
pub const CONSOLE_HOLDS_SHOWN_MAX: usize = 100;

/// Discrepancies one reconciliation records (and answers) in full; past
/// it the summary still counts every one, and the answer says it was
/// truncated. 500 keeps the run's log record far below
/// [`RECORD_BYTES_MAX`] (a discrepancy is at most ~90 bytes).
pub const RECONCILIATION_DISCREPANCIES_MAX: usize = 500;

/// Reconciliations computed at once; more wait their turn. Each holds one
/// bank day of ledger lines in memory while its statement streams in.
pub const RECONCILIATIONS_IN_FLIGHT_MAX: usize = 2;

/// An uploaded statement streams in; a pause longer than this between two
/// chunks of its body gets `408 REQUEST_TIMEOUT` (a whole 512 MiB upload
/// may take longer than [`BODY_READ_TIMEOUT_S`], a stalled one may not
/// hold its permit for ever).
pub const STATEMENT_CHUNK_TIMEOUT_S: u64 = 30;

/// Chunks of an uploaded statement buffered between the socket and the
/// parser (each at most one HTTP frame, typically 8 to 64 KiB).
pub const STATEMENT_CHUNKS_BUFFERED: usize = 16;

/// Attempts to fetch a bank's statement (transient errors) before
/// answering `503 BANK_UNAVAILABLE`.
pub const STATEMENT_FETCH_ATTEMPTS_MAX: u32 = 5;

/// How long `POST /v1/sandbox/{bank}/credits` waits for the sandbox's
/// books, read in the background after a start, before it answers
/// `503 BANK_UNAVAILABLE` (with Retry-After).
pub const SANDBOX_BOOKS_WAIT_MS: u64 = 5_000;

/// References whose answers the sandbox bank keeps in memory; older ones
/// are found through its on-disk index ([`crate::actors::bank::references`]).
/// About 120 bytes each, so about 30 MB.
pub const SANDBOX_RECENT_REFERENCES: usize = 262_144;

/// Longest line of the sandbox's books file (longer: the books are damaged).
/// Its lines are a few hundred bytes; a credit's payer name is the longest field.
pub const SANDBOX_BOOK_LINE_BYTES_MAX: usize = 64 * 1024;

/// Largest checkpoint file start-up and the checkpointer read (it is read
/// whole into memory, then folded). A checkpoint holds every record so far
/// (about 150 bytes per transfer) while the history lives in memory, so
/// this caps the history a checkpoint can carry at roughly 50 million
/// transfers; a larger one is skipped as unusable (the previous one, or a
/// full replay, is used) and logged.
pub const CHECKPOINT_BYTES_MAX: u64 = 8 * 1024 * 1024 * 1024;

/// How often the checkpointer looks at the durable lsn and the clock.
pub const CHECKPOINT_POLL_MS: u64 = 200;

/// The share of one core's wall-clock time the checkpointer may take: after
/// a run that took `d` it rests `d * (100 - this) / this` (4 d) before the
/// next. A run's cost grows with accounts (it decodes the base checkpoint:
/// 4-10 s at a million accounts under load), so without a rest a loaded
/// server with many accounts spent a third of its CPU re-checkpointing
/// every `wal.checkpoint_every_records`. The price: a crash under such
/// load also replays what was written during the rest (four runs' time of
/// records past `checkpoint_every_records`: at a million accounts and full
/// load about 45 s of records, some 7 million, 7 s of replay), bounded by
/// the write rate, never by history. Not less: that replay grows as the
/// share shrinks. At 10,000 accounts a run takes well under a second and
/// the rest changes little.
pub const CHECKPOINT_DUTY_PERCENT: u32 = 20;

/// The nice value of the background (the checkpointer, the outbox's bank
/// calls; [`crate::threads`]): under load they get about a tenth of a core
/// each against the request path, and every idle cycle.
pub const BACKGROUND_NICE: i32 = 10;

/// Records appended and not yet folded by the history indexer at which
/// the log turns changes away (`503 OVERLOADED`; [`crate::actors::log`]):
/// a few hundred bytes each in memory, so about 100 MB.
pub const HISTORY_FEED_RECORDS_MAX: usize = 262_144;

/// How long the history indexer lets appends gather before each pass
/// while they keep coming, in µs ([`crate::finance::history`]): one wake-up
/// per pass instead of one per append. A journal read of one's own write
/// waits up to this much longer; nothing on the answer path waits for it.
pub const HISTORY_GATHER_US: u64 = 1_000;

/// Appends the history indexer takes from its feed for one pass at most.
pub const HISTORY_GATHER_BATCHES_MAX: usize = 4_096;

/// Deferred bank instructions the history indexer reads back from the log
/// and hands to the outbox in one step at most (`actors::outbox`,
/// `Deferred`): its pass, and the log reader's lock, stay short.
pub const BANK_REFILL_RECORDS_MAX: usize = 4_096;

/// How often the idle history indexer looks for room for deferred bank
/// instructions, in ms.
pub const BANK_REFILL_POLL_MS: u64 = 10;

/// How often it looks while none are deferred, in ms: the most start-up's
/// pending instructions wait before the first is read back.
pub const BANK_REFILL_IDLE_POLL_MS: u64 = 100;

/// The scheduler slice of the request path's threads, in µs (Linux 6.12+
/// custom slices; [`crate::threads`]). 100 µs is the kernel's minimum.
pub const REQUEST_SLICE_US: u64 = 100;

/// Upper bounds (seconds) of the buckets of `fundledger_http_request_seconds`
/// on `/metrics`: 2 ms is issue 5's `single` p99 target.
pub const HTTP_REQUEST_SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Records whose history index entries stay in memory before they are
/// written to the archive (`history.memory_records`, default): about
/// 150 bytes each, so 40 MiB, written every 2 s at 130,000 transfers/s.
pub const HISTORY_RECENT_RECORDS_DEFAULT: u64 = 262_144;
/// The most `history.memory_records` may be (memory stays bounded). The
/// indexer waits for the archive's writer past twice the configured value.
pub const HISTORY_RECENT_RECORDS_MAX: u64 = 16 * 1024 * 1024;
