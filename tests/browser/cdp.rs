//! A minimal Chrome DevTools Protocol client for the browser test: launch
//! headless Chromium with its own profile, attach to one page over the
//! browser's WebSocket (flattened sessions), evaluate JavaScript, send real
//! key events, take screenshots. Synchronous: every call waits for its own
//! answer, skipping events, with a read timeout so nothing hangs.
// Tests time real processes by the wall clock; the ban is for the core.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The Chromium executable: `$CHROMIUM`, else `chromium` or
/// `chromium-browser` on PATH; `None` when there is none.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A running headless Chromium with one attached page.
pub struct Browser {
    // Declared before the profile so the browser is gone before its directory.
    _child: Reaped,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `exe` with a fresh profile and a `width` x `height` window.
    pub fn launch(exe: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Reaped(
            Command::new(exe)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--remote-debugging-port=0",
                    &format!("--window-size={width},{height}"),
                    &format!("--user-data-dir={}", profile.path().display()),
                    "about:blank",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("chromium starts"),
        );
        // From here a panic drops `child`, which kills the browser.
        let url = devtools_url(&mut child.0)
            .unwrap_or_else(|| panic!("chromium did not print its DevTools address within {DEVTOOLS_WAIT:?}"));
        let (ws, _) = tungstenite::connect(url.as_str()).expect("DevTools WebSocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut b = Browser { _child: child, ws, session: String::new(), next: 0, _profile: profile };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}), false)["targetId"].clone();
        let attached = b.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}), false);
        b.session = attached["sessionId"].as_str().expect("a session id").to_owned();
        b.call("Page.enable", json!({}), true);
        b.call("Runtime.enable", json!({}), true);
        b
    }

    /// Sends `method` (to the page when `page`) and waits for its result.
    pub fn call(&mut self, method: &str, params: Value, page: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if page {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).expect("DevTools send");
        loop {
            let Message::Text(text) = self.ws.read().expect("DevTools answer in time") else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in the page.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}), true);
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            true,
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true`, for at most `limit`; returns the time taken.
    pub fn wait_for(&mut self, expr: &str, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.eval(expr) == json!(true) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Presses and releases one key (`Tab`, `Enter`, `ArrowRight`, ...) as a
    /// user would: the focused element receives it.
    pub fn press(&mut self, key: &str) {
        let code = match key {
            "Tab" => 9,
            "Enter" => 13,
            "Escape" => 27,
            "ArrowLeft" => 37,
            "ArrowUp" => 38,
            "ArrowRight" => 39,
            "ArrowDown" => 40,
            _ => 0,
        };
        for kind in ["rawKeyDown", "keyUp"] {
            let p = json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
            self.call("Input.dispatchKeyEvent", p, true);
        }
    }

    /// Types `text` into the focused element.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}), true);
    }

    /// Saves a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}), true);
        let bytes = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// A child process killed and reaped when dropped, panics included.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long Chromium may take to start (a loaded 2-core machine is slow).
const DEVTOOLS_WAIT: Duration = Duration::from_secs(90);

/// Reads the browser's WebSocket address from the line Chromium prints on
/// stderr, within [`DEVTOOLS_WAIT`].
fn devtools_url(child: &mut Child) -> Option<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(DEVTOOLS_WAIT).ok()
}
