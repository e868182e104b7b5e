//! Smoke test of `mp2ml-bench`: its library entry in quick mode on `tiny` writes the tables and
//! plots, with per-party peak memory from two `mp2ml-run` processes (the test builds that
//! binary itself, `mp2ml_tests::bins`). The benchmarks themselves are not part of the test suite
//! (`bash scripts/bench.sh`).

#[path = "bench/plots.rs"]
mod plots;
#[path = "bench/run/mod.rs"]
mod run;

use std::path::PathBuf;

#[test]
fn bench_quick_on_tiny_writes_the_tables() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("mp2ml-bench-smoke-{}", std::process::id()));
    let mut opts = run::Opts::new(&root);
    opts.quick = true;
    opts.repeats = 1;
    opts.out = dir.join("BENCHMARKS.md");
    opts.plots = dir.clone();
    opts.work = dir.join("work");
    opts.models = vec!["tiny".into()];
    opts.command = "mp2ml-bench --quick".into();
    opts.runner = Some(mp2ml_tests::bins::bin("mp2ml-run"));
    let r = run::run(&opts).unwrap_or_else(|e| panic!("bench failed: {e}"));
    assert_eq!(r.models.len(), 1);
    let page = std::fs::read_to_string(&opts.out).unwrap_or_default();
    let m = &r.models[0];
    assert!(m.latency_online_s.n >= 1, "no online latency");
    assert!(
        m.latency_online_s.med <= m.latency_s.med,
        "online part above the end-to-end latency"
    );
    assert_eq!(m.images, 200, "quick mode uses 200 digits");
    for want in [
        "## Peak memory of each party",
        "| peak memory, server (own process) |",
        "| peak memory, client (own process) |",
        "200 of 1000",
        " s (online ",
        "AND gates per secure session",
        "## MP2ML Table 3: tiny",
        "## Every bundled model",
        "## Throughput against batch size",
        "## Time split per step",
        "## MP2ML Table 2",
        "| 100 |",
        "| ADD (ciphertext + ciphertext) |",
        "MP2ML 6.79 s",
        "GAZELLE 0.03 s",
        "nGraph-HE2 2,959",
        run::MARKER,
    ] {
        assert!(page.contains(want), "page lacks `{want}`:\n{page}");
    }
    // Per-party memory from the two-process sessions.
    assert_eq!(
        m.party_mem.len(),
        2,
        "two-process sessions at batch 1 and 200"
    );
    for p in &m.party_mem {
        let got = p
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("two-process session at batch {}: {e}", p.batch));
        assert!(got.server_bytes.is_some_and(|b| b > 0), "no server peak");
        assert!(got.client_bytes.is_some_and(|b| b > 0), "no client peak");
    }
    assert!(
        page.contains("| tiny | 200 | ") && page.contains(" MB at batch 200; "),
        "page lacks the per-party figures:\n{page}"
    );
    // A runner that does not exist is reported, not guessed.
    let mut missing = run::Opts::new(&root);
    missing.runner = Some(dir.join("no-such-mp2ml-run"));
    assert!(run::find_runner(&missing).is_err_and(|e| e.contains("does not exist")));
    for svg in ["bench_throughput.svg", "bench_time_split.svg"] {
        let s = std::fs::read_to_string(dir.join(svg)).unwrap_or_default();
        assert!(s.contains("<svg"), "{svg} is not an SVG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn budget_limits_digits_and_batches() {
    let mut opts = run::Opts::new(std::path::Path::new("."));
    let plan =
        |opts: &run::Opts, name: &str, ands: u64| run::plan_batches(opts, name, 1000, 4096, ands);
    // Default budget (1e9 AND gates per session): CryptoNets and tiny keep all digits and
    // CryptoNets its tiled 4096; maxpool_cnn and residual are cut.
    let c = plan(&opts, "cryptonets_relu", 205_065);
    assert_eq!(c.images, 1000);
    assert_eq!(c.sizes, vec![1, 16, 64, 256, 1000, 4096]);
    assert_eq!(c.mem_batch, 4096);
    assert_eq!(plan(&opts, "tiny", 3088).sizes, vec![1, 16, 64, 256, 1000]);
    let m = plan(&opts, "maxpool_cnn", 1_778_752);
    assert_eq!((m.images, m.sizes.clone()), (562, vec![1, 16, 562]));
    assert_eq!(m.why, "AND-gate budget");
    let r = plan(&opts, "residual", 4_912_544);
    assert_eq!(
        (r.images, r.sizes.clone(), r.mem_batch),
        (203, vec![1, 203], 203)
    );
    // A smaller budget drops the tile and the intermediate batches.
    opts.budget_ands = 5e8;
    let c = plan(&opts, "cryptonets_relu", 205_065);
    assert_eq!(c.sizes, vec![1, 16, 64, 1000]);
    assert_eq!(plan(&opts, "residual", 4_912_544).sizes, vec![1, 101]);
    // Quick mode: at most 200 digits.
    opts.quick = true;
    let t = plan(&opts, "tiny", 3088);
    assert_eq!((t.images, t.why.as_str()), (200, "quick mode"));
}

#[test]
fn two_process_batch_fits_the_time_limit() {
    let fig = |batch: usize, secs: f64| run::BatchFig {
        batch,
        seconds: run::Stat::of(&[secs]),
        images_per_s: batch as f64 / secs,
        bytes_per_image: 0.0,
        peak_mb: 0.0,
        groups: 1,
    };
    // The largest batch fits: it is the one.
    let c = [fig(1, 3.0), fig(1000, 14.0), fig(4096, 50.0)];
    assert_eq!(run::mem_batch(&c, 4096, 60.0), 4096);
    assert_eq!(run::mem_batch(&c, 1000, 60.0), 1000);
    // It does not: the largest power of two predicted to fit (or a measured larger one).
    let m = [fig(1, 3.0), fig(16, 5.5), fig(562, 95.0)];
    assert_eq!(run::mem_batch(&m, 562, 60.0), 256);
    let r = [fig(1, 30.0), fig(203, 162.0)];
    assert_eq!(run::mem_batch(&r, 203, 60.0), 32);
    let slow = [fig(1, 70.0), fig(203, 200.0)];
    assert_eq!(run::mem_batch(&slow, 203, 60.0), 1);
}
