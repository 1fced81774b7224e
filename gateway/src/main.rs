fn main() -> std::process::ExitCode {
    gwhost::cli::main()
}
