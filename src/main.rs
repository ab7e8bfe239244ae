//! The `fundledger` binary: parse the command line, set up logging, run.

use clap::Parser;

/// mimalloc instead of the system allocator: per-transfer allocations (ids,
/// records, responses) were a quarter of the server's CPU under glibc malloc
/// (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    fundledger::allocator::configure();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = fundledger::cli::Cli::parse();
    std::process::exit(fundledger::cli::run(cli));
}
