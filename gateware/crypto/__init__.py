"""The handshake offload engine's cores: SHA-256, AES-128-GCM, X25519, and the key slots."""
