//! The `esus-ir` binary: parse arguments, hand over to the library, exit with its code.

/// mimalloc rather than glibc's malloc: a fan-out's records and buffers are allocated on one
/// runtime thread and freed or grown on another, and glibc then locks the first thread's arena —
/// about half of the futex calls of a 20,000-item fan-out (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    esus_ir::cli::main()
}
