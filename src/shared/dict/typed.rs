//! The typed layer: values serialised with postcard through `crate::codec`.

use super::error::DictError;
use super::{SharedDict, Slot};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shm_layout::DICT_RECORD_HEADER;

impl SharedDict {
    /// Sets `key` to `value` (serialised with postcard).
    pub fn insert<V: Serialize>(&self, key: &str, value: &V) -> Result<(), DictError> {
        let bytes = crate::codec::encode(value, "the value").map_err(DictError::Encode)?;
        self.insert_bytes(key, &bytes).map(drop)
    }

    /// The value of `key`, deserialised as `V` (straight from the region: no copy).
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| match d.find(half, used, k)? {
            Slot::Found { record, .. } => {
                let r = d.record(half, record, used)?;
                let at = record + DICT_RECORD_HEADER as u64 + r.key_len as u64;
                let p = d.data(half, at, r.value_len as u64)?;
                // SAFETY: in bounds (checked by `data`); a transient view while we hold the
                // mutex, dropped before it is released (`V` owns its data).
                let bytes = unsafe { std::slice::from_raw_parts(p, r.value_len) };
                decode(key, bytes).map(Some)
            }
            Slot::Vacant { .. } => Ok(None),
        })
    }

    /// Atomically replaces the value of `key` with `f(current)`; `None` removes it.
    pub fn update<V: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<(), DictError> {
        let mut failure = None;
        self.update_bytes(key, |current| {
            let current = match current.map(|b| decode::<V>(key, &b)).transpose() {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            match f(current)
                .map(|v| crate::codec::encode(&v, "the value"))
                .transpose()
            {
                Ok(next) => next,
                Err(e) => {
                    failure = Some(DictError::Encode(e));
                    None
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// One consistent snapshot of every key and value, deserialised as `V`.
    pub fn items<V: DeserializeOwned>(&self) -> Result<Vec<(String, V)>, DictError> {
        self.items_bytes()?
            .into_iter()
            .map(|(k, b)| decode(&k, &b).map(|v| (k, v)))
            .collect()
    }

    /// One consistent snapshot of every value, deserialised as `V`.
    pub fn values<V: DeserializeOwned>(&self) -> Result<Vec<V>, DictError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }
}

fn decode<V: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<V, DictError> {
    crate::codec::decode(bytes, "the value").map_err(|source| DictError::Decode {
        key: key.to_owned(),
        source,
    })
}
