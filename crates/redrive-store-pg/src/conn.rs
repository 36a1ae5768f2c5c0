//! A pooled connection that prepares each statement once.
//!
//! `tokio-postgres` given SQL text parses and plans it on every call (an unnamed statement: a
//! Parse/Describe round trip, then Bind/Execute), which led PostgreSQL's profile in the issue-17
//! benchmark. Here every statement is prepared once per connection, kept by its text, and
//! reused: one round trip per statement, no parsing, and PostgreSQL's plan cache applies.
//!
//! Prepared statements belong to the session, not to a transaction: one prepared inside a
//! transaction that later rolls back stays valid. The statement texts are the crate's own
//! constants, so the cache is small; it is still bounded ([`MAX_STATEMENTS`]).

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, Row, Statement, Transaction};

/// Prepared statements kept per connection; past this the cache starts over.
pub(crate) const MAX_STATEMENTS: usize = 256;

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

type Statements = parking_lot::Mutex<HashMap<String, Statement>>;

/// The statement for `sql`, preparing it on `client` the first time.
async fn prepared<C: GenericClient + Sync>(
    client: &C,
    statements: &Statements,
    sql: &str,
) -> Result<Statement, Error> {
    if let Some(s) = statements.lock().get(sql) {
        return Ok(s.clone());
    }
    let stmt = client.prepare(sql).await?;
    let mut cache = statements.lock();
    if cache.len() >= MAX_STATEMENTS {
        cache.clear();
    }
    cache.insert(sql.to_string(), stmt.clone());
    Ok(stmt)
}

/// One connection of the pool and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: Statements,
}

impl Conn {
    pub(crate) fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: Default::default(),
        }
    }

    /// The bare client (migrations: `batch_execute` of DDL, never cached).
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// How many statements this connection holds prepared.
    pub(crate) fn prepared_count(&self) -> usize {
        self.statements.lock().len()
    }

    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = prepared(&self.client, &self.statements, sql).await?;
        self.client.execute(&s, params).await
    }

    pub(crate) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = prepared(&self.client, &self.statements, sql).await?;
        self.client.query(&s, params).await
    }

    pub(crate) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let s = prepared(&self.client, &self.statements, sql).await?;
        self.client.query_one(&s, params).await
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let s = prepared(&self.client, &self.statements, sql).await?;
        self.client.query_opt(&s, params).await
    }

    pub(crate) async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
        })
    }
}

/// A transaction on a [`Conn`], using and filling its prepared statements.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a Statements,
}

impl Tx<'_> {
    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = prepared(&self.tx, self.statements, sql).await?;
        self.tx.execute(&s, params).await
    }

    pub(crate) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = prepared(&self.tx, self.statements, sql).await?;
        self.tx.query(&s, params).await
    }

    pub(crate) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let s = prepared(&self.tx, self.statements, sql).await?;
        self.tx.query_one(&s, params).await
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let s = prepared(&self.tx, self.statements, sql).await?;
        self.tx.query_opt(&s, params).await
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }
}
