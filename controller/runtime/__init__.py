"""The imperative shell around the pure engine: runs, scheduling, and the executor seam."""
