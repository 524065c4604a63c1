//! FakeLens: with no command, opens the window; otherwise runs a CLI command.

/// Training allocates and frees many large tensors per step; mimalloc keeps those pages
/// instead of returning them to the OS after every free (glibc unmaps blocks over 32 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fakelens::cli::main()
}
