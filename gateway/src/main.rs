// mimalloc: several times cheaper per allocation than glibc's malloc on the request path
// (hyper, header maps, boxed plugin futures). Plugins allocate through it too: the
// loader installs this binary's allocator in them (`gwplugin::alloc`).
#[global_allocator]
static GLOBAL: gwhost::alloc::MiMalloc = gwhost::alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gwhost::cli::main()
}
