//! ONNX backend node tests (copied from the onnx 1.22.0 wheel into `tests/onnx_node/`), run
//! through import + the reference executor.
//!
//! `tests/onnx_node/manifest.txt` lists every case as `pass` or `skip: reason`; every `pass` case
//! must match its expected outputs within rtol 1e-3 / atol 1e-4, every `skip` case is run too and
//! must still fail, and every entry must name a case folder. The backend tests feed some
//! operands that our IR requires to be compile-time constants (weights, shapes, pads, clip
//! bounds) as graph inputs; the harness bakes exactly those inputs, as named by the importer's
//! `NonConstant` diagnostic, and non-float inputs into initializers from the test data.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mp2ml_compiler::onnx::{import_proto, tensor::decode, ImportError, ImportOptions};
use mp2ml_ir::reference;
use mp2ml_ir::tensor::Tensor;
use prost::Message;
use tract_onnx::pb::{ModelProto, TensorProto};

const RTOL: f32 = 1e-3;
const ATOL: f32 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx_node")
}

fn read_pb(path: &Path) -> Result<TensorProto, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    TensorProto::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))
}

fn numbered(dir: &Path, prefix: &str) -> Result<Vec<TensorProto>, String> {
    let mut v = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("{prefix}_{i}.pb"));
        if !p.exists() {
            break;
        }
        v.push(read_pb(&p)?);
    }
    Ok(v)
}

/// Runs one case; `Ok(())` when all outputs match.
fn run_case(dir: &Path) -> Result<(), String> {
    let bytes = fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let inputs = numbered(&data, "input")?;
    let outputs = numbered(&data, "output")?;
    let graph = model.graph.as_mut().ok_or("no graph")?;
    let input_names: Vec<String> = graph.input.iter().map(|i| i.name.clone()).collect();
    let mut feeds: Vec<(String, TensorProto)> = input_names.into_iter().zip(inputs).collect();
    let bake = |model: &mut ModelProto, feeds: &mut Vec<(String, TensorProto)>, name: &str| {
        if let Some(pos) = feeds.iter().position(|(n, _)| n == name) {
            let (n, mut t) = feeds.remove(pos);
            t.name = n;
            if let Some(g) = model.graph.as_mut() {
                g.input.retain(|i| i.name != t.name);
                g.initializer.push(t);
            }
        }
    };
    let non_float: Vec<String> = feeds
        .iter()
        .filter(|(_, t)| t.data_type != 1)
        .map(|(n, _)| n.clone())
        .collect();
    for n in non_float {
        bake(&mut model, &mut feeds, &n);
    }
    let imported = loop {
        match import_proto(
            &model,
            &dir.display().to_string(),
            &ImportOptions { batch: None },
        ) {
            Ok(i) => break i,
            Err(d) => match d.errors.first() {
                Some(ImportError::NonConstant { input, .. })
                    if feeds.iter().any(|(n, _)| n == input) =>
                {
                    let input = input.clone();
                    bake(&mut model, &mut feeds, &input);
                }
                _ => return Err(d.render()),
            },
        }
    };
    let args: Vec<Tensor> = feeds
        .iter()
        .map(|(_, t)| decode(t))
        .collect::<Result<_, _>>()?;
    let got = reference::run(&imported.graph, &args).map_err(|e| e.to_string())?;
    if got.len() != outputs.len() {
        return Err(format!("{} outputs, expected {}", got.len(), outputs.len()));
    }
    for (k, (g, e)) in got.iter().zip(&outputs).enumerate() {
        let e = decode(e)?;
        if g.shape != e.shape {
            return Err(format!(
                "output {k}: shape {:?}, expected {:?}",
                g.shape, e.shape
            ));
        }
        for (i, (&a, &b)) in g.data.iter().zip(&e.data).enumerate() {
            if !((a - b).abs() <= ATOL + RTOL * b.abs() || (a.is_nan() && b.is_nan())) {
                return Err(format!("output {k}[{i}]: {a}, expected {b}"));
            }
        }
    }
    Ok(())
}

fn main_op(dir: &Path) -> String {
    let op = fs::read(dir.join("model.onnx"))
        .ok()
        .and_then(|b| ModelProto::decode(b.as_slice()).ok())
        .and_then(|m| m.graph)
        .and_then(|g| g.node.last().map(|n| n.op_type.clone()));
    op.unwrap_or_else(|| "?".into())
}

#[test]
fn onnx_backend_node_tests() {
    let manifest = fs::read_to_string(root().join("manifest.txt"))
        .expect("manifest.txt is part of the repository");
    let mut listed = BTreeMap::new();
    for line in manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (case, status) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        listed.insert(case.to_string(), status.trim().to_string());
    }
    let mut dirs: Vec<String> = fs::read_dir(root())
        .expect("tests/onnx_node exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut table: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &dirs {
        let dir = root().join(case);
        let entry = table.entry(main_op(&dir)).or_default();
        let status = listed.get(case).map(String::as_str).unwrap_or("unlisted");
        if status.starts_with("skip") {
            // Expected failures: run them too, so that a skip that starts passing is noticed.
            entry.2 += 1;
            if run_case(&dir).is_ok() {
                failures.push(format!("{case}: passes but is listed as `{status}`"));
            }
            continue;
        }
        entry.1 += 1;
        match run_case(&dir) {
            Ok(()) if status == "pass" => entry.0 += 1,
            Ok(()) => failures.push(format!("{case}: passes but is listed as `{status}`")),
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    // Every manifest entry names a case that exists.
    for case in listed.keys() {
        if !dirs.contains(case) {
            failures.push(format!("{case}: listed in manifest.txt but has no folder"));
        }
    }
    println!("ONNX node conformance (op: passed/in-scope, skipped)");
    let (mut p, mut t, mut s) = (0, 0, 0);
    for (op, (pass, total, skip)) in &table {
        println!("  {op:<20} {pass}/{total}  (+{skip} skipped)");
        p += pass;
        t += total;
        s += skip;
    }
    println!("  {:<20} {p}/{t}  (+{s} skipped)", "TOTAL");
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
