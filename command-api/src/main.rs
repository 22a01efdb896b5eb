use clap::{Parser, Subcommand};
use command_api::{operator, Application};
use infrastructure::settings::Settings;
use infrastructure::telemetry;

/// The command side of the platform. Configuration: defaults, then
/// `APP_CONFIG_FILE`, then `APP__SECTION__KEY` variables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API, with the outbox relay when `relay.enabled` (the default).
    Serve,
    /// Run only the outbox relay, with `/health` on the HTTP port.
    Relay,
    /// Skip a stored event that cannot be decoded, so the log goes on past it.
    SkipEvent {
        #[arg(long)]
        position: i64,
        #[arg(long)]
        reason: String,
    },
    /// Register an admin (the first one); the password is read from stdin.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Admin")]
        first_name: String,
        #[arg(long, default_value = "User")]
        last_name: String,
    },
    /// Make the relay publish again from the event at a position.
    ResetRelayCheckpoint {
        #[arg(long)]
        from_position: i64,
    },
    /// Re-wrap every data key under the current master key, the step of a
    /// master-key rotation that lets the old key be retired.
    RewrapKeys {
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Run the sandbox payment service provider (`payments.sandbox.*`), a
    /// Stripe-like PSP in memory that posts signed webhooks to the API.
    PaymentSandbox,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(8080, None)?;
    telemetry::init("command-api");
    let app = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Application::build(settings).await?,
        Command::Relay => Application::build_relay(settings).await?,
        Command::SkipEvent { position, reason } => {
            println!(
                "{}",
                operator::skip_event(&settings, position, &reason).await?
            );
            return Ok(());
        }
        Command::CreateAdmin {
            email,
            first_name,
            last_name,
        } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            println!(
                "{}",
                operator::create_admin(&settings, &email, &first_name, &last_name, password)
                    .await?
            );
            return Ok(());
        }
        Command::PaymentSandbox => {
            return command_api::payments::sandbox::SandboxServer::run(settings.payments.sandbox)
                .await;
        }
        Command::RewrapKeys { batch } => {
            println!("{}", operator::rewrap_keys(&settings, batch).await?);
            return Ok(());
        }
        Command::ResetRelayCheckpoint { from_position } => {
            println!(
                "{}",
                operator::reset_relay_checkpoint(&settings, from_position).await?
            );
            return Ok(());
        }
    };
    tracing::info!(address = %app.local_addr(), "command api listening");
    app.run_until_stopped().await
}
