//! Criterion benchmarks of the contract and the loader (see BENCHMARKS.md):
//!
//! * one modifier call through a loaded plugin vs the same code statically linked;
//! * verify + load + register of a plugin file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gwplugin::abi::{ErasedModifier, Factory};
use gwplugin::http::Request;
use gwplugin::{Body, Config};
use gwplugin_e2e::{Build, build_plugin, workspace_root};
use gwplugin_host::{Loader, TokioHostServices};

#[path = "../../fixtures/plugins/bench-modifier/src/logic.rs"]
mod logic;

fn host_record() -> &'static [u8] {
    gwplugin_host::host_manifest!()
}

fn release_plugin(dir: &str) -> PathBuf {
    let manifest = workspace_root()
        .join("fixtures/plugins")
        .join(dir)
        .join("Cargo.toml");
    build_plugin(
        &manifest,
        &Build {
            args: vec!["--release".into()],
            ..Default::default()
        },
    )
    .expect("plugin builds")
}

fn debug_plugin(dir: &str) -> PathBuf {
    let manifest = workspace_root()
        .join("fixtures/plugins")
        .join(dir)
        .join("Cargo.toml");
    build_plugin(&manifest, &Build::default()).expect("plugin builds")
}

fn request() -> gwplugin::Request {
    Request::get("/acme/orders/42").body(Body::empty()).unwrap()
}

fn static_modifier(entry: gwplugin::abi::PluginEntry, config: &Config) -> Arc<dyn ErasedModifier> {
    match entry.factory {
        Factory::Modifier(f) => f.create(config).unwrap(),
        _ => unreachable!(),
    }
}

fn modifier_call(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _entered = rt.enter();
    let config = Config::Null;

    let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
    loader
        .load_file(&release_plugin("bench-modifier"), None)
        .unwrap();
    let mut group = c.benchmark_group("modifier_call");
    // Baseline: the same modifier code compiled into this binary, called through the
    // same adapter; then the copy in the loaded plugin.
    let static_tenant = static_modifier(
        gwplugin::abi::modifier("tenant-header", logic::tenant_header),
        &config,
    );
    let static_inspect =
        static_modifier(gwplugin::abi::modifier("inspect", logic::inspect), &config);
    let loaded_tenant = loader
        .registry()
        .create_modifier("tenant-header", &config)
        .unwrap();
    let loaded_inspect = loader
        .registry()
        .create_modifier("inspect", &config)
        .unwrap();
    for (name, m) in [
        ("tenant-header/static", &static_tenant),
        ("tenant-header/loaded", &loaded_tenant),
        ("inspect/static", &static_inspect),
        ("inspect/loaded", &loaded_inspect),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                request,
                |req| m.modify_request(req).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn verify_load_register(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _entered = rt.enter();
    let services = TokioHostServices::current();
    let mut group = c.benchmark_group("verify_load_register");
    // Every iteration maps a fresh copy (plugins are never unloaded): keep counts small.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (label, so) in [
        ("release-bench-modifier", release_plugin("bench-modifier")),
        ("debug-all-kinds", debug_plugin("all-kinds")),
    ] {
        let size_mb = std::fs::metadata(&so).unwrap().len() as f64 / 1e6;
        let sha = {
            use sha2::Digest;
            sha2::Sha256::digest(std::fs::read(&so).unwrap())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        group.bench_function(format!("{label}-{size_mb:.1}MB"), |b| {
            b.iter(|| {
                let mut loader = Loader::new(host_record(), services.clone()).unwrap();
                loader.load_file(&so, None).unwrap();
                loader.into_registry()
            })
        });
        group.bench_function(format!("{label}-{size_mb:.1}MB-sha256"), |b| {
            b.iter(|| {
                let mut loader = Loader::new(host_record(), services.clone()).unwrap();
                loader.load_file(&so, Some(&sha)).unwrap();
                loader.into_registry()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, modifier_call, verify_load_register);
criterion_main!(benches);
