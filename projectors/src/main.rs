//! `projectors` runs every configured projection; `projectors replay [NAME…]`
//! rebuilds read models from the event store and exits; `projectors
//! dead-letters list|retry|discard …` shows, re-drives and clears what could not be applied.

use infrastructure::settings::Settings;
use projectors::app::{replay, Application, PROJECTIONS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    infrastructure::telemetry::init("projectors");
    let settings = Settings::load(8082, None)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("replay") => {
            let names: Vec<String> = if args.len() > 1 {
                args[1..].to_vec()
            } else {
                PROJECTIONS.iter().map(|p| p.to_string()).collect()
            };
            for (name, count) in replay(&settings, &names).await? {
                println!("{name}: replayed {count} events");
            }
            Ok(())
        }
        Some("dead-letters") => {
            println!(
                "{}",
                projectors::operator::dead_letters(&settings, &args[1..]).await?
            );
            Ok(())
        }
        None | Some("run") => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "projectors running");
            app.run_until(shutdown_signal()).await;
            Ok(())
        }
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; use `run`, `replay [NAME…]` or `dead-letters list|retry|discard`"
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
