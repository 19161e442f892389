//! The witnessed audit's state: as a witness, the latest checkpoint cosigned per log origin
//! (changed only by a compare-and-set on what the decision saw); as a log, the cosignatures
//! received and each witness's last cosigned size.
//!
//! Owns: these three tables (migration 0010). Must not: decide (that is
//! `siirto_core::audit::witness`).

use sqlx::Row;

use siirto_core::audit::merkle::Hash;
use siirto_core::audit::witness::{Accepted, Latest};
use siirto_core::clock::Timestamp;

use super::{Pool, Store, StoreError};

/// A cosignature kept for one of this gateway's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCosignature {
    pub witness: String,
    /// POSIX seconds, as in the cosignature.
    pub timestamp: u64,
    /// The note signature line, ending with a newline.
    pub line: String,
}

/// What this gateway knows of one of its witnesses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPeerRow {
    pub witness: String,
    pub cosigned_size: u64,
    pub conflict_at: Option<Timestamp>,
    pub conflict_size: Option<u64>,
}

fn size_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn size_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// The latest checkpoint this gateway cosigned for `origin`, as a witness.
    pub async fn witnessed(&self, origin: &str) -> Result<Option<Latest>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = with_pool!(self, p => {
            sqlx::query_as("SELECT size, root FROM witness_logs WHERE origin = $1")
                .bind(origin)
                .fetch_optional(p)
                .await?
        });
        row.map(|(size, root)| {
            let root: Hash = root
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    what: "witnessed root",
                    detail: format!("{} bytes", root.len()),
                })?;
            Ok(Latest {
                size: size_u64(size),
                root,
            })
        })
        .transpose()
    }

    /// Records `accepted` as the latest cosigned checkpoint of its origin, only if the stored
    /// one is still the one the decision saw (`accepted.previous`). `false`: another request
    /// changed it meanwhile, decide again. Committed (durably) when this returns `true`.
    pub async fn witness_advance(
        &self,
        accepted: &Accepted,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let new_size = size_i64(accepted.new.size);
        let new_root = accepted.new.root.to_vec();
        let n = with_pool!(self, p => match accepted.previous {
            None => sqlx::query(
                "INSERT INTO witness_logs (origin, size, root, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (origin) DO NOTHING",
            )
            .bind(&accepted.origin)
            .bind(new_size)
            .bind(new_root)
            .bind(at.millis())
            .execute(p)
            .await?
            .rows_affected(),
            Some(previous) => sqlx::query(
                "UPDATE witness_logs SET size = $1, root = $2, updated_at = $3 WHERE origin = $4 AND size = $5 AND root = $6",
            )
            .bind(new_size)
            .bind(new_root)
            .bind(at.millis())
            .bind(&accepted.origin)
            .bind(size_i64(previous.size))
            .bind(previous.root.to_vec())
            .execute(p)
            .await?
            .rows_affected(),
        });
        Ok(n == 1)
    }

    /// Every witnessed log: origin and latest cosigned size.
    pub async fn witnessed_logs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, p => {
            sqlx::query_as("SELECT origin, size FROM witness_logs ORDER BY origin")
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(|(o, s)| (o, size_u64(s))).collect())
    }

    /// Keeps a witness's cosignature of the checkpoint of `tree_size` (once per witness).
    pub async fn insert_cosignature(
        &self,
        tree_size: u64,
        cosignature: &StoredCosignature,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO witness_cosignatures (tree_size, witness, cosigned_at, line) VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size, witness) DO NOTHING",
            )
            .bind(size_i64(tree_size))
            .bind(&cosignature.witness)
            .bind(size_i64(cosignature.timestamp))
            .bind(&cosignature.line)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The cosignatures kept for the checkpoint of `tree_size`, by witness name.
    pub async fn cosignatures(&self, tree_size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        let rows: Vec<(String, i64, String)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT witness, cosigned_at, line FROM witness_cosignatures WHERE tree_size = $1 ORDER BY witness",
            )
            .bind(size_i64(tree_size))
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(witness, t, line)| StoredCosignature {
                witness,
                timestamp: size_u64(t),
                line,
            })
            .collect())
    }

    /// Sets the size `witness` last cosigned (or named in a 409 answer).
    pub async fn set_witness_size(&self, witness: &str, size: u64) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO witness_peers (witness, cosigned_size) VALUES ($1, $2) ON CONFLICT (witness) DO UPDATE SET cosigned_size = excluded.cosigned_size",
            )
            .bind(witness)
            .bind(size_i64(size))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Records that `witness` refused a checkpoint as conflicting with the `size` it cosigned.
    pub async fn record_witness_conflict(
        &self,
        witness: &str,
        size: u64,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO witness_peers (witness, cosigned_size, conflict_at, conflict_size) VALUES ($1, $2, $3, $2) ON CONFLICT (witness) DO UPDATE SET conflict_at = excluded.conflict_at, conflict_size = excluded.conflict_size",
            )
            .bind(witness)
            .bind(size_i64(size))
            .bind(at.millis())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// What this gateway knows of its witnesses.
    pub async fn witness_peers(&self) -> Result<Vec<WitnessPeerRow>, StoreError> {
        let rows = with_pool!(self, p => {
            sqlx::query(
                "SELECT witness, cosigned_size, conflict_at, conflict_size FROM witness_peers ORDER BY witness",
            )
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| -> Result<WitnessPeerRow, sqlx::Error> {
                Ok(WitnessPeerRow {
                    witness: r.try_get("witness")?,
                    cosigned_size: size_u64(r.try_get("cosigned_size")?),
                    conflict_at: r
                        .try_get::<Option<i64>, _>("conflict_at")?
                        .map(Timestamp::from_millis),
                    conflict_size: r
                        .try_get::<Option<i64>, _>("conflict_size")?
                        .map(size_u64),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::testdb::TestDb;

    fn accepted(previous: Option<Latest>, size: u64, root: u8) -> Accepted {
        Accepted {
            origin: "turku.example.fi/audit".into(),
            previous,
            new: Latest {
                size,
                root: [root; 32],
            },
            body: String::new(),
        }
    }

    #[tokio::test]
    async fn witness_state_is_a_compare_and_set() {
        for db in TestDb::all().await {
            let store = Store::open(&db.url).await.unwrap();
            let at = Timestamp::from_millis(1);
            let origin = "turku.example.fi/audit";
            assert_eq!(store.witnessed(origin).await.unwrap(), None);
            let first = accepted(None, 4, 1);
            assert!(store.witness_advance(&first, at).await.unwrap());
            // A second "first" submission lost the race: not stored.
            assert!(
                !store
                    .witness_advance(&accepted(None, 9, 2), at)
                    .await
                    .unwrap()
            );
            let four = Some(first.new);
            assert_eq!(store.witnessed(origin).await.unwrap(), four);
            assert!(
                store
                    .witness_advance(&accepted(four, 10, 3), at)
                    .await
                    .unwrap()
            );
            // Decided on the stale size-4 state: refused.
            assert!(
                !store
                    .witness_advance(&accepted(four, 11, 4), at)
                    .await
                    .unwrap()
            );
            assert_eq!(store.witnessed(origin).await.unwrap().unwrap().size, 10);
            assert_eq!(
                store.witnessed_logs().await.unwrap(),
                vec![(origin.to_owned(), 10)]
            );

            let c = StoredCosignature {
                witness: "a/witness".into(),
                timestamp: 7,
                line: "\u{2014} a/witness AAAA\n".into(),
            };
            store.insert_cosignature(10, &c).await.unwrap();
            store.insert_cosignature(10, &c).await.unwrap();
            assert_eq!(store.cosignatures(10).await.unwrap(), vec![c]);
            assert!(store.cosignatures(9).await.unwrap().is_empty());
            store.set_witness_size("a/witness", 10).await.unwrap();
            store.set_witness_size("a/witness", 12).await.unwrap();
            store
                .record_witness_conflict("b/witness", 20, at)
                .await
                .unwrap();
            let peers = store.witness_peers().await.unwrap();
            assert_eq!(peers.len(), 2);
            assert_eq!((peers[0].cosigned_size, peers[0].conflict_at), (12, None));
            assert_eq!(peers[1].conflict_size, Some(20));
        }
    }
}
