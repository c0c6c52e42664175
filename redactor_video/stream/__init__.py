"""The inline filter between cameras and the VMS: live input, bounded latency, fail-closed outputs."""
