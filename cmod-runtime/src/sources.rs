//! Sources: mounted credentials (`SOURCE_CREDENTIALS`, `SOURCE_CONFIGURATIONS_PATH`) and REST source clients.
