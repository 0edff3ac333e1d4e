"""canarytrace evaluators: turn sampled spans into scores the comparison can trust."""
