"""Thin DVC stage modules: parse args, load params, call llmd4rec_core, write outputs."""
