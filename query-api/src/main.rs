//! The query API binary: settings, telemetry, then the application until a
//! shutdown signal.

use infrastructure::settings::Settings;
use infrastructure::telemetry;
use query_api::Application;

const DEFAULT_PORT: u16 = 8081;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(DEFAULT_PORT, None)?;
    telemetry::init("query-api");
    let application = Application::build(settings).await?;
    application.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received, draining requests");
}
