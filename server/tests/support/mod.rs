//! What the HTTP tests share: a store the test holds requests in, a dashboard build shaped like
//! Trunk's, and a router on them.

#![allow(dead_code)] // each test file uses a part
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use ogm_protocol::{DeviceId, Measurement};
use ogm_store::{
    DeviceSummary, ExportQuery, ExportStream, History, HistoryQuery, LogQuery, LogRow, Record,
    Store, StoreError, StoreKind, WriteOutcome,
};
use tokio::sync::{Notify, Semaphore, mpsc};

type ExportSender = mpsc::Sender<Result<Vec<Measurement>, StoreError>>;

/// A store with one device, `dev-1`, whose `history` waits until the test opens the gate, and
/// whose `export` sends one chunk and then never ends (a long export), or with
/// [`GateStore::endless`] sends chunk after chunk for as long as it is read. The rest answers
/// empty.
#[derive(Debug)]
pub(crate) struct GateStore {
    endless: bool,
    inside: AtomicUsize,
    entered: Notify,
    gate: Semaphore,
    /// The senders of the exports under way, kept so they never end.
    exports: std::sync::Mutex<Vec<ExportSender>>,
}

impl GateStore {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::with(false))
    }

    /// A store whose exports never end and never pause.
    pub(crate) fn endless() -> Arc<Self> {
        Arc::new(Self::with(true))
    }

    fn with(endless: bool) -> Self {
        Self {
            endless,
            inside: AtomicUsize::new(0),
            entered: Notify::new(),
            gate: Semaphore::new(0),
            exports: std::sync::Mutex::default(),
        }
    }

    /// Waits until `n` history requests are held at the gate.
    pub(crate) async fn wait_inside(&self, n: usize) {
        loop {
            let entered = self.entered.notified();
            if self.inside.load(SeqCst) >= n {
                return;
            }
            entered.await;
        }
    }

    /// Lets every held and future history request through.
    pub(crate) fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait::async_trait]
impl Store for GateStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    async fn write(&self, _batch: Vec<Record>) -> Result<WriteOutcome, StoreError> {
        Ok(WriteOutcome::default())
    }

    async fn healthy(&self) -> bool {
        true
    }

    async fn history(&self, _q: HistoryQuery) -> Result<History, StoreError> {
        self.inside.fetch_add(1, SeqCst);
        self.entered.notify_waiters();
        let _pass = self.gate.acquire().await;
        Ok(History {
            interval_us: 0,
            points: Vec::new(),
        })
    }

    async fn logs(&self, _q: LogQuery) -> Result<Vec<LogRow>, StoreError> {
        Ok(Vec::new())
    }

    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError> {
        Ok(vec![DeviceSummary {
            device_id: DeviceId::new("dev-1").unwrap(),
            last_seen: 1,
            last_measurement: None,
            last_status: None,
        }])
    }

    async fn export(&self, _q: ExportQuery) -> Result<ExportStream, StoreError> {
        let (tx, rx) = mpsc::channel(1);
        let one = Measurement {
            timestamp: 1,
            frequency: 50.0,
            voltage: 230.0,
            current: 1.0,
            power: 230.0,
        };
        if self.endless {
            let chunk = vec![one; 10_000];
            tokio::spawn(async move { while tx.send(Ok(chunk.clone())).await.is_ok() {} });
            return Ok(rx);
        }
        tx.try_send(Ok(vec![one])).unwrap();
        self.exports.lock().unwrap().push(tx);
        Ok(rx)
    }
}

/// Trunk's file names: the name, `-`, a 16-digit content hash.
pub(crate) const JS: &str = "ogm-frontend-0123456789abcdef.js";
pub(crate) const WASM: &str = "ogm-frontend-0123456789abcdef_bg.wasm";
pub(crate) const CSS: &str = "style-fedcba9876543210.css";
/// The inline scripts of [`INDEX`], as the CSP must allow them.
pub(crate) const MODULE_SCRIPT: &str =
    "\nimport init from '/ogm-frontend-0123456789abcdef.js';\nawait init();\n";
pub(crate) const KIOSK_SCRIPT: &str = "\n  (function () { window.__ogm = 1; })();\n";

/// A dashboard build shaped like Trunk's: `index.html` with two inline scripts, and content-named
/// files large enough to be worth compressing.
pub(crate) fn trunk_dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let index = format!(
        "<!doctype html><html><head><link rel=\"stylesheet\" href=\"/{CSS}\"/>\
         <script type=\"module\">{MODULE_SCRIPT}</script>\
         <link rel=\"modulepreload\" href=\"/{JS}\"></head>\
         <body><script>{KIOSK_SCRIPT}</script></body></html>"
    );
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    let js = "export function f(x) { return x + 1; }\n".repeat(500);
    std::fs::write(dir.path().join(JS), js).unwrap();
    let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .chain((0..64 * 1024).map(|i| (i % 7) as u8))
        .collect();
    std::fs::write(dir.path().join(WASM), wasm).unwrap();
    std::fs::write(dir.path().join(CSS), "body { color: red; }\n".repeat(100)).unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n".repeat(10)).unwrap();
    dir
}
