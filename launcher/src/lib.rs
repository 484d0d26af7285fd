//! plex-pg-launcher as a library: the pieces the binary is made of, shared
//! with the tests (which use [`cluster`] to start a throwaway PostgreSQL).

pub mod cluster;
