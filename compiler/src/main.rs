//! `mp2mlc`: compile an ONNX model into an mp2ml two-party plan.

fn main() {
    eprintln!("mp2mlc: not yet implemented");
    std::process::exit(2);
}
