use command_api::Application;
use infrastructure::settings::Settings;
use infrastructure::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(8080, None)?;
    telemetry::init("command-api");
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.local_addr(), "command api listening");
    app.run_until_stopped().await
}
