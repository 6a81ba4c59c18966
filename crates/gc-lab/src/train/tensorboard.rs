//! TensorBoard event files: a run's scalars (loss, accuracy, learning rate per step and per
//! epoch) where TensorBoard, and anything that reads its format, finds them.
//!
//! The format is TensorFlow's record file: each record is its length (u64, little-endian), the
//! masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data; each record's
//! data an `Event` protocol buffer (tensorflow/core/util/event.proto: `wall_time` 1, `step` 2,
//! `file_version` 3, `summary` 5; a summary's values carry `tag` 1 and `simple_value` 2). The
//! first event of a file names the version, `brain.Event:2`. `prost` encodes the messages;
//! the framing is written here (the crates that write event files whole were last released in
//! 2023 and 2024, and pull a protobuf compiler or a TLS stack into the build).
//!
//! The events of an epoch reach the file just before the epoch's checkpoint
//! ([`EventWriter::commit`]): a run stopped in the middle of an epoch leaves none of that
//! epoch's steps, so the resumed run, which trains the epoch again, writes each step once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use prost::Message;

/// One record of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The step the values belong to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The file's format, in its first event.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The values.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// The values of an event.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// One named scalar.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Always written (0.0 included), as TensorBoard skips a value without it.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// What the first event of every file says.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Appends events to one file of a folder; they reach the file at [`EventWriter::commit`].
pub struct EventWriter {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

impl EventWriter {
    /// A new event file in `dir` (created if missing), named as TensorBoard's own writers name
    /// theirs: `events.out.tfevents.<seconds>.<host>.<pid>.<n>`, `n` counting this process's
    /// files. Its first event, the format's version, is written at once.
    pub fn create(dir: &Path) -> Result<Self> {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the TensorBoard folder {}", dir.display()))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
            .unwrap_or_else(|| "localhost".into());
        let name = format!(
            "events.out.tfevents.{:010}.{host}.{}.{}",
            now() as u64,
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating the event file {}", path.display()))?;
        let mut writer = EventWriter {
            path,
            file,
            pending: Vec::new(),
        };
        writer.push(Event {
            wall_time: now(),
            step: 0,
            file_version: Some(FILE_VERSION.into()),
            summary: None,
        });
        writer.commit()?;
        Ok(writer)
    }

    /// The file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the scalars `values` (tag, value) at `step`, in one event.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) {
        let value = values
            .iter()
            .map(|&(tag, v)| Value {
                tag: tag.into(),
                simple_value: Some(v as f32),
            })
            .collect();
        self.push(Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(Summary { value }),
        });
    }

    /// Writes the events added since the last commit to the file and syncs it to the disk.
    pub fn commit(&mut self) -> Result<()> {
        self.file
            .write_all(&self.pending)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing the event file {}", self.path.display()))?;
        self.pending.clear();
        Ok(())
    }

    fn push(&mut self, event: Event) {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        self.pending.extend_from_slice(&length);
        self.pending
            .extend_from_slice(&masked_crc(&length).to_le_bytes());
        self.pending.extend_from_slice(&data);
        self.pending
            .extend_from_slice(&masked_crc(&data).to_le_bytes());
    }
}

/// The events of the file at `path`, every record's length and data checked against their
/// CRCs. A file cut short in its last record (a writer stopped mid-write) is an error naming
/// the byte where the record starts.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the event file {}", path.display()))?;
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let bad = |what: &str| format!("{}: the record at byte {at} {what}", path.display());
        let Some(head) = bytes.get(at..at + 12) else {
            bail!(bad("is cut short in its length"));
        };
        let (length, crc) = head.split_at(8);
        if masked_crc(length) != u32::from_le_bytes(crc.try_into().unwrap()) {
            bail!(bad("has a length that fails its CRC"));
        }
        let length = u64::from_le_bytes(length.try_into().unwrap()) as usize;
        let Some(body) = bytes.get(at + 12..(at + 16).saturating_add(length)) else {
            bail!(bad("is cut short in its data"));
        };
        let (data, crc) = body.split_at(length);
        if masked_crc(data) != u32::from_le_bytes(crc.try_into().unwrap()) {
            bail!(bad("has data that fail their CRC"));
        }
        events.push(Event::decode(data).with_context(|| bad("is not an Event"))?);
        at += 16 + length;
    }
    Ok(events)
}

/// The event files in `dir`, by name (TensorBoard reads them in that order).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let is_events = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents."));
        if is_events {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Removes the event files in `dir` (none if it does not exist): a fresh run's folder starts
/// empty of them, as TensorBoard would otherwise show every step of both runs.
pub fn remove_event_files(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for file in event_files(dir)? {
        std::fs::remove_file(&file)
            .with_context(|| format!("removing the earlier event file {}", file.display()))?;
    }
    Ok(())
}

/// Every scalar of `events` as (tag, step, value), in file order.
pub fn scalars(events: &[Event]) -> Vec<(String, i64, f32)> {
    events
        .iter()
        .filter_map(|e| Some((e.step, e.summary.as_ref()?)))
        .flat_map(|(step, s)| {
            s.value
                .iter()
                .filter_map(move |v| Some((v.tag.clone(), step, v.simple_value?)))
        })
        .collect()
}

/// CRC-32C (Castagnoli) of `data`, masked as TensorFlow's record files store it.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked CRC of TensorFlow's record format: crc32c("123456789") is 0xE3069283 (the
    /// CRC-32C check value of the CRC catalogue), masked as `((crc >> 15) | (crc << 17)) +
    /// 0xa282ead8` (tensorflow/core/lib/hash/crc32c.h): 0xC78AB0E5, worked out by Python's
    /// integers outside this code.
    #[test]
    fn the_crc_is_tensorflows_masked_crc32c() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    /// A scalar event as TensorFlow encodes it, byte by byte: wall_time 1.5 (field 1, fixed64),
    /// step 7 (field 2, varint), summary (field 5) with one value: tag "a" (field 1), 0.0
    /// (field 2, fixed32; present although zero).
    #[test]
    fn a_scalar_event_has_tensorflows_bytes() {
        let event = Event {
            wall_time: 1.5,
            step: 7,
            file_version: None,
            summary: Some(Summary {
                value: vec![Value {
                    tag: "a".into(),
                    simple_value: Some(0.0),
                }],
            }),
        };
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 7, 0x2A, 10, 0x0A, 8, 0x0A, 1, b'a', 0x15]);
        expected.extend_from_slice(&0f32.to_le_bytes());
        assert_eq!(event.encode_to_vec(), expected);
    }

    /// Written, committed, read back; uncommitted events never reach the file; a flipped byte
    /// or a cut record is an error naming the record.
    #[test]
    fn events_read_back_and_damage_is_named() {
        let dir = crate::test_dir("tensorboard");
        let mut writer = EventWriter::create(&dir).unwrap();
        writer.scalars(1, &[("loss", 0.5), ("lr", 0.1)]);
        writer.scalars(2, &[("loss", 0.25)]);
        writer.commit().unwrap();
        writer.scalars(3, &[("loss", 0.125)]);
        drop(writer);
        let files = event_files(&dir).unwrap();
        assert_eq!(files.len(), 1);
        let events = read_events(&files[0]).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(
            scalars(&events),
            [
                ("loss".to_string(), 1, 0.5),
                ("lr".to_string(), 1, 0.1),
                ("loss".to_string(), 2, 0.25)
            ]
        );
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(&files[0], &bytes).unwrap();
        let err = read_events(&files[0]).unwrap_err().to_string();
        assert!(err.contains("fail their CRC"), "{err}");
        bytes.truncate(last);
        std::fs::write(&files[0], &bytes).unwrap();
        let err = read_events(&files[0]).unwrap_err().to_string();
        assert!(err.contains("cut short in its data"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
