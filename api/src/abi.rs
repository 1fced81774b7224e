//! The types that cross the plugin boundary, in their type-erased form.
//!
//! A host uses these; plugin authors don't (they implement the traits in the crate root
//! and call [`export!`](crate::export)). Their layout is only stable for one compiler and
//! one `gwplugin` version, which is why the loader compares ABI manifests before it
//! touches any of them.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::guard::{Contained, GuardedFuture, guard};
use crate::{BoxFuture, Config, Error, HttpClient, HttpServer, Modifier, Next, Request, Response};

pub use crate::services::install_host_services;

/// Name of the plugin's exported ABI manifest record (plain data, read from the file).
pub const MANIFEST_SYMBOL: &str = "GWPLUGIN_ABI_MANIFEST";
/// Name of the plugin's exported list of `kind name` lines (plain data).
pub const EXPORTS_SYMBOL: &str = "GWPLUGIN_EXPORTS";
/// Name of the plugin's `extern "C" fn(*const AllocVTable) -> bool`.
pub const INSTALL_ALLOCATOR_SYMBOL: &str = "gwplugin_install_allocator";
/// Name of the plugin's [`RegisterFn`].
pub const REGISTER_SYMBOL: &str = "gwplugin_register";
/// Name of the link section that holds a host's ABI manifest record.
pub const HOST_MANIFEST_SECTION: &str = ".gwplugin_abi";
/// Name of the plugin's exported [`LAYOUT_RECORD`] (plain data, read from the file).
pub const LAYOUT_SYMBOL: &str = "GWPLUGIN_LAYOUT";

/// The signature of a plugin's registration entry point.
pub type RegisterFn = fn(&HostContext) -> Result<Registration, Error>;

/// What the host hands a plugin at registration.
pub struct HostContext {
    pub services: Arc<dyn crate::HostServices>,
}

impl fmt::Debug for HostContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostContext")
    }
}

/// `Box::pin(make())`, with the value built directly in its allocation.
///
/// `Box::pin(f())` builds the value on the stack and then copies it into the box: for a
/// request future that is a kilobyte or more per call. With the allocation made first,
/// the compiler writes the value in place (measured with callgrind: both copies of the
/// router's future per plugin call went away). Hosts box the futures they hand to
/// plugins with it, as the adapters here do.
///
/// Nothing between the caller moving a request into `make` and `make` running may
/// unwind: `Box::new_uninit` may (out of memory, through `handle_alloc_error`), and the
/// compiler then keeps a copy of what `make` captured, to drop it on that path (a
/// 264-byte `Request` copied once more per call). Out of memory here aborts instead.
#[inline(always)]
pub fn pin_box_with<T>(make: impl FnOnce() -> T) -> std::pin::Pin<Box<T>> {
    let layout = std::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        return Box::pin(make());
    }
    // SAFETY: a non-zero size, as `alloc` requires.
    let slot = unsafe { std::alloc::alloc(layout) }.cast::<T>();
    if slot.is_null() {
        out_of_memory(layout.size(), layout.align());
    }
    // `make` may run a plugin's code, which may panic (the adapters' guard catches it):
    // the allocation is freed on that path rather than leaked once per panicking call.
    struct FreeOnUnwind(*mut u8, std::alloc::Layout);
    impl Drop for FreeOnUnwind {
        fn drop(&mut self) {
            // SAFETY: allocated above with this layout, and not yet handed to a `Box`.
            unsafe { std::alloc::dealloc(self.0, self.1) }
        }
    }
    let free_on_unwind = FreeOnUnwind(slot.cast(), layout);
    // SAFETY: `slot` is a live, unaliased allocation made for a `T` by the global
    // allocator, as `Box::from_raw` requires; written before the box exists.
    unsafe {
        slot.write(make());
        std::mem::forget(free_on_unwind);
        Box::into_pin(Box::from_raw(slot))
    }
}

/// `handle_alloc_error`, which cannot unwind from here: a panic out of an `extern "C"`
/// function aborts, so callers need no unwinding path.
#[cold]
#[inline(never)]
extern "C" fn out_of_memory(size: usize, align: usize) -> ! {
    match std::alloc::Layout::from_size_align(size, align) {
        Ok(layout) => std::alloc::handle_alloc_error(layout),
        Err(_) => std::process::abort(),
    }
}

/// A request handler: the router, a backend, or a plugin wrapping them.
///
/// The future borrows the handler, so calling one touches no reference count (on a
/// multi-threaded host, a count shared by all threads is a contended cache line per
/// request); whoever calls a handler keeps it alive until the future is done.
pub trait ErasedHandler: Send + Sync {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, Error>>;
}

/// A shared handler.
pub type Handler = Arc<dyn ErasedHandler>;

impl<'a> Next<'a> {
    /// Wraps a host handler as the `next` of an http-server plugin.
    pub fn from_handler(handler: &'a dyn ErasedHandler) -> Self {
        Next(handler)
    }
}

/// A modifier instance.
pub trait ErasedModifier: Send + Sync {
    fn modify_request(&self, req: &mut Request) -> Result<(), Error>;
    fn modify_response(&self, resp: &mut Response) -> Result<(), Error>;
}

/// Creates http-server plugin instances: `config` and the handler to wrap.
pub trait ServerFactory: Send + Sync {
    fn create(&self, config: &Config, next: Handler) -> Result<Handler, Error>;
}

/// Creates http-client plugin instances.
pub trait ClientFactory: Send + Sync {
    fn create(&self, config: &Config) -> Result<Handler, Error>;
}

/// Creates modifier instances.
pub trait ModifierFactory: Send + Sync {
    fn create(&self, config: &Config) -> Result<Arc<dyn ErasedModifier>, Error>;
}

/// A plugin kind, with the factory that makes instances of it.
pub enum Factory {
    HttpServer(Box<dyn ServerFactory>),
    HttpClient(Box<dyn ClientFactory>),
    Modifier(Box<dyn ModifierFactory>),
}

/// The kinds, as named in config namespaces and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    HttpServer,
    HttpClient,
    Modifier,
}

impl Kind {
    /// The kind's name as users write it (`http-server`, `http-client`, `modifier`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HttpServer => "http-server",
            Kind::HttpClient => "http-client",
            Kind::Modifier => "modifier",
        }
    }

    /// The config namespace that uses this kind.
    pub fn namespace(self) -> &'static str {
        match self {
            Kind::HttpServer => "plugin/http-server",
            Kind::HttpClient => "plugin/http-client",
            Kind::Modifier => "plugin/req-resp-modifier",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Factory {
    pub fn kind(&self) -> Kind {
        match self {
            Factory::HttpServer(_) => Kind::HttpServer,
            Factory::HttpClient(_) => Kind::HttpClient,
            Factory::Modifier(_) => Kind::Modifier,
        }
    }
}

/// One registered plugin: a name and a factory.
pub struct PluginEntry {
    pub name: String,
    pub factory: Factory,
}

impl fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.factory.kind())
    }
}

/// Everything a plugin library registers.
#[derive(Debug)]
pub struct Registration {
    /// The plugin crate's package name, used to attribute log lines.
    pub library: String,
    pub plugins: Vec<PluginEntry>,
}

// ---- adapters from the author-facing traits; monomorphised in the plugin -----------

struct FnServerFactory<F>(F);
struct FnClientFactory<F>(F);
struct FnModifierFactory<F>(F);

struct ServerHandler<P> {
    plugin: Contained<P>,
    next: Handler,
}

struct ClientHandler<P> {
    plugin: Contained<P>,
}

struct ModifierInstance<P>(Contained<P>);

impl<P, F> ServerFactory for FnServerFactory<F>
where
    P: HttpServer,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync,
{
    fn create(&self, config: &Config, next: Handler) -> Result<Handler, Error> {
        guard(|| {
            let plugin = Contained::new((self.0)(config)?);
            Ok(Arc::new(ServerHandler { plugin, next }) as Handler)
        })
    }
}

impl<P: HttpServer> ErasedHandler for ServerHandler<P> {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, Error>> {
        // Called under a guard (a plugin may run code, and panic, before its future
        // exists), and boxed as it is rather than inside an `async` block: that block
        // would hold the request once more and be copied whole into the box. The guard's
        // closure borrows the request rather than owning it: `catch_unwind` moves its
        // closure, and a 264-byte request in it was one more copy per call. `make` runs
        // exactly once (`pin_box_with` cannot unwind before it), so the request is
        // neither lost nor taken twice.
        let mut req = ManuallyDrop::new(req);
        guarded_box(|| {
            // SAFETY: taken once, here; `req` is not used again.
            let req = unsafe { ManuallyDrop::take(&mut req) };
            self.plugin.handle(req, Next(&*self.next))
        })
    }
}

/// The future `make` returns, boxed under a guard; a panic in `make` is the future's error.
fn guarded_box<'a, F>(make: impl FnOnce() -> F) -> BoxFuture<'a, Result<Response, Error>>
where
    F: std::future::Future<Output = Result<Response, Error>> + Send + 'a,
{
    match guard(|| Ok(pin_box_with(|| GuardedFuture::new(make())))) {
        Ok(fut) => fut,
        Err(panic) => Box::pin(std::future::ready(Err(panic))),
    }
}

impl<P, F> ClientFactory for FnClientFactory<F>
where
    P: HttpClient,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync,
{
    fn create(&self, config: &Config) -> Result<Handler, Error> {
        guard(|| {
            let plugin = Contained::new((self.0)(config)?);
            Ok(Arc::new(ClientHandler { plugin }) as Handler)
        })
    }
}

impl<P: HttpClient> ErasedHandler for ClientHandler<P> {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, Error>> {
        let mut req = ManuallyDrop::new(req);
        guarded_box(|| {
            // SAFETY: as in `ServerHandler::call`.
            let req = unsafe { ManuallyDrop::take(&mut req) };
            self.plugin.call(req)
        })
    }
}

impl<P, F> ModifierFactory for FnModifierFactory<F>
where
    P: Modifier,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync,
{
    fn create(&self, config: &Config) -> Result<Arc<dyn ErasedModifier>, Error> {
        guard(|| {
            Ok(
                Arc::new(ModifierInstance(Contained::new((self.0)(config)?)))
                    as Arc<dyn ErasedModifier>,
            )
        })
    }
}

impl<P: Modifier> ErasedModifier for ModifierInstance<P> {
    #[inline]
    fn modify_request(&self, req: &mut Request) -> Result<(), Error> {
        guard(|| self.0.modify_request(req))
    }
    #[inline]
    fn modify_response(&self, resp: &mut Response) -> Result<(), Error> {
        guard(|| self.0.modify_response(resp))
    }
}

/// A registration entry for an http-server plugin (used by [`export!`](crate::export)).
pub fn http_server<P, F>(name: &str, factory: F) -> PluginEntry
where
    P: HttpServer,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync + 'static,
{
    PluginEntry {
        name: name.to_owned(),
        factory: Factory::HttpServer(Box::new(FnServerFactory(factory))),
    }
}

/// A registration entry for an http-client plugin (used by [`export!`](crate::export)).
pub fn http_client<P, F>(name: &str, factory: F) -> PluginEntry
where
    P: HttpClient,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync + 'static,
{
    PluginEntry {
        name: name.to_owned(),
        factory: Factory::HttpClient(Box::new(FnClientFactory(factory))),
    }
}

/// A registration entry for a modifier plugin (used by [`export!`](crate::export)).
pub fn modifier<P, F>(name: &str, factory: F) -> PluginEntry
where
    P: Modifier,
    F: Fn(&Config) -> Result<P, Error> + Send + Sync + 'static,
{
    PluginEntry {
        name: name.to_owned(),
        factory: Factory::Modifier(Box::new(FnModifierFactory(factory))),
    }
}

/// The body of a plugin's `gwplugin_register`: installs the host services, the log
/// forwarder and the panic hook in the plugin's statics, then lists its plugins. All of
/// it under a panic guard.
#[doc(hidden)]
pub fn register_dynamic(
    ctx: &HostContext,
    library: &'static str,
    entries: fn() -> Vec<PluginEntry>,
) -> Result<Registration, Error> {
    guard(|| {
        crate::guard::install_panic_hook();
        let level = ctx.services.max_log_level();
        install_host_services(ctx.services.clone());
        if log::set_boxed_logger(Box::new(crate::services::HostLogger { plugin: library })).is_ok()
        {
            log::set_max_level(level);
        }
        Ok(Registration {
            library: library.to_owned(),
            plugins: entries(),
        })
    })
}

/// Fails the build (in a `const`) when a name is listed twice: the config names plugins
/// by name, whatever their kind, so one would hide the other.
#[doc(hidden)]
pub const fn assert_unique_names(names: &[&str]) {
    let mut i = 0;
    while i < names.len() {
        let mut j = i + 1;
        while j < names.len() {
            if names[i].len() == names[j].len() && {
                let (a, b) = (names[i].as_bytes(), names[j].as_bytes());
                let mut k = 0;
                while k < a.len() && a[k] == b[k] {
                    k += 1;
                }
                k == a.len()
            } {
                panic!("gwplugin::export! lists two plugins with the same name: give each its own");
            }
            j += 1;
        }
        i += 1;
    }
}

/// The contract's types whose layout a boundary crate's features decide, each with
/// `(size, align)` as this crate was compiled. The manifest records the features a
/// plugin's build asked for; cargo can still unify in more (a plain `cargo build` in a
/// workspace whose other member turns on `serde_json/preserve_order` makes every
/// `serde_json::Map` in the plugin an `IndexMap`, while the host's is a `BTreeMap`). What
/// the compiler laid out is what a plugin reads the host's values with, so this record,
/// computed where the types are compiled, is compared too.
const LAYOUT: &[(&str, usize, usize)] = &[
    layout_of::<Request>("gwplugin::Request"),
    layout_of::<Response>("gwplugin::Response"),
    layout_of::<crate::Body>("gwplugin::Body"),
    layout_of::<Error>("gwplugin::Error"),
    layout_of::<http::HeaderMap>("http::HeaderMap"),
    layout_of::<http::Extensions>("http::Extensions"),
    layout_of::<bytes::Bytes>("bytes::Bytes"),
    layout_of::<http_body::SizeHint>("http_body::SizeHint"),
    layout_of::<serde_json::Value>("serde_json::Value"),
    layout_of::<serde_json::Map<String, serde_json::Value>>("serde_json::Map"),
    layout_of::<serde_json::Number>("serde_json::Number"),
    layout_of::<log::Record<'static>>("log::Record"),
    layout_of::<log::Metadata<'static>>("log::Metadata"),
];

const fn layout_of<T>(name: &'static str) -> (&'static str, usize, usize) {
    (name, std::mem::size_of::<T>(), std::mem::align_of::<T>())
}

/// [`LAYOUT`] as plain data, the symbol [`LAYOUT_SYMBOL`] of every plugin: per type, its
/// size and alignment as little-endian `u32`s, in `LAYOUT`'s order (the same for one
/// `gwplugin`, which the manifest check has matched by then).
#[doc(hidden)]
pub const LAYOUT_RECORD: [u8; LAYOUT.len() * 8] = {
    let mut out = [0u8; LAYOUT.len() * 8];
    let mut i = 0;
    while i < LAYOUT.len() {
        let (_, size, align) = LAYOUT[i];
        let (size, align) = ((size as u32).to_le_bytes(), (align as u32).to_le_bytes());
        let mut k = 0;
        while k < 4 {
            out[i * 8 + k] = size[k];
            out[i * 8 + 4 + k] = align[k];
            k += 1;
        }
        i += 1;
    }
    out
};

/// A contract type laid out differently in a plugin than in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutDifference {
    pub type_name: &'static str,
    /// `(size, align)` in the plugin.
    pub plugin: (u32, u32),
    /// `(size, align)` here.
    pub here: (u32, u32),
}

/// Compares a plugin's [`LAYOUT_RECORD`] with this build's. `Err` when the record is not
/// one this `gwplugin` writes (another length).
pub fn layout_differences(plugin_record: &[u8]) -> Result<Vec<LayoutDifference>, String> {
    if plugin_record.len() != LAYOUT_RECORD.len() {
        return Err(format!(
            "a layout record of {} bytes, this gwplugin writes {}",
            plugin_record.len(),
            LAYOUT_RECORD.len()
        ));
    }
    let pair = |record: &[u8], i: usize| {
        let word = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().expect("4 bytes"));
        (word(i * 8), word(i * 8 + 4))
    };
    Ok(LAYOUT
        .iter()
        .enumerate()
        .filter_map(|(i, (type_name, _, _))| {
            let (plugin, here) = (pair(plugin_record, i), pair(&LAYOUT_RECORD, i));
            (plugin != here).then_some(LayoutDifference {
                type_name,
                plugin,
                here,
            })
        })
        .collect())
}

/// Whether two strings are equal, at compile time (for `export!` and `host_manifest!`).
#[doc(hidden)]
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Copies a string into a byte array at compile time (for [`EXPORTS_SYMBOL`]).
#[doc(hidden)]
pub const fn str_to_array<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{LAYOUT_RECORD, assert_unique_names, layout_differences};

    #[test]
    fn a_layout_record_is_compared_type_by_type() {
        assert_eq!(layout_differences(&LAYOUT_RECORD), Ok(vec![]));
        // `serde_json::Map` (the 10th type) as an `IndexMap`, bigger than a `BTreeMap`.
        let mut other = LAYOUT_RECORD;
        other[9 * 8] += 48;
        let diffs = layout_differences(&other).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].type_name, "serde_json::Map");
        assert_eq!(diffs[0].plugin.0, diffs[0].here.0 + 48);
        assert!(layout_differences(&LAYOUT_RECORD[..8]).is_err());
    }

    #[test]
    fn distinct_names_pass() {
        const _: () = assert_unique_names(&["a", "ab", "b", "ba"]);
        assert_unique_names(&["tenant"]);
    }

    #[test]
    #[should_panic(expected = "lists two plugins with the same name")]
    fn a_name_listed_twice_fails() {
        assert_unique_names(&["auth", "tenant", "auth"]);
    }
}
