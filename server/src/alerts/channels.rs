//! Delivering one notification to one channel: a webhook (reqwest), e-mail over SMTP (lettre)
//! or the server's MQTT session. Each answers Ok only once the receiver took it.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ogm_protocol::http::AlertNotice;
use ogm_protocol::topic::server_alert;

use super::rules::{Channel, Security, WebhookFormat};
use crate::publisher::Publisher;

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What delivers.
#[derive(Debug, Clone)]
pub struct Senders {
    http: reqwest::Client,
    publisher: Option<Arc<Publisher>>,
}

impl Senders {
    pub fn new(publisher: Option<Arc<Publisher>>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("open-grid-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the webhook client: {e}"))?;
        Ok(Self { http, publisher })
    }

    /// Delivers `notice` to `channel`.
    pub async fn send(&self, channel: &Channel, notice: &AlertNotice) -> Result<(), String> {
        match channel {
            Channel::Webhook { url, format } => self.webhook(url, *format, notice).await,
            Channel::Email {
                server,
                port,
                security,
                credentials,
                ca_pem,
                from,
                to,
            } => {
                let smtp = Smtp {
                    server,
                    port: *port,
                    security: *security,
                    credentials: credentials.as_ref(),
                    ca_pem: ca_pem.as_deref(),
                };
                email(&smtp, from, to, notice).await
            }
            Channel::Mqtt => {
                let publisher = self
                    .publisher
                    .as_ref()
                    .ok_or("the server has no MQTT publishing session")?;
                let json = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
                publisher.publish_retained(&server_alert(&notice.rule, &notice.subject), json)
            }
        }
    }

    async fn webhook(
        &self,
        url: &str,
        format: WebhookFormat,
        notice: &AlertNotice,
    ) -> Result<(), String> {
        let (title, text) = words(notice);
        let firing = notice.state == "firing";
        let request = self.http.post(url).header("X-OGM-Notification", &notice.id);
        let request = match format {
            WebhookFormat::Json => request
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(notice).map_err(|e| e.to_string())?),
            WebhookFormat::Ntfy => request
                .header("Title", title)
                .header(
                    "Tags",
                    if firing {
                        "warning,zap"
                    } else {
                        "white_check_mark"
                    },
                )
                .header("Priority", if firing { "4" } else { "3" })
                .header("Click", &notice.link)
                .body(text),
            WebhookFormat::Slack => request
                .header("Content-Type", "application/json")
                .body(serde_json::json!({ "text": format!("*{title}*\n{text}") }).to_string()),
            WebhookFormat::Discord => request
                .header("Content-Type", "application/json")
                .body(serde_json::json!({ "content": format!("**{title}**\n{text}") }).to_string()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url}: HTTP {status}"))
        }
    }
}

/// Where and how mail is sent.
struct Smtp<'a> {
    server: &'a str,
    port: u16,
    security: Security,
    credentials: Option<&'a (String, String)>,
    ca_pem: Option<&'a [u8]>,
}

async fn email(
    smtp: &Smtp<'_>,
    from: &str,
    to: &[String],
    notice: &AlertNotice,
) -> Result<(), String> {
    let Smtp {
        server,
        port,
        security,
        credentials,
        ca_pem,
    } = *smtp;
    let (title, text) = words(notice);
    let mailbox = |s: &str| s.parse::<Mailbox>().map_err(|e| format!("{s:?}: {e}"));
    let mut message = Message::builder()
        .from(mailbox(from)?)
        .subject(format!("[Open Grid Monitor] {title}"))
        .message_id(Some(format!("<{}@open-grid-monitor>", notice.id)))
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        message = message.to(mailbox(t)?);
    }
    let message = message
        .body(format!("{text}\n\n{}\n", notice.link))
        .map_err(|e| format!("the message: {e}"))?;
    let tls = || {
        let mut params = TlsParameters::builder(server.to_owned());
        if let Some(pem) = ca_pem {
            let cert = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        params.build().map_err(|e| format!("TLS for {server}: {e}"))
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server);
    let builder = match security {
        Security::Starttls => builder.tls(Tls::Required(tls()?)),
        Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
        Security::None => builder,
    };
    let mut builder = builder.port(port).timeout(Some(TIMEOUT));
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {server}:{port}: {e}"))
}

/// A title and a text for people.
pub fn words(n: &AlertNotice) -> (String, String) {
    let state = if n.state == "firing" {
        "FIRING"
    } else {
        "RESOLVED"
    };
    let title = format!("{state} {}: {}", n.rule, n.subject);
    let text = format!(
        "{}\nBegan {}{}.",
        n.summary,
        super::utc(n.started_us),
        if n.state == "firing" {
            String::new()
        } else {
            format!(", over {}", super::utc(n.at_us))
        }
    );
    (title, text)
}
