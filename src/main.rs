// glibc's malloc spent about a tenth of the gateway's CPU under load (arena locks, chunk
// consolidation); mimalloc's per-thread heaps suit many small, short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keygate::cli::main()
}
