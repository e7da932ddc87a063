//! `ogm-server`: parses the config, sets up logging and hands off to [`ogm_server::run`].

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ogm_server::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ogm_server=info".into()),
        )
        .init();
    ogm_server::run(config, ogm_server::shutdown_signal()).await
}
