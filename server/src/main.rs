//! `ogm-server`: parses the command line, sets up logging and hands off to
//! [`ogm_server::run_cli`] (the server, or a deployment subcommand).

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = ogm_server::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ogm_server=info".into()),
        )
        // Logs to stderr: stdout is for what subcommands print (firmware settings).
        .with_writer(std::io::stderr)
        .init();
    ogm_server::run_cli(cli).await
}
