//! Smoke test of `mp2ml-bench`: its library entry in quick mode on `tiny` writes the tables and
//! plots. The benchmarks themselves are not part of the test suite (`bash scripts/bench.sh`).

#[path = "bench/plots.rs"]
mod plots;
#[path = "bench/run.rs"]
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
    let r = run::run(&opts).unwrap_or_else(|e| panic!("bench failed: {e}"));
    assert_eq!(r.models.len(), 1);
    let page = std::fs::read_to_string(&opts.out).unwrap_or_default();
    for want in [
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
    for svg in ["bench_throughput.svg", "bench_time_split.svg"] {
        let s = std::fs::read_to_string(dir.join(svg)).unwrap_or_default();
        assert!(s.contains("<svg"), "{svg} is not an SVG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
