//! `mp2ml-bench`: MP2ML Table 2 and Table 3 figures for every bundled model, beside the
//! plaintext model (tract) and the published anchors; writes `docs/BENCHMARKS.md` and SVG plots.
//!
//! ```text
//! mp2ml-bench [--quick] [--repeats K] [--out docs/BENCHMARKS.md] [--plots docs/]
//!             [--models-dir models/] [--model NAME]... [--tiles 4096]
//!             [--budget-ands 1e9] [--batch-seconds 60] [--runner PATH/mp2ml-run]
//! ```
//!
//! `--budget-ands`: AND gates per secure session; a model above it uses only the first
//! ⌊budget / AND per image⌋ test digits, and costly intermediate batches are skipped (the
//! default keeps the full four-model run near 15 minutes on two cores). `--batch-seconds`: a
//! batch size stops repeating once its sessions took this long. Per-party peak memory comes
//! from one session as two `mp2ml-run` processes (next to this binary unless `--runner`).
//!
//! Run it through `bash scripts/bench.sh` (release build). Not part of `cargo test`; the smoke
//! test `tests/bench_smoke.rs` runs `run::run` in quick mode on `tiny`.
//!
//! Yao against GMW (issue 14, `tests/bench/gmw.rs`):
//!
//! ```text
//! mp2ml-bench cost [--repeats K]              per-AND, HE and loopback constants of the cost model
//! mp2ml-bench gmw [--repeats K] [--images B]  the "GMW and Yao" section of docs/BENCHMARKS.md
//! mp2ml-bench relay --listen A --connect B [--rtt-ms 40] [--mbit 100]
//! ```

mod gmw;
mod hecost;
mod plots;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: mp2ml-bench [--quick] [--repeats K] [--out FILE.md] [--plots DIR] \
                     [--models-dir DIR] [--model NAME]... [--tiles B,B,...] [--command TEXT] \
                     [--budget-ands A] [--batch-seconds S] [--runner FILE]\n\
  --budget-ands A    AND gates per secure session (default 1e9): a model with more than A/1000 \
                     AND gates per image uses only the first floor(A / AND per image) test \
                     digits; batch sizes 16/64/256 run only if a session costs <= A/16\n\
  --batch-seconds S  stop repeating a batch size once its sessions took S seconds (default 60)\n\
  --runner FILE      mp2ml-run for the per-party memory sessions (default: next to this binary)";

/// `cost`, `gmw` and `relay`: the issue-14 subcommands.
fn sub(cmd: &str, args: &[String]) -> Result<(), String> {
    let flag = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: f64| -> Result<f64, String> {
        flag(name).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or(format!("{name} {v}: not a number >= 0"))
        })
    };
    let repeats = num("--repeats", 3.0)?.max(1.0) as usize;
    // q0 of the compiled CryptoNets-ReLU plan (31 bits), as Table 2 uses.
    let q0 = 2_147_483_647;
    match cmd {
        "cost" => {
            let k = gmw::cost_constants(q0, 2000, repeats)?;
            println!(
                "per-AND seconds (yao offline, yao online, gmw offline, gmw online): [{:.3e}, {:.3e}, {:.3e}, {:.3e}]",
                k[0], k[1], k[2], k[3]
            );
            let f = gmw::fixed_constants(q0, repeats.max(5))?;
            println!(
                "fixed Yao seconds (session's base OTs, one later step): [{:.3e}, {:.3e}]",
                f[0], f[1]
            );
            for log_n in [13, 14] {
                println!("HE seconds per limb at N = 2^{log_n} (MAC: per coefficient MAC, PMUL: per product and limb):");
                for c in hecost::he_constants(1 << log_n, repeats.max(5))? {
                    println!("  {:<14} {:.3e}", c.name, c.seconds);
                }
                println!("  per byte of a frame (WIRE_*) and per limb of the key pair (KEYGEN):");
                for c in hecost::session_constants(1 << log_n, repeats.max(5))? {
                    println!("  {:<14} {:.3e}", c.name, c.seconds);
                }
            }
            let (rtt, mbit) = hecost::loopback(repeats)?;
            println!("loopback TCP: {rtt:.4} ms round trip, {mbit:.0} Mbit/s one way");
            Ok(())
        }
        "gmw" => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            let images = num("--images", 1.0)?.max(1.0) as usize;
            print!("{}", gmw::section(&root, q0, repeats, images)?);
            Ok(())
        }
        "relay" => {
            let listen = flag("--listen").ok_or("relay needs --listen ADDR")?;
            let connect = flag("--connect").ok_or("relay needs --connect ADDR")?;
            let target = std::net::ToSocketAddrs::to_socket_addrs(connect)
                .map_err(|e| format!("--connect {connect}: {e}"))?
                .next()
                .ok_or(format!("--connect {connect}: no address"))?;
            let mbit = num("--mbit", 100.0)?;
            if mbit <= 0.0 {
                return Err("--mbit must be > 0".into());
            }
            let link = mp2ml_tests::netsim::Link::new(num("--rtt-ms", 40.0)?, mbit);
            let relay = mp2ml_tests::netsim::Relay::start(listen, target, link)
                .map_err(|e| format!("--listen {listen}: {e}"))?;
            eprintln!("relay {} -> {target}: {link:?}", relay.addr());
            relay.wait();
            Ok(())
        }
        _ => Err(format!("unknown subcommand {cmd}")),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(cmd) = argv
        .first()
        .filter(|a| ["cost", "gmw", "relay"].contains(&a.as_str()))
    {
        return match sub(cmd, &argv[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mp2ml-bench {cmd}: {e}");
                ExitCode::from(2)
            }
        };
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut opts = run::Opts::new(&root);
    let mut command: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let r: Result<(), String> = match a.as_str() {
            "--quick" => {
                opts.quick = true;
                opts.repeats = opts.repeats.min(2);
                Ok(())
            }
            "--repeats" => val("--repeats").and_then(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&k| k >= 1)
                    .map(|k| opts.repeats = k)
                    .ok_or(format!("--repeats {v}: not a positive integer"))
            }),
            "--out" => val("--out").map(|v| opts.out = v.into()),
            "--plots" => val("--plots").map(|v| opts.plots = v.into()),
            "--models-dir" => val("--models-dir").map(|v| opts.models_dir = v.into()),
            "--model" => val("--model").map(|v| opts.models.push(v)),
            "--tiles" => val("--tiles").and_then(|v| {
                v.split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--tiles {v}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|t| opts.tiles = t)
            }),
            "--command" => val("--command").map(|v| command = Some(v)),
            "--budget-ands" => val("--budget-ands").and_then(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|&a| a.is_finite() && a >= 1.0)
                    .map(|a| opts.budget_ands = a)
                    .ok_or(format!("--budget-ands {v}: not a number >= 1 (e.g. 1.5e9)"))
            }),
            "--batch-seconds" => val("--batch-seconds").and_then(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|&a| a.is_finite() && a >= 0.0)
                    .map(|a| opts.batch_seconds = a)
                    .ok_or(format!("--batch-seconds {v}: not a number >= 0"))
            }),
            "--runner" => val("--runner").map(|v| opts.runner = Some(v.into())),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument `{other}`\n{USAGE}")),
        };
        if let Err(e) = r {
            eprintln!("mp2ml-bench: {e}");
            return ExitCode::from(2);
        }
    }
    opts.command = command.unwrap_or_else(|| {
        let mut c = String::from("mp2ml-bench");
        for a in std::env::args().skip(1) {
            c.push(' ');
            c.push_str(&a);
        }
        c
    });
    match run::run(&opts) {
        Ok(r) => {
            eprintln!(
                "[bench] wrote {} in {:.0} s (load {} → {})",
                opts.out.display(),
                r.seconds,
                r.machine.load_start,
                r.machine.load_end
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mp2ml-bench: {e}");
            ExitCode::from(1)
        }
    }
}
