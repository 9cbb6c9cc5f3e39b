"""dpmia_utils: membership inference against DP genomic models."""
