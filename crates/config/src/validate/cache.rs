//! The cache store's bounds and a route's cache timings.

use crate::path::Path;
use crate::{CacheStore, Config};

use super::Finding;

pub(super) fn check(config: &Config, found: &mut Vec<Finding>) {
    if let Some(store) = &config.cache {
        check_store(store, &Path::root().key("cache"), found);
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        for (j, route) in listener.routes.iter().enumerate() {
            if let Some(cache) = &route.cache
                && cache.coalesce_timeout.get().is_zero()
            {
                found.push(
                    Finding::new(
                        Path::root()
                            .key("listeners")
                            .index(i)
                            .key("routes")
                            .index(j)
                            .key("cache")
                            .key("coalesce_timeout"),
                        "coalesce_timeout is 0s, so concurrent misses would never wait for the first",
                    )
                    .hint("use a positive duration, e.g. \"5s\" (the default)"),
                );
            }
        }
    }
}

fn check_store(store: &CacheStore, path: &Path, found: &mut Vec<Finding>) {
    if store.max_bytes == 0 {
        found.push(
            Finding::new(
                path.key("max_bytes"),
                "max_bytes is 0, so nothing could be stored",
            )
            .hint("e.g. 268435456 (256 MiB, the default)"),
        );
    }
    if let Some(disk) = &store.disk {
        if disk.path.trim().is_empty() {
            found.push(
                Finding::new(
                    path.key("disk").key("path"),
                    "the disk tier's path is empty",
                )
                .hint("name a directory, e.g. /var/cache/watertight"),
            );
        }
        if disk.max_bytes < store.max_object_bytes as u64 {
            found.push(Finding::new(
                path.key("disk").key("max_bytes"),
                format!(
                    "the disk tier's max_bytes {} is below max_object_bytes {}",
                    disk.max_bytes, store.max_object_bytes
                ),
            ));
        }
    }
    if store.max_object_bytes as u64 > store.max_bytes {
        found.push(Finding::new(
            path.key("max_object_bytes"),
            format!(
                "max_object_bytes {} is above the store's max_bytes {}",
                store.max_object_bytes, store.max_bytes
            ),
        ));
    }
}
