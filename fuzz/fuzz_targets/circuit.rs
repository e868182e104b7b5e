//! Circuit validation on arbitrary gate lists, then plaintext evaluation and stats of the
//! valid ones (validation must make every later index safe), and the share layout check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mp2ml_ir::circuit::{Circuit, Gate, ShareCircuit};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let gi = u32::from(data[0] % 16);
    let ei = u32::from(data[1] % 16);
    let mut gates = Vec::new();
    let mut outputs = Vec::new();
    for c in data[4..].chunks(5) {
        let a = u32::from(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        let b = u32::from(u16::from_le_bytes([*c.get(2).unwrap_or(&0), *c.get(3).unwrap_or(&0)]));
        let (a, b) = if data[3] & 1 == 0 { (a % 64, b % 64) } else { (a, b) };
        match c.get(4).copied().unwrap_or(0) % 5 {
            0 => gates.push(Gate::Xor(a, b)),
            1 => gates.push(Gate::And(a, b)),
            2 => gates.push(Gate::Inv(a)),
            3 => outputs.push(a),
            _ => outputs.push(if data[3] & 2 != 0 { u32::MAX - b } else { b }),
        }
    }
    let c = Circuit { name: "fuzz".into(), garbler_inputs: gi, evaluator_inputs: ei, gates, outputs };
    let _ = c.stats();
    let valid = c.validate().is_ok();
    let g = vec![0x5555_5555_5555_5555u64; gi as usize];
    let e = vec![0x0f0f_0f0f_0f0f_0f0fu64; ei as usize];
    let r = c.eval_bitsliced(&g, &e);
    assert_eq!(r.is_ok(), valid);
    let _ = c.to_bristol_fashion();
    let sc = ShareCircuit {
        circuit: c,
        q0: u128::from(data[2]) << (data[2] % 120),
        share_bits: u32::from(data[2] % 130),
        values_in: u32::from(data[3] >> 4),
        values_out: u32::from(data[3] >> 6),
        input_offset: u128::from(data[1]),
        out_bits: u32::from(data[0]),
        mask_bits: u32::from(data[0]) * 2,
        output_offset: 0,
        trunc: u32::from(data[1] % 8),
    };
    let _ = sc.check_layout();
    let _ = sc.z_bits();
});
