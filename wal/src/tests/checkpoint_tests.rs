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
