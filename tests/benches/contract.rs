//! Criterion benchmark of the contract (see BENCHMARKS.md): one modifier call through a
//! loaded plugin vs the same code statically linked. (Loading is measured per process,
//! as at a real start-up, by `scripts/bench-load.sh`: in one process, every further
//! `dlopen` searches all the libraries loaded before it.)

use std::path::PathBuf;
use std::sync::Arc;

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

criterion_group!(benches, modifier_call);
criterion_main!(benches);
