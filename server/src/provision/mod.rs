//! Deployment tooling in the server binary, so the docker-compose deployment needs nothing but
//! the server's image: the subcommands `setup`, `device add|remove`, `influxdb-tokens` and
//! `health`. None of it runs in the serving process.
//!
//! - [`passwd`]: Mosquitto's password file and its `$7$` hashes (pure, plus load/save).
//! - [`env_file`]: editing the deployment's `.env` in place (pure).
//! - [`setup`]: generating secrets, the broker users and new devices' firmware settings.
//! - [`device`]: one device's broker user and its firmware settings.
//! - [`influx_tokens`]: the scoped InfluxDB tokens written into the shared token directory.
//! - [`health`]: the container healthcheck.

pub mod device;
pub mod env_file;
pub mod health;
pub mod influx_tokens;
pub mod passwd;
pub mod setup;

use std::time::Duration;

use crate::config::{Command, Config, DeviceCommand};

/// Runs one deployment subcommand; what it prints is for the operator.
pub async fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => anyhow::bail!("`serve` is run by ogm_server::run_cli"),
        Command::Health => {
            let body = health::check(health::probe_addr(config.http_addr), Duration::from_secs(3))?;
            println!("{body}");
        }
        Command::Setup(args) => {
            let paths = setup::SetupPaths {
                env_file: args.env_file,
                password_file: args.password_file,
                secrets_dir: args.secrets_dir,
            };
            let report = setup::run(&paths)?;
            print_setup(&paths, &report);
        }
        Command::Device(DeviceCommand::Add(args)) => {
            // docker-compose passes an unset OGM_PUBLIC_MQTT_URL on as empty.
            let broker = match args.broker_url.trim() {
                "" => device::UNKNOWN_BROKER,
                url => url,
            };
            let settings = device::add(&args.password_file, &args.id, args.password, broker)?;
            eprintln!(
                "Broker user {} written to {}.",
                settings.id,
                args.password_file.display()
            );
            reload_or_hint(args.reload_pid)?;
            print!("{}", settings.cfg_toml());
        }
        Command::Device(DeviceCommand::Remove(args)) => {
            if device::remove(&args.password_file, &args.id)? {
                eprintln!(
                    "Broker user {} removed from {}.",
                    args.id,
                    args.password_file.display()
                );
                reload_or_hint(args.reload_pid)?;
            } else {
                eprintln!(
                    "{} has no broker user in {}.",
                    args.id,
                    args.password_file.display()
                );
            }
        }
        Command::InfluxdbTokens(args) => {
            let admin = ogm_store_influx::tokens::TokenAdmin::new(
                &config.influxdb_url,
                &args.admin_token,
                &config.influxdb_org,
                &config.influxdb_bucket,
            )?;
            let done = influx_tokens::run(&args.dir, &admin, args.wait).await?;
            tracing::info!(
                dir = %args.dir.display(),
                created = done.created,
                deleted_stale = done.deleted,
                write_id = %done.tokens.write.id,
                read_id = %done.tokens.read.id,
                "InfluxDB tokens ready"
            );
        }
    }
    Ok(())
}

fn reload_or_hint(pid: Option<u32>) -> anyhow::Result<()> {
    match pid {
        Some(pid) => {
            device::reload_broker(pid)?;
            eprintln!("Sent SIGHUP to process {pid}: the broker reloads its password file.");
        }
        None => eprintln!("{}", device::RELOAD_HINT),
    }
    Ok(())
}

fn print_setup(paths: &setup::SetupPaths, report: &setup::SetupReport) {
    let env = paths.env_file.display();
    if report.generated.is_empty() {
        println!("{env}: every secret is set; nothing generated.");
    } else {
        println!("{env}: generated {}.", report.generated.join(", "));
    }
    if report.broker_users_written.is_empty() {
        println!("{}: up to date.", paths.password_file.display());
    } else {
        println!(
            "{}: wrote {}.",
            paths.password_file.display(),
            report.broker_users_written.join(", ")
        );
    }
    for d in &report.new_devices {
        println!(
            "New device {}: its firmware settings (with its password) are in {}.",
            d.id,
            paths.secrets_dir.join(format!("{}.toml", d.id)).display()
        );
    }
    if !report.existing_devices.is_empty() {
        let ids: Vec<&str> = report.existing_devices.iter().map(|d| d.as_str()).collect();
        println!("Devices kept with their passwords: {}.", ids.join(", "));
    }
}
