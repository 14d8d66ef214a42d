//! The three backends a stage needs, for the distributed and the embedded mode.

use std::path::Path;
use std::sync::Arc;

use sightline_blob::{BlobStore, LocalStore, S3Config, S3Store};
use sightline_bus::{AmqpBus, AmqpConfig, Bus, MemoryBus};
use sightline_coord::{Coord, MemoryCoord, RedisCoord};

use crate::config::CommonArgs;

/// Bus, blob storage and coordination, shared by every runner in a process.
#[derive(Clone)]
pub struct Backends {
    /// The message bus.
    pub bus: Arc<dyn Bus>,
    /// Blob storage.
    pub blob: Arc<dyn BlobStore>,
    /// Coordination.
    pub coord: Arc<dyn Coord>,
}

/// Why the backends could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Storage set-up failed.
    #[error("set up storage: {0}")]
    Blob(#[from] sightline_blob::BlobError),
    /// Coordination set-up failed.
    #[error("connect to redis: {0}")]
    Coord(#[from] sightline_coord::CoordError),
}

impl Backends {
    /// RabbitMQ, S3 and Redis as configured. RabbitMQ connects lazily (and reconnects);
    /// Redis connects now.
    pub async fn distributed(args: &CommonArgs, connection_name: &str) -> Result<Self, BackendError> {
        let bus = AmqpBus::new(AmqpConfig::new(args.amqp_url.clone(), connection_name));
        let credentials = match (&args.s3_access_key, &args.s3_secret_key) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone())),
            _ => None,
        };
        let s3 = S3Store::new(&S3Config {
            endpoint: (!args.s3_endpoint.is_empty()).then(|| args.s3_endpoint.clone()),
            bucket: args.s3_bucket.clone(),
            region: args.s3_region.clone(),
            credentials,
            path_style: true,
        })
        .await?;
        let coord = RedisCoord::connect(&args.redis_url).await?;
        Ok(Self { bus: Arc::new(bus), blob: Arc::new(s3), coord: Arc::new(coord) })
    }

    /// In-memory bus and coordination, and a local folder for storage: the embedded mode.
    pub fn embedded(storage: &Path) -> Result<Self, BackendError> {
        Ok(Self {
            bus: Arc::new(MemoryBus::new()),
            blob: Arc::new(LocalStore::new(storage)?),
            coord: Arc::new(MemoryCoord::new()),
        })
    }
}
