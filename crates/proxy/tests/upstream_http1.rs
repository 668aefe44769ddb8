//! The HTTP/1.1 exchange with upstreams (RFC 9112), against scripted upstreams that answer
//! byte for byte what each test needs: framing, interim answers, keep-alive and closes, and
//! what the proxy does when a pooled connection turns out closed.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use watertight_proxy::body::{boxed, empty};

/// What a scripted upstream does with one request.
enum Act {
    /// Writes these bytes and waits for the next request.
    Answer(&'static [u8]),
    /// Writes these bytes and closes.
    AnswerAndClose(&'static [u8]),
    /// Closes without a word.
    Close,
    /// Writes these bytes (maybe none) and then neither writes nor reads again, holding the
    /// connection open until the proxy closes it (or for at most a minute).
    AnswerAndStall(&'static [u8]),
    /// Writes the first bytes, waits this many milliseconds, writes the rest.
    AnswerInTwo(&'static [u8], u64, &'static [u8]),
}

/// One request as the upstream received it.
#[derive(Clone, Debug)]
struct Seen {
    connection: usize,
    head: String,
    body: Vec<u8>,
}

/// An upstream that runs `script(connection, request on it, head)` for every request and
/// records what it received.
struct Scripted {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    async fn start(script: fn(usize, usize, &str) -> Act) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, connection, script, log.clone()));
                connection += 1;
            }
        });
        Scripted { address, seen }
    }

    /// A scripted upstream and a proxy in front of it, at the returned address.
    async fn behind_proxy(
        script: fn(usize, usize, &str) -> Act,
    ) -> (Scripted, watertight_proxy::Proxy, SocketAddr) {
        let upstream = Scripted::start(script).await;
        let (proxy, address) = proxy_to(upstream.address, &[]).await;
        (upstream, proxy, address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.seen()
            .iter()
            .map(|s| s.connection + 1)
            .max()
            .unwrap_or(0)
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: fn(usize, usize, &str) -> Act,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    for index in 0.. {
        let Some((head, body)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let act = script(connection, index, &head);
        seen.lock().unwrap().push(Seen {
            connection,
            head,
            body,
        });
        match act {
            Act::Answer(bytes) => stream.write_all(bytes).await.unwrap(),
            Act::AnswerAndClose(bytes) => {
                let _ = stream.write_all(bytes).await;
                return;
            }
            Act::Close => return,
            Act::AnswerInTwo(first, pause, rest) => {
                stream.write_all(first).await.unwrap();
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if stream.write_all(rest).await.is_err() {
                    return;
                }
            }
            Act::AnswerAndStall(bytes) => {
                let _ = stream.write_all(bytes).await;
                let mut byte = [0u8; 1];
                let closed = async {
                    // Anything more is not read as a request: the stream is only watched
                    // for the proxy's close.
                    while stream.read(&mut byte).await.is_ok_and(|n| n > 0) {}
                };
                let _ = tokio::time::timeout(Duration::from_secs(60), closed).await;
                return;
            }
        }
    }
}

/// Reads one request: its head, and a body by `content-length` or chunked (decoded).
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(length) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        while buf.len() < length {
            fill(stream, buf).await?;
        }
        body = buf.drain(..length).collect();
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(stream, buf).await?;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf).await?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    Some((head, body))
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Answers the first request on each connection, then closes on the second without a word:
/// the way a keep-alive connection dies when the upstream's idle timer fires just as the
/// proxy reuses it.
fn answers_once_per_connection(_: usize, index: usize, _: &str) -> Act {
    if index == 0 {
        Act::Answer(OK)
    } else {
        Act::Close
    }
}

async fn post(client: &TestClient, address: SocketAddr, body: &'static [u8]) -> Answer {
    let request = Request::post(format!("http://{address}/submit"))
        .body(boxed(Full::new(Bytes::from_static(body))))
        .unwrap();
    send(client, request).await
}

#[tokio::test]
async fn a_get_on_a_connection_closed_under_it_is_sent_again_on_a_new_one() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(answers_once_per_connection).await;
    assert_eq!(get(&h1(), address, "/a", &[]).await.status, StatusCode::OK);
    let again = get(&h1(), address, "/b", &[]).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the client never sees the dead connection"
    );
    let seen = upstream.seen();
    let paths: Vec<(usize, &str)> = seen
        .iter()
        .map(|s| (s.connection, s.head.split(' ').nth(1).unwrap()))
        .collect();
    assert_eq!(paths, vec![(0, "/a"), (0, "/b"), (1, "/b")]);
}

#[tokio::test]
async fn a_post_on_a_connection_closed_under_it_is_never_sent_twice() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(answers_once_per_connection).await;
    assert_eq!(post(&h1(), address, b"first").await.status, StatusCode::OK);
    let second = post(&h1(), address, b"second").await;
    assert_eq!(second.status, StatusCode::BAD_GATEWAY);
    assert_eq!(second.reason(), Some("upstream-reset"));
    let bodies: Vec<Vec<u8>> = upstream.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(
        bodies,
        vec![b"first".to_vec(), b"second".to_vec()],
        "sent once each"
    );
}

#[tokio::test]
async fn request_bodies_are_framed_by_length_or_chunked() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| Act::Answer(OK)).await;
    assert_eq!(
        post(&h1(), address, b"sized body").await.status,
        StatusCode::OK
    );
    // A body of unknown length, in three pieces.
    let pieces = futures_util::stream::iter(
        ["one ", "two ", "three"]
            .map(|p| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(p)))),
    );
    let request = Request::post(format!("http://{address}/stream"))
        .body(boxed(http_body_util::StreamBody::new(pieces)))
        .unwrap();
    assert_eq!(send(&h1(), request).await.status, StatusCode::OK);

    let seen = upstream.seen();
    assert!(
        seen[0]
            .head
            .to_ascii_lowercase()
            .contains("content-length: 10\r\n")
    );
    assert_eq!(seen[0].body, b"sized body");
    assert!(
        seen[1]
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n")
    );
    assert_eq!(seen[1].body, b"one two three");
    assert_eq!(
        upstream.connections(),
        1,
        "both on one kept-alive connection"
    );
}

#[tokio::test]
async fn a_chunked_answer_streams_through_and_keeps_the_connection() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::Answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n2\r\n, \r\n6\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n",
        )
    })
    .await;
    for _ in 0..3 {
        let answer = get(&h1(), address, "/", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "hello, world!");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn an_answer_delimited_by_close_is_read_to_the_end_and_not_reused() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    })
    .await;
    for _ in 0..2 {
        let answer = get(&h1(), address, "/", &[]).await;
        assert_eq!(answer.text(), "until the end");
    }
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn connection_close_from_the_upstream_is_honoured() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    })
    .await;
    for _ in 0..3 {
        let answer = get(&h1(), address, "/", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer.header("connection").is_none(),
            "hop-by-hop, not forwarded"
        );
    }
    assert_eq!(upstream.connections(), 3, "a new connection each time");
}

#[tokio::test]
async fn a_head_answer_has_no_body_and_keeps_the_connection() {
    let (upstream, _proxy, address) = Scripted::behind_proxy(|_, _, head| {
        if head.starts_with("HEAD") {
            Act::Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        } else {
            Act::Answer(OK)
        }
    })
    .await;
    let request = Request::builder()
        .method(Method::HEAD)
        .uri(format!("http://{address}/"))
        .body(empty())
        .unwrap();
    let answer = send(&h1(), request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-length"), Some("100"));
    assert!(answer.body.is_empty());
    assert_eq!(get(&h1(), address, "/", &[]).await.text(), "ok");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn interim_answers_are_passed_over_for_the_final_one() {
    let (_upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::Answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
    }).await;
    let answer = post(&h1(), address, b"payload").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.text(), "done");
}

#[tokio::test]
async fn an_early_final_answer_is_returned_while_the_body_is_still_going() {
    // The upstream refuses after the head, without reading the body, and keeps the
    // connection open: the proxy must give the client that answer, not wait or fail.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    if fill(&mut stream, &mut buf).await.is_none() {
                        return;
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!",
                    )
                    .await;
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            });
        }
    });
    let (_proxy, address) = proxy_to(endpoint, &[]).await;
    // A body that never ends: only the early answer can finish this exchange.
    let (_keep, frames) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
    let request = Request::post(format!("http://{address}/upload"))
        .body(boxed(http_body_util::StreamBody::new(tokio_stream_from(
            frames,
        ))))
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), h1().request(request))
        .await
        .expect("answered before the body ended")
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"too big!");
}

/// A stream of the frames sent on `frames`.
fn tokio_stream_from<T: Send + 'static>(
    mut frames: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| frames.poll_recv(cx))
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error_for_the_client_not_a_short_success() {
    let (_upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
    })
    .await;
    // The head may or may not have reached the client before the body broke; either way
    // the exchange must fail, never end as a complete 200 with ten bytes.
    let request = Request::get(format!("http://{address}/"))
        .body(empty())
        .unwrap();
    let failed = match h1().request(request).await {
        Err(_) => true,
        Ok(response) => response.into_body().collect().await.is_err(),
    };
    assert!(failed);
}

#[tokio::test]
async fn a_broken_answer_is_a_502_upstream_protocol() {
    let (_upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello")
    })
    .await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("upstream-protocol"));
}

#[tokio::test]
async fn a_101_to_a_plain_request_is_a_502_not_an_answer() {
    let (_upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::Answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
    }).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("upstream-protocol"));
}

#[tokio::test]
async fn chunked_wins_over_a_conflicting_length_and_the_length_is_not_forwarded() {
    let (_upstream, _proxy, address) = Scripted::behind_proxy(|_, _, _| {
        Act::AnswerAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        )
    }).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "0123456789");
    assert_ne!(answer.header("content-length"), Some("3"));
}

#[tokio::test]
async fn an_upstream_that_answers_first_and_reads_on_gets_the_rest_of_the_body() {
    // A duplex handler: it sends its head as soon as the request head is in, then reads the
    // body, then finishes its answer. The proxy must keep sending the body after the head.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            fill(&mut stream, &mut buf).await.unwrap();
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        while !buf.ends_with(b"0\r\n\r\n") {
            fill(&mut stream, &mut buf).await.unwrap();
        }
        stream.write_all(b"4\r\ndone\r\n0\r\n\r\n").await.unwrap();
        let _ = seen_tx.send(buf);
    });
    let (_proxy, address) = proxy_to(endpoint, &[]).await;

    let (pieces, frames) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    pieces
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"first-"))))
        .await
        .unwrap();
    let request = Request::post(format!("http://{address}/duplex"))
        .body(boxed(http_body_util::StreamBody::new(tokio_stream_from(
            frames,
        ))))
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), h1().request(request))
        .await
        .expect("the head came before the body ended")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    pieces
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"second"))))
        .await
        .unwrap();
    drop(pieces);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        response.into_body().collect(),
    )
    .await
    .expect("the upstream got the whole body and finished")
    .unwrap()
    .to_bytes();
    assert_eq!(&body[..], b"done");
    let seen = String::from_utf8(seen_rx.await.unwrap()).unwrap();
    assert!(seen.contains("first-") && seen.contains("second"), "{seen}");
}

#[tokio::test]
async fn an_answer_that_stalls_mid_body_is_cut_at_the_request_timeout_and_not_reused() {
    let upstream = Scripted::start(|connection, _, _| match connection {
        0 => Act::AnswerAndStall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."),
        _ => Act::Answer(OK),
    })
    .await;
    let (_proxy, address) = proxy_to(upstream.address, &["request_timeout: 300ms"]).await;
    let client = h1();
    let request = Request::get(format!("http://{address}/"))
        .body(empty())
        .unwrap();
    let started = Instant::now();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the head came in time");
    let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .expect("the stalled body was cut, not left waiting");
    assert!(body.is_err(), "a body cut short never ends as a success");
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(10)).contains(&started.elapsed()),
        "cut at the deadline: {:?}",
        started.elapsed()
    );
    let answer = get(&client, address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        upstream.connections(),
        2,
        "the cut connection was not reused"
    );
}

#[tokio::test]
async fn every_exchange_on_a_reused_connection_has_its_own_deadline() {
    // One connection: two quick answers, a third after the earlier deadlines have passed,
    // then one that never comes.
    let upstream = Scripted::start(|_, index, _| match index {
        0..=2 => Act::Answer(OK),
        _ => Act::AnswerAndStall(b""),
    })
    .await;
    let (_proxy, address) = proxy_to(upstream.address, &["request_timeout: 400ms"]).await;
    let client = h1();
    for pause in [0, 0, 600] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert_eq!(get(&client, address, "/", &[]).await.status, StatusCode::OK);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), get(&client, address, "/", &[]))
        .await
        .expect("answered at the request timeout");
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.reason(), Some("upstream-timeout"));
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "timed out at this request's deadline, not an earlier one: {:?}",
        started.elapsed()
    );
    assert_eq!(upstream.connections(), 1, "all four went on one connection");
}

#[tokio::test]
async fn a_body_may_stream_past_the_per_try_timeout_within_the_request_timeout() {
    // The per-try timeout bounds the wait for the head; the body then has the whole exchange's
    // deadline (the connection's timer moves from the one to the other).
    let upstream = Scripted::start(|_, _, _| {
        Act::AnswerInTwo(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            600,
            b"world",
        )
    })
    .await;
    let yaml = one_route(
        &[upstream.address],
        &["request_timeout: 5s"],
        "        retry: {attempts: 2, retry_on: [timeout], per_try_timeout: 200ms}\n",
    );
    let (_proxy, address) = proxy(&yaml).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "helloworld");
}
