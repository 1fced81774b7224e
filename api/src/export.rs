//! The [`export!`](crate::export) macro.

/// Exports a plugin library: its ABI manifest, the allocator hook and the registration
/// entry point. List each plugin as `KIND "name" => factory`, where KIND is
/// `http_server`, `http_client` or `modifier` and `factory` is a
/// `Fn(&gwplugin::Config) -> Result<T, gwplugin::Error>` building a value of that kind.
///
/// ```ignore
/// gwplugin::export! {
///     modifier "add-header" => AddHeader::from_config,
///     http_server "auth" => Auth::from_config,
/// }
/// ```
///
/// The crate needs `build.rs` calling `gwplugin_build::plugin()` (which writes the
/// manifest this macro embeds) and `cdylib` in its `crate-type` (an `rlib` beside it is
/// fine).
#[macro_export]
macro_rules! export {
    ($($kind:ident $name:literal => $factory:expr),+ $(,)?) => {
        // Two plugins of one name: the host's registry would keep only the last.
        const _: () = $crate::abi::assert_unique_names(&[$($name),+]);

        /// The plugins this library registers, for in-process use and tests.
        pub fn gwplugin_entries() -> ::std::vec::Vec<$crate::abi::PluginEntry> {
            ::std::vec![$($crate::export!(@entry $kind $name $factory)),+]
        }

        // The path comes from `gwplugin_build::plugin()`'s own build-script output, not
        // from `OUT_DIR`: a file an earlier build script left there would be embedded, a
        // stale manifest the loader trusts. In this crate's `OUT_DIR`, not one inherited.
        const _: () = ::core::assert!(
            $crate::abi::str_eq(
                ::core::env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the crate's build.rs must call `gwplugin_build::plugin()` (with `gwplugin-build` in [build-dependencies], as new as `gwplugin`)"),
                ::core::concat!(::core::env!("OUT_DIR", "gwplugin: no ABI manifest for this build: the crate's build.rs must call `gwplugin_build::plugin()` (with `gwplugin-build` in [build-dependencies], as new as `gwplugin`)"), "/gwplugin-abi.bin"),
            ),
            "gwplugin: the ABI manifest path was not set by this crate's build script: its build.rs must call `gwplugin_build::plugin()`"
        );
        /// This library's ABI manifest record, read by the loader from the file
        /// before it is ever loaded.
        #[unsafe(no_mangle)]
        pub static GWPLUGIN_ABI_MANIFEST: [u8; include_bytes!(env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the crate's build.rs must call `gwplugin_build::plugin()` (with `gwplugin-build` in [build-dependencies], as new as `gwplugin`)")).len()] =
            *include_bytes!(env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the crate's build.rs must call `gwplugin_build::plugin()` (with `gwplugin-build` in [build-dependencies], as new as `gwplugin`)"));

        /// The size and alignment of the contract's types as compiled into this library
        /// (with whatever features cargo unified in), compared by the loader before
        /// `dlopen`.
        #[unsafe(no_mangle)]
        pub static GWPLUGIN_LAYOUT: [u8; $crate::abi::LAYOUT_RECORD.len()] = $crate::abi::LAYOUT_RECORD;

        /// The plugins this library registers, as `kind name` lines: plain data, so
        /// tools list them from the file without running any plugin code.
        #[unsafe(no_mangle)]
        pub static GWPLUGIN_EXPORTS: [u8; $crate::export!(@exports $($kind $name),+).len()] =
            $crate::abi::str_to_array($crate::export!(@exports $($kind $name),+));

        // Unit tests of the plugin crate run without a host: they keep the system allocator.
        #[cfg(not(test))]
        #[global_allocator]
        static GWPLUGIN_GLOBAL_ALLOCATOR: $crate::alloc::HostAllocator = $crate::alloc::HostAllocator;

        /// Installs the host's allocator; called right after `dlopen`, before anything else.
        ///
        /// # Safety
        /// `vtable` must live for the rest of the process.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn gwplugin_install_allocator(vtable: *const $crate::alloc::AllocVTable) -> bool {
            // SAFETY: forwarded from the loader, which passes a 'static vtable.
            unsafe { $crate::alloc::install(vtable) }
        }

        /// Registers this library's plugins with the host.
        #[unsafe(no_mangle)]
        pub fn gwplugin_register(
            ctx: &$crate::abi::HostContext,
        ) -> ::std::result::Result<$crate::abi::Registration, $crate::Error> {
            $crate::abi::register_dynamic(ctx, env!("CARGO_PKG_NAME"), gwplugin_entries)
        }
    };
    (@exports $($kind:ident $name:literal),+) => { concat!($(stringify!($kind), " ", $name, "\n"),+) };
    (@entry http_server $name:literal $factory:expr) => { $crate::abi::http_server($name, $factory) };
    (@entry http_client $name:literal $factory:expr) => { $crate::abi::http_client($name, $factory) };
    (@entry modifier $name:literal $factory:expr) => { $crate::abi::modifier($name, $factory) };
    (@entry $other:ident $name:literal $factory:expr) => {
        compile_error!(concat!(
            "unknown plugin kind `", stringify!($other),
            "`: expected `http_server`, `http_client` or `modifier`"
        ))
    };
}
