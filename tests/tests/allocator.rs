//! A host whose global allocator is mimalloc frees memory its plugins allocate.
//!
//! The host runs in a child process (this same test binary) so that the control run —
//! the same work *without* the allocator forwarding — may crash without taking the test
//! harness with it. The control shows the test can fail: without the mechanism, the host
//! frees a plugin's system-malloc'ed memory with mimalloc.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use gwplugin::http::Response;
use gwplugin::{Body, abi};
use gwplugin_host::{Loader, TokioHostServices};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MODE: &str = "GWPLUGIN_ALLOC_TEST_MODE";
const ROUNDS: usize = 10_000;

fn host_record() -> &'static [u8] {
    gwplugin_host::host_manifest!()
}

fn run_child(mode: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_host",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .output()
        .unwrap()
}

#[test]
fn a_mimalloc_host_frees_plugin_allocations() {
    let so = gwplugin_e2e::build_fixture("all-kinds");
    let with = run_child(&format!("forwarding:{}", so.display()));
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success()
            && stdout.contains(&format!("freed {ROUNDS} plugin-allocated bodies")),
        "with forwarding: {:?}\n{stdout}\n{}",
        with.status,
        String::from_utf8_lossy(&with.stderr)
    );

    let without = run_child(&format!("control:{}", so.display()));
    let stdout = String::from_utf8_lossy(&without.stdout);
    assert!(
        without.status.signal().is_some() && !stdout.contains("plugin-allocated bodies"),
        "without forwarding the host must crash (killed by a signal), but: {:?}\n{stdout}",
        without.status
    );
}

/// The host side, run by the test above in a child process.
#[test]
#[ignore = "run as a child process by a_mimalloc_host_frees_plugin_allocations"]
fn child_host() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let (mode, so) = mode.split_once(':').unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _entered = rt.enter();
    let modifier = if mode == "forwarding" {
        let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
        loader.load_file(so.as_ref(), None).unwrap();
        loader
            .into_registry()
            .create_modifier("stamp-modifier", &json!({}))
            .unwrap()
    } else {
        // The loader's steps, minus installing the host's allocator in the plugin.
        // SAFETY: the same file the loader accepts in the other mode.
        let lib = Box::leak(Box::new(unsafe { libloading::Library::new(so).unwrap() }));
        // SAFETY: as above.
        let register = unsafe {
            *lib.get::<abi::RegisterFn>(abi::REGISTER_SYMBOL.as_bytes())
                .unwrap()
        };
        let registration = register(&abi::HostContext {
            services: TokioHostServices::current(),
        })
        .unwrap();
        let entry = registration
            .plugins
            .into_iter()
            .find(|p| p.name == "stamp-modifier")
            .unwrap();
        match entry.factory {
            abi::Factory::Modifier(f) => f.create(&json!({})).unwrap(),
            _ => unreachable!(),
        }
    };
    for _ in 0..ROUNDS {
        let mut resp = Response::builder()
            .header("x-replace-body", "1")
            .body(Body::from("host"))
            .unwrap();
        modifier.modify_response(&mut resp).unwrap();
        drop(resp); // the host frees the plugin's String, header map growth, ...
    }
    println!("freed {ROUNDS} plugin-allocated bodies");
}
