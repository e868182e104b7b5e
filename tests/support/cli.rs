//! Helpers shared by `bad_input.rs` and `fuzz_loops.rs`, which run the real binaries (built by
//! [`mp2ml_tests::bins`]): temporary folders, time-limited runs, the small plan of
//! `tests/bad_inputs/ok_small.onnx`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mp2ml_tests::bins::bin;

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
                // Batch packing: the fuzz loops read its `Linear` matrices (with `auto` the
                // cost model now picks image packing for this model).
                c.arg(inputs_dir().join("ok_small.onnx"))
                    .args(["--packing", "batch"])
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
