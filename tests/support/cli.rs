//! Helpers shared by the test crates that run the real binaries (`mp2mlc`, `mp2ml-run`):
//! building them, temporary folders, time-limited runs, the small plan of
//! `tests/bad_inputs/ok_small.onnx`.
//!
//! The binaries are built on first use with `$CARGO build --bins -p mp2ml-compiler -p
//! mp2ml-runtime` in the calling test's profile and target folder (a no-op when they are
//! fresh): `cargo test` builds binaries only for packages with integration tests of their own,
//! so depending on the two crates is not enough to get `target/<profile>/mp2mlc` built or up to
//! date, and no test may rely on another test having built them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/<profile>` of the running test.
pub fn target_dir() -> PathBuf {
    // target/<profile>/deps/bad_input-<hash>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Builds (if needed) and returns the path of binary `name`.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = target_dir();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "--bins",
            "-p",
            "mp2ml-compiler",
            "-p",
            "mp2ml-runtime",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(t) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("cargo build of the binaries failed: {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let p = dir.join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A fresh temporary folder for `tag`, per process.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mp2ml-bad-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// `tests/bad_inputs`.
pub fn inputs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bad_inputs")
}

/// The bundled models.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Runs a command with a hard time limit (kills it past the limit).
pub fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    wait_limited(child, limit)
}

/// Waits for `child` at most `limit` (kills it past the limit).
pub fn wait_limited(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "command did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The small plan compiled once per test process (plan, client plan, weights in `dir`).
pub fn small_plan() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmpdir("plan");
        let out = run_limited(
            {
                let mut c = Command::new(bin("mp2mlc"));
                c.arg(inputs_dir().join("ok_small.onnx"))
                    .arg("-o")
                    .arg(dir.join("small.ron"));
                c
            },
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "compiling ok_small.onnx failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}
