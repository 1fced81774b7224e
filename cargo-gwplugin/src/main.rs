//! `cargo gwplugin`: see the library.

fn main() -> std::process::ExitCode {
    cargo_gwplugin::main()
}
