//! On-disk layout of the records `RedbStore` keeps in redb.
//!
//! Every integer is big-endian.
//!
//! - Table `kv` (`&str` → bytes): the current value of each key, stored as
//!   `create_revision: u64`, `mod_revision: u64`, then the value bytes up to the end.
//! - Table `history` (`u64` revision → bytes): the events of one revision, in key order,
//!   as `count: u32` followed by `count` events. An event is `kind: u8` (0 put, 1 delete),
//!   `create_revision: u64`, `mod_revision: u64`, `key_len: u32`, the UTF-8 key,
//!   `value_len: u32` and the value. A put stores the new record. A delete stores the
//!   record as it was before the delete, and its own revision is the table key.
//! - Table `meta` (`&str` → `u64`): `revision` is the current store revision and
//!   `compacted` the newest revision whose history has been removed (0 when none).

use crate::{Event, KeyValue, StoreError};

const PUT: u8 = 0;
const DELETE: u8 = 1;
const RECORD_HEADER: usize = 16;

/// Encodes a key's current record for the `kv` table.
pub(crate) fn encode_record(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + value.len());
    out.extend_from_slice(&create_revision.to_be_bytes());
    out.extend_from_slice(&mod_revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a record of the `kv` table. The `key` argument only names the record in errors.
pub(crate) fn decode_record(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let mut reader = Reader::new(key, bytes);
    let create_revision = reader.u64()?;
    let mod_revision = reader.u64()?;
    Ok(KeyValue {
        key: key.to_string(),
        value: reader.rest().to_vec(),
        create_revision,
        mod_revision,
    })
}

/// Encodes the events of one revision for the `history` table.
pub(crate) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&len_u32(events.len()).to_be_bytes());
    for event in events {
        let (kind, kv) = match event {
            Event::Put(kv) => (PUT, kv),
            Event::Delete { prev, .. } => (DELETE, prev),
        };
        out.push(kind);
        out.extend_from_slice(&kv.create_revision.to_be_bytes());
        out.extend_from_slice(&kv.mod_revision.to_be_bytes());
        out.extend_from_slice(&len_u32(kv.key.len()).to_be_bytes());
        out.extend_from_slice(kv.key.as_bytes());
        out.extend_from_slice(&len_u32(kv.value.len()).to_be_bytes());
        out.extend_from_slice(&kv.value);
    }
    out
}

/// Decodes the events that `revision` stored in the `history` table.
pub(crate) fn decode_events(revision: u64, bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let name = format!("history revision {revision}");
    let mut reader = Reader::new(&name, bytes);
    let count = reader.u32()?;
    let mut events = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        let kind = reader.u8()?;
        let create_revision = reader.u64()?;
        let mod_revision = reader.u64()?;
        let key_len = reader.u32()? as usize;
        let key = String::from_utf8(reader.take(key_len)?.to_vec())
            .map_err(|_| reader.corrupt("key is not UTF-8"))?;
        let value_len = reader.u32()? as usize;
        let value = reader.take(value_len)?.to_vec();
        let kv = KeyValue {
            key,
            value,
            create_revision,
            mod_revision,
        };
        events.push(match kind {
            PUT => Event::Put(kv),
            DELETE => Event::Delete { prev: kv, revision },
            _ => return Err(reader.corrupt("unknown event kind")),
        });
    }
    Ok(events)
}

/// Converts a length to the format's `u32`. Keys and values above 4 GiB cannot reach
/// this point because redb rejects values above 3 GiB.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A bounds-checked cursor over a stored record.
struct Reader<'a> {
    name: &'a str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(name: &'a str, bytes: &'a [u8]) -> Self {
        Self { name, bytes }
    }

    fn corrupt(&self, reason: &str) -> StoreError {
        StoreError::Corrupt {
            key: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < len {
            return Err(self.corrupt("record is truncated"));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], create: u64, modified: u64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modified,
        }
    }

    #[test]
    fn record_round_trips() {
        let bytes = encode_record(3, 7, b"hello");
        let decoded = decode_record("k", &bytes).expect("valid record");
        assert_eq!(decoded, kv("k", b"hello", 3, 7));
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event::Delete {
                prev: kv("a", b"old", 1, 2),
                revision: 9,
            },
            Event::Put(kv("b", b"", 9, 9)),
        ];
        let decoded = decode_events(9, &encode_events(&events)).expect("valid events");
        assert_eq!(decoded, events);
    }

    #[test]
    fn truncated_record_is_corrupt() {
        assert!(matches!(
            decode_record("k", &[0, 1, 2]),
            Err(StoreError::Corrupt { .. })
        ));
        let mut bytes = encode_events(&[Event::Put(kv("b", b"xyz", 1, 1))]);
        bytes.pop();
        assert!(matches!(
            decode_events(1, &bytes),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
