//! The command line: `serve`, `wal verify`, `wal inspect`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "fundledger", version, about = "A ledger server for fund-agency marketplaces")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// The TOML config (default: config/default.toml, the dev profile).
        #[arg(long, default_value = "config/default.toml")]
        config: PathBuf,
        /// Listen address, e.g. 127.0.0.1:8080 (beats the config).
        #[arg(long, env = "FUNDLEDGER_LISTEN")]
        listen: Option<String>,
        /// Data directory (beats the config).
        #[arg(long, env = "FUNDLEDGER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Start on a damaged log anyway: truncate at the first bad frame,
        /// logging exactly what was dropped. An operator's explicit choice.
        #[arg(long)]
        truncate_corrupt_log: bool,
    },
    /// Work with the write-ahead log offline.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
pub enum WalCommand {
    /// Check every record of every retained segment and every checkpoint.
    Verify {
        #[arg(long, env = "FUNDLEDGER_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Print records, one per line: from `--from-lsn` to the end of the log
    /// (found through the offset sidecars, without reading the records
    /// before it), or just the record `--lsn`.
    Inspect {
        #[arg(long, env = "FUNDLEDGER_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        from_lsn: u64,
        /// Print only this record.
        #[arg(long, conflicts_with = "from_lsn")]
        lsn: Option<u64>,
    },
}

/// Run a parsed command; the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve { config, listen, data_dir, truncate_corrupt_log } => {
            let overrides = Overrides { listen, data_dir };
            let result = Config::load(&config, &overrides)
                .and_then(|config| crate::app::run(config, crate::app::RunOptions { truncate_corrupt_log }));
            match result {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("fundledger: {error}");
                    1
                }
            }
        }
        Command::Wal { command: WalCommand::Verify { data_dir } } => {
            let report = fundledger_wal::verify(&data_dir.join("wal"));
            println!("{report}");
            let checkpoints_ok = verify_checkpoint_contents(&data_dir.join("wal"));
            if report.is_ok() && checkpoints_ok {
                0
            } else {
                2
            }
        }
        Command::Wal { command: WalCommand::Inspect { data_dir, from_lsn, lsn } } => match lsn {
            Some(lsn) => inspect_one(&data_dir, lsn),
            None => inspect(&data_dir, from_lsn),
        },
    }
}

/// Beyond the frame and CRC checks of the wal crate: every checkpoint whose
/// frame is intact must decode and load like start-up would load it, and,
/// while the log still starts at lsn 1, every state checkpoint must equal
/// the log folded up to its lsn, part for part. One line per checkpoint;
/// false when one does not.
fn verify_checkpoint_contents(dir: &std::path::Path) -> bool {
    use crate::codec::checkpoint;
    let fs = fundledger_wal::RealFs;
    let Ok(checkpoints) = fundledger_wal::checkpoint::list_checkpoints(&fs, dir) else {
        return true; // no folder: the wal report said so
    };
    let mut ok = true;
    let mut states = Vec::new();
    for (lsn, path) in checkpoints {
        // A bad frame is already in the wal report above.
        let Ok(payload) = fundledger_wal::read_checkpoint_at(&fs, dir, lsn, crate::limits::CHECKPOINT_BYTES_MAX) else {
            continue;
        };
        let mut state = crate::recovery::Recovered::without_read_models();
        match state.load_checkpoint(lsn, &payload) {
            Ok(()) => println!(
                "checkpoint {}: lsn {lsn}, {} bytes, schema {}, {} accounts, loads cleanly",
                path.display(),
                payload.len(),
                checkpoint::schema(&payload).unwrap_or(0),
                state.books.len()
            ),
            Err(error) => {
                println!("DAMAGE: {}: checkpoint does not load: {error}", path.display());
                ok = false;
                continue;
            }
        }
        if let Ok(image) = checkpoint::decode_state(&payload) {
            states.push((lsn, path, image));
        }
    }
    ok && compare_with_log(dir, states)
}

/// Folds the log from lsn 1 and compares the state at each state
/// checkpoint's lsn with the checkpoint (`states` in any order). Skipped,
/// with a line, when the log no longer starts at lsn 1.
fn compare_with_log(
    dir: &std::path::Path,
    mut states: Vec<(u64, std::path::PathBuf, crate::codec::checkpoint::StateImage)>,
) -> bool {
    if states.is_empty() {
        return true;
    }
    states.sort_by_key(|(lsn, _, _)| std::cmp::Reverse(*lsn));
    let mut folded = crate::recovery::Recovered::for_checkpoint(u64::MAX);
    let mut ok = true;
    let mut problem = None;
    let read = fundledger_wal::read_records(dir, 1, |lsn, payload| {
        if folded.last_lsn == 0 && lsn != 1 {
            problem = Some(format!("the log starts at lsn {lsn}"));
            return std::ops::ControlFlow::Break(());
        }
        let applied = folded.apply_payload(lsn, payload);
        if let Err(error) = applied {
            problem = Some(format!("the log does not fold at lsn {lsn}: {error}"));
            return std::ops::ControlFlow::Break(());
        }
        while states.last().is_some_and(|(at, _, _)| *at == lsn) {
            let Some((at, path, image)) = states.pop() else { break };
            // A schema-3 checkpoint has no places to compare.
            let folded_image = folded.image().map(|from_log| match image.places {
                Some(_) => from_log,
                None => crate::codec::checkpoint::StateImage { places: None, ..from_log },
            });
            match folded_image {
                Ok(from_log) if from_log == image => {
                    println!("checkpoint {}: lsn {at}: equals the log folded to it", path.display())
                }
                Ok(_) => {
                    println!("DAMAGE: {}: checkpoint differs from the log folded to lsn {at}", path.display());
                    ok = false;
                }
                Err(error) => {
                    println!("DAMAGE: the log folded to lsn {at} breaks an invariant: {error}");
                    ok = false;
                }
            }
        }
        if states.is_empty() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    if let Err(error) = read {
        problem = Some(error.to_string());
    }
    if let Some(problem) = problem.filter(|_| !states.is_empty()) {
        println!("checkpoints not compared with the log: {problem}");
    } else if let Some((at, path, _)) = states.last() {
        println!("checkpoints not compared with the log: it ends before lsn {at} ({})", path.display());
    }
    ok
}

/// One line of `wal inspect`.
fn inspect_line(lsn: u64, payload: &[u8]) -> String {
    match crate::codec::decode(payload) {
        Ok(record) => format!("{lsn}\t{record:?}"),
        Err(error) => format!("{lsn}\tundecodable: {error}"),
    }
}

fn inspect(data_dir: &std::path::Path, from_lsn: u64) -> i32 {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut reader = fundledger_wal::SegmentReader::open(&data_dir.join("wal"));
    let result = reader.read_records(from_lsn, |lsn, payload| {
        if writeln!(out, "{}", inspect_line(lsn, payload)).is_err() {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("fundledger: {error}");
            2
        }
    }
}

fn inspect_one(data_dir: &std::path::Path, lsn: u64) -> i32 {
    match fundledger_wal::SegmentReader::open(&data_dir.join("wal")).read(lsn) {
        Ok(payload) => {
            println!("{}", inspect_line(lsn, &payload));
            0
        }
        Err(error) => {
            eprintln!("fundledger: {error}");
            2
        }
    }
}
