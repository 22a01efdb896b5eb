//! `projectors dead-letters …`: what an operator runs to see the events a
//! projection could not apply, and to let go of those dealt with.
//!
//! - `list [PROJECTION] [--json]`: the letters, oldest first.
//! - `retry ID…`: applies each named letter's aggregate again, from its
//!   first dead-lettered event on, and deletes the letters of the events that
//!   now apply (`runtime::redrive`).
//! - `discard ID…`: deletes them; the aggregates they froze take events again.

use infrastructure::database::connect_and_migrate;
use infrastructure::event_store::PgEventStore;
use infrastructure::settings::Settings;

use crate::app::build_projection;
use crate::runtime::dead_letters::StoredLetter;
use crate::runtime::{redrive, DeadLetters};

const LIST_LIMIT: i64 = 10_000;

/// Runs one `dead-letters` subcommand and returns what it prints.
pub async fn dead_letters(settings: &Settings, args: &[String]) -> anyhow::Result<String> {
    let pool = connect_and_migrate(&settings.postgres).await?;
    let letters = DeadLetters::new(pool.clone());
    match args.first().map(String::as_str) {
        Some("list") => {
            let json = args.iter().any(|a| a == "--json");
            let projection = args[1..].iter().find(|a| !a.starts_with("--"));
            let listed = letters.list(projection.map(String::as_str), LIST_LIMIT).await?;
            Ok(if json {
                serde_json::to_string_pretty(&listed)?
            } else {
                table(&listed)
            })
        }
        Some("retry") => {
            let ids = letter_ids(&args[1..], "retry")?;
            let named = letters.by_ids(&ids).await?;
            let store = PgEventStore::new(pool);
            let mut out = Vec::new();
            let mut projections: Vec<&str> = named.iter().map(|l| l.projection.as_str()).collect();
            projections.sort_unstable();
            projections.dedup();
            for name in projections {
                let projection = build_projection(name, settings, &store).await?;
                let mine: Vec<StoredLetter> =
                    named.iter().filter(|l| l.projection == name).cloned().collect();
                for retried in redrive::retry(projection.as_ref(), &store, &letters, &mine).await? {
                    out.push(match &retried.failure {
                        None => format!(
                            "{name} {}: applied; cleared dead letter(s) {:?}",
                            retried.aggregate_id, retried.cleared
                        ),
                        Some(reason) => format!(
                            "{name} {}: still refused, letters kept: {reason}",
                            retried.aggregate_id
                        ),
                    });
                }
            }
            let missing: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !named.iter().any(|l| l.id == *id))
                .collect();
            if !missing.is_empty() {
                out.push(format!("no dead letter with id {missing:?}"));
            }
            Ok(out.join("\n"))
        }
        Some("discard") => {
            let ids = letter_ids(&args[1..], "discard")?;
            let discarded = letters.discard(&ids).await?;
            for letter in &discarded {
                tracing::info!(
                    id = letter.id,
                    projection = %letter.projection,
                    event_id = ?letter.event_id,
                    "dead letter discarded"
                );
            }
            let missing: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !discarded.iter().any(|l| l.id == *id))
                .collect();
            let mut out = format!("discarded {} dead letter(s)", discarded.len());
            if !missing.is_empty() {
                out.push_str(&format!("; no dead letter with id {missing:?}"));
            }
            Ok(out)
        }
        other => anyhow::bail!(
            "unknown dead-letters command {other:?}; use `list [PROJECTION] [--json]`, `retry ID…` or `discard ID…`"
        ),
    }
}

fn letter_ids(args: &[String], verb: &str) -> anyhow::Result<Vec<i64>> {
    let ids = args
        .iter()
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| anyhow::anyhow!("{id:?} is not a dead-letter id"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!ids.is_empty(), "name the dead letters to {verb} by id");
    Ok(ids)
}

fn table(letters: &[StoredLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters".to_owned();
    }
    let mut out = String::from("id\tprojection\taggregate\tversion\trecorded at\treason\n");
    for l in letters {
        out.push_str(&format!(
            "{}\t{}\t{}/{}\t{}\t{}\t{}\n",
            l.id,
            l.projection,
            l.aggregate_type.as_deref().unwrap_or("?"),
            l.aggregate_id.as_deref().unwrap_or("?"),
            l.version.map_or("?".to_owned(), |v| v.to_string()),
            l.created_at.to_rfc3339(),
            l.reason.replace(['\n', '\t'], " "),
        ));
    }
    out
}
