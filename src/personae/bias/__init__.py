"""The bias study's instruments and statistics (METHODS.md section 8, arXiv 2506.20020)."""
