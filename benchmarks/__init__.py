"""Load generators and measurements for voice-relay (run: python -m benchmarks.relay_bench)."""
