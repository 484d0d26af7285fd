//! Transaction control: `BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE]`, `COMMIT`,
//! `END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, handed to the
//! runtime as [`TxControl`] (it pins a connection for the transaction).
//!
//! `IMMEDIATE` and `EXCLUSIVE` take SQLite's database lock at once; on
//! PostgreSQL rows are locked as they are written, so all three are one
//! `BEGIN`.

use sqlparser::ast::Statement;

use super::{Error, Plan, PlanAction, TxControl};

/// The control a transaction statement asks for.
pub fn translate(statement: &Statement) -> Result<Plan, Error> {
    let control = match statement {
        Statement::StartTransaction {
            modes, statements, ..
        } => {
            if !modes.is_empty() || !statements.is_empty() {
                return Err(Error::new(format!(
                    "not a SQLite transaction statement: {statement}"
                )));
            }
            TxControl::Begin
        }
        Statement::Commit { .. } => TxControl::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => TxControl::Rollback,
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => TxControl::RollbackTo(name.value.clone()),
        Statement::Savepoint { name } => TxControl::Savepoint(name.value.clone()),
        Statement::ReleaseSavepoint { name } => TxControl::Release(name.value.clone()),
        other => return Err(Error::new(format!("not a transaction statement: {other}"))),
    };
    Ok(Plan {
        action: PlanAction::Transaction(control),
        readonly: true,
        changes_schema: false,
        column_names: vec![],
        trailing_column_names: vec![],
    })
}
