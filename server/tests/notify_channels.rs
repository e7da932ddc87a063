//! Each notification channel against a real receiver: the webhook's four forms (JSON, ntfy,
//! Slack, Discord) against an HTTP server, e-mail against a real SMTP server (Debian's
//! aiosmtpd), and a receiver that is down is an error, not a success.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use ogm_devstack::free_port;
use ogm_devstack::receivers::{HttpReceiver, SmtpServer};
use ogm_protocol::http::AlertNotice;
use ogm_server::alerts::channels::Senders;
use ogm_server::alerts::rules::{Channel, Security, WebhookFormat};

fn notice() -> AlertNotice {
    AlertNotice {
        id: "7-firing".into(),
        alert_id: 7,
        rule: "frequency".into(),
        kind: "frequency".into(),
        subject: "grid".into(),
        state: "firing".into(),
        started_us: 1_796_356_544_770_836,
        at_us: 1_796_356_547_019_953,
        extreme: -256.2,
        unit: "mHz".into(),
        device_id: Some("sim-02".into()),
        summary:
            "Grid frequency -256.2 mHz off nominal (49.744 Hz) at sim-02; the limit is ±200 mHz."
                .into(),
        link: "http://grid.example.org/?view=insight&device=sim-02".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_in_every_form_and_mail_reach_real_receivers() {
    let hook = HttpReceiver::start_any().await.unwrap();
    let senders = Senders::new(None).unwrap();
    let n = notice();
    for format in [
        WebhookFormat::Json,
        WebhookFormat::Ntfy,
        WebhookFormat::Slack,
        WebhookFormat::Discord,
    ] {
        let url = format!("http://127.0.0.1:{}/{format:?}", hook.port);
        senders
            .send(&Channel::Webhook { url, format }, &n)
            .await
            .unwrap();
    }
    let got = hook.received();
    assert_eq!(got.len(), 4);
    let json: AlertNotice = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(json, n);
    assert_eq!(got[0].header("x-ogm-notification"), Some("7-firing"));
    assert_eq!(got[1].header("title"), Some("FIRING frequency: grid"));
    assert_eq!(got[1].header("click"), Some(n.link.as_str()));
    assert_eq!(got[1].header("priority"), Some("4"));
    assert!(
        got[1].body.starts_with("Grid frequency -256.2 mHz"),
        "{}",
        got[1].body
    );
    let slack: serde_json::Value = serde_json::from_str(&got[2].body).unwrap();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("*FIRING frequency: grid*")
    );
    let discord: serde_json::Value = serde_json::from_str(&got[3].body).unwrap();
    assert!(discord["content"].as_str().unwrap().contains("-256.2 mHz"));

    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path()).unwrap();
    let mail = Channel::Email {
        server: "127.0.0.1".into(),
        port: smtp.port,
        security: Security::None,
        credentials: None,
        ca_pem: None,
        from: "Open Grid Monitor <alerts@example.org>".into(),
        to: vec![
            "ops@example.org".into(),
            "Night Shift <night@example.org>".into(),
        ],
    };
    senders.send(&mail, &n).await.unwrap();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one mail to both");
    let m = &mails[0];
    assert!(
        m.contains("Subject: [Open Grid Monitor] FIRING frequency: grid"),
        "{m}"
    );
    assert!(
        m.contains("Message-ID: <7-firing@open-grid-monitor>"),
        "{m}"
    );
    // The body is quoted-printable (the summary has a "±"): soft breaks and "=3D" undone.
    let body = m
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    assert!(
        m.contains("night@example.org") && body.contains(&n.link),
        "{m}"
    );
    assert!(body.contains("Grid frequency -256.2 mHz"), "{m}");

    // Down receivers are errors with the reason, so the outbox keeps the notification.
    let down = Channel::Webhook {
        url: format!("http://127.0.0.1:{}/x", free_port()),
        format: WebhookFormat::Json,
    };
    let e = senders.send(&down, &n).await.unwrap_err();
    assert!(e.contains("POST http://127.0.0.1:"), "{e}");
    let down = Channel::Email {
        server: "127.0.0.1".into(),
        port: free_port(),
        security: Security::None,
        credentials: None,
        ca_pem: None,
        from: "a@example.org".into(),
        to: vec!["b@example.org".into()],
    };
    let e = senders.send(&down, &n).await.unwrap_err();
    assert!(e.starts_with("SMTP 127.0.0.1:"), "{e}");
    let mqtt = senders.send(&Channel::Mqtt, &n).await.unwrap_err();
    assert!(mqtt.contains("no MQTT"), "{mqtt}");
}

/// A CA and a certificate it signed for `localhost` (openssl), as PEM files in `dir`:
/// (CA certificate, server certificate, server key).
fn internal_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "smtp.key",
        "-out",
        "smtp.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "smtp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "smtp.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_to_a_relay_of_an_internal_ca_and_not_to_an_untrusted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = internal_ca(dir.path());
    let smtp = SmtpServer::start_tls(&dir.path().join("smtp"), &cert, &key).unwrap();
    let senders = Senders::new(None).unwrap();
    let channel = |ca_pem: Option<Vec<u8>>| Channel::Email {
        server: "localhost".into(),
        port: smtp.port,
        security: Security::Starttls,
        credentials: None,
        ca_pem,
        from: "alerts@example.org".into(),
        to: vec!["ops@example.org".into()],
    };
    // Not trusted: the public roots do not vouch for the test CA.
    let e = senders.send(&channel(None), &notice()).await.unwrap_err();
    assert!(e.starts_with("SMTP localhost:"), "{e}");
    assert!(smtp.mails().is_empty());
    // With the CA from `ca_file`: delivered over the encrypted connection.
    let pem = std::fs::read(&ca).unwrap();
    senders.send(&channel(Some(pem)), &notice()).await.unwrap();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("X-Peer") || mails[0].contains("Subject: [Open Grid Monitor]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_logs_in_to_a_relay_that_requires_it_and_a_wrong_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = internal_ca(dir.path());
    let smtp = SmtpServer::start_tls_auth(
        &dir.path().join("smtp"),
        &cert,
        &key,
        "ogm-alerts",
        "relay-pw",
    )
    .unwrap();
    let senders = Senders::new(None).unwrap();
    let pem = std::fs::read(&ca).unwrap();
    let channel = |credentials: Option<(&str, &str)>| Channel::Email {
        server: "localhost".into(),
        port: smtp.port,
        security: Security::Starttls,
        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        ca_pem: Some(pem.clone()),
        from: "alerts@example.org".into(),
        to: vec!["ops@example.org".into()],
    };
    for refused in [
        None,
        Some(("ogm-alerts", "wrong")),
        Some(("intruder", "relay-pw")),
    ] {
        let e = senders
            .send(&channel(refused), &notice())
            .await
            .unwrap_err();
        assert!(e.starts_with("SMTP localhost:"), "{refused:?}: {e}");
    }
    assert!(smtp.mails().is_empty(), "nothing through without the login");
    senders
        .send(&channel(Some(("ogm-alerts", "relay-pw"))), &notice())
        .await
        .unwrap();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [Open Grid Monitor]"),
        "{}",
        mails[0]
    );
}
