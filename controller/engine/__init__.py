"""The run engine: the pure planner, and the loop that applies its decisions."""
