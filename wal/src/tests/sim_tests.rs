//! The simulated file system itself: the fault tests are only as good as it.

use std::path::Path;

use crate::fs::{SimFs, WalFs};

fn dir() -> &'static Path {
    Path::new("/sim/d")
}

#[test]
fn a_crash_keeps_only_synced_bytes_and_names() {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).expect("dir");
    let synced = dir().join("synced");
    let unnamed = dir().join("never-dir-synced");
    let mut file = fs.create(&synced).expect("create");
    file.write_all(b"durable").expect("write");
    file.sync_data().expect("sync");
    fs.sync_dir(dir()).expect("sync dir");
    file.write_all(b" lost").expect("write");
    let mut other = fs.create(&unnamed).expect("create");
    other.write_all(b"x").expect("write");
    other.sync_data().expect("sync");

    let rebooted = fs.crash();
    assert_eq!(rebooted.file_bytes(&synced), Some(b"durable".to_vec()));
    assert_eq!(rebooted.file_bytes(&unnamed), None, "a name is durable only after the directory fsync");
    assert!(file.write_all(b"late").is_err(), "the dead process's handles fail");
    assert!(fs.list(dir()).is_err(), "so does the dead process's file system handle");
    assert_eq!(rebooted.list(dir()).expect("list"), vec!["synced".to_string()]);
}

#[test]
fn a_torn_crash_keeps_a_prefix_of_unsynced_appends() {
    for seed in 0..200 {
        let fs = SimFs::new();
        fs.create_dir_all(dir()).expect("dir");
        let path = dir().join("f");
        let mut file = fs.create(&path).expect("create");
        fs.sync_dir(dir()).expect("sync dir");
        file.write_all(&[1u8; 100]).expect("write");
        file.sync_data().expect("sync");
        file.write_all(&[2u8; 1500]).expect("write");
        let bytes = fs.crash_torn(seed).file_bytes(&path).expect("file");
        assert!(bytes.len() >= 100 && bytes.len() <= 1600, "seed {seed}");
        assert_eq!(&bytes[..100], &[1u8; 100], "seed {seed}: synced bytes are never garbled");
        let sector_start = ((bytes.len().max(101) - 1) / 512 * 512).max(100);
        assert!(bytes[100..sector_start].iter().all(|&b| b == 2), "seed {seed}: only the last sector is garbled");
    }
}

#[test]
fn injected_faults_and_held_syncs() {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).expect("dir");
    let mut file = fs.create(&dir().join("f")).expect("create");
    fs.fail_writes_after(1, true);
    file.write_all(b"ok").expect("first write");
    assert!(file.write_all(b"half").is_err());
    assert_eq!(fs.file_bytes(&dir().join("f")), Some(b"okha".to_vec()), "a short write lands half");
    fs.clear_faults();
    fs.fail_syncs_after(0);
    assert!(file.sync_data().is_err());
    assert!(fs.sync_dir(dir()).is_err());
    fs.clear_faults();
    fs.hold_syncs(true);
    let released = {
        let fs = fs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            fs.hold_syncs(false);
        })
    };
    let before = fs.sync_count();
    file.sync_data().expect("sync after release");
    assert_eq!(fs.sync_count(), before + 1);
    released.join().expect("join");
}
