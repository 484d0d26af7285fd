//! `CREATE TRIGGER` as a PL/pgSQL trigger function plus a PostgreSQL
//! trigger; `DROP TRIGGER` (SQLite's names are per schema, PostgreSQL's per
//! table: the table is found in the catalog).
//!
//! The body's statements are translated like top-level ones, with `new` and
//! `old` in scope (so `new.rowid` is the row's rowid column), and run in
//! order; a `SELECT` runs as `PERFORM`. A `BEFORE` trigger returns the row
//! unchanged, an `AFTER` one nothing. `WHEN` becomes the trigger's `WHEN`.
//! The trigger's comment keeps SQLite's text for `sqlite_master`.

use sqlparser::ast::{
    CreateTrigger, Expr, SelectItem, SetExpr, Statement, TriggerEvent, TriggerPeriod,
};

use super::catalog::HIDDEN_PREFIX;
use super::construct::{quote_ident, quote_literal};
use super::query::rewrite_statement;
use super::scope::{last_part, ScopeTable};
use super::{Context, Error, Output, Plan, PlanAction, Sql};

/// Translate `CREATE TRIGGER` or `DROP TRIGGER`.
pub fn translate(statement: Statement, cx: &mut Context) -> Result<Plan, Error> {
    match statement {
        Statement::CreateTrigger(ct) => create(ct, cx),
        Statement::DropTrigger(dt) => drop(&last_part(&dt.trigger_name), dt.if_exists, cx),
        other => Err(Error::new(format!("not a trigger statement: {other}"))),
    }
}

/// The PL/pgSQL function behind a trigger.
fn function_name(trigger: &str) -> String {
    format!("{HIDDEN_PREFIX}trigger_{trigger}")
}

fn create(ct: CreateTrigger, cx: &mut Context) -> Result<Plan, Error> {
    let name = last_part(&ct.name);
    let table = last_part(&ct.table_name);
    if ct.temporary {
        return Err(Error::new(
            "CREATE TEMP TRIGGER is not supported on a routed database",
        ));
    }
    if cx.schema.trigger_table(&name)?.is_some() {
        return Err(Error::new(format!("trigger {name} already exists")));
    }
    let info = cx.schema.existing_table(&table)?;
    let period = match ct.period {
        Some(TriggerPeriod::Before) | None => "BEFORE",
        Some(TriggerPeriod::After) => "AFTER",
        Some(TriggerPeriod::InsteadOf) => "INSTEAD OF",
        Some(TriggerPeriod::For) => return Err(Error::new("trigger timing FOR is not SQLite's")),
    };
    let [event] = ct.events.as_slice() else {
        return Err(Error::new("a trigger has one event"));
    };
    let event_sql = match event {
        TriggerEvent::Insert => "INSERT".to_string(),
        TriggerEvent::Delete => "DELETE".to_string(),
        TriggerEvent::Update(cols) if cols.is_empty() => "UPDATE".to_string(),
        TriggerEvent::Update(cols) => {
            format!(
                "UPDATE OF {}",
                cols.iter()
                    .map(|c| quote_ident(&c.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        TriggerEvent::Truncate => return Err(Error::new("TRUNCATE triggers are not SQLite's")),
    };
    let outer = vec![
        ScopeTable {
            qualifier: "new".into(),
            info: Some(info.clone()),
            nullable: false,
            columns: None,
        },
        ScopeTable {
            qualifier: "old".into(),
            info: Some(info.clone()),
            nullable: false,
            columns: None,
        },
    ];
    let saved = cx.trigger_scope.replace(outer.clone());
    let body = body_statements(&ct, cx);
    let condition = ct.condition.clone().map(|c| condition_sql(c, outer, cx));
    cx.trigger_scope = saved;
    let body = body?;
    let returned = match (period, event) {
        ("AFTER", _) => "NULL",
        (_, TriggerEvent::Delete) => "OLD",
        _ => "NEW",
    };
    let function = quote_ident(&function_name(&name));
    let function_sql = format!(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $sqlite_trigger$ BEGIN {} RETURN {returned}; END $sqlite_trigger$",
        body.iter().map(|s| format!("{s};")).collect::<Vec<_>>().join(" ")
    );
    let mut trigger_sql = format!(
        "CREATE TRIGGER {} {period} {event_sql} ON {} FOR EACH ROW",
        quote_ident(&name),
        quote_ident(&table)
    );
    if let Some(c) = condition {
        trigger_sql.push_str(&format!(" WHEN ({})", c?));
    }
    trigger_sql.push_str(&format!(" EXECUTE FUNCTION {function}()"));
    let start = ct
        .name
        .0
        .first()
        .and_then(|p| p.as_ident())
        .map(|i| i.span.start)
        .ok_or_else(|| Error::new("CREATE TRIGGER needs a name"))?;
    let text = format!(
        "CREATE TRIGGER {}",
        cx.source.text[cx.source.offset(start)..]
            .trim_end()
            .trim_end_matches(';')
            .trim_end()
    );
    Ok(Plan::schema_change(vec![
        Output::text(function_sql),
        Output::text(trigger_sql),
        Output::text(format!(
            "COMMENT ON TRIGGER {} ON {} IS {}",
            quote_ident(&name),
            quote_ident(&table),
            quote_literal(&text)
        )),
    ]))
}

/// The body's statements as PL/pgSQL statements.
fn body_statements(ct: &CreateTrigger, cx: &mut Context) -> Result<Vec<String>, Error> {
    let statements = ct
        .statements
        .as_ref()
        .map(|s| s.statements().clone())
        .unwrap_or_default();
    if statements.is_empty() {
        return Err(Error::new("a trigger needs a body"));
    }
    let mut out = Vec::new();
    for s in statements {
        let plan = super::translate_statement(s, cx)?;
        let PlanAction::Run(outputs) = plan.action else {
            return Err(Error::new(
                "only INSERT, UPDATE, DELETE and SELECT may appear in a trigger",
            ));
        };
        for o in outputs {
            let text = match o.sql {
                Sql::Tree(Statement::Query(q)) => perform(*q)?,
                Sql::Tree(st) => st.to_string(),
                Sql::Text(t) => t,
            };
            out.push(text);
        }
    }
    Ok(out)
}

/// A `SELECT` run for its effect: `PERFORM …`.
fn perform(query: sqlparser::ast::Query) -> Result<String, Error> {
    let text = query.to_string();
    match query.body.as_ref() {
        SetExpr::Select(_) if query.with.is_none() => {
            Ok(format!("PERFORM {}", text.trim_start_matches("SELECT ")))
        }
        _ => Ok(format!("PERFORM * FROM ({text}) AS sqlite_body")),
    }
}

/// The `WHEN` condition, names resolved against `new`/`old`.
fn condition_sql(
    condition: Expr,
    outer: Vec<ScopeTable>,
    cx: &mut Context,
) -> Result<String, Error> {
    let source = super::dialect::Source::new("SELECT 1")?;
    let Statement::Query(mut q) = source.parse()? else {
        unreachable!("a SELECT")
    };
    if let SetExpr::Select(s) = q.body.as_mut() {
        s.projection = vec![SelectItem::UnnamedExpr(condition)];
    }
    let mut st = Statement::Query(q);
    rewrite_statement(&mut st, outer, cx)?;
    let Statement::Query(q) = st else {
        unreachable!("a SELECT")
    };
    let SetExpr::Select(s) = *q.body else {
        unreachable!("a SELECT")
    };
    match s.projection.into_iter().next() {
        Some(SelectItem::UnnamedExpr(e)) => Ok(super::truth::truth(upper_row_names(e)).to_string()),
        _ => Err(Error::new("bad trigger condition")),
    }
}

/// `"new"."x"` as `NEW."x"`: in a trigger's `WHEN`, PostgreSQL knows the
/// rows only by their keywords.
fn upper_row_names(e: Expr) -> Expr {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Upper;
    impl VisitorMut for Upper {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e {
                if parts.len() == 2 && (parts[0].value == "new" || parts[0].value == "old") {
                    parts[0] = sqlparser::ast::Ident::new(parts[0].value.to_ascii_uppercase());
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut e = e;
    let _ = e.visit(&mut Upper);
    e
}

fn drop(name: &str, if_exists: bool, cx: &mut Context) -> Result<Plan, Error> {
    let Some(table) = cx.schema.trigger_table(name)? else {
        if if_exists {
            return Ok(Plan::no_op());
        }
        return Err(Error::new(format!("no such trigger: {name}")));
    };
    Ok(Plan::schema_change(vec![
        Output::text(format!(
            "DROP TRIGGER {} ON {}",
            quote_ident(name),
            quote_ident(&table)
        )),
        Output::text(format!(
            "DROP FUNCTION IF EXISTS {}()",
            quote_ident(&function_name(name))
        )),
    ]))
}
