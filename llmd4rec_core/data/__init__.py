"""Data: acquisition of raw files, k-core filtering, leave-one-out splits, and the sequence container."""
