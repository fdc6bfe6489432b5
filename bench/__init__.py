"""Latency/throughput benchmarks (trtexec method) across dtk's backends."""
