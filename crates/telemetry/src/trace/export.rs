//! OTLP export off the request path: requests hand finished spans to a bounded queue and
//! never wait; one task batches them (by size or interval) and sends each batch over OTLP/gRPC
//! or OTLP/HTTP (protobuf). A full queue or a failed export drops spans and counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use watertight_config::{OtlpProtocol, Tracing};

use super::span::SpanRecord;
use crate::Metrics;

enum Command {
    Spans(Vec<SpanRecord>),
    Flush(oneshot::Sender<()>),
}

/// The request side of the export queue.
#[derive(Debug)]
pub(super) struct Exporter {
    sender: mpsc::UnboundedSender<Command>,
    /// Spans queued and not yet taken into a batch; bounded by `limit`.
    queued: Arc<AtomicUsize>,
    limit: usize,
    metrics: Arc<Metrics>,
}

impl Exporter {
    /// Starts the export task for `config` (inside a tokio runtime). It ends, after sending
    /// what it holds, when the exporter is dropped.
    pub(super) fn start(config: &Tracing, metrics: Arc<Metrics>) -> Exporter {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = Task {
            transport: Transport::new(config),
            resource: resource(&config.service_name),
            batch_size: config.otlp.batch_size,
            interval: config.otlp.batch_interval.get(),
            timeout: config.otlp.timeout.get(),
            queued: queued.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(task.run(receiver));
        Exporter {
            sender,
            queued,
            limit: config.otlp.queue_size,
            metrics,
        }
    }

    /// Queues a kept trace's spans; never waits.
    pub(super) fn queue(&self, spans: Vec<SpanRecord>) {
        let count = spans.len();
        let reserved = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued + count <= self.limit).then_some(queued + count)
            })
            .is_ok();
        if !reserved || self.sender.send(Command::Spans(spans)).is_err() {
            if reserved {
                self.queued.fetch_sub(count, Ordering::Relaxed);
            }
            self.metrics.spans_dropped("queue_full", count as u64);
        }
    }

    /// Waits until what is queued now has been offered to the collector, or `timeout`.
    pub(super) async fn flush(&self, timeout: Duration) {
        let (done, flushed) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, flushed).await;
        }
    }
}

struct Task {
    transport: Transport,
    resource: Resource,
    batch_size: usize,
    interval: Duration,
    timeout: Duration,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Task {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Command>) {
        let mut batch: Vec<SpanRecord> = Vec::with_capacity(self.batch_size);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = receiver.recv() => match command {
                    Some(Command::Spans(spans)) => {
                        self.queued.fetch_sub(spans.len(), Ordering::Relaxed);
                        batch.extend(spans);
                        while batch.len() >= self.batch_size {
                            let rest = batch.split_off(self.batch_size);
                            let full = std::mem::replace(&mut batch, rest);
                            self.export(full).await;
                        }
                    }
                    Some(Command::Flush(done)) => {
                        self.export(std::mem::take(&mut batch)).await;
                        let _ = done.send(());
                    }
                    None => {
                        self.export(std::mem::take(&mut batch)).await;
                        return;
                    }
                },
                _ = tick.tick() => self.export(std::mem::take(&mut batch)).await,
            }
        }
    }

    async fn export(&mut self, spans: Vec<SpanRecord>) {
        if spans.is_empty() {
            return;
        }
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "watertight".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    spans: spans.iter().map(SpanRecord::to_otlp).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let sent = tokio::time::timeout(self.timeout, self.transport.send(request)).await;
        match sent {
            Ok(Ok(())) => self.metrics.spans_exported(count),
            Ok(Err(error)) => {
                tracing::debug!(%error, spans = count, "span export failed");
                self.metrics.spans_dropped("export_failed", count);
            }
            Err(_) => {
                tracing::debug!(spans = count, "span export timed out");
                self.metrics.spans_dropped("export_failed", count);
            }
        }
    }
}

enum Transport {
    Grpc(Option<TraceServiceClient<tonic::transport::Channel>>),
    Http {
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        uri: Option<Uri>,
    },
}

impl Transport {
    fn new(config: &Tracing) -> Transport {
        let endpoint = config.otlp.endpoint.trim_end_matches('/');
        match config.otlp.protocol {
            OtlpProtocol::Grpc => Transport::Grpc(
                tonic::transport::Endpoint::from_shared(endpoint.to_owned())
                    .ok()
                    .map(|e| e.connect_timeout(config.otlp.timeout.get()).connect_lazy())
                    .map(TraceServiceClient::new),
            ),
            OtlpProtocol::Http => Transport::Http {
                client: Box::new(Client::builder(TokioExecutor::new()).build_http()),
                uri: format!("{endpoint}/v1/traces").parse().ok(),
            },
        }
    }

    async fn send(&mut self, request: ExportTraceServiceRequest) -> Result<(), String> {
        match self {
            Transport::Grpc(client) => {
                let client = client.as_mut().ok_or("invalid OTLP endpoint")?;
                client
                    .export(request)
                    .await
                    .map(drop)
                    .map_err(|status| status.to_string())
            }
            Transport::Http { client, uri } => {
                let uri = uri.clone().ok_or("invalid OTLP endpoint")?;
                let body = Full::new(Bytes::from(request.encode_to_vec()));
                let post = Request::post(uri)
                    .header(CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .map_err(|e| e.to_string())?;
                let response = client.request(post).await.map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("collector answered {}", response.status()))
                }
            }
        }
    }
}

fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![KeyValue {
            key: "service.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service_name.to_owned())),
            }),
            ..KeyValue::default()
        }],
        ..Resource::default()
    }
}
