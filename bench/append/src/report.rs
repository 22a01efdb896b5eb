//! The Markdown the benchmark prints: one row per (writers, events per
//! append) cell with both stores side by side, then PostgreSQL's ceiling and
//! how close the batched appends of this store come to it.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub writers: u32,
    pub events_per_append: u32,
    pub ours: Summary,
    pub postgres_es: Summary,
}

pub fn table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| writers | events per append | this store events/s | p50 | p99 | postgres-es events/s | p50 | p99 | ratio |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for cell in cells {
        let (ours, theirs) = (cell.ours, cell.postgres_es);
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.2} |",
            cell.writers,
            cell.events_per_append,
            ours.events_per_second,
            ours.p50_ms,
            ours.p99_ms,
            theirs.events_per_second,
            theirs.p50_ms,
            theirs.p99_ms,
            ours.events_per_second / theirs.events_per_second,
        )
        .expect("writing to a String");
    }
    out
}

/// The ceiling, and each batched cell (more than one event per append) of
/// this store as a share of it.
pub fn ceiling_lines(cells: &[Cell], rows_per_batch: usize, rows_per_second: f64) -> String {
    let mut out = format!(
        "PostgreSQL ceiling: {rows_per_second:.0} rows/s ({rows_per_batch}-row UNNEST insert of the same payload, one connection, unindexed table)\n"
    );
    let batched: Vec<String> = cells
        .iter()
        .filter(|cell| cell.events_per_append > 1)
        .map(|cell| {
            format!(
                "{} writers × {} events: {:.1}%",
                cell.writers,
                cell.events_per_append,
                100.0 * cell.ours.events_per_second / rows_per_second
            )
        })
        .collect();
    if !batched.is_empty() {
        writeln!(
            out,
            "This store's batched appends reach, of that ceiling: {}",
            batched.join("; ")
        )
        .expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(events_per_second: f64) -> Summary {
        Summary {
            events_per_second,
            p50_ms: 1.234,
            p99_ms: 5.678,
        }
    }

    #[test]
    fn a_row_carries_both_stores_and_their_ratio() {
        let cells = [Cell {
            writers: 8,
            events_per_append: 4,
            ours: summary(3000.0),
            postgres_es: summary(2000.0),
        }];
        let table = table(&cells);
        assert_eq!(
            table.lines().nth(2),
            Some("| 8 | 4 | 3000 | 1.23 ms | 5.68 ms | 2000 | 1.23 ms | 5.68 ms | 1.50 |")
        );
    }

    #[test]
    fn only_batched_cells_are_compared_with_the_ceiling() {
        let cells = [
            Cell {
                writers: 1,
                events_per_append: 1,
                ours: summary(500.0),
                postgres_es: summary(500.0),
            },
            Cell {
                writers: 64,
                events_per_append: 4,
                ours: summary(2500.0),
                postgres_es: summary(1000.0),
            },
        ];
        let lines = ceiling_lines(&cells, 1000, 100_000.0);
        assert!(lines.contains("100000 rows/s"));
        assert!(lines.ends_with("64 writers × 4 events: 2.5%\n"));
        assert!(!lines.contains("1 writers"));
    }
}
