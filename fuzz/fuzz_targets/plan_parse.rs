//! Plan text → the runtime's checks. The hash is not a defence (anyone can recompute it), so the
//! public part goes straight to `check_public` after parsing.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mp2ml_ir::plan::{ClientPlanFile, ServerPlan};
use mp2ml_runtime::plan::check_public;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.ron");
    if let Ok(plan) = ron::from_str::<ServerPlan>(text) {
        let _ = plan.public.hash();
        let _ = check_public(path, &plan.public, 128);
    }
    if let Ok(file) = ron::from_str::<ClientPlanFile>(text) {
        let _ = file.plan.hash();
        let _ = check_public(path, &file.plan, 128);
    }
});
