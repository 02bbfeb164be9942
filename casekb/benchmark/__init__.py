"""`casekb bench`: speed, memory and scale of casekb against the usual alternatives, in one run."""
