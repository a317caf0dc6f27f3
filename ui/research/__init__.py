"""The researcher side: widgets, cached computations and altair charts shared by Monitor and Analysis."""
