//! The disk tier: stored responses as files in a directory, bounded in bytes, surviving a
//! restart.
//!
//! One file per stored variant, named by a hash of its key and secondary key:
//!
//! ```text
//! "WTC1" | meta length (u32) | meta | body length (u64) | body | xxh3 of all before (u64)
//! meta: key, status, headers, secondary key, request and response times, stale windows
//! ```
//!
//! At start-up the index is rebuilt from the files' meta sections (a file whose meta does not
//! parse is deleted). A file is checked whole (its checksum) when it is read to answer a
//! request; a corrupted one is deleted and never served. When the tier is over its bound,
//! the oldest responses go first. All calls do blocking file I/O: call them off the async
//! runtime's threads.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

const MAGIC: &[u8; 4] = b"WTC1";

/// What the disk keeps of a stored response, to rebuild it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its primary key.
    pub key: String,
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its secondary key (the varied request fields' values).
    pub secondary: Vec<Option<String>>,
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When its response was received.
    pub response_time: SystemTime,
    /// Its stale-while-revalidate window, route grace included.
    pub stale_while_revalidate: Option<Duration>,
    /// Its stale-if-error window, route grace included.
    pub stale_if_error: Option<Duration>,
}

/// One file of the index.
#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    bytes: u64,
    secondary: Vec<Option<String>>,
    headers: HeaderMap,
    response_time: SystemTime,
}

/// The disk tier.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    by_key: HashMap<String, Vec<Entry>>,
    bytes: u64,
}

impl DiskStore {
    /// Opens (creating it if needed) the tier in `dir`, bounded by `max_bytes`, rebuilding its
    /// index from the files there.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for file in fs::read_dir(dir)? {
            let path = file?.path();
            if path.extension().is_none_or(|e| e != "wtc") {
                continue;
            }
            match read_meta(&path) {
                Ok((record, bytes)) => index.add(&record, path, bytes),
                Err(_) => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let store = Self {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(index),
        };
        store.shrink();
        Ok(store)
    }

    /// Writes `record` with `body`, replacing the file of the same variant.
    pub fn write(&self, record: &Record, body: &[u8]) -> io::Result<()> {
        let name = file_name(&record.key, &record.secondary);
        let path = self.dir.join(&name);
        let bytes = encode(record, body);
        // Written aside, then renamed: a crash leaves the old file or the new, never half.
        let partial = self.dir.join(format!("{name}.partial"));
        fs::write(&partial, &bytes)?;
        fs::rename(&partial, &path)?;
        let mut index = self.lock();
        index.forget_path(&record.key, &path);
        index.add(record, path, bytes.len() as u64);
        drop(index);
        self.shrink();
        Ok(())
    }

    /// The stored variants of `key` (their headers and secondary keys), to pick one from.
    pub fn variants(&self, key: &str) -> Vec<(HeaderMap, Vec<Option<String>>)> {
        self.lock()
            .by_key
            .get(key)
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| (e.headers.clone(), e.secondary.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads the variant of `key` with this secondary key, checking it whole; a corrupted
    /// file is deleted and `None` returned.
    pub fn read(&self, key: &str, secondary: &[Option<String>]) -> Option<(Record, Bytes)> {
        let path = self.dir.join(file_name(key, secondary));
        match read_file(&path) {
            Ok(found) if found.0.key == key => Some(found),
            Ok(_) => None,
            Err(_) => {
                self.lock().forget_path(key, &path);
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Deletes every file of the keys `matches` selects (by key, or by the stored headers).
    /// Returns how many keys it removed.
    pub fn remove(&self, matches: impl Fn(&str, &HeaderMap) -> bool) -> usize {
        let mut index = self.lock();
        let victims: Vec<String> = index
            .by_key
            .iter()
            .filter(|(key, entries)| entries.iter().any(|e| matches(key, &e.headers)))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &victims {
            if let Some(entries) = index.by_key.remove(key) {
                for entry in entries {
                    index.bytes = index.bytes.saturating_sub(entry.bytes);
                    let _ = fs::remove_file(&entry.path);
                }
            }
        }
        victims.len()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Deletes the oldest responses until the tier is within its bound.
    fn shrink(&self) {
        let mut index = self.lock();
        if index.bytes <= self.max_bytes {
            return;
        }
        let mut all: Vec<(SystemTime, String, PathBuf)> = index
            .by_key
            .iter()
            .flat_map(|(key, entries)| {
                entries
                    .iter()
                    .map(|e| (e.response_time, key.clone(), e.path.clone()))
            })
            .collect();
        all.sort();
        for (_, key, path) in all {
            if index.bytes <= self.max_bytes {
                break;
            }
            index.forget_path(&key, &path);
            let _ = fs::remove_file(&path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Index {
    /// Counts the file at `path` (of `bytes`) holding `record`.
    fn add(&mut self, record: &Record, path: PathBuf, bytes: u64) {
        self.bytes += bytes;
        self.by_key
            .entry(record.key.clone())
            .or_default()
            .push(Entry {
                path,
                bytes,
                secondary: record.secondary.clone(),
                headers: record.headers.clone(),
                response_time: record.response_time,
            });
    }

    fn forget_path(&mut self, key: &str, path: &Path) {
        if let Some(entries) = self.by_key.get_mut(key) {
            if let Some(at) = entries.iter().position(|e| e.path == path) {
                let entry = entries.remove(at);
                self.bytes = self.bytes.saturating_sub(entry.bytes);
            }
            if entries.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

fn file_name(key: &str, secondary: &[Option<String>]) -> String {
    let mut text = key.to_owned();
    for value in secondary {
        text.push('\u{0}');
        match value {
            Some(v) => text.push_str(v),
            None => text.push('\u{1}'),
        }
    }
    format!("{:016x}.wtc", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

fn encode(record: &Record, body: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    put_bytes(&mut meta, record.key.as_bytes());
    meta.extend_from_slice(&record.status.as_u16().to_le_bytes());
    meta.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
    for (name, value) in &record.headers {
        put_bytes(&mut meta, name.as_str().as_bytes());
        put_bytes(&mut meta, value.as_bytes());
    }
    meta.extend_from_slice(&(record.secondary.len() as u32).to_le_bytes());
    for value in &record.secondary {
        match value {
            Some(v) => {
                meta.push(1);
                put_bytes(&mut meta, v.as_bytes());
            }
            None => meta.push(0),
        }
    }
    for time in [record.request_time, record.response_time] {
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        meta.extend_from_slice(&ms.to_le_bytes());
    }
    for window in [record.stale_while_revalidate, record.stale_if_error] {
        match window {
            Some(d) => {
                meta.push(1);
                meta.extend_from_slice(&(d.as_millis() as u64).to_le_bytes());
            }
            None => meta.push(0),
        }
    }
    let mut out = Vec::with_capacity(4 + 4 + meta.len() + 8 + body.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupted cache file: {what}"),
    )
}

/// Reads only the meta section (start-up): the record and the file's size.
fn read_meta(path: &Path) -> io::Result<(Record, u64)> {
    let mut file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head)?;
    if &head[..4] != MAGIC {
        return Err(corrupt("magic"));
    }
    let meta_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as u64;
    if meta_len > size {
        return Err(corrupt("meta length"));
    }
    let mut meta = vec![0u8; meta_len as usize];
    file.read_exact(&mut meta)?;
    Ok((parse_meta(&meta)?, size))
}

/// Reads and checks a whole file.
fn read_file(path: &Path) -> io::Result<(Record, Bytes)> {
    let bytes = fs::read(path)?;
    if bytes.len() < 4 + 4 + 8 + 8 || &bytes[..4] != MAGIC {
        return Err(corrupt("header"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(content).to_le_bytes() != sum {
        return Err(corrupt("checksum"));
    }
    let meta_len = u32::from_le_bytes(content[4..8].try_into().expect("4 bytes")) as usize;
    let meta = content
        .get(8..8 + meta_len)
        .ok_or_else(|| corrupt("meta"))?;
    let record = parse_meta(meta)?;
    let rest = &content[8 + meta_len..];
    let body_len = u64::from_le_bytes(
        rest.get(..8)
            .ok_or_else(|| corrupt("body length"))?
            .try_into()
            .expect("8 bytes"),
    ) as usize;
    let body = rest.get(8..8 + body_len).ok_or_else(|| corrupt("body"))?;
    Ok((record, Bytes::copy_from_slice(body)))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated meta"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn text(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| corrupt("text"))
    }
}

fn parse_meta(meta: &[u8]) -> io::Result<Record> {
    let mut r = Reader(meta);
    let key = r.text()?;
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| corrupt("status"))?;
    let mut headers = HeaderMap::new();
    for _ in 0..r.u32()? {
        let name = HeaderName::from_bytes(&r.bytes()?).map_err(|_| corrupt("header name"))?;
        let value = HeaderValue::from_bytes(&r.bytes()?).map_err(|_| corrupt("header value"))?;
        headers.append(name, value);
    }
    let mut secondary = Vec::new();
    for _ in 0..r.u32()? {
        secondary.push(match r.u8()? {
            0 => None,
            _ => Some(r.text()?),
        });
    }
    let request_time = UNIX_EPOCH + Duration::from_millis(r.u64()?);
    let response_time = UNIX_EPOCH + Duration::from_millis(r.u64()?);
    let mut window = || -> io::Result<Option<Duration>> {
        Ok(match r.u8()? {
            0 => None,
            _ => Some(Duration::from_millis(r.u64()?)),
        })
    };
    let stale_while_revalidate = window()?;
    let stale_if_error = window()?;
    Ok(Record {
        key,
        status,
        headers,
        secondary,
        request_time,
        response_time,
        stale_while_revalidate,
        stale_if_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, secondary: Vec<Option<String>>, age: u64) -> Record {
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
        headers.append("x-two", HeaderValue::from_static("a"));
        headers.append("x-two", HeaderValue::from_static("b"));
        let time = SystemTime::now() - Duration::from_secs(age);
        Record {
            key: key.to_owned(),
            status: StatusCode::OK,
            headers,
            secondary,
            request_time: time,
            response_time: time,
            stale_while_revalidate: Some(Duration::from_secs(30)),
            stale_if_error: None,
        }
    }

    #[test]
    fn a_record_survives_a_restart_whole() {
        let dir = tempfile::tempdir().unwrap();
        let written = record("http://a/x", vec![Some("fr".into()), None], 0);
        DiskStore::open(dir.path(), 1 << 20)
            .unwrap()
            .write(&written, b"body")
            .unwrap();
        let reopened = DiskStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened.variants("http://a/x").len(), 1);
        let (record, body) = reopened.read("http://a/x", &written.secondary).unwrap();
        assert_eq!(body, "body");
        assert_eq!(record.key, written.key);
        assert_eq!(record.headers, written.headers);
        assert_eq!(record.secondary, written.secondary);
        assert_eq!(
            record.stale_while_revalidate,
            written.stale_while_revalidate
        );
    }

    #[test]
    fn a_corrupted_file_is_never_served_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
        let written = record("http://a/x", Vec::new(), 0);
        store.write(&written, b"0123456789").unwrap();
        let path = dir.path().join(file_name("http://a/x", &[]));
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 12;
        bytes[at] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(store.read("http://a/x", &[]).is_none());
        assert!(!path.exists());
        // A file whose meta is garbage is dropped at start-up.
        fs::write(dir.path().join("0000000000000001.wtc"), b"WTC1garbage").unwrap();
        let reopened = DiskStore::open(dir.path(), 1 << 20).unwrap();
        assert!(reopened.variants("http://a/x").is_empty());
        assert!(!dir.path().join("0000000000000001.wtc").exists());
    }

    #[test]
    fn the_oldest_go_first_when_over_the_bound_and_removal_selects_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 600).unwrap();
        let body = [7u8; 150];
        for (i, age) in [(0, 30), (1, 20), (2, 10), (3, 0)] {
            store
                .write(&record(&format!("http://a/{i}"), Vec::new(), age), &body)
                .unwrap();
        }
        assert!(store.bytes() <= 600);
        assert!(
            store.variants("http://a/0").is_empty(),
            "the oldest went first"
        );
        assert_eq!(store.variants("http://a/3").len(), 1);
        assert_eq!(store.remove(|key, _| key.ends_with("/3")), 1);
        assert!(store.variants("http://a/3").is_empty());
    }
}
