"""Data in: dataset layouts, probing, manifests, transcoding, demo data, benchmarks (installed as ascnet.tools)."""
