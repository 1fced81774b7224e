//! The three plugin kinds, as plugin authors implement them.

use std::future::Future;

use crate::abi::ErasedHandler;
use crate::{Error, Request, Response};

/// `plugin/http-server`: wraps the whole router. Call `next.run(req)` to pass the
/// request on, or answer it yourself.
pub trait HttpServer: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request,
        next: Next<'_>,
    ) -> impl Future<Output = Result<Response, Error>> + Send;
}

/// `plugin/http-client`: replaces the call to one backend. Use [`crate::send`] to reach
/// the network through the host.
pub trait HttpClient: Send + Sync + 'static {
    fn call(&self, req: Request) -> impl Future<Output = Result<Response, Error>> + Send;
}

/// `plugin/req-resp-modifier`: changes the request on its way to the backends and/or
/// the response on its way back. An error stops the request; its status (default 500)
/// is the answer.
pub trait Modifier: Send + Sync + 'static {
    /// Changes a request. The default leaves it as it is.
    fn modify_request(&self, req: &mut Request) -> Result<(), Error> {
        let _ = req;
        Ok(())
    }

    /// Changes a response. The default leaves it as it is.
    fn modify_response(&self, resp: &mut Response) -> Result<(), Error> {
        let _ = resp;
        Ok(())
    }
}

/// The rest of the chain, as seen by an [`HttpServer`] plugin: borrowed for the
/// request, so it is used within `handle`'s future (not from a spawned task).
pub struct Next<'a>(pub(crate) &'a dyn ErasedHandler);

impl<'a> Next<'a> {
    /// Passes the request to the next handler and returns its response.
    ///
    /// In gwhost it never returns `Err`: a backend's failure or timeout comes back as a
    /// 502 or 504 response, an inner plugin's error as its response. Look at the status.
    // Not an `async fn`: that would keep the request twice (parameter and local) in
    // every plugin future that awaits it; the handler's own future is returned as is.
    pub fn run(self, req: Request) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        self.0.call(req)
    }
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Next")
    }
}
