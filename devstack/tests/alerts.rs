//! Alerts end to end with the simulator, the real broker, a real SMTP server (Debian's
//! aiosmtpd) and a real HTTP receiver: a −250 mHz generator trip gives exactly one alert fired
//! and one resolved on each channel (mail, webhook, MQTT) with the right extreme; the webhook
//! receiver is down during the event and the server is killed (SIGKILL) before it could
//! deliver: after the restart and once the receiver is up, both arrive, once. A simulated
//! device stopped gives a deadman alert after its silence time; started again, it resolves.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ogm_devstack::page::{attr, count, shot};
use ogm_devstack::receivers::{HttpReceiver, SmtpServer};
use ogm_devstack::{
    Browser, DASHBOARD_USER, MqttProbe, Stack, StackOptions, free_port, http_get, wait,
};
use ogm_protocol::http::{AlertNotice, AlertsAnswer};

fn alerts(stack: &Stack) -> AlertsAnswer {
    let r = http_get(&format!("{}/api/alerts", stack.http_url())).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    AlertsAnswer::from_json(&r.body).unwrap()
}

fn metric(stack: &Stack, name: &str) -> f64 {
    ogm_devstack::ingest_check::metric(&stack.http_url(), name).unwrap_or(f64::NAN)
}

/// The `Subject:` line of each mail.
fn subjects(smtp: &SmtpServer) -> Vec<String> {
    smtp.mails()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

fn notices(hook: &HttpReceiver) -> Vec<AlertNotice> {
    hook.received()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_alerts_once_on_every_channel_across_a_receiver_outage_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("smtp")).unwrap();
    let hook_port = free_port();
    let mut options = StackOptions::for_test(dir.path().join("stack"), 3);
    options.rate_hz = 10.0;
    options.sim_trips = false;
    // The trip comes once the server has heard the devices for a while.
    // A fixed seed: the grid's slow walk is the same every run (it can sit 60 mHz off nominal,
    // which alone would decide whether a −250 mHz trip crosses a ±200 mHz limit).
    options.sim_env = vec![
        ("OGM_SIM_STEP_AT".into(), "12s:-250mHz".into()),
        ("OGM_SIM_SEED".into(), "15".into()),
    ];
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"dashboard_url = "http://127.0.0.1:{http}"
[channels.mail]
kind = "email"
server = "127.0.0.1"
port = {smtp}
security = "none"
from = "Open Grid Monitor <alerts@example.org>"
to = ["ops@example.org"]

[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/alerts"

[channels.mqtt]
kind = "mqtt"

[[rules]]
name = "frequency"
kind = "frequency"
limit_mhz = 150
channels = ["mail", "hook", "mqtt"]

[[rules]]
name = "silent"
kind = "silent"
after = "8s"
devices = ["sim-02"]
channels = ["hook"]
"#,
            http = options.http_port,
            smtp = smtp.port,
        ),
    )
    .unwrap();
    options.server_env = vec![("OGM_ALERTS_FILE".into(), rules.display().to_string())];
    let dashboard_pw = options.credentials.dashboard.clone();
    let mut stack = Stack::up(options).unwrap();

    // The alert states as the broker keeps them, read as the public dashboard user may.
    let mut probe = MqttProbe::subscribed(
        stack.broker.ports.mqtt,
        DASHBOARD_USER,
        &dashboard_pw,
        "ogm_server/alerts/#",
    )
    .await
    .unwrap();
    let on_mqtt: Arc<Mutex<Vec<AlertNotice>>> = Arc::default();
    let log = on_mqtt.clone();
    let reader = tokio::spawn(async move {
        while let Ok(m) = probe.next_message(Duration::from_secs(600)).await {
            if let Ok(n) = serde_json::from_slice(&m.payload) {
                log.lock().unwrap_or_else(PoisonError::into_inner).push(n);
            }
        }
    });

    // The trip: fired and resolved by mail; the webhook is down.
    let mails = wait::until_async(Duration::from_secs(90), || async {
        let s = subjects(&smtp);
        (s.len() >= 2).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("no two mails: {:?}\n{:?}", subjects(&smtp), alerts(&stack)));
    assert_eq!(
        mails,
        [
            "[Open Grid Monitor] FIRING frequency: grid",
            "[Open Grid Monitor] RESOLVED frequency: grid"
        ]
    );
    let a = alerts(&stack);
    assert!(a.enabled && a.active.is_empty(), "{a:?}");
    assert_eq!(a.past.len(), 1, "{a:?}");
    let alert = &a.past[0];
    // The right extreme: what the grid's median reached, which the server's own event of the
    // trip (the farthest single reading) bounds within a few mHz of device noise.
    let event = http_get(&format!("{}/api/events?start=-10m", stack.http_url())).unwrap();
    let event = ogm_protocol::http::EventsAnswer::from_json(&event.body).unwrap();
    let trip = event.events.first().expect("the trip is an event");
    assert!(
        alert.extreme < -150.0 && (alert.extreme - trip.extreme_mhz).abs() < 15.0,
        "the alert's extreme {} mHz, the event's {} mHz",
        alert.extreme,
        trip.extreme_mhz
    );
    assert!(
        alert
            .device_id
            .as_deref()
            .is_some_and(|d| d.starts_with("sim-"))
    );
    assert!(
        alert.link.contains("view=insight&device=sim-") && alert.link.contains("range=custom"),
        "{}",
        alert.link
    );
    let hook: Vec<_> = alert
        .deliveries
        .iter()
        .filter(|d| d.channel == "hook")
        .collect();
    assert_eq!(hook.len(), 2);
    assert!(
        hook.iter().all(|d| d.delivered_us.is_none()) && hook[0].last_error.is_some(),
        "the webhook was down (its \"resolved\" waits behind its \"firing\"): {hook:?}"
    );
    assert!(
        metric(&stack, "ogm_notification_failures_total") >= 1.0,
        "{}",
        http_get(&format!("{}/metrics", stack.http_url()))
            .unwrap()
            .body
    );
    let mail_body = smtp.mails().concat();
    assert!(
        mail_body.contains("Grid frequency -2") && mail_body.contains("http://127.0.0.1:"),
        "{mail_body}"
    );
    println!("FIGURE alert: {alert:?}");

    // Killed before it could deliver to the webhook; restarted; the receiver comes up.
    stack.crash_and_restart_server().unwrap();
    let hook = HttpReceiver::start(hook_port).await.unwrap();
    let got = wait::until_async(Duration::from_secs(90), || async {
        let n = notices(&hook);
        (n.len() >= 2 && metric(&stack, "ogm_notifications_waiting") == 0.0).then_some(n)
    })
    .await
    .unwrap_or_else(|| panic!("webhook got {:?}; {:?}", notices(&hook), alerts(&stack)));
    let states: Vec<&str> = got.iter().map(|n| n.state.as_str()).collect();
    assert_eq!(states, ["firing", "resolved"], "once each: {got:?}");
    assert_eq!(got[0].alert_id, alert.id);
    assert_eq!(got[1].extreme, alert.extreme);
    assert_eq!(
        hook.received()[0].header("x-ogm-notification"),
        Some(got[0].id.as_str())
    );
    assert_eq!(
        subjects(&smtp).len(),
        2,
        "no mail sent twice after the restart"
    );

    // The deadman: every device stops; sim-02's alert fires after 8 s, and resolves when the
    // devices are back.
    stack.stop_sim();
    let fired = wait::until_async(Duration::from_secs(60), || async {
        let n = notices(&hook);
        n.iter()
            .any(|n| n.rule == "silent" && n.state == "firing")
            .then_some(n)
    })
    .await
    .unwrap_or_else(|| panic!("no deadman alert: {:?}", alerts(&stack)));
    let silent = fired.iter().find(|n| n.rule == "silent").unwrap();
    assert_eq!(silent.subject, "sim-02");
    assert!(silent.extreme >= 8.0, "{silent:?}");
    // The banner on the kiosk, and the history on the insight page.
    let browser = Browser::start(1280, 720).await.unwrap();
    browser
        .goto(&format!("{}/?kiosk&view=insight", stack.http_url()))
        .await
        .unwrap();
    let banner = "#alert-banner li[data-rule=\"silent\"][data-subject=\"sim-02\"]";
    let long = Duration::from_secs(30);
    ogm_devstack::page::wait(
        &browser,
        "the alert banner",
        &format!("{} === 1", count(banner)),
        long,
    )
    .await;
    shot(&browser, "alert-banner-kiosk").await;
    // The trip's alert shaded on the overview's live chart (with the live event, if the page
    // saw it: the trip was before the page opened, so the alert's span at least).
    browser
        .goto(&format!("{}/?window=30m", stack.http_url()))
        .await
        .unwrap();
    ogm_devstack::page::wait(
        &browser,
        "the trip's alert marked on the live chart",
        "Number(document.querySelector('#live-chart')?.dataset.marks) >= 1",
        long,
    )
    .await;
    shot(&browser, "alert-marked-overview").await;
    browser
        .goto(&format!("{}/?view=insight", stack.http_url()))
        .await
        .unwrap();
    let rows = "#alert-history tbody tr";
    ogm_devstack::page::wait(
        &browser,
        "the alert history",
        &format!("{} === 2", count(rows)),
        long,
    )
    .await;
    let first = browser
        .js(&attr("#alert-history tbody tr", "data-active"))
        .await
        .unwrap();
    assert_eq!(first, "true", "the active alert first");
    browser
        .run("document.querySelector('#alert-history')?.scrollIntoView({block: 'center'})")
        .await
        .unwrap();
    shot(&browser, "alert-history").await;
    stack.restart_sim().unwrap();
    wait::until_async(Duration::from_secs(60), || async {
        notices(&hook)
            .iter()
            .any(|n| n.rule == "silent" && n.state == "resolved")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the deadman alert did not resolve: {:?}", alerts(&stack)));
    // Resolved: the banner goes (at the page's next ask).
    ogm_devstack::page::wait(
        &browser,
        "the banner gone",
        &format!("{} === 0", count("#alert-banner")),
        long,
    )
    .await;
    browser.close().await.unwrap();
    let frequency_on_hook = notices(&hook)
        .iter()
        .filter(|n| n.rule == "frequency")
        .count();
    assert_eq!(frequency_on_hook, 2, "no second trip alert");

    // MQTT: the same two states of the trip, and the deadman's not (not its channel).
    let mqtt: Vec<(String, String)> = on_mqtt
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|n| (n.rule.clone(), n.state.clone()))
        .collect();
    assert_eq!(
        mqtt,
        [
            ("frequency".to_owned(), "firing".to_owned()),
            ("frequency".to_owned(), "resolved".to_owned())
        ]
    );
    reader.abort();
}
