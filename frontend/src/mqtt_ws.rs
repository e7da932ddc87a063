//! [`MqttWs`]: the one place that owns the browser WebSocket and the link's timer.
//!
//! It carries out what [`MqttLink`] asks ([`Action`]) and feeds it what the socket and the clock
//! say; it decides nothing itself. The socket speaks the `mqtt` subprotocol in binary
//! (arraybuffer) frames. Every socket callback checks the socket's generation, and a replaced
//! socket has its handlers removed before it is dropped, so a late event from an old socket
//! can neither reach the link nor call a freed closure. Nothing here panics on network input.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::{IntervalHandle, set_interval_with_handle};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::mqtt_link::{Action, LinkConfig, LinkEvent, MqttLink};

/// How often the link's clock ticks, ms.
const TICK_MS: u64 = 250;

/// A running MQTT-over-WebSocket link. Dropping it closes the socket and stops the timer.
pub struct MqttWs {
    inner: Rc<RefCell<Inner>>,
    tick: IntervalHandle,
}

impl std::fmt::Debug for MqttWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .inner
            .try_borrow()
            .map(|i| i.url.clone())
            .unwrap_or_default();
        f.debug_struct("MqttWs")
            .field("url", &url)
            .finish_non_exhaustive()
    }
}

struct Inner {
    link: MqttLink,
    url: String,
    socket: Option<Socket>,
    /// Sockets replaced inside one of their own callbacks; dropped at the next tick.
    retired: Vec<Socket>,
    generation: u64,
    on_event: Rc<dyn Fn(LinkEvent)>,
}

struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

impl MqttWs {
    /// Starts connecting to `url` at once; `on_event` hears every state change and message.
    pub fn start(
        url: String,
        config: LinkConfig,
        seed: u64,
        on_event: Rc<dyn Fn(LinkEvent)>,
    ) -> Result<Self, String> {
        let inner = Rc::new(RefCell::new(Inner {
            link: MqttLink::new(config, seed),
            url,
            socket: None,
            retired: Vec::new(),
            generation: 0,
            on_event,
        }));
        let weak = Rc::downgrade(&inner);
        let tick = set_interval_with_handle(
            move || {
                if let Some(inner) = weak.upgrade() {
                    if let Ok(mut me) = inner.try_borrow_mut() {
                        me.retired.clear();
                    }
                    drive(&inner, None, |link, now| link.tick(now));
                }
            },
            Duration::from_millis(TICK_MS),
        )
        .map_err(|e| format!("cannot start the MQTT timer: {e:?}"))?;
        drive(&inner, None, |link, now| link.tick(now));
        Ok(Self { inner, tick })
    }
}

impl Drop for MqttWs {
    fn drop(&mut self) {
        self.tick.clear();
        if let Ok(mut me) = self.inner.try_borrow_mut() {
            me.socket = None;
            me.retired.clear();
        }
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Runs `step` on the link (if `generation` is current), carries out the actions, then tells
/// the page what happened, after the link is released.
fn drive(
    inner: &Rc<RefCell<Inner>>,
    generation: Option<u64>,
    step: impl FnOnce(&mut MqttLink, u64) -> Vec<Action>,
) {
    let mut notes = Vec::new();
    let on_event = {
        // Browser callbacks never nest, but a failed borrow must not become a panic.
        let Ok(mut me) = inner.try_borrow_mut() else {
            return;
        };
        if generation.is_some_and(|g| g != me.generation) {
            return;
        }
        let now = now_ms();
        let mut actions = step(&mut me.link, now);
        while !actions.is_empty() {
            let mut follow_up = Vec::new();
            for action in actions {
                match action {
                    Action::Open => {
                        me.retire_socket();
                        me.generation += 1;
                        match open(inner, &me.url, me.generation) {
                            Ok(s) => me.socket = Some(s),
                            Err(e) => follow_up.extend(me.link.on_closed(now, &e)),
                        }
                    }
                    Action::Send(bytes) => {
                        let sent = me
                            .socket
                            .as_ref()
                            .map(|s| s.ws.send_with_u8_array(&bytes).is_ok());
                        if sent != Some(true) {
                            me.retire_socket();
                            follow_up
                                .extend(me.link.on_closed(now, "sending to the broker failed"));
                        }
                    }
                    Action::Close => me.retire_socket(),
                    Action::Notify(n) => notes.push(n),
                }
            }
            actions = follow_up;
        }
        me.on_event.clone()
    };
    for n in notes {
        on_event(n);
    }
}

impl Inner {
    fn retire_socket(&mut self) {
        if let Some(s) = self.socket.take() {
            // Handlers off now; the closures themselves go at the next tick, outside any of
            // their own invocations.
            s.ws.set_onopen(None);
            s.ws.set_onmessage(None);
            s.ws.set_onclose(None);
            s.ws.set_onerror(None);
            let _ = s.ws.close();
            self.retired.push(s);
        }
    }
}

fn open(inner: &Rc<RefCell<Inner>>, url: &str, generation: u64) -> Result<Socket, String> {
    let ws = WebSocket::new_with_str(url, "mqtt")
        .map_err(|e| format!("cannot open {url}: {}", js_text(&e)))?;
    ws.set_binary_type(BinaryType::Arraybuffer);

    let weak = Rc::downgrade(inner);
    let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if let Some(inner) = weak.upgrade() {
            drive(&inner, Some(generation), |link, now| link.on_open(now));
        }
    });
    let weak = Rc::downgrade(inner);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some(inner) = weak.upgrade() else { return };
        let Ok(buf) = e.data().dyn_into::<js_sys::ArrayBuffer>() else {
            // A text frame is not MQTT.
            drive(&inner, Some(generation), |link, now| {
                link.on_closed(now, "the broker sent a text frame")
            });
            return;
        };
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        drive(&inner, Some(generation), |link, now| {
            link.on_bytes(&bytes, now)
        });
    });
    let weak = Rc::downgrade(inner);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
        if let Some(inner) = weak.upgrade() {
            let reason = if e.reason().is_empty() {
                format!("connection closed (code {})", e.code())
            } else {
                format!("connection closed: {}", e.reason())
            };
            drive(&inner, Some(generation), |link, now| {
                link.on_closed(now, &reason)
            });
        }
    });
    let weak = Rc::downgrade(inner);
    let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if let Some(inner) = weak.upgrade() {
            drive(&inner, Some(generation), |link, now| {
                link.on_closed(now, "cannot reach the broker")
            });
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Socket {
        ws,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
        _on_error: on_error,
    })
}

/// A JS exception as text.
pub fn js_text(v: &wasm_bindgen::JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}
