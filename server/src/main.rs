//! `ogm-server`: parses the command line, sets up logging and hands off to
//! [`ogm_server::run_cli`] (the server, or a deployment subcommand).

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = ogm_server::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ogm_server=info".into()),
        )
        // Logs to stderr: stdout is for what subcommands print (firmware settings).
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(ogm_server::run_cli(cli));
    // A blocking store call that never returns (a hung disk) must not keep a stopped server
    // alive: whatever it held was never acknowledged.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
