//! The `esus-ir` binary: parse arguments, hand over to the library, exit with its code.

fn main() -> std::process::ExitCode {
    esus_ir::cli::main()
}
