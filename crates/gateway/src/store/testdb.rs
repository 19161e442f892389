//! Throw-away databases for tests: a SQLite file in a temporary directory, and — when
//! `SIIRTO_TEST_POSTGRES` holds a server URL — a fresh PostgreSQL database created for the test
//! and dropped afterwards (also when the test panics).

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use siirto_core::clock::{Random, SystemRandom, hex};

/// A database that exists for as long as this value does.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .finish()
    }
}

impl TestDb {
    pub fn sqlite() -> std::io::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("siirto.db").display());
        Ok(TestDb {
            url,
            backend: "sqlite",
            cleanup: Cleanup::Dir(dir),
        })
    }

    /// A fresh database on the server of `SIIRTO_TEST_POSTGRES`, or `None` when it is unset.
    pub async fn postgres() -> Result<Option<TestDb>, sqlx::Error> {
        let Ok(server) = std::env::var("SIIRTO_TEST_POSTGRES") else {
            return Ok(None);
        };
        let admin = PgConnectOptions::from_str(&server)?;
        let mut bytes = [0u8; 8];
        SystemRandom::new().fill(&mut bytes);
        let name = format!("siirto_test_{}", hex(&bytes));
        let mut conn = PgConnection::connect_with(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let url = with_database(&server, &name);
        Ok(Some(TestDb {
            url,
            backend: "postgres",
            cleanup: Cleanup::Postgres {
                admin: Box::new(admin),
                name,
            },
        }))
    }

    /// SQLite always, PostgreSQL too when `SIIRTO_TEST_POSTGRES` is set.
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = Vec::new();
        match TestDb::sqlite() {
            Ok(db) => dbs.push(db),
            Err(e) => panic!("cannot create a temporary SQLite database: {e}"),
        }
        match TestDb::postgres().await {
            Ok(Some(db)) => dbs.push(db),
            Ok(None) => {
                eprintln!("NOTE: SIIRTO_TEST_POSTGRES is not set; PostgreSQL store tests skipped")
            }
            Err(e) => {
                panic!("SIIRTO_TEST_POSTGRES is set but a test database cannot be created: {e}")
            }
        }
        dbs
    }
}

/// `postgres://user@host:port/db?opts` with `db` replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let after_scheme = server.find("://").map_or(0, |i| i + 3);
    let (base, query) = match server.find('?') {
        Some(q) => (&server[..q], &server[q..]),
        None => (server, ""),
    };
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{}{}", &base[..host_end], name, query)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin, name } = &self.cleanup {
            let admin = (**admin).clone();
            let name = name.clone();
            // Drop runs outside async context (or inside a runtime we must not block): use a
            // thread with its own small runtime.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut conn = PgConnection::connect_with(&admin)
                        .await
                        .map_err(std::io::Error::other)?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .map_err(std::io::Error::other)?;
                    Ok::<(), std::io::Error>(())
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("warning: could not drop test database: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
