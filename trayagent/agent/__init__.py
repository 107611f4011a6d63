"""The per-user agent: the Uploader behind a loopback control API, its client and notifications."""
