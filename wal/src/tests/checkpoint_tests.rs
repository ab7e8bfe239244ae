use super::*;
use crate::checkpoint::{load_latest_checkpoint_with_fs, write_checkpoint_with_fs};
use crate::fs::WalFs;
use crate::segment::checkpoint_file_name;
use crate::{load_latest_checkpoint, write_checkpoint};

#[test]
fn newest_valid_checkpoint_wins_and_corrupt_newest_falls_back() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 1 << 20).expect("load"), None);
    for lsn in [10, 250, 40] {
        write_checkpoint_with_fs(&fs, &dir, lsn, &payload(lsn, lsn as usize)).expect("write");
    }
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 1 << 20).expect("load"), Some((250, payload(250, 250))));

    let newest = dir.join(checkpoint_file_name(250));
    let mut bytes = fs.file_bytes(&newest).expect("file");
    bytes[40] ^= 0x10;
    fs.set_file_bytes(&newest, bytes);
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 1 << 20).expect("load"), Some((40, payload(40, 40))));

    // Over the caller's limit counts as unusable too.
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 20).expect("load"), Some((10, payload(10, 10))));
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 5).expect("load"), None);
}

#[test]
fn a_checkpoint_is_durable_once_written() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    write_checkpoint_with_fs(&fs, &dir, 7, b"state").expect("write");
    let rebooted = fs.crash();
    assert_eq!(load_latest_checkpoint_with_fs(&rebooted, &dir, 100).expect("load"), Some((7, b"state".to_vec())));
    assert_eq!(rebooted.paths(), vec![dir.join(checkpoint_file_name(7))], "no temporary file left");
}

#[test]
fn a_checkpoint_that_lies_about_its_lsn_is_skipped() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    write_checkpoint_with_fs(&fs, &dir, 5, b"old").expect("write");
    write_checkpoint_with_fs(&fs, &dir, 6, b"new").expect("write");
    let bytes = fs.file_bytes(&dir.join(checkpoint_file_name(6))).expect("file");
    let renamed = dir.join(checkpoint_file_name(9));
    fs.create(&renamed).expect("create");
    fs.set_file_bytes(&renamed, bytes);
    assert_eq!(load_latest_checkpoint_with_fs(&fs, &dir, 100).expect("load"), Some((6, b"new".to_vec())));
}

#[test]
fn checkpoints_on_the_real_file_system() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    assert_eq!(load_latest_checkpoint(&dir, 100).expect("absent folder"), None);
    std::fs::create_dir_all(&dir).expect("dir");
    write_checkpoint(&dir, 3, b"three").expect("write");
    write_checkpoint(&dir, 3, b"three again").expect("rewrite the same lsn");
    write_checkpoint(&dir, 8, b"eight").expect("write");
    assert_eq!(load_latest_checkpoint(&dir, 100).expect("load"), Some((8, b"eight".to_vec())));
    let newest = dir.join(checkpoint_file_name(8));
    let len = std::fs::metadata(&newest).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&newest).expect("open").set_len(len - 1).expect("cut");
    assert_eq!(load_latest_checkpoint(&dir, 100).expect("load"), Some((3, b"three again".to_vec())));
}

/// Records every file-system call a checkpoint write makes, in order.
#[derive(Debug)]
struct Recording {
    inner: SimFs,
    calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Debug)]
struct RecordingFile {
    inner: Box<dyn crate::fs::WalFile>,
    calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn note(calls: &std::sync::Mutex<Vec<String>>, call: String) {
    calls.lock().expect("calls").push(call);
}

fn name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

impl crate::fs::WalFile for RecordingFile {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        note(&self.calls, "write".into());
        self.inner.write_all(bytes)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        note(&self.calls, "fsync file".into());
        self.inner.sync_data()
    }
    fn len_bytes(&self) -> std::io::Result<u64> {
        self.inner.len_bytes()
    }
    fn truncate(&mut self, len_bytes: u64) -> std::io::Result<()> {
        self.inner.truncate(len_bytes)
    }
    fn preallocate(&mut self, len_bytes: u64) -> std::io::Result<bool> {
        self.inner.preallocate(len_bytes)
    }
}

impl WalFs for Recording {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn create(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::WalFile>> {
        note(&self.calls, format!("create {}", name(path)));
        let inner = self.inner.create(path)?;
        Ok(Box::new(RecordingFile { inner, calls: self.calls.clone() }))
    }
    fn open(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::WalFile>> {
        self.inner.open(path)
    }
    fn read(&self, path: &std::path::Path, bytes_max: u64) -> std::io::Result<Vec<u8>> {
        self.inner.read(path, bytes_max)
    }
    fn open_read(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::WalReadFile>> {
        self.inner.open_read(path)
    }
    fn len_bytes(&self, path: &std::path::Path) -> std::io::Result<u64> {
        self.inner.len_bytes(path)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        note(&self.calls, format!("rename {} -> {}", name(from), name(to)));
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        note(&self.calls, format!("remove {}", name(path)));
        self.inner.remove(path)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        note(&self.calls, "fsync dir".into());
        self.inner.sync_dir(dir)
    }
    fn free_bytes(&self, dir: &std::path::Path) -> std::io::Result<u64> {
        self.inner.free_bytes(dir)
    }
}

#[test]
fn a_checkpoint_is_created_written_fsynced_renamed_and_its_directory_fsynced_in_that_order() {
    let sim = SimFs::new();
    let dir = sim_dir();
    sim.create_dir_all(&dir).expect("dir");
    let fs = Recording { inner: sim.clone(), calls: Default::default() };
    write_checkpoint_with_fs(&fs, &dir, 42, b"state").expect("write");
    assert_eq!(
        sim.read(&dir.join(checkpoint_file_name(42)), 1 << 20).expect("read"),
        crate::format::encode_checkpoint(42, b"state"),
        "the file is the whole frame"
    );
    let name = checkpoint_file_name(42);
    let calls = fs.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        vec![
            format!("remove {name}.tmp"),
            format!("create {name}.tmp"),
            // The header, then the payload (never copied into one buffer).
            "write".to_string(),
            "write".to_string(),
            "fsync file".to_string(),
            format!("rename {name}.tmp -> {name}"),
            "fsync dir".to_string(),
        ]
    );
}

#[test]
fn a_checkpoint_written_in_parts_is_the_checkpoint_of_the_parts_joined() {
    let sim = SimFs::new();
    let dir = sim_dir();
    sim.create_dir_all(&dir).expect("dir");
    let fs = Recording { inner: sim.clone(), calls: Default::default() };
    crate::checkpoint::write_checkpoint_parts_with_fs(&fs, &dir, 42, &[b"head ", b"", b"base ", b"tail"])
        .expect("write");
    assert_eq!(
        sim.read(&dir.join(checkpoint_file_name(42)), 1 << 20).expect("read"),
        crate::format::encode_checkpoint(42, b"head base tail"),
        "the same file as the payload written whole"
    );
    let writes = fs.calls.lock().expect("calls").iter().filter(|call| *call == "write").count();
    assert_eq!(writes, 4, "the header, then each part that has bytes");
    let loaded = load_latest_checkpoint_with_fs(&sim, &dir, 1 << 20).expect("load").expect("one");
    assert_eq!(loaded, (42, b"head base tail".to_vec()));
}

/// A crash (or an I/O error, then a crash) at every step of a checkpoint
/// write leaves either the previous checkpoint or the new one, never a
/// half; and once `write_checkpoint` returned Ok the new one survives.
#[test]
fn a_failure_at_any_step_of_a_checkpoint_write_leaves_the_old_or_the_new_one() {
    for step in 0..4u64 {
        for fail_writes in [false, true] {
            let fs = SimFs::new();
            let dir = sim_dir();
            fs.create_dir_all(&dir).expect("dir");
            write_checkpoint_with_fs(&fs, &dir, 5, b"old").expect("old");
            if fail_writes {
                fs.fail_writes_after(step, true);
            } else {
                fs.fail_syncs_after(step);
            }
            let written = write_checkpoint_with_fs(&fs, &dir, 9, b"new state").is_ok();
            let rebooted = fs.crash();
            let loaded = load_latest_checkpoint_with_fs(&rebooted, &dir, 100).expect("load");
            if written {
                assert_eq!(loaded, Some((9, b"new state".to_vec())), "step {step}: acknowledged, then lost");
            } else {
                assert!(
                    loaded == Some((5, b"old".to_vec())) || loaded == Some((9, b"new state".to_vec())),
                    "step {step}, fail_writes {fail_writes}: {loaded:?}"
                );
            }
        }
    }
}

#[test]
fn the_caller_can_refuse_a_checkpoint_and_get_the_previous_one() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    for lsn in [3, 7, 11] {
        write_checkpoint_with_fs(&fs, &dir, lsn, format!("state {lsn}").as_bytes()).expect("write");
    }
    let accepted = crate::load_accepted_checkpoint(&fs, &dir, 100, |lsn, payload| {
        if lsn == 11 {
            Err("does not decode".to_string())
        } else {
            Ok(String::from_utf8(payload).expect("utf-8"))
        }
    })
    .expect("load");
    assert_eq!(accepted, Some((7, "state 7".to_string())));
    let none = crate::load_accepted_checkpoint(&fs, &dir, 100, |_, _| Err::<(), _>("no".to_string())).expect("load");
    assert_eq!(none, None);
}

#[test]
fn pruning_keeps_only_the_named_checkpoints() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    for lsn in [3, 7, 11, 15] {
        write_checkpoint_with_fs(&fs, &dir, lsn, b"x").expect("write");
    }
    assert_eq!(crate::prune_checkpoints(&fs, &dir, &[15, 7]).expect("prune"), 2);
    let rebooted = fs.crash();
    let mut names: Vec<_> = rebooted.paths().into_iter().map(|path| name(&path)).collect();
    names.sort();
    assert_eq!(names, vec![checkpoint_file_name(7), checkpoint_file_name(15)], "the removals are durable");
}

#[test]
fn retention_removes_only_covered_expired_segments_and_never_the_last() {
    let fs = SimFs::new();
    let cfg = sim_config(256);
    let payloads = payloads(60, 40);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &cfg.dir);
    assert!(segments.len() >= 6, "{segments:?}");
    let firsts: Vec<u64> = segments.iter().map(|path| name(path)[..20].parse::<u64>().expect("segment name")).collect();

    // Not expired: nothing goes, whatever the checkpoint covers.
    let removed = crate::remove_segments_covered(&fs, &cfg.dir, 1000, |_| false).expect("retention");
    assert!(removed.is_empty());

    // Covered up to the middle of segment 3: segments 0..3 hold only
    // covered records; segment 3 does not.
    let covered = firsts[3] + 1;
    let removed = crate::remove_segments_covered(&fs, &cfg.dir, covered, |_| true).expect("retention");
    assert_eq!(removed, segments[..3].to_vec());
    let rebooted = fs.crash();
    assert_eq!(segment_paths(&rebooted, &cfg.dir), segments[3..].to_vec(), "the removals are durable");

    // Recovery from the checkpoint's lsn still has every record it needs.
    let (wal, _report, records) =
        open_sim_from(&rebooted, &cfg, RecoveryPolicy::default(), covered + 1).expect("open after retention");
    assert_eq!(records, expected_records(&payloads)[covered as usize..].to_vec());
    wal.shutdown().expect("shutdown");

    // Everything covered and expired: the last segment stays.
    let removed = crate::remove_segments_covered(&rebooted, &cfg.dir, u64::MAX, |_| true).expect("retention");
    assert_eq!(segment_paths(&rebooted, &cfg.dir).len(), 1, "removed {removed:?}");
}

/// The payload read back is the one written, and a file cut anywhere (the
/// header included) or one byte longer is refused, never read short.
#[test]
fn a_checkpoint_is_read_back_whole_and_any_cut_or_extra_byte_is_refused() {
    let fs = SimFs::new();
    let dir = sim_dir();
    fs.create_dir_all(&dir).expect("dir");
    let payload: Vec<u8> = (0..300u32).map(|n| (n * 7) as u8).collect();
    write_checkpoint_with_fs(&fs, &dir, 9, &payload).expect("write");
    assert_eq!(crate::checkpoint::read_checkpoint_at(&fs, &dir, 9, 1 << 20), Ok(payload.clone()));
    assert!(crate::checkpoint::read_checkpoint_at(&fs, &dir, 9, 299).is_err(), "over the limit");
    let whole = crate::format::encode_checkpoint(9, &payload);
    let path = dir.join(checkpoint_file_name(9));
    let mut longer = whole.clone();
    longer.push(0);
    for bytes in (0..whole.len()).map(|cut| whole[..cut].to_vec()).chain([longer]) {
        fs.remove(&path).expect("remove");
        let mut file = fs.create(&path).expect("create");
        file.write_all(&bytes).expect("write");
        assert!(crate::checkpoint::read_checkpoint_at(&fs, &dir, 9, 1 << 20).is_err(), "{} bytes", bytes.len());
    }
}
