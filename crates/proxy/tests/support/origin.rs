//! A programmable HTTP origin for cache tests: each test says what every request gets (status,
//! headers, body, a delay), and the origin records the requests it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// What the origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    /// 200 with `body` and these headers.
    pub fn ok(body: &str, headers: &[(&str, &str)]) -> Self {
        Self::status(200, body, headers)
    }

    /// `status` with `body` and these headers.
    pub fn status(status: u16, body: &str, headers: &[(&str, &str)]) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// The same, answered after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Request<Incoming>) -> Reply + Send + Sync>;

/// A running origin.
#[derive(Clone)]
pub struct Origin {
    pub address: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    received: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl Origin {
    /// An origin on a free loopback port answering every request with `reply`.
    pub async fn start(reply: Reply) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let fixed = reply.clone();
        let origin = Origin {
            address,
            handler: Arc::new(Mutex::new(Arc::new(move |_: &Request<Incoming>| {
                fixed.clone()
            }))),
            received: Arc::default(),
        };
        let serving = origin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let origin = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let origin = origin.clone();
                        async move { Ok::<_, Infallible>(origin.answer(request).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        origin
    }

    /// From now on, every request gets `reply`.
    pub fn reply(&self, reply: Reply) {
        *self.handler.lock().unwrap() = Arc::new(move |_: &Request<Incoming>| reply.clone());
    }

    /// From now on, each request's answer is what `handler` says.
    pub fn handle(&self, handler: impl Fn(&Request<Incoming>) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// The headers of the `n`-th request received (from 0).
    pub fn request_headers(&self, n: usize) -> HeaderMap {
        self.received.lock().unwrap()[n].1.clone()
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let handler = self.handler.lock().unwrap().clone();
        let reply = handler(&request);
        self.received.lock().unwrap().push((
            format!("{} {}", request.method(), request.uri()),
            request.headers().clone(),
        ));
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (name, value) in reply.headers {
            response.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(&value).unwrap(),
            );
        }
        response
    }
}
