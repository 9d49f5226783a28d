//! The SQL contract's wrappers and conversions.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RString, RVec},
};
use strata_plugin_api::{
    Extensions, Value as AbiValue,
    sql::{
        self as abi, BulkTransaction, PluginFuture, SqlConnection_TO, SqlConnectionBox,
        SqlCursor_TO, SqlCursorBox, SqlTransaction_TO, SqlTransactionBox, SqlTransactionBulk_TO,
        SqlTransactionBulkBox, TransactionBulk_TO,
    },
};

use super::call;
use crate::{
    guard::Guarded,
    sql::{BulkWrite, Rows, RunResult, SqlBackend, SqlCall, SqlCursor, SqlTransaction, Statement},
    value::Value,
};

pub(crate) fn value_in(v: AbiValue) -> Value {
    match v {
        AbiValue::Null => Value::Null,
        AbiValue::Integer(i) => Value::Integer(i),
        AbiValue::Real(r) => Value::Real(r),
        AbiValue::Text(s) => Value::Text(s.into_string()),
        AbiValue::Blob(b) => Value::Blob(b.into_vec()),
    }
}

pub(crate) fn value_out(v: Value) -> AbiValue {
    match v {
        Value::Null => AbiValue::Null,
        Value::Integer(i) => AbiValue::Integer(i),
        Value::Real(r) => AbiValue::Real(r),
        Value::Text(s) => AbiValue::Text(s.into()),
        Value::Blob(b) => AbiValue::Blob(b.into()),
    }
}

fn values_in(values: RVec<AbiValue>) -> Vec<Value> {
    values.into_iter().map(value_in).collect()
}

fn statement_in(s: abi::Statement) -> Statement {
    Statement {
        sql: s.sql.into_string(),
        params: values_in(s.params),
        ext: s.ext,
    }
}

fn rows_out(r: Rows) -> abi::Rows {
    abi::Rows {
        columns: r.columns.into_iter().map(RString::from).collect(),
        values: r.values.into_iter().map(value_out).collect(),
        row_count: r.row_count,
        ext: Extensions::new(),
    }
}

fn run_out(r: RunResult) -> abi::RunResult {
    abi::RunResult {
        changes: r.changes,
        last_insert_rowid: r.last_insert_rowid.into(),
        ext: Extensions::new(),
    }
}

fn strings_in(v: RVec<RString>) -> Vec<String> {
    v.into_iter().map(RString::into_string).collect()
}

fn bulk_in(b: abi::BulkWrite) -> BulkWrite {
    BulkWrite {
        table: b.table.into_string(),
        columns: strings_in(b.columns),
        key_columns: strings_in(b.key_columns),
        values: values_in(b.values),
        row_count: b.row_count,
        then: b.then.into_option().map(statement_in),
    }
}

/// A backend as the ABI's SQL connection.
pub(crate) fn connection<B: SqlBackend>(backend: Arc<B>) -> SqlConnectionBox {
    SqlConnection_TO::from_value(Connection(Guarded::new(backend)), TD_Opaque)
}

struct Connection<B>(Guarded<Arc<B>>);

impl<B: SqlBackend> abi::SqlConnection for Connection<B> {
    fn exec(&self, script: RString) -> PluginFuture<()> {
        let b = self.0.get().clone();
        call(move || {
            let script = script.into_string();
            (b.runs(SqlCall::Exec(&script)), async move {
                b.exec(script).await
            })
        })
    }

    fn run(&self, stmt: abi::Statement) -> PluginFuture<abi::RunResult> {
        let b = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (b.runs(SqlCall::Run(&stmt)), async move {
                b.run(stmt).await.map(run_out)
            })
        })
    }

    fn query(&self, stmt: abi::Statement, max_rows: u64) -> PluginFuture<abi::Rows> {
        let b = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (b.runs(SqlCall::Query(&stmt, max_rows)), async move {
                b.query(stmt, max_rows).await.map(rows_out)
            })
        })
    }

    fn stream(&self, stmt: abi::Statement) -> PluginFuture<SqlCursorBox> {
        let b = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (b.runs(SqlCall::Stream(&stmt)), async move {
                b.stream(stmt).await.map(cursor)
            })
        })
    }

    fn begin(&self) -> PluginFuture<SqlTransactionBox> {
        let b = self.0.get().clone();
        call(move || {
            (b.runs(SqlCall::Begin), async move {
                b.begin().await.map(transaction)
            })
        })
    }

    fn close(&self) -> PluginFuture<()> {
        let b = self.0.get().clone();
        call(move || (b.runs(SqlCall::Close), async move { b.close().await }))
    }

    fn bulk_write(&self, request: abi::BulkWrite) -> PluginFuture<u64> {
        let b = self.0.get().clone();
        call(move || {
            let request = bulk_in(request);
            (b.runs(SqlCall::BulkWrite(&request)), async move {
                b.bulk_write(request).await
            })
        })
    }
}

fn transaction<T: SqlTransaction>(tx: T) -> SqlTransactionBox {
    SqlTransaction_TO::from_value(Transaction(Guarded::new(Arc::new(tx))), TD_Opaque)
}

/// A backend as the ABI's `strata.sql.transaction_bulk.v1` interface.
pub(crate) fn transaction_bulk<B: SqlBackend>(backend: Arc<B>) -> SqlTransactionBulkBox {
    SqlTransactionBulk_TO::from_value(TransactionBulkBegin(Guarded::new(backend)), TD_Opaque)
}

struct TransactionBulkBegin<B>(Guarded<Arc<B>>);

impl<B: SqlBackend> abi::SqlTransactionBulk for TransactionBulkBegin<B> {
    fn begin(&self) -> PluginFuture<BulkTransaction> {
        let b = self.0.get().clone();
        call(move || {
            (b.runs(SqlCall::Begin), async move {
                // One transaction behind both handles: it is dropped (and
                // rolled back, unless it ended) when the host drops both.
                let tx = Arc::new(b.begin().await?);
                Ok(BulkTransaction {
                    bulk: TransactionBulk_TO::from_value(
                        TransactionBulk(Guarded::new(tx.clone())),
                        TD_Opaque,
                    ),
                    transaction: SqlTransaction_TO::from_value(
                        Transaction(Guarded::new(tx)),
                        TD_Opaque,
                    ),
                    ext: Extensions::new(),
                })
            })
        })
    }
}

struct TransactionBulk<T>(Guarded<Arc<T>>);

impl<T: SqlTransaction> abi::TransactionBulk for TransactionBulk<T> {
    fn bulk_read(&self, stmt: abi::Statement) -> PluginFuture<SqlCursorBox> {
        let t = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (t.runs(SqlCall::BulkRead(&stmt)), async move {
                t.bulk_read(stmt).await.map(|c| cursor(c.0))
            })
        })
    }

    fn bulk_write(&self, request: abi::BulkWrite) -> PluginFuture<u64> {
        let t = self.0.get().clone();
        call(move || {
            let request = bulk_in(request);
            (t.runs(SqlCall::BulkWrite(&request)), async move {
                t.bulk_write(request).await
            })
        })
    }
}

struct Transaction<T>(Guarded<Arc<T>>);

impl<T: SqlTransaction> abi::SqlTransaction for Transaction<T> {
    fn exec(&self, script: RString) -> PluginFuture<()> {
        let t = self.0.get().clone();
        call(move || {
            let script = script.into_string();
            (t.runs(SqlCall::Exec(&script)), async move {
                t.exec(script).await
            })
        })
    }

    fn run(&self, stmt: abi::Statement) -> PluginFuture<abi::RunResult> {
        let t = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (t.runs(SqlCall::Run(&stmt)), async move {
                t.run(stmt).await.map(run_out)
            })
        })
    }

    fn query(&self, stmt: abi::Statement, max_rows: u64) -> PluginFuture<abi::Rows> {
        let t = self.0.get().clone();
        call(move || {
            let stmt = statement_in(stmt);
            (t.runs(SqlCall::Query(&stmt, max_rows)), async move {
                t.query(stmt, max_rows).await.map(rows_out)
            })
        })
    }

    fn savepoint(&self) -> PluginFuture<u32> {
        let t = self.0.get().clone();
        call(move || {
            (
                t.runs(SqlCall::Savepoint),
                async move { t.savepoint().await },
            )
        })
    }

    fn release(&self, depth: u32) -> PluginFuture<()> {
        let t = self.0.get().clone();
        call(move || {
            (
                t.runs(SqlCall::Savepoint),
                async move { t.release(depth).await },
            )
        })
    }

    fn rollback_to(&self, depth: u32) -> PluginFuture<()> {
        let t = self.0.get().clone();
        call(move || {
            (t.runs(SqlCall::Savepoint), async move {
                t.rollback_to(depth).await
            })
        })
    }

    fn commit(&self) -> PluginFuture<()> {
        let t = self.0.get().clone();
        call(move || (t.runs(SqlCall::Commit), async move { t.commit().await }))
    }

    fn rollback(&self) -> PluginFuture<()> {
        let t = self.0.get().clone();
        call(move || (t.runs(SqlCall::Rollback), async move { t.rollback().await }))
    }
}

fn cursor<C: SqlCursor>(c: C) -> SqlCursorBox {
    SqlCursor_TO::from_value(Cursor(Guarded::new(Arc::new(c))), TD_Opaque)
}

struct Cursor<C>(Guarded<Arc<C>>);

impl<C: SqlCursor> abi::SqlCursor for Cursor<C> {
    fn columns(&self) -> RVec<RString> {
        crate::guard::catch(|| Ok(self.0.get().columns()))
            .unwrap_or_default()
            .into_iter()
            .map(RString::from)
            .collect()
    }

    fn next(&self, max_rows: u32) -> PluginFuture<abi::Rows> {
        let c = self.0.get().clone();
        call(move || {
            (c.runs(SqlCall::Next(max_rows)), async move {
                c.next(max_rows).await.map(rows_out)
            })
        })
    }
}
