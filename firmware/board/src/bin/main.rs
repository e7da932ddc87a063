//! The board binary: everything happens in `ogm_board::app::run`.
#![no_std]
#![no_main]

use esp_backtrace as _;

esp_bootloader_esp_idf::esp_app_desc!();

#[esp_rtos::main]
async fn main(spawner: embassy_executor::Spawner) -> ! {
    ogm_board::app::run(spawner).await
}
