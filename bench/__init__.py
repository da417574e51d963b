"""mless benchmarks: the bridge's costs measured against floors in the same run."""
