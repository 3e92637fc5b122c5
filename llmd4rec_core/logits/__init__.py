"""Logit artifacts: export any recommender's scores to Parquet, read them back, inspect and compare."""
