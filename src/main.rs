//! FakeLens: with no command, opens the window; otherwise runs a CLI command.

use std::process::ExitCode;

use clap::Parser;
use fakelens::cli::Cli;

/// Training allocates and frees many large tensors per step; mimalloc keeps those pages
/// instead of returning them to the OS after every free (glibc unmaps blocks over 32 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: the option just before `use_numa_nodes` in
/// mimalloc.h, v2 and v3 alike (the sys crate does not name it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

fn main() -> ExitCode {
    // Never hand freed pages back to the OS: the next training step reuses them, and
    // faulting fresh zeroed pages in cost about a fifth of an Xception step on the
    // development machine. The process keeps its peak footprint until it exits.
    // SAFETY: sets a plain integer option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
    let cli = Cli::parse();
    let result = match cli.command {
        None => fakelens::ui::run_window(fakelens::ui::WindowOptions {
            screenshot: cli.screenshot,
            tab: cli.tab,
            data: cli.data,
            run: cli.run,
            compare: cli.compare,
            explain: cli.explain,
            detector: cli.detector,
            inspect: cli.inspect,
        }),
        Some(command) => fakelens::cli::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", fakelens::report::chain(&e));
            ExitCode::FAILURE
        }
    }
}
