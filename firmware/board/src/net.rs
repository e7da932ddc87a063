//! WiFi, the IP stack and SNTP.
//!
//! - [`wifi_task`] joins the network from the settings and rejoins whenever it drops, with a
//!   pause between attempts; while connected it samples the RSSI for status messages.
//! - [`net_task`] runs embassy-net (DHCP, TCP, UDP, DNS).
//! - [`sntp_task`] asks the SNTP server once the network is up, then hourly (every 10 s until the
//!   first answer), and feeds the answers to the shared wall clock.

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_net::dns::DnsQueryType;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{Duration, Timer, with_timeout};
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, Interface, WifiController};
use log::{info, warn};
use ogm_firmware_core::sntp;
use static_cell::StaticCell;

use crate::settings::{SNTP_SERVER, WIFI_PASSWORD, WIFI_SSID};
use crate::shared::{CLOCK, RSSI};

const RETRY_JOIN: Duration = Duration::from_secs(5);
const RSSI_EVERY: Duration = Duration::from_secs(10);
const SNTP_EVERY: Duration = Duration::from_secs(3600);
const SNTP_RETRY: Duration = Duration::from_secs(10);
const SNTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Sockets: MQTT (TCP), SNTP (UDP), DNS, DHCP.
const SOCKETS: usize = 4;
static RESOURCES: StaticCell<StackResources<SOCKETS>> = StaticCell::new();

/// Why the network could not start.
#[derive(Debug)]
pub enum NetError {
    Wifi(esp_radio::wifi::WifiError),
    Spawn,
}

/// Starts WiFi, the IP stack and SNTP; returns the stack for the MQTT link.
pub fn start(
    spawner: &Spawner,
    wifi: esp_hal::peripherals::WIFI<'static>,
    seed: u64,
) -> Result<Stack<'static>, NetError> {
    let controller = WifiController::new(wifi, Default::default()).map_err(NetError::Wifi)?;
    let station = Interface::station();
    let (stack, runner) = embassy_net::new(
        station,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(runner).map_err(|_| NetError::Spawn)?);
    spawner.spawn(wifi_task(controller).map_err(|_| NetError::Spawn)?);
    spawner.spawn(sntp_task(stack).map_err(|_| NetError::Spawn)?);
    Ok(stack)
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) -> ! {
    let config = station_config();
    loop {
        let Some(config) = &config else {
            warn!("wifi: the SSID or password is not usable; WiFi stays off");
            Timer::after(Duration::from_secs(3600)).await;
            continue;
        };
        if let Err(e) = controller.set_config(config) {
            warn!("wifi: configuration refused: {e:?}");
            Timer::after(RETRY_JOIN).await;
            continue;
        }
        match controller.connect_async().await {
            Ok(_) => {
                info!("wifi: joined {WIFI_SSID}");
                loop {
                    if let Ok(rssi) = controller.rssi() {
                        RSSI.lock(|r| r.set(rssi));
                    }
                    let dropped = select(
                        controller.wait_for_disconnect_async(),
                        Timer::after(RSSI_EVERY),
                    )
                    .await;
                    if let Either::First(info) = dropped {
                        warn!("wifi: disconnected: {info:?}");
                        RSSI.lock(|r| r.set(0));
                        break;
                    }
                }
            }
            Err(e) => {
                warn!("wifi: cannot join {WIFI_SSID}: {e:?}");
                Timer::after(RETRY_JOIN).await;
            }
        }
    }
}

fn station_config() -> Option<Config> {
    let auth = if WIFI_PASSWORD.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        AuthenticationMethodConfig::Wpa2Personal(WIFI_PASSWORD.try_into().ok()?)
    };
    Some(Config::Station(
        StationConfig::default()
            .with_ssid(WIFI_SSID.try_into().ok()?)
            .with_authentication(auth),
    ))
}

#[embassy_executor::task]
async fn sntp_task(stack: Stack<'static>) -> ! {
    let mut rx_meta = [PacketMetadata::EMPTY; 2];
    let mut tx_meta = [PacketMetadata::EMPTY; 2];
    let mut rx = [0u8; 128];
    let mut tx = [0u8; 128];
    let mut synced = false;
    loop {
        stack.wait_config_up().await;
        let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
        let result = ask(stack, &mut socket).await;
        drop(socket);
        match result {
            Ok(s) => {
                CLOCK.lock(|c| c.borrow_mut().sync(s.monotonic_us, s.unix_us));
                if !synced {
                    info!(
                        "sntp: clock set from {SNTP_SERVER} (stratum {}, round trip {} ms)",
                        s.stratum,
                        s.round_trip_us / 1000
                    );
                }
                synced = true;
                Timer::after(SNTP_EVERY).await;
            }
            Err(e) => {
                warn!("sntp: {e}");
                Timer::after(SNTP_RETRY).await;
            }
        }
    }
}

async fn ask(
    stack: Stack<'static>,
    socket: &mut UdpSocket<'_>,
) -> Result<sntp::Sync, &'static str> {
    let server = stack
        .dns_query(SNTP_SERVER, DnsQueryType::A)
        .await
        .ok()
        .and_then(|a| a.first().copied())
        .ok_or("cannot resolve the SNTP server")?;
    socket.bind(0).map_err(|_| "cannot bind a UDP socket")?;
    let rng = esp_hal::rng::Rng::new();
    let cookie = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let sent = crate::now_us();
    socket
        .send_to(&sntp::request(cookie), (server, sntp::PORT))
        .await
        .map_err(|_| "cannot send the request")?;
    let mut answer = [0u8; 64];
    let (n, _) = with_timeout(SNTP_TIMEOUT, socket.recv_from(&mut answer))
        .await
        .map_err(|_| "no answer")?
        .map_err(|_| "cannot receive")?;
    let received = crate::now_us();
    sntp::parse(&answer[..n], cookie, sent, received).map_err(|_| "bad answer")
}
