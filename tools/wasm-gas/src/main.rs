//! `wasm-gas IN.wasm OUT.wasm`: instruments a WebAssembly module for deterministic gas metering.
//!
//! Units count control transfers: one per `call`, `call_indirect`, `br`, `br_if`, `br_table`,
//! `return` and `loop` executed; straight-line instructions are free. Every loop iteration and
//! every call passes through a charged instruction, so a module can neither loop nor recurse
//! without paying, and the count is a property of the program and its input alone. Each metering
//! block (a run of straight-line code) pays its units through a call to an injected local function
//! that decrements the exported mutable global `gas_left` (i64, read as unsigned). When a block costs more
//! than what is left, the global is set to the sentinel u64::MAX and the module traps (`unreachable`).
//! The host sets `gas_left` before an evaluation and reads it afterwards: used = limit - left.
//!
//! The global starts at i64::MAX so that the module's own set-up (run by the loader before the host
//! can touch the global) never runs out; the host sets the real limit before every evaluation.
//! The output depends only on the input bytes: the same module always yields the same instrumented
//! bytes, and the same evaluation always counts the same units on every engine.
use parity_wasm::elements::{Instruction, Internal, Module, Section};
use std::process::ExitCode;
use wasm_instrument::gas_metering::{self, mutable_global, MemoryGrowCost, Rules};

/// Name of the exported gas counter.
const GAS_GLOBAL: &str = "gas_left";

/// The cost model: control transfers cost one unit, everything else is free. `memory.grow` is free
/// too (how much memory the host provides must not change the count).
struct ControlTransferRules;

impl Rules for ControlTransferRules {
    fn instruction_cost(&self, instruction: &Instruction) -> Option<u32> {
        Some(match instruction {
            Instruction::Call(_)
            | Instruction::CallIndirect(_, _)
            | Instruction::Br(_)
            | Instruction::BrIf(_)
            | Instruction::BrTable(_)
            | Instruction::Return
            | Instruction::Loop(_) => 1,
            _ => 0,
        })
    }

    fn memory_grow_cost(&self) -> MemoryGrowCost {
        MemoryGrowCost::Free
    }

    fn call_per_local_cost(&self) -> u32 {
        0
    }
}

fn instrument(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let module: Module = parity_wasm::deserialize_buffer(bytes).map_err(|e| format!("parse: {e}"))?;
    let rules = ControlTransferRules;
    let mut module = gas_metering::inject(module, mutable_global::Injector::new(GAS_GLOBAL), &rules)
        .map_err(|_| "gas injection failed (unsupported control flow?)".to_string())?;
    let global_index = module
        .export_section()
        .and_then(|exports| {
            exports.entries().iter().find_map(|entry| match (entry.field(), entry.internal()) {
                (GAS_GLOBAL, Internal::Global(index)) => Some(*index),
                _ => None,
            })
        })
        .ok_or("instrumented module does not export the gas global")?;
    let imported_globals = module.import_count(parity_wasm::elements::ImportCountType::Global) as u32;
    let local_index = global_index
        .checked_sub(imported_globals)
        .ok_or("gas global is imported, expected a local global")? as usize;
    let mut patched = false;
    for section in module.sections_mut() {
        if let Section::Global(globals) = section {
            let entry = globals
                .entries_mut()
                .get_mut(local_index)
                .ok_or("gas global index out of range")?;
            let code = entry.init_expr_mut().code_mut();
            *code = vec![Instruction::I64Const(i64::MAX), Instruction::End];
            patched = true;
        }
    }
    if !patched {
        return Err("no global section in the instrumented module".into());
    }
    parity_wasm::serialize(module).map_err(|e| format!("serialize: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: wasm-gas IN.wasm OUT.wasm");
        return ExitCode::from(2);
    }
    let result = std::fs::read(&args[1])
        .map_err(|e| format!("read {}: {e}", args[1]))
        .and_then(|bytes| instrument(&bytes))
        .and_then(|out| std::fs::write(&args[2], out).map_err(|e| format!("write {}: {e}", args[2])));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wasm-gas: {message}");
            ExitCode::FAILURE
        }
    }
}
