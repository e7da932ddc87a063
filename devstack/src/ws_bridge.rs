//! MQTT over WebSocket for test clients that speak only TCP: a local port whose one connection is
//! carried to Mosquitto's WebSocket listener as binary frames (subprotocol `mqtt`, as browsers
//! ask for it). The broker sees a WebSocket client, exactly as it sees the dashboard; the client
//! (rumqttc, in [`crate::probe`]) sees a plain TCP broker.

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A bridge waiting for its one TCP connection on `127.0.0.1:port`.
#[derive(Debug)]
pub struct WsBridge {
    pub port: u16,
    pub task: JoinHandle<()>,
}

/// Listens on a free local port; the first connection to it is joined to a new WebSocket
/// connection to `ws://127.0.0.1:<ws_port>/` until either side closes (closing the other).
pub async fn ws_bridge(ws_port: u16) -> anyhow::Result<WsBridge> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        if let Err(e) = pump(tcp, ws_port).await {
            eprintln!("ws bridge to port {ws_port}: {e:#}");
        }
    });
    Ok(WsBridge { port, task })
}

async fn pump(mut tcp: TcpStream, ws_port: u16) -> anyhow::Result<()> {
    let mut request = format!("ws://127.0.0.1:{ws_port}/").into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let stream = TcpStream::connect(("127.0.0.1", ws_port)).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("WebSocket handshake")?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = tcp.read(&mut buf) => match n? {
                0 => {
                    // The client went away without DISCONNECT (or after one): as a browser tab
                    // that closes, the WebSocket closes too.
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                n => ws.send(Message::binary(buf[..n].to_vec())).await?,
            },
            m = ws.next() => match m {
                Some(Ok(Message::Binary(bytes))) => tcp.write_all(&bytes).await?,
                // Dropping `tcp` closes the client's side.
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}
