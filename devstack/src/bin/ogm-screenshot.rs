//! `ogm-screenshot URL OUT.png [JS-CONDITION]`: opens URL in headless Chromium, waits until the
//! JavaScript condition holds (default: the dashboard is connected and shows a device), and
//! saves a screenshot. For looking at what the dashboard shows a person.

use std::time::Duration;

use anyhow::Context as _;
use ogm_devstack::Browser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: ogm-screenshot URL OUT.png [JS-CONDITION]")?;
    let out = args
        .next()
        .context("usage: ogm-screenshot URL OUT.png [JS-CONDITION]")?;
    let condition = args.next().unwrap_or_else(|| {
        "document.querySelector('#conn-state')?.dataset.state === 'connected' && document.querySelector('.device-card .freq[data-frequency]') !== null".into()
    });
    let browser = Browser::start(1400, 1000).await?;
    browser.goto(&url).await?;
    browser
        .wait_for("the page", &condition, Duration::from_secs(30))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // let a few live values arrive
    let png = browser.screenshot("ogm-screenshot").await?;
    std::fs::copy(&png, &out)?;
    println!("{out}");
    browser.close().await
}
