//! `build`: images from a Dockerfile.

pub mod dockerfile;
pub mod ignore;
