//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use fundledger_index::{Direction, Entry, IndexError, Run, RunSpec, RunWriter};

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub fn write_run(path: &Path, spec: RunSpec, watermark: u64, model: &Model) -> Run {
    let mut writer = RunWriter::create(path, spec, watermark, model.len() as u64).expect("create");
    for (key, value) in model {
        writer.push(key, value).expect("push");
    }
    writer.finish().expect("finish")
}

pub fn collect<I: Iterator<Item = Result<Entry, IndexError>>>(entries: I) -> Result<Pairs, IndexError> {
    entries.map(|entry| entry.map(|entry| (entry.key, entry.value))).collect()
}

/// The model's answer to `range(lo, hi, direction)`.
pub fn model_range(model: &Model, lo: &[u8], hi: &[u8], direction: Direction) -> Pairs {
    if lo > hi {
        return Vec::new();
    }
    let entries = model.range(lo.to_vec()..=hi.to_vec()).map(|(key, value)| (key.clone(), value.clone()));
    match direction {
        Direction::Forward => entries.collect(),
        Direction::Reverse => entries.rev().collect(),
    }
}

/// The model's answer to `get_prefix(prefix, direction)`.
pub fn model_prefix(model: &Model, prefix: &[u8], direction: Direction) -> Pairs {
    let entries =
        model.iter().filter(|(key, _)| key.starts_with(prefix)).map(|(key, value)| (key.clone(), value.clone()));
    match direction {
        Direction::Forward => entries.collect(),
        Direction::Reverse => entries.rev().collect(),
    }
}
