//! The object store: content-addressed blobs (profile images) behind the `object_store` crate — a
//! local folder by default. The key of a blob is the sha256 of its bytes, so a blob stored twice is
//! stored once.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

/// Errors from the object store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The folder could not be created or opened.
    #[error("object store folder {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    /// The store refused an operation.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A key that is not a sha256 hex digest.
    #[error("invalid object key `{0}`: expected 64 hex digits")]
    BadKey(String),
}

/// A content-addressed blob store.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

/// The key of `bytes`: lower-case sha256 hex.
pub fn key_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn object_path(key: &str) -> Result<ObjectPath, StorageError> {
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StorageError::BadKey(key.to_string()));
    }
    // Two-level fan-out keeps directories small.
    Ok(ObjectPath::from(format!("{}/{}", &key[..2], key)))
}

impl Storage {
    /// A store in the local folder `path` (created if missing).
    pub fn local(path: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(path).map_err(|source| StorageError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(path).map_err(StorageError::Store)?;
        Ok(Self {
            store: Arc::new(fs),
        })
    }

    /// A store over any `object_store` backend (S3 and friends at scale).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Stores `bytes` and returns their key. The same bytes stored twice are one blob: the key is
    /// their hash, so a second put replaces the blob with identical bytes, atomically (readers see
    /// the old file or the new one, never a partial one).
    ///
    /// The put overwrites rather than asking the store to create only if absent: on a local folder
    /// that publishes the staged file with one rename instead of a hard link and an unlink (and
    /// leaves no deleted inode behind per image, which ext4 then checks on every new file;
    /// BENCHMARKS.md §2), and on other `object_store` backends it needs no conditional puts.
    pub async fn put(&self, bytes: Bytes) -> Result<String, StorageError> {
        let key = key_of(&bytes);
        let path = object_path(&key)?;
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            ..Default::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await?;
        Ok(key)
    }

    /// The blob under `key`, if present.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let path = object_path(key)?;
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a blob is present.
    pub async fn contains(&self, key: &str) -> Result<bool, StorageError> {
        let path = object_path(key)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a blob (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = object_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_bytes_are_stored_once_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path()).unwrap();
        let a = s.put(Bytes::from_static(b"png bytes")).await.unwrap();
        let b = s.put(Bytes::from_static(b"png bytes")).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a, key_of(b"png bytes"));
        assert_eq!(
            s.get(&a).await.unwrap().unwrap(),
            Bytes::from_static(b"png bytes")
        );
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        s.delete(&a).await.unwrap();
        assert!(!s.contains(&a).await.unwrap());
        assert!(matches!(
            s.get("../etc/passwd").await,
            Err(StorageError::BadKey(_))
        ));
    }

    fn walk(p: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                out.extend(walk(&e));
            } else {
                out.push(e);
            }
        }
        out
    }
}
