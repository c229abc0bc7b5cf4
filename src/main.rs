// mimalloc: loading a large machine is allocation-heavy (many small strings, maps and
// vectors), and glibc's malloc spends about a third of the load in allocating and freeing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orca::cli::main()
}
