"""Producing samples: options, modes, backends, the KV replay, the resumable store, records."""
