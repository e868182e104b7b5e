//! For each bundled model: tract's own inference of the ONNX file vs. our import + reference
//! executor on the first test images, and vs. the PyTorch logits saved at export.

use std::fs;
use std::path::{Path, PathBuf};

use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_ir::reference;
use mp2ml_ir::tensor::Tensor;
use tract_onnx::prelude::*;

/// Bundled models and the test images each one reads (`models/<set>_test_x.npy`).
const MODELS: [(&str, &str); 5] = [
    ("cryptonets_relu", "mnist"),
    ("maxpool_cnn", "mnist"),
    ("residual", "mnist"),
    ("tiny", "mnist"),
    ("resnet20", "fmnist32"),
];
const IMAGES: usize = 20;
const BOUND: f32 = 1e-3;

/// `models/`, or `$MP2ML_MODELS_DIR` when set.
fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MP2ML_MODELS_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("models")
}

/// A float32, float64 or int64 `.npy` array as float32.
fn read_npy(path: &Path) -> Result<Tensor, String> {
    let b = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (shape, data) = mp2ml_ir::files::any_as_f32_from_bytes(&b).map_err(|e| e.to_string())?;
    Tensor::new(shape, data).ok_or_else(|| "data length does not match shape".to_string())
}

fn tract_logits(path: &Path, images: &Tensor) -> TractResult<Vec<f32>> {
    let per = images.shape[1..].to_vec();
    let mut fact_shape = vec![1usize];
    fact_shape.extend(&per);
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(&fact_shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let n: usize = per.iter().product();
    let mut out = Vec::new();
    for img in images.data.chunks(n) {
        let t = tract_onnx::prelude::Tensor::from_shape(&fact_shape, img)?;
        let r = model.run(tvec!(t.into()))?;
        out.extend(r[0].to_plain_array_view::<f32>()?.iter().copied());
    }
    Ok(out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn reference_matches_tract_on_bundled_models() {
    let dir = models_dir();
    let mut failures = Vec::new();
    for (name, set) in MODELS {
        let file = format!("{set}_test_x.npy");
        let all = read_npy(&dir.join(&file)).unwrap_or_else(|e| panic!("models/{file}: {e:?}"));
        let n = numel_first(&all, IMAGES);
        let images = Tensor {
            shape: [vec![IMAGES.min(all.shape[0])], all.shape[1..].to_vec()].concat(),
            data: all.data[..n].to_vec(),
        };
        let path = dir.join(format!("{name}.onnx"));
        assert!(path.exists(), "bundled model {} is missing", path.display());
        let imported = import_file(&path, &ImportOptions::default())
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let ours = reference::run(&imported.graph, std::slice::from_ref(&images))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tract =
            tract_logits(&path, &images).unwrap_or_else(|e| panic!("{name}: tract failed: {e:?}"));
        let d = max_diff(&ours[0].data, &tract);
        print!("{name:<16} max |ref - tract| = {d:.3e}");
        if ours[0].data.len() != tract.len() || d >= BOUND {
            failures.push(format!(
                "{name}: diff {d} (lengths {} vs {})",
                ours[0].data.len(),
                tract.len()
            ));
        }
        // The PyTorch logits saved at export are part of the repository: a missing or
        // unreadable file is a failure, not a skip.
        let exp_path = dir.join(format!("{name}.expected_logits.npy"));
        match read_npy(&exp_path) {
            Ok(exp) if exp.data.len() >= ours[0].data.len() => {
                let k = ours[0].data.len();
                let de = max_diff(&ours[0].data, &exp.data[..k]);
                print!("   max |ref - pytorch| = {de:.3e}");
                if de >= BOUND {
                    failures.push(format!("{name}: diff vs expected_logits {de}"));
                }
            }
            Ok(exp) => failures.push(format!(
                "{}: {} logits, fewer than the {} of {IMAGES} images",
                exp_path.display(),
                exp.data.len(),
                ours[0].data.len()
            )),
            Err(e) => failures.push(format!("{}: {e:?}", exp_path.display())),
        }
        println!();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn numel_first(t: &Tensor, k: usize) -> usize {
    let per: usize = t.shape[1..].iter().product();
    per * k.min(t.shape[0])
}
