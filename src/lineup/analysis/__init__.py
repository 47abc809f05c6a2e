"""Analysis: pure functions over stored results (arrays in, numbers and tables out)."""
