//! The compute-module runtime client: get job, post result, post schemas, restart notification.
