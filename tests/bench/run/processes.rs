//! Per-party memory: one session as two `mp2ml-run` processes over loopback TCP.

use super::*;

/// The `mp2ml-run` binary: `opts.runner`, else next to the current executable, else in its
/// parent folder (test executables live in `target/<profile>/deps/`).
pub fn find_runner(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(p) = &opts.runner {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!("`{}` does not exist", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let dir = exe.parent().ok_or("current executable has no folder")?;
    let name = format!("mp2ml-run{}", std::env::consts::EXE_SUFFIX);
    let mut tried = vec![dir.join(&name)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            tried.push(up.join(&name));
        }
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let shown: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
    Err(format!(
        "`mp2ml-run` not found ({}); build it with `cargo build --release -p mp2ml-runtime --bin mp2ml-run`",
        shown.join(", ")
    ))
}

/// A child process killed and reaped when dropped (whatever path leaves the caller).
pub(super) struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Reads a pipe to its end in a thread, line by line, forwarding each line.
pub(super) fn pump(
    pipe: impl std::io::Read + Send + 'static,
    tx: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    })
}

/// The last lines of a process's output, for an error message.
pub(super) fn tail(lines: &[String]) -> String {
    let k = lines.len().saturating_sub(3);
    if lines.is_empty() {
        "(no output)".into()
    } else {
        lines[k..].join(" / ")
    }
}

/// A loopback port that was free a moment ago.
pub(super) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A started server: the child, its port, its stdout lines and its stderr lines (both still
/// arriving).
pub(super) type ServerChild = (
    Reaped,
    u16,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
);

/// Starts `mp2ml-run --role server` for one session and waits until it listens; retries with
/// another port when the listen fails.
pub(super) fn start_server(runner: &Path, plan: &Path) -> Result<ServerChild, String> {
    use std::process::{Command, Stdio};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut child = Command::new(runner)
            .arg("--role")
            .arg("server")
            .arg(plan)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--sessions", "1", "--json", "--timeout", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", runner.display()))?;
        let (otx, orx) = channel();
        let (etx, erx) = channel();
        let out = child.stdout.take();
        let err = child.stderr.take();
        let child = Reaped(child);
        if let (Some(o), Some(e)) = (out, err) {
            pump(o, otx);
            pump(e, etx);
        } else {
            return Err("server: no pipes".into());
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match erx.recv_timeout(wait) {
                Ok(line) if line.contains("serving") => return Ok((child, port, orx, erx)),
                Ok(line) => seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "server did not listen within 300 s: {}",
                        tail(&seen)
                    ))
                }
                // The server exited before listening.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        last = tail(&seen);
        if !last.contains("cannot listen") {
            return Err(format!("server failed before listening: {last}"));
        }
        // Port taken between our probe and the server's bind: another port.
    }
    Err(format!("server could not listen (5 ports tried): {last}"))
}

pub(super) fn json_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    v.get(key).and_then(serde_json::Value::as_u64)
}

/// One session at `batch` images as two processes: the server and the client `mp2ml-run`, each
/// reporting its own peak resident memory in its `--json` summary.
pub(super) fn two_process(
    runner: &Path,
    plan: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
    batch: usize,
) -> Result<PartyMem, String> {
    use std::process::{Command, Stdio};
    let b = tile(x, per, batch);
    let client_plan = plan.with_extension("client.ron");
    let input = plan.with_extension(format!("b{batch}.npy"));
    let mut dims = vec![batch];
    dims.extend(shape);
    mp2ml_runtime::npy::write_f32(&input, &dims, &b.data).map_err(|e| e.to_string())?;
    let (server, port, orx, erx) = start_server(runner, plan)?;
    let out = Command::new(runner)
        .arg("--role")
        .arg("client")
        .arg(&client_plan)
        .arg("--connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--input")
        .arg(&input)
        .args(["--json", "--timeout", "600"])
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&input);
    let out = out.map_err(|e| format!("cannot start the client: {e}"))?;
    if !out.status.success() {
        drop(server); // kills the server
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<String> = err.lines().map(String::from).collect();
        let srv: Vec<String> = erx.try_iter().collect();
        return Err(format!(
            "client failed ({}): {}; server: {}",
            out.status,
            tail(&lines),
            tail(&srv)
        ));
    }
    let client: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("client's JSON summary: {e}"))?;
    // The server prints one JSON line per session, then exits (`--sessions 1`).
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match server.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    drop(server);
    let lines: Vec<String> = orx.iter().collect();
    let srv_json = lines
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let server_bytes = srv_json
        .as_ref()
        .and_then(|v| json_u64(v, "peak_rss_bytes"));
    if srv_json.is_none() {
        let err: Vec<String> = erx.try_iter().collect();
        return Err(format!(
            "server printed no JSON summary (exit {}): {}",
            status.map_or("killed after 120 s".into(), |s| s.to_string()),
            tail(&err)
        ));
    }
    let images = json_u64(&client, "images").unwrap_or(0) as usize;
    if images != batch {
        return Err(format!("client processed {images} images, not {batch}"));
    }
    Ok(PartyMem {
        server_bytes,
        client_bytes: json_u64(&client, "peak_rss_bytes"),
        seconds: client
            .get("seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN),
        online_s: client
            .pointer("/online/seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN),
    })
}
