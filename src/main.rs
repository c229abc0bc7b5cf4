fn main() -> std::process::ExitCode {
    orca::cli::main()
}
