//! How far a rebuild has got: a bar (events, events/s, ETA) when a person
//! watches a terminal, structured log lines every few seconds otherwise, and
//! the `projector_rebuild_*` metrics either way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Progress {
    projection: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    logged: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(projection: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, eta {eta}",
                )
                .expect("a valid progress template")
                .progress_chars("=> "),
            );
            bar.set_prefix(projection);
            bar
        });
        metrics::gauge!("projector_rebuild_total_events", "projection" => projection)
            .set(total as f64);
        metrics::gauge!("projector_rebuild_done_events", "projection" => projection).set(0.0);
        tracing::info!(projection, total, "rebuild started");
        Self {
            projection,
            total,
            done: 0,
            started: Instant::now(),
            logged: Instant::now(),
            bar,
        }
    }

    pub(crate) fn advance(&mut self, events: u64) {
        self.done += events;
        // Events appended while the rebuild runs are replayed too.
        if self.done > self.total {
            self.total = self.done;
            if let Some(bar) = &self.bar {
                bar.set_length(self.total);
            }
        }
        let projection = self.projection;
        metrics::counter!("projector_rebuild_events_total", "projection" => projection)
            .increment(events);
        metrics::gauge!("projector_rebuild_done_events", "projection" => projection)
            .set(self.done as f64);
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.logged.elapsed() >= LOG_EVERY => {
                self.logged = Instant::now();
                let seconds = self.started.elapsed().as_secs_f64();
                let per_second = self.done as f64 / seconds.max(0.001);
                let eta_seconds =
                    (self.total.saturating_sub(self.done)) as f64 / per_second.max(1.0);
                tracing::info!(
                    projection,
                    done = self.done,
                    total = self.total,
                    per_second = per_second.round() as u64,
                    eta_seconds = eta_seconds.round() as u64,
                    "rebuild progress"
                );
            }
            None => {}
        }
    }

    /// Reports the end; returns the events replayed.
    pub(crate) fn finish(self) -> u64 {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!(
            projection = self.projection,
            events = self.done,
            seconds,
            per_second = (self.done as f64 / seconds.max(0.001)).round() as u64,
            "rebuild finished"
        );
        self.done
    }
}
