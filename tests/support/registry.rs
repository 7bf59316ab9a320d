//! A real Confluent-compatible Schema Registry for a test: `scripts/registry.sh`
//! (Apicurio Registry from Maven Central, in-memory storage) started in a
//! directory of its own on a free port, stopped and removed when the guard drops.
//! A machine without Java or Maven fails the test with the script's message.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

#[path = "ports.rs"]
mod ports;

pub struct RealRegistry {
    dir: PathBuf,
    port: u16,
    /// Base URL of the Confluent-compatible API.
    pub url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/registry.sh")
}

impl RealRegistry {
    pub fn start(name: &str) -> RealRegistry {
        let dir = std::env::temp_dir().join(format!("vigil-test-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = ports::quiet_port();
        let mut r = RealRegistry { dir, port, url: String::new() };
        r.up();
        r
    }

    /// Starts it again on the same port (storage is in memory: it starts empty).
    pub fn up(&mut self) {
        let out = Command::new(script())
            .args(["start", "--dir"])
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .output()
            .expect("running scripts/registry.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/registry.sh start failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
        self.url = stdout.lines().last().unwrap_or_default().trim().to_owned();
    }

    /// Stops it (the guard's drop also removes its directory).
    pub fn down(&self) {
        let out = Command::new(script()).args(["stop", "--dir"]).arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "scripts/registry.sh stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Sets a subject's compatibility level (`BACKWARD`, `NONE`, ...); Apicurio
    /// keeps it for a subject that exists.
    pub fn compatibility(&self, subject: &str, level: &str) {
        let url = format!("{}/config/{subject}", self.url);
        let r = ureq::put(&url).header("Content-Type", "application/vnd.schemaregistry.v1+json").send(format!(r#"{{"compatibility": "{level}"}}"#));
        assert!(r.as_ref().is_ok_and(|r| r.status() == 200), "setting {subject} to {level}: {r:?}");
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", "--clean", "--dir"]).arg(&self.dir).output();
    }
}

/// A TCP proxy in front of the registry that the test can cut: while down, every
/// connection is dropped at once (as a network partition or a restarting
/// registry looks to a client) and the registry keeps its schemas.
pub struct Cut {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Open connections, closed when the cut goes down (kept-alive ones too).
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// Connections clients opened to the proxy, dropped ones included.
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The registry's API through the proxy.
    pub url: String,
}

impl Cut {
    pub fn new(registry: &RealRegistry) -> Cut {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = format!("127.0.0.1:{}", registry.port);
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = down.clone();
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = open.clone();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = attempts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection reset
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else { continue };
                conns.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        let url = registry.url.replace(&format!(":{}/", registry.port), &format!(":{port}/"));
        Cut { down, open, attempts, url }
    }
    /// How many connections clients have opened to the registry through the proxy.
    pub fn attempts(&self) -> usize {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
