//! `mp2ml-run`: run an mp2ml plan as server, client, or both locally.

fn main() {
    eprintln!("mp2ml-run: not yet implemented");
    std::process::exit(2);
}
