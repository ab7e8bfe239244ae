//! The file system behind a small trait, so fault tests can run the real
//! writer and recovery against `SimFs`, which forgets every byte not
//! covered by a successful fsync on a simulated crash and injects errors.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

pub mod fault;
#[cfg(any(test, feature = "sim"))]
pub(crate) mod sim;
#[cfg(any(test, feature = "sim"))]
pub use sim::SimFs;

/// An open file the log appends to. Every write goes to the write
/// position: the end of what was written so far, which is the file's end
/// unless space was preallocated past it.
pub trait WalFile: Send + fmt::Debug {
    /// Writes all of `bytes` at the write position and moves it past them,
    /// or fails. A failure may leave part of `bytes` written.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync: data and the size needed to read it back.
    fn sync_data(&mut self) -> io::Result<()>;
    /// The write position: bytes written (for a file just opened, its
    /// length). Preallocated space past it does not count.
    fn len_bytes(&self) -> io::Result<u64>;
    /// Cuts the file to `len_bytes` (preallocated space included), which
    /// becomes the write position.
    fn truncate(&mut self, len_bytes: u64) -> io::Result<()>;
    /// Makes the file `len_bytes` long, the bytes past the write position
    /// reading as zeros, without moving the write position: writes up to
    /// there then change no metadata, so an fdatasync writes only data
    /// (on a journal-less ext4, one sleep fewer per commit than an append
    /// that grows the file: docs/PERFORMANCE.md). Durable after the next
    /// `sync_data`. `Ok(false)` where the file system cannot; the file is
    /// then unchanged and is appended to as before.
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<bool>;
}

/// A file opened for reading at any offset: history reads fetch one frame
/// without reading the segment before it.
pub trait WalReadFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read,
    /// fewer only at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    fn len_bytes(&self) -> io::Result<u64>;
}

pub trait WalFs: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates a new file (fails if it exists), open for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Opens an existing file for appending.
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Reads a whole file; fails with `FileTooLarge` rather than read more
    /// than `bytes_max`, so a length read from disk never sizes an allocation.
    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>>;
    /// Opens an existing file for positioned reads. Like a real descriptor,
    /// the handle keeps reading the file after its name is removed.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>>;
    fn len_bytes(&self, path: &Path) -> io::Result<u64>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the files in `dir` (not paths), in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// fsync of the directory itself, so created, renamed and removed names
    /// survive a crash (ALICE, OSDI'14).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Bytes an unprivileged process may still write on `dir`'s file system.
    fn free_bytes(&self, dir: &Path) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    /// The write position (positioned writes: the file may be longer).
    end: u64,
}

impl RealFile {
    fn new(file: File) -> io::Result<RealFile> {
        let end = file.metadata()?.len();
        Ok(RealFile { file, end })
    }
}

impl WalFile for RealFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = self.end.checked_add(bytes.len() as u64).ok_or_else(|| io::Error::other("file offset overflow"))?;
        self.file.write_all_at(bytes, self.end)?;
        self.end = end;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.end)
    }

    fn truncate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)?;
        self.end = len_bytes;
        Ok(())
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        if self.file.metadata()?.len() >= len_bytes {
            return Ok(true);
        }
        let len = libc::off_t::try_from(len_bytes).map_err(|_| io::Error::other("preallocation too large"))?;
        // SAFETY: a plain syscall on a descriptor we own; no memory passed.
        // Mode 0: allocate and extend the size; the new range reads as zeros.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            // Not supported here, or no room for it: appends still work
            // (and the free-space check refuses them in time).
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::ENOSPC) => Ok(false),
            _ => Err(error),
        }
    }
}

#[derive(Debug)]
struct RealReadFile {
    file: File,
}

impl WalReadFile for RealReadFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut read = 0;
        while read < buf.len() {
            match self.file.read_at(&mut buf[read..], offset + read as u64) {
                Ok(0) => break,
                Ok(bytes) => read += bytes,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(read)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

fn too_large(path: &Path, bytes_max: u64) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("{} is larger than the {bytes_max}-byte limit", path.display()))
}

impl WalFs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        // Positioned writes (`RealFile::end`), not O_APPEND: a preallocated
        // file's end is not where the next write goes.
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Box::new(RealFile::new(file)?))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile::new(file)?))
    }

    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
        let file = File::open(path)?;
        let len_bytes = file.metadata()?.len();
        if len_bytes > bytes_max {
            return Err(too_large(path, bytes_max));
        }
        let mut bytes = Vec::with_capacity(len_bytes as usize);
        // The file may grow while we read (a live log): never past the cap.
        file.take(bytes_max.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > bytes_max {
            return Err(too_large(path, bytes_max));
        }
        Ok(bytes)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>> {
        Ok(Box::new(RealReadFile { file: File::open(path)? }))
    }

    fn len_bytes(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn free_bytes(&self, dir: &Path) -> io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: statvfs only writes into the zeroed struct we own and reads
        // the NUL-terminated path, which lives until the call returns.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast)] // the field widths differ by platform
        Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
    }
}
